package checkpoint

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/transparency-dev/merkle/rfc6962"
)

// testTree is a small RFC 6962 tree built by brute force, independent of
// transparency-dev/merkle's proof code.
type testTree struct{ leaves [][32]byte }

func newTestTree(n int) *testTree {
	t := &testTree{}
	for i := range n {
		t.leaves = append(t.leaves, LeafHash([]byte{byte(i), byte(i >> 8), 'e'}))
	}
	return t
}

func entry(i int) []byte { return []byte{byte(i), byte(i >> 8), 'e'} }

// root computes MTH(leaves[lo:hi]).
func (t *testTree) root(lo, hi uint64) [32]byte {
	if hi == lo {
		return EmptyRoot
	}
	if hi-lo == 1 {
		return t.leaves[lo]
	}
	k := uint64(1)
	for k*2 < hi-lo {
		k *= 2
	}
	l, r := t.root(lo, lo+k), t.root(lo+k, hi)
	return [32]byte(rfc6962.DefaultHasher.HashChildren(l[:], r[:]))
}

// inclusion computes PATH(m, leaves[lo:hi]) (RFC 6962 2.1.1).
func (t *testTree) inclusion(m, lo, hi uint64) [][]byte {
	if hi-lo <= 1 {
		return nil
	}
	k := uint64(1)
	for k*2 < hi-lo {
		k *= 2
	}
	if m < k {
		r := t.root(lo+k, hi)
		return append(t.inclusion(m, lo, lo+k), r[:])
	}
	l := t.root(lo, lo+k)
	return append(t.inclusion(m-k, lo+k, hi), l[:])
}

// consistency computes PROOF(m, leaves[0:n]) (RFC 6962 2.1.2).
// It is empty when m is 0 or n.
func (t *testTree) consistency(m, n uint64) [][]byte {
	if m == 0 || m == n {
		return nil
	}
	return t.subproof(m, 0, n, true)
}

func (t *testTree) subproof(m, lo, hi uint64, b bool) [][]byte {
	n := hi - lo
	if m == n {
		if b {
			return nil
		}
		r := t.root(lo, hi)
		return [][]byte{r[:]}
	}
	k := uint64(1)
	for k*2 < n {
		k *= 2
	}
	if m <= k {
		r := t.root(lo+k, hi)
		return append(t.subproof(m, lo, lo+k, b), r[:])
	}
	l := t.root(lo, lo+k)
	return append(t.subproof(m-k, lo+k, hi, false), l[:])
}

func TestRoundTrip(t *testing.T) {
	skey, vkey, err := GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	wskey, wvkey, err := GenerateCosignerKey("witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := NewCosigner(wskey)
	if err != nil {
		t.Fatal(err)
	}
	wverifier, err := NewCosignatureVerifier(wvkey)
	if err != nil {
		t.Fatal(err)
	}

	tree := newTestTree(11)
	c := Checkpoint{Origin: "example.com/log", Size: 11, Hash: tree.root(0, 11)}
	signed, err := Sign(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := SplitNote(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, c.Marshal()) {
		t.Fatalf("body = %q, want %q", body, c.Marshal())
	}
	got, err := Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("Parse(Marshal) diff (-want +got):\n%s", diff)
	}
	line, err := SignatureLine(body, cosigner)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := AppendSignatures(signed, line, line)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(bytes.Clone(signed), line...); !bytes.Equal(cosigned, want) {
		t.Errorf("AppendSignatures = %q, want %q", cosigned, want)
	}
	s, err := Open(cosigned, verifier, wverifier)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cosignatures) != 1 || s.Cosignatures[0].Name != "witness.example/w1" || s.Cosignatures[0].Time.IsZero() {
		t.Errorf("Cosignatures = %+v", s.Cosignatures)
	}

	policy, err := ParsePolicy([]byte("log " + vkey + "\nwitness w1 " + wvkey + "\nquorum w1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 11 {
		r := &Receipt{Index: uint64(i), Proof: tree.inclusion(uint64(i), 0, 11), Checkpoint: cosigned}
		r2, err := ParseReceipt(r.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r, r2); diff != "" {
			t.Errorf("ParseReceipt(Marshal) diff (-want +got):\n%s", diff)
		}
		if _, err := VerifyReceipt(r2, entry(i), verifier, policy); err != nil {
			t.Errorf("VerifyReceipt(%d): %v", i, err)
		}
		if _, err := VerifyReceipt(r2, entry(i+1), verifier, policy); !errors.Is(err, ErrInclusion) {
			t.Errorf("VerifyReceipt(%d, wrong entry) = %v, want ErrInclusion", i, err)
		}
	}
	r := &Receipt{Index: 3, Proof: tree.inclusion(3, 0, 11), Checkpoint: signed}
	_, err = VerifyReceipt(r, entry(3), verifier, policy)
	var qe *QuorumError
	if !errors.Is(err, ErrQuorum) || !errors.As(err, &qe) || !cmp.Equal(qe.Missing, []string{"w1"}) {
		t.Errorf("VerifyReceipt(no cosignature) = %v, want QuorumError{w1}", err)
	}

	for m := uint64(0); m <= 11; m++ {
		if err := VerifyConsistency(m, 11, tree.root(0, m), tree.root(0, 11), tree.consistency(m, 11)); err != nil {
			t.Errorf("VerifyConsistency(%d, 11): %v", m, err)
		}
	}
}
