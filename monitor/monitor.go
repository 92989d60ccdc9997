// Package monitor watches a log from the outside: it follows the log's
// signed checkpoints and checks each against every one seen before
// (Monitor), and it recomputes the log's Merkle root from all its entries
// (Auditor). It trusts nothing the log says that it cannot verify with the
// log's public key, a witness policy and RFC 6962 proofs, and turns any
// contradiction into an error that carries Evidence: the signed bytes,
// verbatim, that prove the log misbehaved.
//
// The checks a Monitor makes on each new checkpoint:
//   - the log's signature, and with a policy the witness quorum
//     (C2SP tlog-cosignature, tlog-policy);
//   - two checkpoints of one size must have the same root (*ForkError);
//   - a consistency proof fetched from the log must verify against the
//     nearest smaller and the nearest larger checkpoint kept; consistency
//     is transitive, so this covers every one (*InconsistencyError); a log
//     that keeps refusing the proof (a 4xx answer other than 429, or an
//     answer that does not parse) between two checkpoints it signed, for
//     Config.RefusalGrace, is an *InconsistencyError too: it hides a fork
//     as well as a bad proof does;
//   - the log's archive (/v1/checkpoints/{size}) must still serve the same
//     root for the previous checkpoint (*ForkError).
//
// It uses the log only through package client, never the log's own code.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/internal/atomicfile"
	"golang.org/x/mod/sumdb/note"
)

// Config configures a Monitor.
type Config struct {
	// Client reaches the log. Required; the caller closes it.
	Client *client.Client
	// LogKey verifies the log's signature on checkpoints. Required.
	LogKey note.Verifier
	// Policy, if set, is a witness quorum every checkpoint must meet.
	Policy *checkpoint.Policy
	// StateDir keeps every checkpoint seen, in StateDir/checkpoints/<size>
	// (the signed note, verbatim). Required. Its content is trusted once
	// stored, but each file is verified with LogKey when loaded: New lists
	// the sizes from the file names and opens only the largest; Check opens
	// only the ones it compares with.
	StateDir string
	// RefusalGrace is how long the log may refuse a consistency proof
	// between two checkpoints it signed before that is a violation; the
	// request is repeated every second meanwhile (0: DefaultRefusalGrace).
	// A log of several personalities behind a load balancer may answer
	// from one that has not yet published the newer checkpoint.
	RefusalGrace time.Duration
	// Logger receives debug records; nil discards them.
	Logger *slog.Logger
}

// DefaultRefusalGrace is the default Config.RefusalGrace: personalities
// publish every 100 ms by default, so a few seconds cover any honest lag.
const DefaultRefusalGrace = 3 * time.Second

// Monitor follows one log's checkpoints. It is not safe for concurrent use.
type Monitor struct {
	cfg Config
	log *slog.Logger
	// sizes lists every checkpoint kept, sorted; seen holds those loaded
	// (verified) so far, by size.
	sizes []uint64
	seen  map[uint64]kept
}

// kept is a checkpoint seen before.
type kept struct {
	size uint64
	root [32]byte
	note []byte
}

// Result is what Check found.
type Result struct {
	// Checkpoint is the log's latest checkpoint, verified.
	Checkpoint *checkpoint.Signed
	// New is false when a checkpoint of this size was kept before (with
	// the same root).
	New bool
	// Stale is set when the log served a checkpoint smaller than one kept
	// before (it was consistent with it); Newer is the nearest larger size
	// kept.
	Stale bool
	Newer uint64
	// Cosigners names the policy's witnesses that cosigned (nil without a
	// policy).
	Cosigners []string
	// Kept is how many checkpoints the state directory now holds.
	Kept int
}

