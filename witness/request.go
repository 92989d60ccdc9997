package witness

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/evidentlog/evident/checkpoint"
)

// MaxRequestSize caps the body of an add-checkpoint request: the old size
// line, 63 proof lines and a signed checkpoint of at most
// checkpoint.MaxNoteSize bytes, with room to spare.
const MaxRequestSize = checkpoint.MaxNoteSize + 4<<10

// Request is an add-checkpoint request (C2SP tlog-witness).
type Request struct {
	// OldSize is the size of the checkpoint the client believes the witness
	// holds for the log (0 if none).
	OldSize uint64
	// Proof is the consistency proof from OldSize to the new checkpoint's
	// size: 32-byte hashes.
	Proof [][]byte
	// Checkpoint is the signed checkpoint note, byte for byte.
	Checkpoint []byte
}

// ParseRequest parses an add-checkpoint request body. It checks the syntax
// only (old size line, proof lines, blank line, a non-empty note); the
// checkpoint itself is checked by the witness. Errors wrap
// checkpoint.ErrMalformed.
func ParseRequest(body []byte) (*Request, error) {
	if len(body) > MaxRequestSize {
		return nil, malformed("request is larger than %d bytes", MaxRequestSize)
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, malformed("no old size line")
	}
	// SPEC(tlog-witness): "old", a single space, the size in ASCII decimal
	// with no leading zeroes (0 is "0").
	num, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok {
		return nil, malformed("first line is not \"old <size>\"")
	}
	old, err := parseSize(num)
	if err != nil {
		return nil, err
	}
	r := &Request{OldSize: old}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, malformed("no blank line before the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		// SPEC(tlog-witness): clients MUST NOT send more than 63 proof lines.
		if len(r.Proof) == checkpoint.MaxProofHashes {
			return nil, malformed("more than %d consistency proof lines", checkpoint.MaxProofHashes)
		}
		h, err := parseHash(line)
		if err != nil {
			return nil, err
		}
		r.Proof = append(r.Proof, h)
	}
	if len(rest) == 0 {
		return nil, malformed("no checkpoint")
	}
	r.Checkpoint = rest
	return r, nil
}

// Marshal returns the request body of r.
func (r *Request) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// parseSize parses a canonical ASCII decimal uint64.
func parseSize(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 20 || (b[0] == '0' && len(b) > 1) {
		return 0, malformed("size %q is not a canonical decimal", truncate(b))
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, malformed("size %q is not a canonical decimal", truncate(b))
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, malformed("size %q is out of range", truncate(b))
	}
	return n, nil
}

// parseHash parses one canonical base64 line holding a 32-byte hash.
func parseHash(b []byte) ([]byte, error) {
	h, err := base64.StdEncoding.Strict().DecodeString(string(b))
	if err != nil || len(h) != 32 || base64.StdEncoding.EncodeToString(h) != string(b) {
		return nil, malformed("proof line %q is not a base64 32-byte hash", truncate(b))
	}
	return h, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("add-checkpoint request: %s: %w", fmt.Sprintf(format, args...), checkpoint.ErrMalformed)
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
