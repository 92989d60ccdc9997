package checkpoint

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"
)

// MaxSignatures is the largest number of signature lines a note may carry.
// SPEC(signed-note): verifiers SHOULD limit the number of signatures but MUST
// accept at least 16; golang.org/x/mod/sumdb/note accepts 100.
const MaxSignatures = 100

// sigPrefix starts every signature line: em dash, space.
const sigPrefix = "— "

// GenerateKey returns a new Ed25519 note key pair (signature type 0x01) for a
// log whose origin is name: the private signer key skey, to be kept secret,
// and the public verifier key vkey.
func GenerateKey(name string) (skey, vkey string, err error) {
	if !validName(name) {
		return "", "", fmt.Errorf("key name %q: %w", name, ErrMalformed)
	}
	return note.GenerateKey(rand.Reader, name)
}

// NewSigner returns the log signer (Ed25519, type 0x01) for skey.
func NewSigner(skey string) (note.Signer, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("log signer key: %v: %w", err, ErrMalformed)
	}
	return s, nil
}

// NewVerifier returns the log verifier (Ed25519, type 0x01) for vkey. The
// vkey's key ID must match its name and key.
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("log verifier key: %v: %w", err, ErrMalformed)
	}
	return v, nil
}

// Sign returns the signed note of c signed by s. The signer's name must equal
// c.Origin, and c must marshal to a body that Parse accepts.
func Sign(c Checkpoint, s note.Signer) ([]byte, error) {
	body := c.Marshal()
	parsed, err := Parse(body)
	if err != nil {
		return nil, err
	}
	// A "\n" inside a field could shift lines and still parse.
	if parsed.Origin != c.Origin || !slices.Equal(parsed.Extensions, c.Extensions) {
		return nil, fmt.Errorf("checkpoint origin or extension lines contain a newline: %w", ErrMalformed)
	}
	if s.Name() != c.Origin {
		return nil, fmt.Errorf("signer name %q differs from origin %q: %w", s.Name(), c.Origin, ErrSignature)
	}
	msg, err := note.Sign(&note.Note{Text: string(body)}, s)
	if err != nil {
		return nil, fmt.Errorf("signing checkpoint: %w", err)
	}
	return msg, nil
}

// Signed is a verified signed checkpoint.
type Signed struct {
	Checkpoint
	// Note is the signed note exactly as given to Open.
	Note []byte
	// Cosignatures are the cosignatures that verified with the witness
	// verifiers given to Open, in note order, one per witness key. Their
	// Time is meaningful for cosignature/v1 verifiers.
	Cosignatures []Cosignature
}

// Open verifies a signed checkpoint: strict note and body parse, the size
// cap, and a valid signature by logKey, whose name must equal the origin.
// Signatures by unknown keys are ignored; a signature by logKey or one of
// witnesses that fails to verify rejects the note. Cosignatures by witnesses
// (cosignature/v1 verifiers) that verify are collected in Signed.Cosignatures.
// Repeated signatures by one key after the first are ignored.
func Open(signedNote []byte, logKey note.Verifier, witnesses ...note.Verifier) (*Signed, error) {
	body, lines, err := SplitNote(signedNote)
	if err != nil {
		return nil, err
	}
	c, err := Parse(body)
	if err != nil {
		return nil, err
	}
	if logKey == nil {
		return nil, fmt.Errorf("no log key: %w", ErrSignature)
	}
	// SPEC(tlog-checkpoint): the log's key name matches the origin line; we
	// require it, so a key can never vouch for another log's checkpoints.
	if logKey.Name() != c.Origin {
		return nil, fmt.Errorf("log key name %q differs from checkpoint origin %q: %w", logKey.Name(), c.Origin, ErrSignature)
	}
	type id struct {
		name string
		hash uint32
	}
	seen := make(map[id]bool)
	s := &Signed{Checkpoint: c, Note: bytes.Clone(signedNote)}
	logOK := false
	for _, line := range lines {
		name, hash, sig, err := parseSignatureLine(line)
		if err != nil {
			return nil, err
		}
		k := id{name, hash}
		if seen[k] {
			continue
		}
		if name == logKey.Name() && hash == logKey.KeyHash() {
			seen[k] = true
			// SPEC(signed-note): if a signature from a known key fails to
			// verify, clients SHOULD reject the whole note.
			if !logKey.Verify(body, sig) {
				return nil, fmt.Errorf("invalid signature by log key %s: %w", name, ErrSignature)
			}
			logOK = true
			continue
		}
		for _, w := range witnesses {
			if w == nil || name != w.Name() || hash != w.KeyHash() {
				continue
			}
			seen[k] = true
			if !w.Verify(body, sig) {
				return nil, fmt.Errorf("invalid cosignature by witness %s: %w", name, ErrSignature)
			}
			s.Cosignatures = append(s.Cosignatures, Cosignature{Name: name, KeyHash: hash, Time: cosignatureTime(sig)})
			break
		}
		// SPEC(signed-note): verifiers MUST ignore signatures from unknown keys.
	}
	if !logOK {
		return nil, fmt.Errorf("no signature by log key %s: %w", logKey.Name(), ErrSignature)
	}
	return s, nil
}

