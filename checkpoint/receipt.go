package checkpoint

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// receiptHeader is the first line of a C2SP tlog-proof.
const receiptHeader = "c2sp.org/tlog-proof@v1"

// Receipt is an offline-verifiable proof that an entry is in the log (C2SP
// tlog-proof, file extension .tlog-proof).
type Receipt struct {
	// Extra is the optional, unauthenticated "extra" payload (nil when the
	// line is absent).
	Extra []byte
	// Index is the entry's zero-based index in the log.
	Index uint64
	// Proof is the inclusion path from the leaf's sibling up to the root's
	// child, 32-byte hashes.
	Proof [][]byte
	// Checkpoint is the signed checkpoint note, verbatim, with its
	// cosignatures.
	Checkpoint []byte
}

// ParseReceipt parses a receipt strictly: the size cap, the header line, an
// optional "extra" line in canonical base64, "index <n>" without leading
// zeros, at most MaxProofHashes canonical base64 32-byte hashes, a blank line,
// and a signed note that is well formed (SplitNote) with a body that Parse
// accepts. Signatures are not verified; use VerifyReceipt. Errors wrap
// ErrMalformed.
func ParseReceipt(b []byte) (*Receipt, error) {
	if len(b) > MaxNoteSize {
		return nil, fmt.Errorf("receipt of %d bytes exceeds %d: %w", len(b), MaxNoteSize, ErrMalformed)
	}
	r := &Receipt{}
	rest := b
	next := func() (string, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", false
		}
		line := string(rest[:i])
		rest = rest[i+1:]
		return line, true
	}
	// SPEC(tlog-proof): the first line MUST be c2sp.org/tlog-proof@v1.
	line, ok := next()
	if !ok || line != receiptHeader {
		return nil, fmt.Errorf("receipt does not start with %q: %w", receiptHeader, ErrMalformed)
	}
	line, ok = next()
	if !ok {
		return nil, fmt.Errorf("receipt has no index line: %w", ErrMalformed)
	}
	// SPEC(tlog-proof): the second line MAY be "extra" SP base64 data.
	if e, isExtra := strings.CutPrefix(line, "extra "); isExtra {
		extra, err := decodeBase64(e)
		if err != nil {
			return nil, fmt.Errorf("receipt extra line: %w", err)
		}
		r.Extra = extra
		if line, ok = next(); !ok {
			return nil, fmt.Errorf("receipt has no index line: %w", ErrMalformed)
		}
	}
	// SPEC(tlog-proof): "index" SP decimal without leading zeroes.
	idx, isIndex := strings.CutPrefix(line, "index ")
	if !isIndex {
		return nil, fmt.Errorf("receipt has no index line: %w", ErrMalformed)
	}
	n, err := parseDecimal(idx)
	if err != nil {
		return nil, fmt.Errorf("receipt index: %w", err)
	}
	r.Index = n
	for {
		line, ok = next()
		if !ok {
			return nil, fmt.Errorf("receipt has no blank line before the checkpoint: %w", ErrMalformed)
		}
		if line == "" {
			break
		}
		if len(r.Proof) == MaxProofHashes {
			return nil, fmt.Errorf("receipt proof has more than %d hashes: %w", MaxProofHashes, ErrMalformed)
		}
		h, err := decodeHash(line)
		if err != nil {
			return nil, fmt.Errorf("receipt proof hash %d: %w", len(r.Proof), err)
		}
		r.Proof = append(r.Proof, h[:])
	}
	body, _, err := SplitNote(rest)
	if err != nil {
		return nil, fmt.Errorf("receipt checkpoint: %w", err)
	}
	if _, err := Parse(body); err != nil {
		return nil, fmt.Errorf("receipt checkpoint: %w", err)
	}
	r.Checkpoint = bytes.Clone(rest)
	return r, nil
}

