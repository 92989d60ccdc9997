// Package checkpoint implements the wire formats that an Evident log, its
// witnesses and its auditors exchange. It is pure: no network, no storage,
// no clock except when a witness cosigns. Auditors can import it alone.
//
// The formats are the C2SP specifications, implemented strictly (parsers
// refuse anything that is not in canonical form):
//
//   - Checkpoint bodies, https://c2sp.org/tlog-checkpoint: an origin line,
//     the tree size in decimal without leading zeros, the RFC 6962 root hash
//     in standard base64 (32 bytes), then optional non-empty extension
//     lines, each line ending in "\n". The empty tree (size 0) has the root
//     SHA-256("") ([EmptyRoot]).
//   - Signed notes, https://c2sp.org/signed-note: the body, a blank line,
//     then signature lines "— <key name> <base64(key ID || signature)>".
//     The whole note is valid UTF-8 without control characters other than
//     "\n". Unknown signatures are ignored; a failing signature by a known
//     key rejects the note. Log keys are Ed25519 (type 0x01) in the vkey
//     format of golang.org/x/mod/sumdb/note, and a log key's name is the
//     checkpoint origin.
//   - Witness cosignatures, https://c2sp.org/tlog-cosignature
//     (cosignature/v1, type 0x04): key ID (4) || timestamp (8, big-endian
//     Unix seconds) || Ed25519 signature over
//     "cosignature/v1\ntime <t>\n" followed by the checkpoint body.
//     Implemented here (a few lines over crypto/ed25519, to keep the
//     dependency tree small) and cross-checked in tests against
//     github.com/transparency-dev/formats/note. ML-DSA-44 cosignatures
//     (type 0x06, post-quantum) are key ID (4) || timestamp (8) ||
//     ML-DSA-44 signature (2420) over the binary cosigned_message
//     "subtree/v1\n\x00", cosigner name, timestamp, origin, 0, size, root
//     (see [GenerateMLDSACosignerKey]); policies may name either kind of
//     witness key.
//   - Witness policies, https://c2sp.org/tlog-policy: "log", "witness",
//     "group" and "quorum" lines (see [ParsePolicy]).
//   - Receipts, https://c2sp.org/tlog-proof: "c2sp.org/tlog-proof@v1",
//     an optional "extra" line, "index <n>", the inclusion path, a blank
//     line and the signed checkpoint verbatim (see [Receipt]).
//   - Merkle proofs, RFC 6962 section 2.1
//     (https://www.rfc-editor.org/rfc/rfc6962#section-2.1), verified with
//     github.com/transparency-dev/merkle.
//
// The only dependencies are the standard library,
// golang.org/x/mod/sumdb/note (note.Signer, note.Verifier, Ed25519 log
// keys), github.com/transparency-dev/merkle (proof verification) and
// filippo.io/mldsa (ML-DSA-44, until the standard library exports it).
//
// Every parser caps its input at [MaxNoteSize] bytes and proofs at
// [MaxProofHashes] hashes. Errors wrap one of the sentinels [ErrMalformed],
// [ErrSignature], [ErrQuorum], [ErrInclusion] or [ErrConsistency].
package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNoteSize is the largest signed note, checkpoint body, receipt or policy
// that any parser in this package accepts, in bytes.
const MaxNoteSize = 64 << 10

// MaxProofHashes is the longest inclusion or consistency proof accepted.
// Inclusion proofs in trees of up to 2^63 leaves fit; tlog-witness caps
// consistency proofs at 63 lines too.
const MaxProofHashes = 63

// EmptyRoot is the RFC 6962 root hash of the empty tree, SHA-256 of the
// empty string.
var EmptyRoot = sha256.Sum256(nil)