// SplitNote splits a signed note into its body (the note text, ending in
// "\n", without the blank line) and its signature lines (each ending in
// "\n"). It checks the size cap, the character set, and the syntax of every
// signature line (not the signatures). Errors wrap ErrMalformed.
func SplitNote(signedNote []byte) (body []byte, sigLines [][]byte, err error) {
	if len(signedNote) > MaxNoteSize {
		return nil, nil, fmt.Errorf("note of %d bytes exceeds %d: %w", len(signedNote), MaxNoteSize, ErrMalformed)
	}
	if err := checkNoteText(signedNote); err != nil {
		return nil, nil, fmt.Errorf("note: %w", err)
	}
	// SPEC(signed-note): the text is separated from the signatures by the
	// last empty line in the note; the text ends in a newline.
	split := bytes.LastIndex(signedNote, []byte("\n\n"))
	if split < 0 {
		return nil, nil, fmt.Errorf("note has no blank line before its signatures: %w", ErrMalformed)
	}
	body, sigs := signedNote[:split+1], signedNote[split+2:]
	if len(sigs) == 0 {
		return nil, nil, fmt.Errorf("note has no signature lines: %w", ErrMalformed)
	}
	if sigs[len(sigs)-1] != '\n' {
		return nil, nil, fmt.Errorf("note does not end in a newline: %w", ErrMalformed)
	}
	for len(sigs) > 0 {
		i := bytes.IndexByte(sigs, '\n')
		line := sigs[:i+1]
		sigs = sigs[i+1:]
		if _, _, _, err := parseSignatureLine(line); err != nil {
			return nil, nil, err
		}
		if len(sigLines) == MaxSignatures {
			return nil, nil, fmt.Errorf("note has more than %d signatures: %w", MaxSignatures, ErrMalformed)
		}
		sigLines = append(sigLines, line)
	}
	return body, sigLines, nil
}

// parseSignatureLine parses "— <name> <base64(keyID || sig)>\n".
func parseSignatureLine(line []byte) (name string, hash uint32, sig []byte, err error) {
	s, ok := bytes.CutSuffix(line, []byte("\n"))
	if !ok {
		return "", 0, nil, fmt.Errorf("signature line does not end in a newline: %w", ErrMalformed)
	}
	rest, ok := bytes.CutPrefix(s, []byte(sigPrefix))
	if !ok {
		return "", 0, nil, fmt.Errorf("signature line %q does not start with an em dash and a space: %w", truncate(string(s)), ErrMalformed)
	}
	n, b64, ok := bytes.Cut(rest, []byte(" "))
	if !ok || !validName(string(n)) {
		return "", 0, nil, fmt.Errorf("signature line %q has no valid key name: %w", truncate(string(s)), ErrMalformed)
	}
	raw, err := decodeBase64(string(b64))
	if err != nil {
		return "", 0, nil, fmt.Errorf("signature by %s: %w", n, err)
	}
	// SPEC(signed-note): signatures are base64 of 4+n bytes: the key ID and
	// the signature proper.
	if len(raw) < 5 {
		return "", 0, nil, fmt.Errorf("signature by %s is too short: %w", n, ErrMalformed)
	}
	return string(n), binary.BigEndian.Uint32(raw), raw[4:], nil
}

// SignatureLine signs body (a checkpoint body) with s and returns the single
// signature line "— <name> <base64>\n". Witnesses use it to cosign.
func SignatureLine(body []byte, s note.Signer) ([]byte, error) {
	if _, err := Parse(body); err != nil {
		return nil, err
	}
	if !validName(s.Name()) {
		return nil, fmt.Errorf("signer name %q: %w", s.Name(), ErrMalformed)
	}
	sig, err := s.Sign(body)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	raw := binary.BigEndian.AppendUint32(nil, s.KeyHash())
	raw = append(raw, sig...)
	return []byte(sigPrefix + s.Name() + " " + base64.StdEncoding.EncodeToString(raw) + "\n"), nil
}

// AppendSignatures returns a copy of signedNote with the given signature
// lines appended (each "— name base64\n", syntax checked), dropping lines
// that are already present or repeated. It does not verify signatures.
func AppendSignatures(signedNote []byte, lines ...[]byte) ([]byte, error) {
	_, have, err := SplitNote(signedNote)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(have)+len(lines))
	for _, l := range have {
		seen[string(l)] = true
	}
	out := bytes.Clone(signedNote)
	n := len(have)
	for _, l := range lines {
		if _, _, _, err := parseSignatureLine(l); err != nil {
			return nil, err
		}
		if err := checkNoteText(l); err != nil {
			return nil, fmt.Errorf("signature line: %w", err)
		}
		if seen[string(l)] {
			continue
		}
		seen[string(l)] = true
		if n++; n > MaxSignatures {
			return nil, fmt.Errorf("note would have more than %d signatures: %w", MaxSignatures, ErrMalformed)
		}
		out = append(out, l...)
	}
	if len(out) > MaxNoteSize {
		return nil, fmt.Errorf("note would be %d bytes, over %d: %w", len(out), MaxNoteSize, ErrMalformed)
	}
	return out, nil
}

// VerifySignatureLine checks that line ("— name base64\n") is a valid
// signature over body by v (matching name and key ID). A log uses it to check
// a witness's cosignature before appending it with AppendSignatures. Errors
// wrap ErrMalformed (syntax) or ErrSignature.
func VerifySignatureLine(body, line []byte, v note.Verifier) error {
	if err := checkNoteText(line); err != nil {
		return fmt.Errorf("signature line: %w", err)
	}
	name, hash, sig, err := parseSignatureLine(line)
	if err != nil {
		return err
	}
	if name != v.Name() || hash != v.KeyHash() {
		return fmt.Errorf("signature by %s/%08x, want %s/%08x: %w", name, hash, v.Name(), v.KeyHash(), ErrSignature)
	}
	if !v.Verify(body, sig) {
		return fmt.Errorf("invalid signature by %s: %w", name, ErrSignature)
	}
	return nil
}
