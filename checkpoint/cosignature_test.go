package checkpoint

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestKeysReject(t *testing.T) {
	logSKey, logVKey, err := GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	wSKey, wVKey, err := GenerateCosignerKey("witness.example")
	if err != nil {
		t.Fatal(err)
	}
	badID := func(vkey string) string {
		name, rest, _ := strings.Cut(vkey, "+")
		id, key, _ := strings.Cut(rest, "+")
		return name + "+" + string(flipHex(id[0])) + id[1:] + "+" + key
	}
	tests := []struct {
		name string
		fn   func(string) error
		key  string
	}{
		{"NewVerifier with cosignature key", verr(NewVerifier), wVKey},
		{"NewVerifier with signer key", verr(NewVerifier), logSKey},
		{"NewVerifier wrong key ID", verr(NewVerifier), badID(logVKey)},
		{"NewSigner with cosigner key", serr(NewSigner), wSKey},
		{"NewSigner with verifier key", serr(NewSigner), logVKey},
		{"NewCosignatureVerifier with log key", verr(NewCosignatureVerifier), logVKey},
		{"NewCosignatureVerifier with signer key", verr(NewCosignatureVerifier), wSKey},
		{"NewCosignatureVerifier wrong key ID", verr(NewCosignatureVerifier), badID(wVKey)},
		{"NewCosignatureVerifier 9-digit key ID", verr(NewCosignatureVerifier), strings.Replace(wVKey, "+", "+0", 1)},
		{"NewCosignatureVerifier truncated key", verr(NewCosignatureVerifier), wVKey[:len(wVKey)-4]},
		{"NewCosignatureVerifier empty", verr(NewCosignatureVerifier), ""},
		{"NewCosignatureVerifier name with space", verr(NewCosignatureVerifier), "a b+00000000+BA=="},
		{"NewCosigner with verifier key", serr(NewCosigner), wVKey},
		{"NewCosigner truncated", serr(NewCosigner), wSKey[:len(wSKey)-4]},
		{"NewCosigner not PRIVATE", serr(NewCosigner), strings.Replace(wSKey, "PRIVATE", "PUBLIC", 1)},
		{"GenerateKey empty name", genErr(GenerateKey), ""},
		{"GenerateKey name with plus", genErr(GenerateKey), "a+b"},
		{"GenerateCosignerKey name with space", genErr(GenerateCosignerKey), "a b"},
		{"GenerateCosignerKey name with newline", genErr(GenerateCosignerKey), "a\nb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fn(tt.key)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
			// Secret key material never appears in errors.
			if err != nil && strings.Contains(tt.key, "PRIVATE") {
				secret := tt.key[strings.LastIndexByte(tt.key, '+')+1:]
				if len(secret) > 8 && strings.Contains(err.Error(), secret[:8]) {
					t.Errorf("error %q quotes the secret key", err)
				}
			}
		})
	}
}

func flipHex(c byte) byte {
	if c == '0' {
		return '1'
	}
	return '0'
}

func verr[T any](f func(string) (T, error)) func(string) error {
	return func(k string) error { _, err := f(k); return err }
}

func serr[T any](f func(string) (T, error)) func(string) error { return verr(f) }

func genErr(f func(string) (string, string, error)) func(string) error {
	return func(n string) error { _, _, err := f(n); return err }
}

func TestCosignatureTimestamp(t *testing.T) {
	skey, vkey, err := GenerateCosignerKey("witness.example")
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewCosignatureVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newCosigner(skey, func() time.Time { return time.Unix(1700000000, 0) })
	if err != nil {
		t.Fatal(err)
	}
	body := Checkpoint{Origin: "example.com/log", Size: 1, Hash: someHash}.Marshal()
	sig, err := s.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint64(sig); got != 1700000000 {
		t.Errorf("timestamp = %d, want 1700000000", got)
	}
	if !v.Verify(body, sig) {
		t.Fatal("cosignature does not verify")
	}
	// The signed message is exactly "cosignature/v1\ntime 1700000000\n" || body.
	msg := append([]byte("cosignature/v1\ntime 1700000000\n"), body...)
	if !ed25519.Verify(ed25519.PublicKey(v.(*cosignatureVerifier).pub), msg, sig[8:]) {
		t.Error("signature is not over the cosignature/v1 message")
	}
	// Changing the timestamp breaks it.
	bad := append([]byte(nil), sig...)
	binary.BigEndian.PutUint64(bad, 1700000001)
	if v.Verify(body, bad) {
		t.Error("cosignature with another timestamp verifies")
	}
	// SPEC(tlog-cosignature): timestamps above 2^63-1 are invalid, even when
	// correctly signed.
	priv := s.(*cosigner).priv
	huge := uint64(1) << 63
	hs := binary.BigEndian.AppendUint64(nil, huge)
	hs = append(hs, ed25519.Sign(priv, cosignedMessage(huge, body))...)
	if v.Verify(body, hs) {
		t.Error("cosignature with timestamp 2^63 verifies")
	}
	// A clock before 1970 cannot cosign.
	early, _ := newCosigner(skey, func() time.Time { return time.Unix(-5, 0) })
	if _, err := early.Sign(body); err == nil {
		t.Error("cosigning with a negative time succeeded")
	}
}
