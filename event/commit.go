package event

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

// SaltSize is the length of a commitment's salt in bytes.
const SaltSize = 32

// ErrCommitment means data and salt do not match a commitment.
var ErrCommitment = errors.New("data and salt do not match the commitment")

// NewSalt returns a fresh salt from crypto/rand.
func NewSalt() ([SaltSize]byte, error) {
	var s [SaltSize]byte
	if _, err := rand.Read(s[:]); err != nil {
		return s, fmt.Errorf("reading random salt: %w", err)
	}
	return s, nil
}

// Commit returns the commitment to canonical data under salt:
// SHA-256(salt || data). data must be canonical JSON (Value.Canonical).
func Commit(salt [SaltSize]byte, data []byte) [32]byte {
	h := sha256.New()
	h.Write(salt[:])
	h.Write(data)
	return [32]byte(h.Sum(nil))
}

// VerifyCommitment checks that data (any JSON text: it is canonicalized
// first) and salt open commitment. Errors wrap ErrCommitment, or ErrInvalid
// when data is not JSON this package accepts.
func VerifyCommitment(commitment [32]byte, salt [SaltSize]byte, data []byte) error {
	v, err := ParseJSON(data, false)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	got := Commit(salt, v.Canonical())
	if subtle.ConstantTimeCompare(got[:], commitment[:]) != 1 {
		return ErrCommitment
	}
	return nil
}
