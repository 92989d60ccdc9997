package checkpoint

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"filippo.io/mldsa"
	"golang.org/x/mod/sumdb/note"
)

// ML-DSA-44 cosignatures (C2SP tlog-cosignature, signature type 0x06): a
// post-quantum alternative to Ed25519 cosignature/v1. The key ID is
// SHA-256(name || "\n" || 0x06 || 1312-byte public key)[:4]; a signature is
// timestamp (8, big-endian Unix seconds) || 2420-byte ML-DSA-44 signature
// (FIPS 204, pure, empty context) over the binary cosigned_message of
// mldsaMessage. Unlike cosignature/v1 it commits to the cosigner's name and
// not to checkpoint extension lines.
//
// The ML-DSA implementation is filippo.io/mldsa, the standard library's
// FIPS 140 code (crypto/internal/fips140/mldsa) packaged for import until
// Go ships crypto/mldsa; tests cross-check it with an independent one.

// algMLDSA44 is the signed-note signature type of ML-DSA-44 cosignatures.
// SPEC(signed-note): 0x06, timestamped ML-DSA-44 (sub)tree cosignatures.
const algMLDSA44 = 0x06

// Sizes of ML-DSA-44 keys and signatures.
const (
	mldsaSeedSize      = mldsa.PrivateKeySize           // 32: the private key is its seed
	mldsaPublicKeySize = mldsa.MLDSA44PublicKeySize     // 1312
	mldsaSignatureSize = mldsa.MLDSA44SignatureSize     // 2420
	mldsaLabel         = "subtree/v1\n\x00"             // 12 bytes
	mldsaCosigSize     = 8 + mldsa.MLDSA44SignatureSize // timestamp || signature
)

// GenerateMLDSACosignerKey returns a new ML-DSA-44 cosignature key pair
// (signature type 0x06) for a witness named name: the private signer key
// skey ("PRIVATE+KEY+<name>+<id>+<base64(0x06 || 32-byte seed)>"), to be
// kept secret, and the public verifier key vkey
// ("<name>+<id>+<base64(0x06 || 1312-byte public key)>"). The encoding is
// the one of transparency-dev/formats/note.
func GenerateMLDSACosignerKey(name string) (skey, vkey string, err error) {
	if !validName(name) || len(name) > 255 {
		return "", "", fmt.Errorf("key name %q: %w", name, ErrMalformed)
	}
	seed := make([]byte, mldsaSeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", "", fmt.Errorf("generating key: %w", err)
	}
	priv, err := mldsa.NewPrivateKey(mldsa.MLDSA44(), seed)
	if err != nil {
		return "", "", fmt.Errorf("generating key: %w", err)
	}
	pk := append([]byte{algMLDSA44}, priv.PublicKey().Bytes()...)
	h := keyID(name, pk)
	sk := append([]byte{algMLDSA44}, seed...)
	skey = fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, h, base64.StdEncoding.EncodeToString(sk))
	vkey = fmt.Sprintf("%s+%08x+%s", name, h, base64.StdEncoding.EncodeToString(pk))
	return skey, vkey, nil
}

// newMLDSACosigner returns the ML-DSA-44 cosigner of a private key whose
// decoded bytes are raw (0x06 || seed). id is the key ID the skey claims.
func newMLDSACosigner(name string, id uint32, raw []byte, now func() time.Time) (note.Signer, error) {
	if len(raw) != 1+mldsaSeedSize {
		return nil, fmt.Errorf("ML-DSA-44 cosigner key has %d bytes, want %d: %w", len(raw)-1, mldsaSeedSize, ErrMalformed)
	}
	if len(name) > 255 {
		return nil, fmt.Errorf("ML-DSA-44 cosigner name is longer than 255 bytes: %w", ErrMalformed)
	}
	priv, err := mldsa.NewPrivateKey(mldsa.MLDSA44(), raw[1:])
	if err != nil {
		return nil, fmt.Errorf("ML-DSA-44 cosigner key: %w", ErrMalformed)
	}
	hash := keyID(name, append([]byte{algMLDSA44}, priv.PublicKey().Bytes()...))
	if hash != id {
		return nil, fmt.Errorf("ML-DSA-44 cosigner key ID %08x does not match the key: %w", id, ErrMalformed)
	}
	return &mldsaCosigner{name: name, hash: hash, priv: priv, now: now}, nil
}

// mldsaCosigner is an ML-DSA-44 cosignature note.Signer.
type mldsaCosigner struct {
	name string
	hash uint32
	priv *mldsa.PrivateKey
	now  func() time.Time
}

func (s *mldsaCosigner) Name() string    { return s.name }
func (s *mldsaCosigner) KeyHash() uint32 { return s.hash }

// Sign returns timestamp || ML-DSA-44 signature over the cosigned_message
// of the checkpoint body msg. Signing is hedged (randomized), as FIPS 204
// recommends.
func (s *mldsaCosigner) Sign(msg []byte) ([]byte, error) {
	c, err := Parse(msg)
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	t := s.now().Unix()
	if t < 0 {
		return nil, fmt.Errorf("cosigning: clock before 1970")
	}
	m, err := mldsaMessage(s.name, uint64(t), c)
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	sig, err := s.priv.Sign(rand.Reader, m, nil)
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	out := binary.BigEndian.AppendUint64(make([]byte, 0, mldsaCosigSize), uint64(t))
	return append(out, sig...), nil
}

