package monitor

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/evidentlog/evident/internal/atomicfile"
)

// Evidence proves (or strongly suggests) that a log misbehaved: the signed
// checkpoints involved, verbatim, and the consistency proof the log served,
// if any. It is what an evidence file holds, as JSON.
type Evidence struct {
	// Time is when the problem was found (RFC 3339, UTC, seconds).
	Time string `json:"time"`
	// Log is the log's base URL.
	Log string `json:"log"`
	// Problem says what is wrong, in one sentence.
	Problem string `json:"problem"`
	// Checkpoints are the signed checkpoint notes involved, verbatim.
	Checkpoints []string `json:"checkpoints"`
	// Proof is the consistency proof the log served, base64 hashes.
	Proof []string `json:"consistency_proof,omitempty"`
}

// newEvidence builds the Evidence of a problem found now.
func newEvidence(log, problem string, notes [][]byte, proof [][]byte) *Evidence {
	ev := &Evidence{Time: time.Now().UTC().Format(time.RFC3339), Log: log, Problem: problem}
	for _, n := range notes {
		ev.Checkpoints = append(ev.Checkpoints, string(n))
	}
	for _, h := range proof {
		ev.Proof = append(ev.Proof, base64.StdEncoding.EncodeToString(h))
	}
	return ev
}

// WriteFile writes ev as indented JSON into dir (created if needed), in a
// new file named evidence-<UTC time>.json, and returns the file's path.
func (ev *Evidence) WriteFile(dir string) (string, error) {
	b, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	now := time.Now().UTC()
	path := filepath.Join(dir, fmt.Sprintf("evidence-%s.json", now.Format("20060102T150405.000000000Z")))
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// ErrViolation matches every error that carries Evidence of a log's
// misbehaviour (*ForkError, *InconsistencyError, *RootMismatchError).
// Callers should keep the evidence (see EvidenceOf) and raise an alarm:
// retrying does not help.
var ErrViolation = errors.New("the log misbehaved")

// ForkError reports two signed checkpoints of the same size with different
// roots: the log forked, or rewrote a checkpoint it served before.
type ForkError struct {
	// Size is the tree size both checkpoints claim.
	Size uint64
	// Evidence holds both signed checkpoints.
	Evidence *Evidence
}

func (e *ForkError) Error() string        { return e.Evidence.Problem }
func (e *ForkError) Is(target error) bool { return target == ErrViolation }

// InconsistencyError reports two signed checkpoints that the log's
// consistency proof does not link (the log rewrote its history), or that
// the log refuses to link with a proof (it hides whether it did).
type InconsistencyError struct {
	// OldSize and NewSize are the two checkpoints' tree sizes.
	OldSize, NewSize uint64
	// Err is the proof verification error, or the log's refusal (a
	// *client.HTTPError, or client.ErrBadResponse).
	Err error
	// Evidence holds both signed checkpoints and the proof, if any.
	Evidence *Evidence
}

func (e *InconsistencyError) Error() string        { return e.Evidence.Problem }
func (e *InconsistencyError) Unwrap() error        { return e.Err }
func (e *InconsistencyError) Is(target error) bool { return target == ErrViolation }

// RootMismatchError reports that the entries a log serves do not hash to
// the root of its signed checkpoint.
type RootMismatchError struct {
	// Size is the checkpoint's tree size.
	Size uint64
	// Got is the root recomputed from the entries; Want the signed one.
	Got, Want [32]byte
	// Evidence holds the signed checkpoint.
	Evidence *Evidence
}

func (e *RootMismatchError) Error() string        { return e.Evidence.Problem }
func (e *RootMismatchError) Is(target error) bool { return target == ErrViolation }

// EvidenceOf returns the Evidence carried by err, or nil when err is not
// (and does not wrap) a violation.
func EvidenceOf(err error) *Evidence {
	var fe *ForkError
	var ie *InconsistencyError
	var re *RootMismatchError
	switch {
	case errors.As(err, &fe):
		return fe.Evidence
	case errors.As(err, &ie):
		return ie.Evidence
	case errors.As(err, &re):
		return re.Evidence
	}
	return nil
}

// VerifyError reports a checkpoint the log served that does not verify:
// a bad signature, a malformed note, or a witness quorum not met. Err
// wraps the checkpoint package's error (checkpoint.ErrSignature, ...).
type VerifyError struct {
	// What names the checkpoint ("the log's latest checkpoint").
	What string
	// Err is the verification error.
	Err error
}

func (e *VerifyError) Error() string { return e.What + ": " + e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

// ShrinkError reports a log whose checkpoint is smaller than one verified
// before by an audit.
type ShrinkError struct {
	// Size is the log's checkpoint size; Audited the size audited before.
	Size, Audited uint64
}

func (e *ShrinkError) Error() string {
	return fmt.Sprintf("the log's checkpoint has size %d, smaller than the size %d audited before", e.Size, e.Audited)
}

// UnservableError reports an entry, below the checkpoint's size, that the
// log refuses to serve with an error of its own (HTTP 500): its stored data
// is damaged or failed the log's own check. It is an audit finding, not a
// transport error: the entries from Index on could not be audited.
type UnservableError struct {
	// Index is the first entry the log would not serve.
	Index uint64
	// Err is the log's answer.
	Err error
}

func (e *UnservableError) Error() string {
	return fmt.Sprintf("the log cannot serve entry %d, below its checkpoint's size (%v): its stored data may be damaged; the entries from %d on were not audited", e.Index, e.Err, e.Index)
}

func (e *UnservableError) Unwrap() error { return e.Err }

// ErrBadState is wrapped by errors about a state directory or file that
// cannot be used (not readable or writable, not JSON, a checkpoint that
// does not verify, or kept for another log). Fix or remove it.
var ErrBadState = errors.New("unusable state file")

// stateError is an ErrBadState with its own message.
type stateError struct{ msg string }

func (e *stateError) Error() string        { return e.msg }
func (e *stateError) Is(target error) bool { return target == ErrBadState }
