package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	flog "github.com/transparency-dev/formats/log"
	fproof "github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
)

// Fixed keys so that fuzz seeds stay valid across runs. They are test keys,
// used nowhere else.
const (
	fuzzLogSKey = "PRIVATE+KEY+example.com/log+da6dac24+AekMvkmcFcmf5ddHw+xj+Zme1yVUqNRhstipPP1Yf1AD"
	fuzzLogVKey = "example.com/log+da6dac24+AYed3YINhWZTkCq+cLVdK0bWEOzp7kiPU/BvGumONgMy"
	fuzzWSKey   = "PRIVATE+KEY+witness.example+809f55eb+BOqrya4xIczKsnlgiTFO1vsO+8DVLrMipFaVfXDCjEXC"
	fuzzWVKey   = "witness.example+809f55eb+BLbSf7TQI3dLkS8W24oE9REoUzlbQO3hXFP02MZFtdZC"
)

var fuzzKeys = sync.OnceValue(func() (k struct {
	log, w   note.Verifier
	logS, wS note.Signer
}) {
	var err error
	must := func() {
		if err != nil {
			panic(err)
		}
	}
	k.logS, err = NewSigner(fuzzLogSKey)
	must()
	k.log, err = NewVerifier(fuzzLogVKey)
	must()
	k.wS, err = newCosigner(fuzzWSKey, func() time.Time { return time.Unix(1700000000, 0) })
	must()
	k.w, err = NewCosignatureVerifier(fuzzWVKey)
	must()
	return k
})

// fuzzNote is a valid cosigned note with the fixed keys.
func fuzzNote(c Checkpoint) []byte {
	k := fuzzKeys()
	n, err := Sign(c, k.logS)
	if err != nil {
		panic(err)
	}
	line, err := SignatureLine(c.Marshal(), k.wS)
	if err != nil {
		panic(err)
	}
	n, err = AppendSignatures(n, line)
	if err != nil {
		panic(err)
	}
	return n
}

func TestFuzzKeys(t *testing.T) {
	k := fuzzKeys()
	if k.logS.Name() != k.log.Name() || k.logS.KeyHash() != k.log.KeyHash() || k.wS.KeyHash() != k.w.KeyHash() {
		t.Fatal("fuzz keys do not match")
	}
	if _, err := Open(fuzzNote(Checkpoint{Origin: "example.com/log", Size: 3, Hash: someHash}), k.log, k.w); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("example.com/log\n0\n" + emptyB64 + "\n"))
	f.Add([]byte("example.com/log\n123\n" + someB64 + "\next\n"))
	f.Add([]byte("example.com/log\n0123\n" + someB64 + "\n"))
	f.Add([]byte("example.com/log\r\n1\n" + someB64 + "\n"))
	f.Add([]byte("o\n18446744073709551615\n" + someB64 + "\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Strictness: anything accepted is in canonical form.
		if m := c.Marshal(); !bytes.Equal(m, b) {
			t.Fatalf("Parse accepted non-canonical %q (canonical %q)", b, m)
		}
		// Independent check: the lenient formats/log parser agrees.
		var fc flog.Checkpoint
		if _, err := fc.Unmarshal(b); err != nil {
			t.Fatalf("Parse accepted %q; formats/log: %v", b, err)
		}
		if fc.Origin != c.Origin || fc.Size != c.Size || !bytes.Equal(fc.Hash, c.Hash[:]) {
			t.Fatalf("formats/log parsed %q as %+v, we as %+v", b, fc, c)
		}
	})
}