// mldsaMessage returns the cosigned_message that an ML-DSA-44 cosignature of
// checkpoint c at time t signs.
// SPEC(tlog-cosignature): struct { uint8 label[12] = "subtree/v1\n\0";
// opaque cosigner_name<1..2^8-1>; uint64 timestamp; opaque
// log_origin<1..2^8-1>; uint64 start; uint64 end; uint8 hash[32]; }, in
// TLS presentation (big-endian, one length byte before each opaque); for a
// checkpoint start is 0 and end its size. https://c2sp.org/tlog-cosignature
func mldsaMessage(name string, t uint64, c Checkpoint) ([]byte, error) {
	if len(name) == 0 || len(name) > 255 {
		return nil, fmt.Errorf("cosigner name of %d bytes is not 1 to 255: %w", len(name), ErrMalformed)
	}
	if len(c.Origin) == 0 || len(c.Origin) > 255 {
		return nil, fmt.Errorf("origin of %d bytes is not 1 to 255: %w", len(c.Origin), ErrMalformed)
	}
	m := make([]byte, 0, len(mldsaLabel)+1+len(name)+8+1+len(c.Origin)+8+8+32)
	m = append(m, mldsaLabel...)
	m = append(m, byte(len(name)))
	m = append(m, name...)
	m = binary.BigEndian.AppendUint64(m, t)
	m = append(m, byte(len(c.Origin)))
	m = append(m, c.Origin...)
	m = binary.BigEndian.AppendUint64(m, 0) // start
	m = binary.BigEndian.AppendUint64(m, c.Size)
	return append(m, c.Hash[:]...), nil
}

// newMLDSAVerifier returns the ML-DSA-44 cosignature verifier of a vkey whose
// decoded bytes are raw (0x06 || public key).
func newMLDSAVerifier(name string, id uint32, raw []byte) (note.Verifier, error) {
	if len(raw) != 1+mldsaPublicKeySize {
		return nil, fmt.Errorf("ML-DSA-44 verifier key has %d bytes, want %d: %w", len(raw)-1, mldsaPublicKeySize, ErrMalformed)
	}
	if len(name) > 255 {
		return nil, fmt.Errorf("ML-DSA-44 verifier key name is longer than 255 bytes: %w", ErrMalformed)
	}
	if id != keyID(name, raw) {
		return nil, fmt.Errorf("cosignature verifier key %s: key ID does not match the key: %w", name, ErrMalformed)
	}
	pub, err := mldsa.NewPublicKey(mldsa.MLDSA44(), raw[1:])
	if err != nil {
		return nil, fmt.Errorf("ML-DSA-44 verifier key %s: %w", name, ErrMalformed)
	}
	return &mldsaVerifier{name: name, hash: id, pub: pub}, nil
}

// mldsaVerifier is an ML-DSA-44 cosignature note.Verifier.
type mldsaVerifier struct {
	name string
	hash uint32
	pub  *mldsa.PublicKey
}

func (v *mldsaVerifier) Name() string    { return v.name }
func (v *mldsaVerifier) KeyHash() uint32 { return v.hash }

// Verify checks a timestamped ML-DSA-44 signature over the checkpoint body
// msg, which must parse strictly.
func (v *mldsaVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != mldsaCosigSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	// SPEC(tlog-cosignature): the timestamp MUST NOT exceed 2^63 - 1.
	if t > math.MaxInt64 {
		return false
	}
	c, err := Parse(msg)
	if err != nil {
		return false
	}
	m, err := mldsaMessage(v.name, t, c)
	if err != nil {
		return false
	}
	return mldsa.Verify(v.pub, m, sig[8:], nil) == nil
}

// CosignatureAlgorithm names the algorithm of a cosignature verifier key
// (vkey): "Ed25519" (cosignature/v1, type 0x04) or "ML-DSA-44" (type 0x06).
// It checks only the key's shape; NewCosignatureVerifier checks the rest.
func CosignatureAlgorithm(vkey string) (string, error) {
	_, _, raw, err := splitKey(vkey, false)
	if err != nil {
		return "", err
	}
	switch raw[0] {
	case algCosignatureV1:
		return "Ed25519", nil
	case algMLDSA44:
		return "ML-DSA-44", nil
	}
	return "", fmt.Errorf("signature type %#x is not a cosignature type: %w", raw[0], ErrMalformed)
}

// MLDSAVerifierKey returns the public verifier key (vkey) of an ML-DSA-44
// cosigner key skey (type 0x06), checking that its key ID matches.
func MLDSAVerifierKey(skey string) (string, error) {
	name, id, raw, err := splitKey(skey, true)
	if err != nil {
		return "", fmt.Errorf("cosigner key: %w", err)
	}
	if raw[0] != algMLDSA44 {
		return "", fmt.Errorf("cosigner key has signature type %#x, want 0x06 (ML-DSA-44): %w", raw[0], ErrMalformed)
	}
	s, err := newMLDSACosigner(name, id, raw, time.Now)
	if err != nil {
		return "", err
	}
	pk := append([]byte{algMLDSA44}, s.(*mldsaCosigner).priv.PublicKey().Bytes()...)
	return fmt.Sprintf("%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(pk)), nil
}