// New returns a Monitor with the checkpoints kept in cfg.StateDir (created
// if needed). A state directory that cannot be used, or whose largest
// checkpoint is not a checkpoint of its size signed by the log key (a state
// directory of another log, say), is an error that wraps ErrBadState.
func New(ctx context.Context, cfg Config) (*Monitor, error) {
	if cfg.Client == nil || cfg.LogKey == nil || cfg.StateDir == "" {
		return nil, errors.New("monitor: Client, LogKey and StateDir are required")
	}
	m := &Monitor{cfg: cfg, log: cfg.Logger}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if m.cfg.RefusalGrace <= 0 {
		m.cfg.RefusalGrace = DefaultRefusalGrace
	}
	if err := m.list(); err != nil {
		return nil, &stateError{fmt.Sprintf("state directory %s: %v", cfg.StateDir, err)}
	}
	if n := len(m.sizes); n > 0 {
		if _, err := m.kept(m.sizes[n-1]); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Kept returns how many checkpoints the Monitor keeps.
func (m *Monitor) Kept() int { return len(m.sizes) }

// list reads the sizes of the checkpoints kept from the file names.
func (m *Monitor) list() error {
	dir := filepath.Join(m.cfg.StateDir, "checkpoints")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m.seen = make(map[uint64]kept)
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		size, err := strconv.ParseUint(de.Name(), 10, 64)
		if err != nil || strconv.FormatUint(size, 10) != de.Name() {
			continue // temporary or foreign files
		}
		m.sizes = append(m.sizes, size)
	}
	slices.Sort(m.sizes)
	return nil
}

// kept returns the kept checkpoint of size (one of m.sizes), reading and
// verifying its file the first time. A file that is not a checkpoint of its
// size signed by the log key wraps ErrBadState.
func (m *Monitor) kept(size uint64) (kept, error) {
	if k, ok := m.seen[size]; ok {
		return k, nil
	}
	name := filepath.Join(m.cfg.StateDir, "checkpoints", strconv.FormatUint(size, 10))
	b, err := os.ReadFile(name)
	if err != nil {
		return kept{}, &stateError{fmt.Sprintf("state directory: %v", err)}
	}
	s, err := checkpoint.Open(b, m.cfg.LogKey)
	if err == nil && s.Size != size {
		err = fmt.Errorf("it has size %d", s.Size)
	}
	if err != nil {
		return kept{}, &stateError{fmt.Sprintf("state directory: %s is not a checkpoint of size %d signed by the log key (a state directory of another log?): %v", name, size, err)}
	}
	k := kept{size: size, root: s.Hash, note: b}
	m.seen[size] = k
	return k, nil
}

// Check fetches the log's latest checkpoint, verifies it, checks it against
// every checkpoint kept, and keeps it. A violation is returned as a
// *ForkError or *InconsistencyError carrying Evidence (errors.Is
// ErrViolation); a checkpoint that does not verify as a *VerifyError;
// anything else (network, local writes) as a plain error.
func (m *Monitor) Check(ctx context.Context) (*Result, error) {
	s, err := fetchChecked(ctx, m.cfg.Client, m.cfg.LogKey, m.cfg.Policy, "the log's latest checkpoint", true)
	if err != nil {
		return nil, err
	}
	res, err := m.check(ctx, s)
	if err != nil {
		return nil, err
	}
	if m.cfg.Policy != nil {
		res.Cosigners = m.cfg.Policy.Cosigners(s)
	}
	res.Kept = len(m.sizes)
	return res, nil
}

// fetchChecked fetches the log's latest checkpoint and checks it as
// openChecked does.
func fetchChecked(ctx context.Context, c *client.Client, key note.Verifier, policy *checkpoint.Policy, what string, withSize bool) (*checkpoint.Signed, error) {
	raw, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	return openChecked(raw, key, policy, what, withSize)
}

// openChecked verifies a checkpoint's signature and the policy's witness
// quorum. withSize names the size in a quorum error.
func openChecked(raw []byte, key note.Verifier, policy *checkpoint.Policy, what string, withSize bool) (*checkpoint.Signed, error) {
	var ws []note.Verifier
	if policy != nil {
		if err := logListed(key, policy); err != nil {
			return nil, err
		}
		ws = policy.Verifiers()
	}
	s, err := checkpoint.Open(raw, key, ws...)
	if err != nil {
		return nil, &VerifyError{What: what + " does not verify", Err: err}
	}
	if policy != nil {
		if cos := policy.Cosigners(s); !policy.Satisfied(cos) {
			if withSize {
				what = fmt.Sprintf("%s (size %d)", what, s.Size)
			}
			return nil, &VerifyError{What: what, Err: &checkpoint.QuorumError{Missing: policy.Missing(cos)}}
		}
	}
	return s, nil
}

// logListed refuses a log key that is not one of the policy's log lines,
// when it has any, as checkpoint.VerifyReceipt does.
// SPEC(tlog-policy): a checkpoint is valid if it is signed by any one of
// the listed logs.
func logListed(key note.Verifier, policy *checkpoint.Policy) error {
	logs := policy.Logs()
	for _, l := range logs {
		if l.Verifier.Name() == key.Name() && l.Verifier.KeyHash() == key.KeyHash() {
			return nil
		}
	}
	if len(logs) == 0 {
		return nil
	}
	return &VerifyError{What: "the log key", Err: fmt.Errorf("%s+%08x is not one of the policy's log lines: %w", key.Name(), key.KeyHash(), checkpoint.ErrSignature)}
}

// check compares s with every checkpoint seen before, and keeps it.
func (m *Monitor) check(ctx context.Context, s *checkpoint.Signed) (*Result, error) {
	res := &Result{Checkpoint: s}
	cur := kept{s.Size, s.Hash, s.Note}
	i, found := slices.BinarySearch(m.sizes, s.Size)
	if found {
		old, err := m.kept(s.Size)
		if err != nil {
			return nil, err
		}
		if old.root != s.Hash {
			return nil, m.fork(s.Size, fmt.Sprintf("the log forked: two signed checkpoints of size %d with different roots", s.Size), old.note, s.Note)
		}
		return res, nil
	}
	res.New = true
	var lower kept
	if i > 0 {
		var err error
		if lower, err = m.kept(m.sizes[i-1]); err != nil {
			return nil, err
		}
		if err := m.consistent(ctx, lower, cur); err != nil {
			return nil, err
		}
	}
	if i < len(m.sizes) {
		higher, err := m.kept(m.sizes[i])
		if err != nil {
			return nil, err
		}
		if err := m.consistent(ctx, cur, higher); err != nil {
			return nil, err
		}
		res.Stale, res.Newer = true, higher.size
	}
	if err := m.store(s); err != nil {
		return nil, err
	}
	if i > 0 {
		if err := m.checkArchive(ctx, lower); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// consistent fetches and verifies the consistency proof between two signed
// checkpoints; a proof that fails, or that the log refuses, is a violation.
func (m *Monitor) consistent(ctx context.Context, older, newer kept) error {
	var proof [][]byte
	if older.size > 0 {
		var err error
		if proof, err = m.consistencyProof(ctx, older.size, newer.size); err != nil {
			if refused(err) {
				problem := fmt.Sprintf("the log refuses to prove consistency between checkpoints it signed (sizes %d and %d): %v", older.size, newer.size, err)
				return &InconsistencyError{OldSize: older.size, NewSize: newer.size, Err: err,
					Evidence: newEvidence(m.cfg.Client.URL(), problem, [][]byte{older.note, newer.note}, nil)}
			}
			return fmt.Errorf("fetching consistency proof %d -> %d: %w", older.size, newer.size, err)
		}
	}
	if err := checkpoint.VerifyConsistency(older.size, newer.size, older.root, newer.root, proof); err != nil {
		problem := fmt.Sprintf("the log's checkpoints of sizes %d and %d are not consistent: %v", older.size, newer.size, err)
		return &InconsistencyError{OldSize: older.size, NewSize: newer.size, Err: err,
			Evidence: newEvidence(m.cfg.Client.URL(), problem, [][]byte{older.note, newer.note}, proof)}
	}
	return nil
}

// consistencyProof fetches a consistency proof, repeating a refusal every
// second until RefusalGrace has passed.
func (m *Monitor) consistencyProof(ctx context.Context, first, second uint64) ([][]byte, error) {
	deadline := time.Now().Add(m.cfg.RefusalGrace)
	for {
		p, err := m.cfg.Client.ConsistencyProof(ctx, first, second)
		left := time.Until(deadline)
		if err == nil || !refused(err) || left <= 0 {
			return p, err
		}
		m.log.Debug("the log refused a consistency proof; asking again", "first", first, "second", second, "err", err)
		t := time.NewTimer(min(time.Second, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// refused reports whether the log's answer to a proof request is a
// refusal, not a passing failure: a 4xx status other than 429 (a proof
// between two sizes it signed always exists), or a 2xx answer that does
// not parse. Transport errors, 5xx and 429 are worth retrying.
func refused(err error) bool {
	var he *client.HTTPError
	if errors.As(err, &he) {
		return he.StatusCode/100 == 4 && he.StatusCode != http.StatusTooManyRequests
	}
	return errors.Is(err, client.ErrBadResponse)
}

// checkArchive re-fetches a checkpoint seen before from the log's archive
// and checks that the log still serves the same root for that size.
func (m *Monitor) checkArchive(ctx context.Context, old kept) error {
	raw, err := m.cfg.Client.CheckpointAt(ctx, old.size)
	if client.IsNotFound(err) {
		return nil // the log keeps no archive of that size
	}
	if err != nil {
		return fmt.Errorf("fetching archived checkpoint %d: %w", old.size, err)
	}
	s, err := checkpoint.Open(raw, m.cfg.LogKey)
	if err != nil {
		return &VerifyError{What: fmt.Sprintf("the log's archived checkpoint %d does not verify", old.size), Err: err}
	}
	if s.Size != old.size || s.Hash != old.root {
		return m.fork(old.size, fmt.Sprintf("the log now serves a different checkpoint for size %d than the one it served before", old.size), old.note, raw)
	}
	return nil
}

func (m *Monitor) fork(size uint64, problem string, a, b []byte) error {
	return &ForkError{Size: size, Evidence: newEvidence(m.cfg.Client.URL(), problem, [][]byte{a, b}, nil)}
}

// store keeps s in the state directory.
func (m *Monitor) store(s *checkpoint.Signed) error {
	path := filepath.Join(m.cfg.StateDir, "checkpoints", strconv.FormatUint(s.Size, 10))
	if err := atomicfile.WriteFile(path, s.Note, 0o644); err != nil {
		return fmt.Errorf("keeping checkpoint: %w", err)
	}
	m.seen[s.Size] = kept{size: s.Size, root: s.Hash, note: s.Note}
	i, _ := slices.BinarySearch(m.sizes, s.Size)
	m.sizes = slices.Insert(m.sizes, i, s.Size)
	m.log.Debug("kept checkpoint", "origin", s.Origin, "size", s.Size)
	return nil
}
