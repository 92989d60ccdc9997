package checkpoint

import (
	"errors"
	"strings"
)

// ErrMalformed means the input does not parse: a note, checkpoint body,
// signature line, receipt, policy or proof that breaks the format rules.
// Callers should refuse the input (HTTP 400, CLI "malformed ...").
var ErrMalformed = errors.New("malformed input")

// ErrSignature means a note carries no valid signature by the expected log
// key, the key's name differs from the checkpoint origin, or a signature by a
// known key failed to verify. Callers should refuse the note (HTTP 403).
var ErrSignature = errors.New("signature verification failed")

// ErrQuorum means a witness policy is not satisfied by the cosignatures that
// verified. Errors returned by this package that match it are *QuorumError
// values that list the missing witnesses.
var ErrQuorum = errors.New("witness quorum not satisfied")

// ErrInclusion means an inclusion proof does not verify: the proof, the
// index, the tree size, the root or the entry itself does not match.
var ErrInclusion = errors.New("inclusion proof does not verify")

// ErrConsistency means a consistency proof does not verify: the two trees
// cannot both be honest views of one append-only log (possible fork).
var ErrConsistency = errors.New("consistency proof does not verify")

// QuorumError reports an unsatisfied witness policy. It matches ErrQuorum
// with errors.Is.
type QuorumError struct {
	// Missing lists the policy names of witnesses whose cosignature would
	// help meet the quorum, in policy order.
	Missing []string
}

func (e *QuorumError) Error() string {
	if len(e.Missing) == 0 {
		return ErrQuorum.Error()
	}
	return ErrQuorum.Error() + ": missing cosignatures from " + strings.Join(e.Missing, ", ")
}

// Is reports whether target is ErrQuorum.
func (e *QuorumError) Is(target error) bool { return target == ErrQuorum }
