package checkpoint

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// mldsaWitness is an ML-DSA-44 witness for tests, cosigning at a fixed time.
func mldsaWitness(t testing.TB, name string, at int64) (note.Signer, note.Verifier, string) {
	t.Helper()
	skey, vkey, err := GenerateMLDSACosignerKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newCosigner(skey, func() time.Time { return time.Unix(at, 0) })
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewCosignatureVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v, vkey
}

func TestMLDSACosignature(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	s, v, vkey := mldsaWitness(t, "pq.example/w1", 1700000123)
	if alg, err := CosignatureAlgorithm(vkey); err != nil || alg != "ML-DSA-44" {
		t.Errorf("CosignatureAlgorithm = %q, %v", alg, err)
	}
	if alg, err := CosignatureAlgorithm(k.wVKeys[0]); err != nil || alg != "Ed25519" {
		t.Errorf("CosignatureAlgorithm(Ed25519) = %q, %v", alg, err)
	}
	c := Checkpoint{Origin: "example.com/log", Size: 42, Hash: someHash, Extensions: []string{"ext"}}
	body := c.Marshal()
	line, err := SignatureLine(body, s)
	if err != nil {
		t.Fatal(err)
	}
	// — name base64(4 + 8 + 2420 bytes)
	if want := len("— pq.example/w1 ") + base64.StdEncoding.EncodedLen(4+8+2420) + 1; len(line) != want {
		t.Errorf("signature line of %d bytes, want %d", len(line), want)
	}
	if err := VerifySignatureLine(body, line, v); err != nil {
		t.Fatalf("VerifySignatureLine: %v", err)
	}
	n := k.signed(t, c, 0)
	if n, err = AppendSignatures(n, line); err != nil {
		t.Fatal(err)
	}
	signed, err := Open(n, k.logVerifier, k.wVerifiers[0], v)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if len(signed.Cosignatures) != 2 || signed.Cosignatures[1].Name != "pq.example/w1" || !signed.Cosignatures[1].Time.Equal(time.Unix(1700000123, 0)) {
		t.Errorf("Open cosignatures = %+v", signed.Cosignatures)
	}
	// ML-DSA cosignatures do not sign extension lines.
	noExt := Checkpoint{Origin: c.Origin, Size: c.Size, Hash: c.Hash}.Marshal()
	if err := VerifySignatureLine(noExt, line, v); err != nil {
		t.Errorf("without extension lines: %v, want valid (extensions are not signed)", err)
	}
	// Anything else that is signed, changed, fails.
	_, raw := splitSigLine(t, line)
	for name, bad := range map[string]struct {
		body []byte
		sig  []byte
	}{
		"other size":   {Checkpoint{Origin: c.Origin, Size: 43, Hash: c.Hash}.Marshal(), raw},
		"other root":   {Checkpoint{Origin: c.Origin, Size: 42, Hash: EmptyRoot}.Marshal(), raw},
		"other origin": {Checkpoint{Origin: "example.com/other", Size: 42, Hash: c.Hash}.Marshal(), raw},
		"other time":   {body, withByte(raw, 4+7, raw[4+7]^1)},
		"flipped sig":  {body, withByte(raw, len(raw)-100, raw[len(raw)-100]^0x10)},
		"short sig":    {body, raw[:len(raw)-1]},
		"long sig":     {body, append(bytes.Clone(raw), 0)},
		"time > 2^63":  {body, withByte(raw, 4, 0x80)},
		"bad body":     {[]byte("not a checkpoint\n"), raw},
	} {
		if v.Verify(bad.body, bad.sig[4:]) {
			t.Errorf("%s: Verify = true", name)
		}
	}
	// The same key under another name is another key: the message commits
	// to the name.
	other := &mldsaVerifier{name: "pq.example/w2", hash: v.KeyHash(), pub: v.(*mldsaVerifier).pub}
	if other.Verify(body, raw[4:]) {
		t.Error("a cosignature verified under another cosigner name")
	}
}

