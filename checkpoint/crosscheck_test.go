package checkpoint

// Cross-checks against independent implementations: golang.org/x/mod/sumdb
// (note, tlog) and github.com/transparency-dev/formats (log, note, proof,
// witness). These packages are test-only dependencies here.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	fproof "github.com/transparency-dev/formats/proof"
	fwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func TestCrossCheckSignedCheckpoint(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	xv, err := note.NewVerifier(k.logVKey)
	if err != nil {
		t.Fatal(err)
	}
	fv := make([]note.Verifier, len(k.wVKeys))
	for i, vkey := range k.wVKeys {
		if fv[i], err = fnote.NewVerifierForCosignatureV1(vkey); err != nil {
			t.Fatal(err)
		}
		if fv[i].KeyHash() != k.wVerifiers[i].KeyHash() || fv[i].Name() != k.wVerifiers[i].Name() {
			t.Fatalf("formats/note key ID %08x, ours %08x", fv[i].KeyHash(), k.wVerifiers[i].KeyHash())
		}
	}
	for _, c := range []Checkpoint{
		{Origin: "example.com/log", Size: 0, Hash: EmptyRoot},
		{Origin: "example.com/log", Size: 1234567, Hash: someHash},
		{Origin: "example.com/log", Size: 5, Hash: someHash, Extensions: []string{"ext 1", "ext 2"}},
	} {
		n := k.signed(t, c, 0, 1, 2)
		// x/mod note.Open verifies the log signature and every cosignature
		// with formats/note verifiers.
		xn, err := note.Open(n, note.VerifierList(append([]note.Verifier{xv}, fv...)...))
		if err != nil {
			t.Fatalf("note.Open: %v\n%s", err, n)
		}
		if len(xn.Sigs) != 4 || xn.Text != string(c.Marshal()) {
			t.Errorf("note.Open: %d signatures, text %q", len(xn.Sigs), xn.Text)
		}
		// formats/log parses it.
		fc, _, _, err := flog.ParseCheckpoint(n, c.Origin, xv, fv...)
		if err != nil {
			t.Fatalf("log.ParseCheckpoint: %v", err)
		}
		if fc.Origin != c.Origin || fc.Size != c.Size || !bytes.Equal(fc.Hash, c.Hash[:]) {
			t.Errorf("log.ParseCheckpoint = %+v, want %+v", fc, c)
		}
		// And formats' own marshalling of the body is byte-identical.
		if len(c.Extensions) == 0 && !bytes.Equal(fc.Marshal(), c.Marshal()) {
			t.Errorf("formats Marshal %q != ours %q", fc.Marshal(), c.Marshal())
		}
	}
}

func TestCrossCheckCosignerFromFormats(t *testing.T) {
	// A cosignature made by formats/note with our key verifies with ours.
	skey, vkey, err := GenerateCosignerKey("witness.example/w")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := NewCosignatureVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if fs.KeyHash() != ours.KeyHash() {
		t.Fatalf("formats signer key ID %08x, ours %08x", fs.KeyHash(), ours.KeyHash())
	}
	body := Checkpoint{Origin: "example.com/log", Size: 9, Hash: someHash}.Marshal()
	line, err := SignatureLine(body, fs)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatureLine(body, line, ours); err != nil {
		t.Errorf("formats cosignature does not verify with ours: %v", err)
	}
	// formats' converter gives the same vkey from an Ed25519 (0x01) key.
	xskey, xvkey, err := note.GenerateKey(rand.Reader, "witness.example/x")
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(xvkey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := NewCosignatureVerifier(cvkey)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := NewCosigner(xskey) // type 0x01 key used as a cosigner key
	if err != nil {
		t.Fatal(err)
	}
	if cs.KeyHash() != cv.KeyHash() {
		t.Errorf("cosigner from 0x01 key: key ID %08x, want %08x", cs.KeyHash(), cv.KeyHash())
	}
	line, err = SignatureLine(body, cs)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatureLine(body, line, cv); err != nil {
		t.Error(err)
	}
}

func TestCrossCheckXModKeys(t *testing.T) {
	// A key made by x/mod works with NewSigner and NewVerifier, and a note
	// signed by x/mod opens with ours.
	skey, vkey, err := note.GenerateKey(rand.Reader, "example.com/xmod")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	xs, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	c := Checkpoint{Origin: "example.com/xmod", Size: 3, Hash: someHash}
	xn, err := note.Sign(&note.Note{Text: string(c.Marshal())}, xs)
	if err != nil {
		t.Fatal(err)
	}
	on, err := Sign(c, s)
	if err != nil {
		t.Fatal(err)
	}
	// Ed25519 is deterministic: both notes are byte-identical.
	if !bytes.Equal(xn, on) {
		t.Errorf("x/mod note %q != ours %q", xn, on)
	}
	if _, err := Open(xn, v); err != nil {
		t.Errorf("Open(x/mod note): %v", err)
	}
}

// memHashes is an in-memory tlog.HashReader.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out, nil
}

