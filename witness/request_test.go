package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evidentlog/evident/checkpoint"
)

var (
	hashA = bytes.Repeat([]byte{0xaa}, 32)
	hashB = bytes.Repeat([]byte{0xbb}, 32)
	b64A  = base64.StdEncoding.EncodeToString(hashA)
	b64B  = base64.StdEncoding.EncodeToString(hashB)
	cp    = "example.com/log\n5\n" + b64A + "\n\n— example.com/log AAAA\n"
)

func TestParseRequest(t *testing.T) {
	good := []struct {
		in   string
		want *Request
	}{
		{"old 0\n\n" + cp, &Request{OldSize: 0, Checkpoint: []byte(cp)}},
		{"old 3\n" + b64A + "\n" + b64B + "\n\n" + cp, &Request{OldSize: 3, Proof: [][]byte{hashA, hashB}, Checkpoint: []byte(cp)}},
		{"old 18446744073709551615\n\nx", &Request{OldSize: 1<<64 - 1, Checkpoint: []byte("x")}},
		{"old 1\n" + strings.Repeat(b64A+"\n", 63) + "\n" + cp, &Request{OldSize: 1, Proof: repeat(hashA, 63), Checkpoint: []byte(cp)}},
	}
	for _, tt := range good {
		got, err := ParseRequest([]byte(tt.in))
		if err != nil {
			t.Errorf("ParseRequest(%.40q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseRequest(%.40q) (-want +got):\n%s", tt.in, diff)
		}
		if m := got.Marshal(); string(m) != tt.in {
			t.Errorf("Marshal(ParseRequest(%.40q)) = %.40q", tt.in, m)
		}
	}
	bad := []string{
		"",
		"old 0",
		"old 0\n",
		"old 0\n\n",
		"old 01\n\n" + cp,
		"old -1\n\n" + cp,
		"old +1\n\n" + cp,
		"old  1\n\n" + cp,
		"old 1 \n\n" + cp,
		"Old 1\n\n" + cp,
		"old\n\n" + cp,
		"old 18446744073709551616\n\n" + cp,
		"old 1\r\n\n" + cp,
		"old 1\n" + b64A[:43] + "\n\n" + cp,   // short
		"old 1\n" + b64A + "=\n\n" + cp,       // bad padding
		"old 1\n" + b64A[:42] + "B=\n\n" + cp, // non-canonical trailing bits
		"old 1\n" + b64A + " \n\n" + cp,       // trailing space
		"old 1\n" + strings.Repeat(b64A+"\n", 64) + "\n" + cp, // 64 proof lines
		"old 1\n" + b64A + "\n",                               // no blank line
		"old 0\n\n" + strings.Repeat("x", MaxRequestSize),
	}
	for _, in := range bad {
		if r, err := ParseRequest([]byte(in)); !errors.Is(err, checkpoint.ErrMalformed) {
			t.Errorf("ParseRequest(%.60q) = %+v, %v; want ErrMalformed", in, r, err)
		}
	}
}

func repeat(h []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = h
	}
	return out
}

// FuzzParseRequest: the parser never panics, and what it accepts is
// canonical: it marshals back to the same bytes, with at most 63 32-byte
// proof hashes.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\n" + cp))
	f.Add([]byte("old 3\n" + b64A + "\n" + b64B + "\n\n" + cp))
	f.Add([]byte("old 01\n\n" + cp))
	f.Add([]byte("old 1\n" + strings.Repeat(b64A+"\n", 64) + "\n" + cp))
	f.Add([]byte("old 18446744073709551616\n\n"))
	f.Add([]byte("old 1\n" + b64A[:42] + "B=\n\n" + cp))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ParseRequest(in)
		if err != nil {
			if !errors.Is(err, checkpoint.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(r.Proof) > checkpoint.MaxProofHashes || len(r.Checkpoint) == 0 {
			t.Fatalf("accepted %d proof lines, %d checkpoint bytes", len(r.Proof), len(r.Checkpoint))
		}
		for _, h := range r.Proof {
			if len(h) != 32 {
				t.Fatalf("accepted a %d-byte hash", len(h))
			}
		}
		if m := r.Marshal(); !bytes.Equal(m, in) {
			t.Fatalf("not canonical: %q marshals back to %q", in, m)
		}
	})
}
