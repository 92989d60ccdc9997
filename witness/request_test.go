package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
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

// FuzzAddCheckpoint drives the whole add-checkpoint path (parser, checks,
// state) with arbitrary bodies against a witness that holds a checkpoint of
// size 5 of a log that forks after size 5. Whatever the input, the answer is
// never a 5xx, the held size never shrinks, and the witness cosigns only
// checkpoints the log signed, on one branch of the fork only.
func FuzzAddCheckpoint(f *testing.F) {
	l := newTestLog(f, "example.com/log").grow(5)
	w := newTestWitness(f, "example.com/witness", []*testLog{l})
	if _, err := w.AddCheckpoint(f.Context(), l.request(0)); err != nil {
		f.Fatal(err)
	}
	honest := l.fork("main")
	evil := l.fork("evil").grow(3)
	f.Add(evil.request(5).Marshal())
	f.Add(l.request(5).Marshal())
	f.Add(append([]byte("old 5\n\n"), l.checkpoint()...))
	f.Add([]byte("old 0\n\nexample.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— example.com/log AAAA\n"))
	for range 4 {
		honest.grow(1)
		f.Add(honest.request(5).Marshal())
	}
	// The log forks after size 5 into two branches; the witness may follow
	// either, but only one, ever.
	roots := map[string]map[uint64][32]byte{"main": {}, "evil": {}}
	for n := int64(0); n <= honest.size; n++ {
		roots["main"][uint64(n)] = honest.root(n)
	}
	for n := int64(0); n <= evil.size; n++ {
		roots["evil"][uint64(n)] = evil.root(n)
	}
	branch := ""
	var maxSize uint64 = 5
	f.Fuzz(func(t *testing.T, body []byte) {
		rw := httptest.NewRecorder()
		w.Handler().ServeHTTP(rw, httptest.NewRequest("POST", "/add-checkpoint", bytes.NewReader(body)))
		if rw.Code >= 500 {
			t.Fatalf("status %d for %q", rw.Code, body)
		}
		st, _, err := w.db.WitnessState(context.Background(), l.origin)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size < maxSize {
			t.Fatalf("held size went from %d down to %d", maxSize, st.Size)
		}
		maxSize = st.Size
		if rw.Code == 200 {
			req, err := ParseRequest(body)
			if err != nil {
				t.Fatalf("cosigned an unparsable request: %v", err)
			}
			s, err := checkpoint.Open(req.Checkpoint, mustVerifier(t, l.vkey))
			if err != nil {
				t.Fatalf("cosigned a checkpoint the log did not sign: %v", err)
			}
			on := ""
			for b, r := range roots {
				if root, ok := r[s.Size]; ok && root == s.Hash && s.Size > 5 {
					on = b
				}
			}
			if s.Size > 5 {
				if on == "" || (branch != "" && on != branch) {
					t.Fatalf("cosigned size %d on branch %q after branch %q", s.Size, on, branch)
				}
				branch = on
			}
		}
	})
}