func TestCrossCheckTlog(t *testing.T) {
	const n = 45
	var stored memHashes
	for i := range int64(n) {
		hs, err := tlog.StoredHashes(i, entry(int(i)), stored)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		if tlog.RecordHash(entry(int(i))) != LeafHash(entry(int(i))) {
			t.Fatalf("RecordHash != LeafHash")
		}
	}
	tree := newTestTree(n)
	for size := int64(1); size <= n; size++ {
		th, err := tlog.TreeHash(size, stored)
		if err != nil {
			t.Fatal(err)
		}
		if [32]byte(th) != tree.root(0, uint64(size)) {
			t.Fatalf("tlog TreeHash(%d) != our test tree root", size)
		}
		for i := range size {
			p, err := tlog.ProveRecord(size, i, stored)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(uint64(i), uint64(size), LeafHash(entry(int(i))), hashesOf(p), th); err != nil {
				t.Fatalf("tlog record proof (%d, %d) fails ours: %v", i, size, err)
			}
			ours := tree.inclusion(uint64(i), 0, uint64(size))
			if err := tlog.CheckRecord(tlogHashes(ours), size, th, i, tlog.RecordHash(entry(int(i)))); err != nil {
				t.Fatalf("our inclusion proof (%d, %d) fails tlog: %v", i, size, err)
			}
		}
		for old := int64(1); old <= size; old++ {
			p, err := tlog.ProveTree(size, old, stored)
			if err != nil {
				t.Fatal(err)
			}
			oh, _ := tlog.TreeHash(old, stored)
			if err := VerifyConsistency(uint64(old), uint64(size), oh, th, hashesOf(p)); err != nil {
				t.Fatalf("tlog tree proof (%d, %d) fails ours: %v", old, size, err)
			}
			ours := tree.consistency(uint64(old), uint64(size))
			if err := tlog.CheckTree(tlogHashes(ours), size, th, old, oh); err != nil {
				t.Fatalf("our consistency proof (%d, %d) fails tlog: %v", old, size, err)
			}
		}
	}
}

func hashesOf[T ~[]tlog.Hash](p T) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

func tlogHashes(p [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		out[i] = tlog.Hash(h)
	}
	return out
}

func TestCrossCheckReceipt(t *testing.T) {
	f := newReceiptFixture(t)
	for _, r := range []*Receipt{
		f.receipt(t, 6, 0, 1),
		{Extra: []byte("extra data"), Index: 12, Proof: f.tree.inclusion(12, 0, 13), Checkpoint: f.keys.signed(t, f.c)},
	} {
		var fp fproof.TLogProof
		if err := fp.Unmarshal(r.Marshal()); err != nil {
			t.Fatalf("TLogProof.Unmarshal: %v", err)
		}
		if fp.Index != r.Index || !bytes.Equal(fp.Checkpoint, r.Checkpoint) || !bytes.Equal(fp.ExtraData, r.Extra) || len(fp.Hashes) != len(r.Proof) {
			t.Errorf("TLogProof.Unmarshal = %+v, want %+v", fp, r)
		}
		for i := range fp.Hashes {
			if !bytes.Equal(fp.Hashes[i][:], r.Proof[i]) {
				t.Errorf("hash %d differs", i)
			}
		}
		// formats' encoding parses with ours to the same receipt.
		got, err := ParseReceipt(fp.Marshal())
		if err != nil {
			t.Fatalf("ParseReceipt(TLogProof.Marshal): %v", err)
		}
		if diff := cmp.Diff(r, got); diff != "" {
			t.Errorf("ParseReceipt(TLogProof.Marshal) diff (-want +got):\n%s", diff)
		}
	}
}

func TestCrossCheckPolicy(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	w := k.wVKeys
	policies := []string{
		"quorum none\n",
		fmt.Sprintf("witness A %s https://a.example/\nquorum A\n", w[0]),
		fmt.Sprintf("log %s\nwitness A %s https://a.example/\nwitness B %s https://b.example/\nwitness C %s https://c.example/\ngroup g 2 A B C\nquorum g\n", k.logVKey, w[0], w[1], w[2]),
		fmt.Sprintf("witness A %s https://a.example/\nwitness B %s https://b.example/\nwitness C %s https://c.example/\ngroup ab all A B\ngroup top any ab C\nquorum top\n", w[0], w[1], w[2]),
		fmt.Sprintf("# comment\nwitness A %s https://a.example/\n\twitness B %s https://b.example/\ngroup g any A B\nquorum g\n", w[0], w[1]),
	}
	c := Checkpoint{Origin: "example.com/log", Size: 5, Hash: someHash}
	for _, text := range policies {
		ours, err := ParsePolicy([]byte(text))
		if err != nil {
			t.Fatalf("ParsePolicy(%q): %v", text, err)
		}
		theirs, err := fwitness.ParsePolicy([]byte(text))
		if err != nil {
			t.Fatalf("witness.ParsePolicy(%q): %v", text, err)
		}
		// URLs: formats appends /add-checkpoint to the prefix.
		for _, wit := range ours.Witnesses() {
			u, _ := url.Parse(wit.URL)
			if _, ok := theirs.Endpoints()[u.JoinPath("add-checkpoint").String()]; !ok {
				t.Errorf("policy %q: formats has no endpoint for %s", text, wit.URL)
			}
		}
		for mask := range 1 << len(w) {
			var ws []int
			for i := range w {
				if mask&(1<<i) != 0 {
					ws = append(ws, i)
				}
			}
			n := k.signed(t, c, ws...)
			s, err := Open(n, k.logVerifier, ours.Verifiers()...)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ours.Satisfied(ours.Cosigners(s)), theirs.Satisfied(n); got != want {
				t.Errorf("policy %q, cosigners %v: ours %v, formats %v", text, ws, got, want)
			}
		}
	}
}