func FuzzOpen(f *testing.F) {
	f.Add(fuzzNote(Checkpoint{Origin: "example.com/log", Size: 3, Hash: someHash}))
	f.Add(fuzzNote(Checkpoint{Origin: "example.com/log", Size: 0, Hash: EmptyRoot, Extensions: []string{"x"}}))
	f.Add([]byte("example.com/log\n1\n" + someB64 + "\n\n— example.com/log AAAAAAAA\n"))
	f.Add([]byte("a\n\n— a AAAAAAAA\n\n— b AAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k := fuzzKeys()
		body, lines, splitErr := SplitNote(b)
		if splitErr == nil {
			joined := append(append(bytes.Clone(body), '\n'), bytes.Join(lines, nil)...)
			if !bytes.Equal(joined, b) {
				t.Fatalf("SplitNote(%q) does not reassemble", b)
			}
			if again, err := AppendSignatures(b, lines...); err != nil || (!bytes.Equal(again, b) && !hasDupLines(lines)) {
				t.Fatalf("AppendSignatures(note, its own lines) = %q, %v", again, err)
			}
		} else if !errors.Is(splitErr, ErrMalformed) {
			t.Fatalf("SplitNote error %v does not wrap ErrMalformed", splitErr)
		}
		s, err := Open(b, k.log, k.w)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) {
				t.Fatalf("Open error %v wraps no sentinel", err)
			}
			return
		}
		if splitErr != nil {
			t.Fatalf("Open accepted a note SplitNote refuses: %v", splitErr)
		}
		// Independent check: x/mod's note.Open accepts what we accept.
		n, err := note.Open(b, note.VerifierList(k.log, k.w))
		if err != nil {
			t.Fatalf("Open accepted %q; note.Open: %v", b, err)
		}
		if n.Text != string(s.Checkpoint.Marshal()) {
			t.Fatalf("note text %q != body %q", n.Text, s.Checkpoint.Marshal())
		}
		if len(n.Sigs) != 1+len(s.Cosignatures) {
			t.Fatalf("note.Open verified %d signatures, we %d + log", len(n.Sigs), len(s.Cosignatures))
		}
	})
}

func hasDupLines(lines [][]byte) bool {
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[string(l)] {
			return true
		}
		seen[string(l)] = true
	}
	return false
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("quorum none\n"))
	f.Add([]byte(fmt.Sprintf("log %s\nwitness A %s https://w.example/\ngroup g any A\nquorum g\n", fuzzLogVKey, fuzzWVKey)))
	f.Add([]byte(fmt.Sprintf("witness A %s\n# c\n\tgroup g 1 A\ngroup h all g\nquorum h", fuzzWVKey)))
	f.Add([]byte("group g 0\nquorum g\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParsePolicy error %v does not wrap ErrMalformed", err)
			}
			return
		}
		var all []string
		for _, w := range p.Witnesses() {
			all = append(all, w.Name)
		}
		// Every group needs 1 <= k <= n members, so all witnesses together
		// always satisfy the quorum.
		if !p.Satisfied(all) || p.Missing(all) != nil {
			t.Fatalf("policy %q not satisfied by all witnesses", b)
		}
		if !p.Satisfied(nil) && len(p.Missing(nil)) == 0 {
			t.Fatalf("policy %q unsatisfied with nothing missing", b)
		}
	})
}

func FuzzParseReceipt(f *testing.F) {
	n := fuzzNote(Checkpoint{Origin: "example.com/log", Size: 3, Hash: someHash})
	f.Add((&Receipt{Index: 2, Proof: [][]byte{someHash[:], EmptyRoot[:]}, Checkpoint: n}).Marshal())
	f.Add((&Receipt{Extra: []byte("x"), Index: 0, Checkpoint: n}).Marshal())
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 01\n\n" + string(n)))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra \nindex 0\n" + someB64 + "\n\n" + string(n) + "junk"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReceipt(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseReceipt error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if m := r.Marshal(); !bytes.Equal(m, b) {
			t.Fatalf("ParseReceipt accepted non-canonical %q (canonical %q)", b, m)
		}
		if len(r.Proof) > MaxProofHashes || strings.Count(string(b), "\n") < 5 {
			t.Fatalf("ParseReceipt accepted implausible %q", b)
		}
		// Independent check: formats/proof reads the same receipt.
		var fp fproof.TLogProof
		if err := fp.Unmarshal(b); err != nil {
			t.Fatalf("ParseReceipt accepted %q; formats/proof: %v", b, err)
		}
		if fp.Index != r.Index || !bytes.Equal(fp.Checkpoint, r.Checkpoint) || !bytes.Equal(fp.ExtraData, r.Extra) || len(fp.Hashes) != len(r.Proof) {
			t.Fatalf("formats/proof read %q as %+v, we as %+v", b, fp, r)
		}
		// Must not panic; any error must carry a sentinel.
		_, err = VerifyReceipt(r, []byte("entry"), fuzzKeys().log, nil)
		if err != nil && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrInclusion) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("VerifyReceipt error %v wraps no sentinel", err)
		}
	})
}
