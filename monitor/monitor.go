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
//     is transitive, so this covers every one (*InconsistencyError);
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
	"os"
	"path/filepath"
	"slices"
	"strconv"

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
	// stored, but each file is verified with LogKey when loaded.
	StateDir string
	// Logger receives debug records; nil discards them.
	Logger *slog.Logger
}

// Monitor follows one log's checkpoints. It is not safe for concurrent use.
type Monitor struct {
	cfg Config
	log *slog.Logger
	// seen holds every checkpoint kept, by size.
	seen  map[uint64]kept
	sizes []uint64 // sorted keys of seen
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
// if needed). A file there that is not a checkpoint of its size signed by
// the log key is an error.
func New(ctx context.Context, cfg Config) (*Monitor, error) {
	if cfg.Client == nil || cfg.LogKey == nil || cfg.StateDir == "" {
		return nil, errors.New("monitor: Client, LogKey and StateDir are required")
	}
	m := &Monitor{cfg: cfg, log: cfg.Logger}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := m.load(); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return m, nil
}

// Kept returns how many checkpoints the Monitor keeps.
func (m *Monitor) Kept() int { return len(m.sizes) }

// load reads the checkpoints kept in the state directory.
func (m *Monitor) load() error {
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
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			return err
		}
		s, err := checkpoint.Open(b, m.cfg.LogKey)
		if err != nil || s.Size != size {
			return fmt.Errorf("%s: not a checkpoint of size %d signed by the log key: %v", de.Name(), size, err)
		}
		m.seen[size] = kept{size: size, root: s.Hash, note: b}
		m.sizes = append(m.sizes, size)
	}
	slices.Sort(m.sizes)
	return nil
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

// check compares s with every checkpoint seen before, and keeps it.
func (m *Monitor) check(ctx context.Context, s *checkpoint.Signed) (*Result, error) {
	res := &Result{Checkpoint: s}
	if old, ok := m.seen[s.Size]; ok {
		if old.root != s.Hash {
			return nil, m.fork(s.Size, fmt.Sprintf("the log forked: two signed checkpoints of size %d with different roots", s.Size), old.note, s.Note)
		}
		return res, nil
	}
	res.New = true
	i, _ := slices.BinarySearch(m.sizes, s.Size)
	if i > 0 {
		lower := m.seen[m.sizes[i-1]]
		if err := m.consistent(ctx, lower, kept{s.Size, s.Hash, s.Note}); err != nil {
			return nil, err
		}
	}
	if i < len(m.sizes) {
		higher := m.seen[m.sizes[i]]
		if err := m.consistent(ctx, kept{s.Size, s.Hash, s.Note}, higher); err != nil {
			return nil, err
		}
		res.Stale, res.Newer = true, higher.size
	}
	if err := m.store(s); err != nil {
		return nil, err
	}
	if i > 0 {
		if err := m.checkArchive(ctx, m.seen[m.sizes[i-1]]); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// consistent fetches and verifies the consistency proof between two signed
// checkpoints; a proof that fails is a violation.
func (m *Monitor) consistent(ctx context.Context, older, newer kept) error {
	var proof [][]byte
	if older.size > 0 {
		var err error
		if proof, err = m.cfg.Client.ConsistencyProof(ctx, older.size, newer.size); err != nil {
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
