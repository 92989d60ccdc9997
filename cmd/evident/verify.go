package main

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

const verifyHelp = `
Verifies a receipt (a .tlog-proof file) offline, without contacting the log:

  1. the receipt parses (C2SP tlog-proof);
  2. its checkpoint carries a valid signature by --log_key, whose name is
     the checkpoint's origin;
  3. with --policy, the witnesses that cosigned the checkpoint meet the
     policy's quorum (C2SP tlog-policy);
  4. SHA-256(0x00 || entry) is included at the receipt's index under the
     checkpoint's root (RFC 6962 inclusion proof).

RECEIPT may be "-" for stdin. Exit 0 prints one line: index, tree size,
origin and the witnesses that cosigned, with when. Exit 1 prints the precise
reason (--json: "reason" is malformed, signature, quorum, receipt_altered or
entry_mismatch). Step 4 tells apart what can be told apart offline:

  receipt_altered  the receipt's index is not below the signed tree size,
                   or its proof does not have the length an inclusion
                   proof of that index in that tree has;
  entry_mismatch   otherwise: these bytes, at this index, with these proof
                   hashes, do not lead to the signed root. Either the entry
                   is not the one logged, or the receipt's proof hashes (or
                   its index) were altered; only the log can say which
                   ("evident receipt --entry FILE" fetches a fresh one).`

func runVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "verify", "--log_key VKEY [--policy FILE] --entry FILE RECEIPT", verifyHelp)
	logKey := fs.String("log_key", "", "the log's verifier key, or a file holding it")
	policyFile := fs.String("policy", "", "witness policy file (tlog-policy); without it cosignatures are not required")
	entryFile := fs.String("entry", "", `the entry's file ("-" for stdin)`)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one RECEIPT argument, got %d", len(pos))
	}
	if *entryFile == "" {
		return usagef("--entry is required")
	}
	if *entryFile == "-" && pos[0] == "-" {
		return usagef("--entry and RECEIPT cannot both be stdin")
	}
	v, err := loadLogKey(*logKey)
	if err != nil {
		return err
	}
	policy, err := loadPolicy(*policyFile)
	if err != nil {
		return err
	}
	entry, err := e.readArg(*entryFile, maxEntryFile)
	if err != nil {
		return usagef("--entry: %v", err)
	}
	rb, err := e.readArg(pos[0], checkpoint.MaxNoteSize+1)
	if err != nil {
		return usagef("receipt: %v", err)
	}
	r, err := checkpoint.ParseReceipt(rb)
	if err != nil {
		return verifyFailure("malformed receipt", err)
	}
	s, err := checkpoint.VerifyReceipt(r, entry, v, policy)
	if err != nil {
		return receiptFailure("", r, entry, v, err)
	}
	cosigners := cosignersOf(s, policy)
	out := map[string]any{
		"ok": true, "index": r.Index, "tree_size": s.Size, "origin": s.Origin,
		"root_hash": fmt.Sprintf("%x", s.Hash), "cosignatures": cosigners,
	}
	e.result(out, fmt.Sprintf("OK: index %d, tree size %d, origin %s, %s", r.Index, s.Size, s.Origin, cosignedText(cosigners, policy != nil)))
	return nil
}

// maxEntryFile caps an entry read from a file; the log's own cap is 65,535.
const maxEntryFile = 1 << 20

type cosignerOut struct {
	Name    string `json:"name"`     // the witness's name in the policy
	KeyName string `json:"key_name"` // the witness key's name
	Time    string `json:"time"`     // when it cosigned (cosignature/v1 timestamp)
}

// cosignersOf lists the verified cosignatures of s under the policy's names.
func cosignersOf(s *checkpoint.Signed, policy *checkpoint.Policy) []cosignerOut {
	if policy == nil {
		return nil
	}
	var out []cosignerOut
	for _, c := range s.Cosignatures {
		name := c.Name
		for _, w := range policy.Witnesses() {
			if w.Verifier.Name() == c.Name && w.Verifier.KeyHash() == c.KeyHash {
				name = w.Name
			}
		}
		out = append(out, cosignerOut{Name: name, KeyName: c.Name, Time: c.Time.UTC().Format(time.RFC3339)})
	}
	return out
}

