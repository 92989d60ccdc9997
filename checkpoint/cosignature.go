package checkpoint

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Signature type identifiers (signed-note).
const (
	algEd25519       = 0x01
	algCosignatureV1 = 0x04
	// algMLDSA44 (0x06) is in mldsa.go.
)

// Cosignature is a witness cosignature (C2SP tlog-cosignature,
// cosignature/v1) that verified.
type Cosignature struct {
	// Name is the witness key's name.
	Name string
	// KeyHash is the witness key ID.
	KeyHash uint32
	// Time is the cosignature/v1 timestamp: when the witness cosigned.
	Time time.Time
}

// GenerateCosignerKey returns a new Ed25519 cosignature/v1 key pair (type
// 0x04) for a witness named name: the private signer key skey, to be kept
// secret, and the public verifier key vkey.
func GenerateCosignerKey(name string) (skey, vkey string, err error) {
	if !validName(name) {
		return "", "", fmt.Errorf("key name %q: %w", name, ErrMalformed)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generating key: %w", err)
	}
	pk := append([]byte{algCosignatureV1}, pub...)
	sk := append([]byte{algCosignatureV1}, priv.Seed()...)
	h := keyID(name, pk)
	skey = fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, h, base64.StdEncoding.EncodeToString(sk))
	vkey = fmt.Sprintf("%s+%08x+%s", name, h, base64.StdEncoding.EncodeToString(pk))
	return skey, vkey, nil
}

// NewCosigner returns a witness cosigner for skey: an Ed25519 cosignature/v1
// signer for an Ed25519 key of type 0x04 (or of type 0x01 used as a
// cosignature key, as transparency-dev/formats/note allows), or an ML-DSA-44
// cosigner for a key of type 0x06 (see GenerateMLDSACosignerKey). Each
// signature carries the current time as its timestamp. Its Sign refuses
// messages that are not checkpoint bodies.
func NewCosigner(skey string) (note.Signer, error) {
	return newCosigner(skey, time.Now)
}

func newCosigner(skey string, now func() time.Time) (note.Signer, error) {
	name, id, raw, err := splitKey(skey, true)
	if err != nil {
		return nil, fmt.Errorf("cosigner key: %w", err)
	}
	if raw[0] == algMLDSA44 {
		return newMLDSACosigner(name, id, raw, now)
	}
	if alg := raw[0]; alg != algCosignatureV1 && alg != algEd25519 {
		return nil, fmt.Errorf("cosigner key has signature type %#x, want Ed25519 or ML-DSA-44: %w", alg, ErrMalformed)
	}
	if len(raw) != 1+ed25519.SeedSize {
		return nil, fmt.Errorf("cosigner key has %d bytes, want %d: %w", len(raw)-1, ed25519.SeedSize, ErrMalformed)
	}
	priv := ed25519.NewKeyFromSeed(raw[1:])
	pub := priv.Public().(ed25519.PublicKey)
	return &cosigner{
		name: name,
		hash: keyID(name, append([]byte{algCosignatureV1}, pub...)),
		priv: priv,
		now:  now,
	}, nil
}

// cosigner is an Ed25519 cosignature/v1 note.Signer.
type cosigner struct {
	name string
	hash uint32
	priv ed25519.PrivateKey
	now  func() time.Time
}

func (s *cosigner) Name() string    { return s.name }
func (s *cosigner) KeyHash() uint32 { return s.hash }

// Sign returns timestamp || Ed25519 signature over the cosignature/v1
// message for the checkpoint body msg.
func (s *cosigner) Sign(msg []byte) ([]byte, error) {
	if _, err := Parse(msg); err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	t := s.now().Unix()
	if t < 0 {
		return nil, fmt.Errorf("cosigning: clock before 1970")
	}
	sig := binary.BigEndian.AppendUint64(make([]byte, 0, 8+ed25519.SignatureSize), uint64(t))
	return append(sig, ed25519.Sign(s.priv, cosignedMessage(uint64(t), msg))...), nil
}

// cosignedMessage returns the message an Ed25519 cosignature/v1 signs.
// SPEC(tlog-cosignature): "cosignature/v1\n", "time <t>\n" (decimal, no
// leading zeroes), then the whole checkpoint body.
// https://c2sp.org/tlog-cosignature
func cosignedMessage(t uint64, body []byte) []byte {
	m := []byte("cosignature/v1\ntime ")
	m = strconv.AppendUint(m, t, 10)
	m = append(m, '\n')
	return append(m, body...)
}

