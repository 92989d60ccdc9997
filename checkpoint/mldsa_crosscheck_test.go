package checkpoint

// Cross-checks of ML-DSA-44 cosignatures against two independent
// implementations: github.com/transparency-dev/formats/note (the key
// encoding and the cosigned_message, written by others from the spec) and
// github.com/cloudflare/circl's ML-DSA-44 (the signature scheme itself,
// independent of filippo.io/mldsa). Both are test-only dependencies.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	fnote "github.com/transparency-dev/formats/note"
)

func TestCrossCheckMLDSAFormats(t *testing.T) {
	c := Checkpoint{Origin: "example.com/log", Size: 1234567, Hash: someHash}
	body := c.Marshal()

	// Ours signs, formats/note verifies, and agrees on the key ID.
	skey, vkey, err := GenerateMLDSACosignerKey("pq.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	ours, err := NewCosigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	fv, err := fnote.NewMLDSAVerifier(vkey)
	if err != nil {
		t.Fatalf("formats/note cannot read our vkey: %v", err)
	}
	if fv.KeyHash() != ours.KeyHash() || fv.Name() != ours.Name() {
		t.Fatalf("formats/note key %s/%08x, ours %s/%08x", fv.Name(), fv.KeyHash(), ours.Name(), ours.KeyHash())
	}
	sig, err := ours.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	if !fv.Verify(body, sig) {
		t.Error("formats/note rejects our ML-DSA-44 cosignature")
	}
	if fv.Verify(Checkpoint{Origin: c.Origin, Size: c.Size + 1, Hash: c.Hash}.Marshal(), sig) {
		t.Error("formats/note accepts our cosignature for another size")
	}
	// formats/note reads our private key too: the encodings agree.
	fs, err := fnote.NewMLDSASigner(skey)
	if err != nil {
		t.Fatalf("formats/note cannot read our skey: %v", err)
	}
	if fs.KeyHash() != ours.KeyHash() {
		t.Errorf("formats/note signer key ID %08x, ours %08x", fs.KeyHash(), ours.KeyHash())
	}

	// formats/note generates and signs, ours verifies.
	fskey, fvkey, err := fnote.GenerateMLDSAKey("pq.example/w2")
	if err != nil {
		t.Fatal(err)
	}
	fsigner, err := fnote.NewMLDSASigner(fskey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewCosignatureVerifier(fvkey)
	if err != nil {
		t.Fatalf("our verifier cannot read a formats/note vkey: %v", err)
	}
	fsig, err := fsigner.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verify(body, fsig) {
		t.Error("we reject a formats/note ML-DSA-44 cosignature")
	}
	if got, err := MLDSAVerifierKey(fskey); err != nil || got != fvkey {
		t.Errorf("MLDSAVerifierKey(formats/note skey) = %q, %v; want its vkey", got, err)
	}
}

func TestCrossCheckMLDSACircl(t *testing.T) {
	skey, vkey, err := GenerateMLDSACosignerKey("pq.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	_, _, sraw, err := splitKey(skey, true)
	if err != nil {
		t.Fatal(err)
	}
	_, _, vraw, err := splitKey(vkey, false)
	if err != nil {
		t.Fatal(err)
	}
	// The same seed gives the same public key in circl (FIPS 204 KeyGen).
	var seed [mldsa44.SeedSize]byte
	copy(seed[:], sraw[1:])
	cpub, cpriv := mldsa44.NewKeyFromSeed(&seed)
	if !bytes.Equal(cpub.Bytes(), vraw[1:]) {
		t.Fatal("circl derives another ML-DSA-44 public key from the same seed")
	}

	at := time.Unix(1760000000, 0)
	s, err := newCosigner(skey, func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewCosignatureVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	c := Checkpoint{Origin: "example.com/log", Size: 77, Hash: someHash}
	msg, err := mldsaMessage("pq.example/w1", uint64(at.Unix()), c)
	if err != nil {
		t.Fatal(err)
	}
	// Ours signs, circl verifies (pure ML-DSA, empty context).
	sig, err := s.Sign(c.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !mldsa44.Verify(cpub, msg, nil, sig[8:]) {
		t.Error("circl rejects our ML-DSA-44 signature")
	}
	if mldsa44.Verify(cpub, msg, nil, withByte(sig[8:], 10, sig[18]^1)) {
		t.Error("circl accepts a changed signature")
	}
	// circl signs, ours verifies: randomized and deterministic signing.
	for _, randomized := range []bool{true, false} {
		csig := make([]byte, mldsa44.SignatureSize)
		if err := mldsa44.SignTo(cpriv, msg, nil, randomized, csig); err != nil {
			t.Fatal(err)
		}
		ts := binary.BigEndian.AppendUint64(nil, uint64(at.Unix()))
		if !v.Verify(c.Marshal(), append(ts, csig...)) {
			t.Errorf("we reject circl's signature (randomized %v)", randomized)
		}
		line := "— pq.example/w1 " + base64.StdEncoding.EncodeToString(append(binary.BigEndian.AppendUint32(nil, v.KeyHash()), append(ts, csig...)...)) + "\n"
		if err := VerifySignatureLine(c.Marshal(), []byte(line), v); err != nil {
			t.Errorf("VerifySignatureLine(circl cosignature): %v", err)
		}
	}
}
