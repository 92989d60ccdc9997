package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/evidentlog/evident/checkpoint"
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
reason (--json: "reason" is malformed, signature, quorum or inclusion).`

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
		return verifyFailure(receiptReason(err), err)
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

// receiptReason says in words which check failed.
func receiptReason(err error) string {
	switch reasonOf(err) {
	case "malformed":
		return "malformed receipt"
	case "signature":
		return "log signature missing, invalid or by another key"
	case "quorum":
		return "witness quorum not met"
	case "inclusion":
		return "inclusion proof fails: the entry does not match the receipt, or the proof or index was altered"
	}
	return "receipt does not verify"
}

// readArg reads a file argument, "-" meaning stdin.
func (e *env) readArg(path string, limit int64) ([]byte, error) {
	if path == "-" {
		return readLimit(e.stdin, limit, "stdin")
	}
	return readFileLimit(path, limit)
}