// NewCosignatureVerifier returns a witness cosignature verifier for vkey,
// which must be an Ed25519 cosignature/v1 key (type 0x04) or an ML-DSA-44
// cosignature key (type 0x06) whose key ID matches its name and key.
func NewCosignatureVerifier(vkey string) (note.Verifier, error) {
	name, id, raw, err := splitKey(vkey, false)
	if err != nil {
		return nil, fmt.Errorf("cosignature verifier key: %w", err)
	}
	if raw[0] == algMLDSA44 {
		return newMLDSAVerifier(name, id, raw)
	}
	if alg := raw[0]; alg != algCosignatureV1 {
		return nil, fmt.Errorf("cosignature verifier key has signature type %#x, want 0x04 (Ed25519 cosignature/v1) or 0x06 (ML-DSA-44): %w", alg, ErrMalformed)
	}
	if len(raw) != 1+ed25519.PublicKeySize {
		return nil, fmt.Errorf("cosignature verifier key has %d bytes, want %d: %w", len(raw)-1, ed25519.PublicKeySize, ErrMalformed)
	}
	if id != keyID(name, raw) {
		return nil, fmt.Errorf("cosignature verifier key %s: key ID does not match the key: %w", name, ErrMalformed)
	}
	return &cosignatureVerifier{name: name, hash: id, pub: ed25519.PublicKey(raw[1:])}, nil
}

// cosignatureVerifier is an Ed25519 cosignature/v1 note.Verifier.
type cosignatureVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }

// Verify checks a timestamped signature (timestamp || Ed25519 signature).
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	// SPEC(tlog-cosignature): the timestamp MUST NOT exceed 2^63 - 1.
	if t > math.MaxInt64 {
		return false
	}
	return ed25519.Verify(v.pub, cosignedMessage(t, msg), sig[8:])
}

// splitKey checks the shape of a vkey ("name+id+base64") or, if private, an
// skey ("PRIVATE+KEY+name+id+base64") and returns its name, key ID and key
// bytes (signature type byte first). Base64 may itself contain "+".
func splitKey(key string, private bool) (name string, id uint32, raw []byte, err error) {
	if private {
		var ok bool
		if key, ok = strings.CutPrefix(key, "PRIVATE+KEY+"); !ok {
			return "", 0, nil, fmt.Errorf("signer key does not start with PRIVATE+KEY+: %w", ErrMalformed)
		}
	}
	name, rest, ok1 := strings.Cut(key, "+")
	hash16, b64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 {
		return "", 0, nil, fmt.Errorf("key is not name+id+key: %w", ErrMalformed)
	}
	if !validName(name) {
		return "", 0, nil, fmt.Errorf("key name %q: %w", name, ErrMalformed)
	}
	n, err := strconv.ParseUint(hash16, 16, 32)
	if len(hash16) != 8 || err != nil {
		return "", 0, nil, fmt.Errorf("key ID %q is not 8 hex digits: %w", hash16, ErrMalformed)
	}
	raw, err = decodeBase64(b64)
	if err != nil {
		// Not err: it would quote the (possibly secret) key bytes.
		return "", 0, nil, fmt.Errorf("key is not canonical base64: %w", ErrMalformed)
	}
	if len(raw) == 0 {
		return "", 0, nil, fmt.Errorf("empty key: %w", ErrMalformed)
	}
	return name, uint32(n), raw, nil
}

// keyID computes the signed-note key ID.
// SPEC(signed-note): key ID = SHA-256(key name || 0x0A || type || public key)[:4].
func keyID(name string, typedKey []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n'})
	h.Write(typedKey)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// cosignatureTime returns the timestamp of a cosignature/v1 signature (the
// bytes after the key ID).
// SPEC(tlog-cosignature): timestamp is 8 bytes, big-endian Unix seconds.
func cosignatureTime(sig []byte) time.Time {
	if len(sig) < 8 {
		return time.Time{}
	}
	t := binary.BigEndian.Uint64(sig)
	if t > math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(int64(t), 0).UTC()
}