// splitSigLine returns the name and decoded bytes of a signature line.
func splitSigLine(t testing.TB, line []byte) (string, []byte) {
	t.Helper()
	name, _, _, err := parseSignatureLine(line)
	if err != nil {
		t.Fatal(err)
	}
	b64 := strings.TrimSuffix(string(line[strings.LastIndex(string(line), " ")+1:]), "\n")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return name, raw
}

func withByte(b []byte, i int, v byte) []byte {
	b = bytes.Clone(b)
	b[i] = v
	return b
}

func TestMLDSAMessage(t *testing.T) {
	c := Checkpoint{Origin: "o", Size: 0x0102, Hash: someHash}
	m, err := mldsaMessage("w", 0x0a0b, c)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	want = append(want, "subtree/v1\n\x00"...)
	want = append(want, 1, 'w')
	want = binary.BigEndian.AppendUint64(want, 0x0a0b)
	want = append(want, 1, 'o')
	want = binary.BigEndian.AppendUint64(want, 0)
	want = binary.BigEndian.AppendUint64(want, 0x0102)
	want = append(want, someHash[:]...)
	if !bytes.Equal(m, want) {
		t.Errorf("mldsaMessage =\n%x\nwant\n%x", m, want)
	}
	long := strings.Repeat("a", 256)
	if _, err := mldsaMessage(long, 1, c); !errors.Is(err, ErrMalformed) {
		t.Errorf("256-byte name: %v, want ErrMalformed", err)
	}
	if _, err := mldsaMessage("w", 1, Checkpoint{Origin: long, Size: 1, Hash: someHash}); !errors.Is(err, ErrMalformed) {
		t.Errorf("256-byte origin: %v, want ErrMalformed", err)
	}
}