func cosignedText(cs []cosignerOut, havePolicy bool) string {
	if !havePolicy {
		return "cosignatures not checked (no --policy)"
	}
	if len(cs) == 0 {
		return "no cosignatures (the policy requires none)"
	}
	var parts []string
	for _, c := range cs {
		n := c.Name
		if c.KeyName != c.Name {
			n += " (" + c.KeyName + ")"
		}
		parts = append(parts, n+" at "+c.Time)
	}
	return "cosigned by " + strings.Join(parts, ", ")
}

// receiptFailure turns an error of checkpoint.VerifyReceipt for receipt r
// and entry into a failure that says in words which check failed, after
// prefix.
func receiptFailure(prefix string, r *checkpoint.Receipt, entry []byte, key note.Verifier, err error) error {
	f := &failure{reason: reasonOf(err), err: err}
	switch f.reason {
	case "malformed":
		f.msg = "malformed receipt: " + err.Error()
	case "signature":
		f.msg = "log signature missing, invalid or by another key: " + err.Error()
	case "quorum":
		f.msg = "witness quorum not met"
		var qe *checkpoint.QuorumError
		if errors.As(err, &qe) && len(qe.Missing) > 0 {
			f.msg += ": missing cosignatures from " + strings.Join(qe.Missing, ", ")
		}
	case "inclusion":
		f.reason, f.msg = explainInclusion(r, entry, key)
	default:
		f.msg = "receipt does not verify: " + err.Error()
	}
	f.msg = prefix + f.msg
	return f
}

// explainInclusion says why the inclusion proof of a receipt whose
// checkpoint verified fails for entry, as precisely as can be told offline:
// the signed tree size fixes how long the proof of an index must be, so an
// index or proof length that does not fit it proves the receipt was
// altered; beyond that, a wrong entry and a wrong proof hash (or an index
// moved within the same proof length) give the same wrong root.
func explainInclusion(r *checkpoint.Receipt, entry []byte, key note.Verifier) (reason, msg string) {
	s, err := checkpoint.Open(r.Checkpoint, key)
	if key == nil || err != nil {
		return "inclusion", "inclusion proof fails: the entry does not match the receipt, or the proof or index was altered"
	}
	if r.Index >= s.Size {
		return "receipt_altered", fmt.Sprintf("the receipt was altered: its index %d is not below the tree size %d of its signed checkpoint", r.Index, s.Size)
	}
	if want := inclusionProofLen(r.Index, s.Size); len(r.Proof) != want {
		return "receipt_altered", fmt.Sprintf("the receipt was altered: its proof has %d hashes, but an inclusion proof for index %d in a tree of size %d has %d", len(r.Proof), r.Index, s.Size, want)
	}
	leaf := checkpoint.LeafHash(entry)
	root, err := proof.RootFromInclusionProof(checkpoint.Hasher, r.Index, s.Size, leaf[:], r.Proof)
	if err != nil {
		return "entry_mismatch", fmt.Sprintf("the entry does not match this receipt (or the receipt's proof hashes or index were altered): %v", err)
	}
	return "entry_mismatch", fmt.Sprintf("the entry does not match this receipt (or the receipt's proof hashes or index were altered): its leaf hash %x at index %d with this proof gives root %x, the signed checkpoint of size %d has root %x", leaf, r.Index, root, s.Size, s.Hash)
}

// inclusionProofLen is the number of hashes in an RFC 6962 inclusion proof
// for index in a tree of size (index < size): one per level below the
// point where the paths to index and to the last leaf split, plus one per
// full subtree to the left above it.
func inclusionProofLen(index, size uint64) int {
	inner := bits.Len64(index ^ (size - 1))
	return inner + bits.OnesCount64(index>>inner)
}

// readArg reads a file argument, "-" meaning stdin.
func (e *env) readArg(path string, limit int64) ([]byte, error) {
	if path == "-" {
		return readLimit(e.stdin, limit, "stdin")
	}
	return readFileLimit(path, limit)
}