// Marshal returns the receipt in tlog-proof form.
func (r *Receipt) Marshal() []byte {
	n := len(receiptHeader) + 32 + len(r.Proof)*45 + 1 + len(r.Checkpoint)
	if r.Extra != nil {
		n += 7 + base64.StdEncoding.EncodedLen(len(r.Extra))
	}
	b := make([]byte, 0, n)
	b = append(b, receiptHeader+"\n"...)
	if r.Extra != nil {
		b = append(b, "extra "...)
		b = base64.StdEncoding.AppendEncode(b, r.Extra)
		b = append(b, '\n')
	}
	b = append(b, "index "...)
	b = strconv.AppendUint(b, r.Index, 10)
	b = append(b, '\n')
	for _, h := range r.Proof {
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, r.Checkpoint...)
}

// VerifyReceipt verifies r offline for entry: the checkpoint's signature by
// logKey (whose name is the origin); if policy is not nil, that logKey is one
// of the policy's logs (when it lists any) and that the witnesses that
// cosigned meet its quorum; and that LeafHash(entry) is at r.Index under the
// checkpoint's root. logKey may be nil when the policy lists logs: then the
// policy's log whose key name is the checkpoint's origin is used. It returns
// the verified checkpoint. Errors wrap ErrMalformed, ErrSignature, ErrQuorum
// (a *QuorumError) or ErrInclusion.
func VerifyReceipt(r *Receipt, entry []byte, logKey note.Verifier, policy *Policy) (*Signed, error) {
	if r == nil {
		return nil, fmt.Errorf("no receipt: %w", ErrMalformed)
	}
	var witnesses []note.Verifier
	if policy != nil {
		witnesses = policy.Verifiers()
		if logKey == nil {
			k, err := policy.logFor(r.Checkpoint)
			if err != nil {
				return nil, err
			}
			logKey = k
		}
		if err := policy.checkLog(logKey); err != nil {
			return nil, err
		}
	}
	s, err := Open(r.Checkpoint, logKey, witnesses...)
	if err != nil {
		return nil, err
	}
	if policy != nil {
		cos := policy.Cosigners(s)
		if !policy.Satisfied(cos) {
			return nil, &QuorumError{Missing: policy.Missing(cos)}
		}
	}
	if err := VerifyInclusion(r.Index, s.Size, LeafHash(entry), r.Proof, s.Hash); err != nil {
		return nil, fmt.Errorf("entry at index %d: %w", r.Index, err)
	}
	return s, nil
}

// logFor returns the policy's log key for the origin of signedNote: the one
// that signed it if several logs share that name.
func (p *Policy) logFor(signedNote []byte) (note.Verifier, error) {
	body, lines, err := SplitNote(signedNote)
	if err != nil {
		return nil, err
	}
	c, err := Parse(body)
	if err != nil {
		return nil, err
	}
	var named []note.Verifier
	for _, l := range p.logs {
		if l.Verifier.Name() == c.Origin {
			named = append(named, l.Verifier)
		}
	}
	if len(named) == 0 {
		return nil, fmt.Errorf("no log key for origin %q: %w", c.Origin, ErrSignature)
	}
	for _, v := range named {
		for _, line := range lines {
			if name, hash, _, err := parseSignatureLine(line); err == nil && name == v.Name() && hash == v.KeyHash() {
				return v, nil
			}
		}
	}
	return named[0], nil
}

// checkLog refuses logKey when the policy lists logs and logKey is not one
// of them.
// SPEC(tlog-policy): a checkpoint is valid if it is signed by any one of the
// listed logs.
func (p *Policy) checkLog(logKey note.Verifier) error {
	if len(p.logs) == 0 || logKey == nil {
		return nil
	}
	for _, l := range p.logs {
		if l.Verifier.Name() == logKey.Name() && l.Verifier.KeyHash() == logKey.KeyHash() {
			return nil
		}
	}
	return fmt.Errorf("log key %s is not listed in the witness policy: %w", logKey.Name(), ErrSignature)
}