func TestMLDSAKeysReject(t *testing.T) {
	skey, vkey, err := GenerateMLDSACosignerKey("pq.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := MLDSAVerifierKey(skey); err != nil || got != vkey {
		t.Errorf("MLDSAVerifierKey = %q, %v; want the generated vkey", got, err)
	}
	name, id, raw, err := splitKey(vkey, false)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(id uint32, raw []byte) string {
		return fmt.Sprintf("%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(raw))
	}
	_, sid, sraw, err := splitKey(skey, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, key string }{
		{"vkey with wrong key ID", enc(id^1, raw)},
		{"vkey one byte short", enc(keyID(name, raw[:len(raw)-1]), raw[:len(raw)-1])},
		{"vkey one byte long", enc(keyID(name, append(bytes.Clone(raw), 0)), append(bytes.Clone(raw), 0))},
		{"vkey of type 0x05", enc(keyID(name, withByte(raw, 0, 5)), withByte(raw, 0, 5))},
		{"signer key as vkey", skey},
	} {
		if _, err := NewCosignatureVerifier(tc.key); !errors.Is(err, ErrMalformed) {
			t.Errorf("NewCosignatureVerifier(%s) = %v, want ErrMalformed", tc.name, err)
		}
	}
	for _, tc := range []struct{ name, key string }{
		{"skey with wrong key ID", "PRIVATE+KEY+" + enc(sid^1, sraw)},
		{"skey one byte short", "PRIVATE+KEY+" + enc(sid, sraw[:len(sraw)-1])},
		{"vkey as skey", "PRIVATE+KEY+" + vkey},
	} {
		if _, err := NewCosigner(tc.key); !errors.Is(err, ErrMalformed) {
			t.Errorf("NewCosigner(%s) = %v, want ErrMalformed", tc.name, err)
		}
	}
	if _, _, err := GenerateMLDSACosignerKey(strings.Repeat("a", 256)); !errors.Is(err, ErrMalformed) {
		t.Errorf("GenerateMLDSACosignerKey(256-byte name) = %v, want ErrMalformed", err)
	}
	if _, err := MLDSAVerifierKey(strings.Replace(skey, "+", "", 0)[:len(skey)-8]); err == nil {
		t.Error("MLDSAVerifierKey(truncated) succeeded")
	}
}

// TestMLDSAPolicyReceipt: a policy that mixes Ed25519 and ML-DSA-44
// witnesses, and a receipt whose quorum needs the ML-DSA one.
func TestMLDSAPolicyReceipt(t *testing.T) {
	k := newTestKeys(t, "example.com/log")
	s, _, vkey := mldsaWitness(t, "pq.example/w1", 1700000000)
	policy, err := ParsePolicy(fmt.Appendf(nil, "log %s\nwitness ed %s\nwitness pq %s\ngroup both all ed pq\nquorum both\n", k.logVKey, k.wVKeys[0], vkey))
	if err != nil {
		t.Fatal(err)
	}
	tree := newTestTree(5)
	c := Checkpoint{Origin: "example.com/log", Size: 5, Hash: tree.root(0, 5)}
	n := k.signed(t, c, 0)
	r := &Receipt{Index: 3, Proof: tree.inclusion(3, 0, 5), Checkpoint: n}
	var qe *QuorumError
	if _, err := VerifyReceipt(r, entry(3), nil, policy); !errors.As(err, &qe) || len(qe.Missing) != 1 || qe.Missing[0] != "pq" {
		t.Fatalf("without the ML-DSA cosignature: %v, want a quorum error missing pq", err)
	}
	line, err := SignatureLine(c.Marshal(), s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Checkpoint, err = AppendSignatures(n, line); err != nil {
		t.Fatal(err)
	}
	got, err := VerifyReceipt(r, entry(3), nil, policy)
	if err != nil {
		t.Fatalf("VerifyReceipt: %v", err)
	}
	if cos := policy.Cosigners(got); len(cos) != 2 {
		t.Errorf("cosigners %v, want ed and pq", cos)
	}
	// A forged ML-DSA cosignature by a known key rejects the note.
	bad := []byte(flipSig(string(line)))
	if r.Checkpoint, err = AppendSignatures(n, bad); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyReceipt(r, entry(3), nil, policy); !errors.Is(err, ErrSignature) {
		t.Errorf("forged ML-DSA cosignature: %v, want ErrSignature", err)
	}
	// The same public key twice in a policy is refused, whatever the name.
	_, _, raw, _ := splitKey(vkey, false)
	dup := fmt.Sprintf("pq.example/w2+%08x+%s", keyID("pq.example/w2", raw), base64.StdEncoding.EncodeToString(raw))
	if _, err := ParsePolicy(fmt.Appendf(nil, "witness a %s\nwitness b %s\nquorum a\n", vkey, dup)); !errors.Is(err, ErrMalformed) {
		t.Errorf("policy with one ML-DSA key twice: %v, want ErrMalformed", err)
	}
}

// FuzzCosignatureVerifier: any vkey either parses into a verifier whose
// name and key ID are those it claims, or is refused as malformed; Verify
// never panics and accepts nothing forged from random bytes.
func FuzzCosignatureVerifier(f *testing.F) {
	_, ed, err := GenerateCosignerKey("w.example/ed")
	if err != nil {
		f.Fatal(err)
	}
	_, pq, err := GenerateMLDSACosignerKey("w.example/pq")
	if err != nil {
		f.Fatal(err)
	}
	body := Checkpoint{Origin: "example.com/log", Size: 1, Hash: someHash}.Marshal()
	f.Add(ed, body, make([]byte, 72))
	f.Add(pq, body, make([]byte, mldsaCosigSize))
	f.Add(pq[:len(pq)-4], body, []byte{})
	f.Add("a+00000000+Bg==", []byte("x\n1\n\n"), []byte{6})
	f.Fuzz(func(t *testing.T, vkey string, msg, sig []byte) {
		v, err := NewCosignatureVerifier(vkey)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		name, id, _, err := splitKey(vkey, false)
		if err != nil || v.Name() != name || v.KeyHash() != id {
			t.Fatalf("verifier %s/%08x for vkey %q", v.Name(), v.KeyHash(), vkey)
		}
		if v.Verify(msg, sig) {
			t.Fatalf("random signature verified: %x", sig)
		}
	})
}