// LeafHash returns the RFC 6962 leaf hash of entry: SHA-256(0x00 || entry).
func LeafHash(entry []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(entry)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Checkpoint is a checkpoint body (C2SP tlog-checkpoint): the log's origin,
// its tree size and root hash, and any extension lines.
type Checkpoint struct {
	// Origin identifies the log; it equals the log key's name.
	Origin string
	// Size is the number of leaves in the tree.
	Size uint64
	// Hash is the RFC 6962 Merkle tree root at Size.
	Hash [32]byte
	// Extensions are optional extra lines, kept verbatim (without "\n").
	Extensions []string
}

// Parse parses a checkpoint body (the note text, ending in "\n", without the
// blank line and signatures). It is strict: it rejects input over
// MaxNoteSize, invalid UTF-8, control characters other than "\n", fewer
// than three lines, empty lines, an origin that is not a valid key name,
// sizes with signs or leading zeros, non-canonical base64, hashes that are
// not 32 bytes, and a size-0 tree whose root is not EmptyRoot. Errors wrap
// ErrMalformed.
func Parse(body []byte) (Checkpoint, error) {
	if len(body) > MaxNoteSize {
		return Checkpoint{}, fmt.Errorf("checkpoint body of %d bytes exceeds %d: %w", len(body), MaxNoteSize, ErrMalformed)
	}
	if err := checkNoteText(body); err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint body: %w", err)
	}
	// SPEC(tlog-checkpoint): the note text is a sequence of at least three
	// non-empty lines, each ending in a newline. https://c2sp.org/tlog-checkpoint
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return Checkpoint{}, fmt.Errorf("checkpoint body does not end in a newline: %w", ErrMalformed)
	}
	lines := strings.Split(string(body[:len(body)-1]), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("checkpoint body has %d lines, want at least 3: %w", len(lines), ErrMalformed)
	}
	for i, l := range lines {
		if l == "" {
			return Checkpoint{}, fmt.Errorf("checkpoint body line %d is empty: %w", i+1, ErrMalformed)
		}
	}
	var c Checkpoint
	// SPEC(tlog-checkpoint): the origin MUST be non-empty; we also require a
	// valid signed-note key name (no Unicode spaces, no "+"), since the log
	// key's name must equal it.
	if !validName(lines[0]) {
		return Checkpoint{}, fmt.Errorf("checkpoint origin %q is not a valid key name: %w", lines[0], ErrMalformed)
	}
	c.Origin = lines[0]
	size, err := parseDecimal(lines[1])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint tree size: %w", err)
	}
	c.Size = size
	h, err := decodeHash(lines[2])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint root hash: %w", err)
	}
	c.Hash = h
	if c.Size == 0 && c.Hash != EmptyRoot {
		return Checkpoint{}, fmt.Errorf("checkpoint of size 0 does not have the empty tree's root: %w", ErrMalformed)
	}
	if len(lines) > 3 {
		c.Extensions = lines[3:]
	}
	return c, nil
}

// Marshal returns the canonical body text of c, ending in "\n". It does not
// validate c; Sign does.
func (c Checkpoint) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Hash[:]))
	b.WriteByte('\n')
	for _, e := range c.Extensions {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// checkNoteText enforces the signed-note character set.
// SPEC(signed-note): signed notes MUST be valid UTF-8 and MUST NOT contain
// any ASCII control characters other than newline. https://c2sp.org/signed-note
func checkNoteText(b []byte) error {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("invalid UTF-8 at byte %d: %w", i, ErrMalformed)
		}
		if r < 0x20 && r != '\n' {
			return fmt.Errorf("control character %#x at byte %d: %w", r, i, ErrMalformed)
		}
		i += size
	}
	return nil
}

// validName reports whether name is a valid signed-note key name.
// SPEC(signed-note): key names MUST be non-empty and MUST NOT contain any
// Unicode spaces or plus (U+002B) characters.
func validName(name string) bool {
	return name != "" && utf8.ValidString(name) && !strings.Contains(name, "+") &&
		strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || r < 0x20 }) < 0
}

// parseDecimal parses an ASCII decimal without sign or leading zeros.
func parseDecimal(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty number: %w", ErrMalformed)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal number: %w", s, ErrMalformed)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has leading zeros: %w", s, ErrMalformed)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range: %w", s, ErrMalformed)
	}
	return n, nil
}

// decodeBase64 decodes canonical standard base64 (RFC 4648 section 4,
// padded): re-encoding the result must give s back.
func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("%q is not canonical base64: %w", truncate(s), ErrMalformed)
	}
	return b, nil
}

// decodeHash decodes a canonical base64 SHA-256 hash.
func decodeHash(s string) ([32]byte, error) {
	b, err := decodeBase64(s)
	if err != nil {
		return [32]byte{}, err
	}
	if len(b) != sha256.Size {
		return [32]byte{}, fmt.Errorf("hash is %d bytes, want %d: %w", len(b), sha256.Size, ErrMalformed)
	}
	return [32]byte(b), nil
}

// truncate shortens s for error messages.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
