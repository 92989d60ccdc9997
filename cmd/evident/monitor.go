package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"golang.org/x/mod/sumdb/note"
)

const monitorHelp = `
Follows a log's checkpoints. Each new checkpoint must carry a valid log
signature (and, with --policy, meet the witness quorum) and be consistent
with every checkpoint the monitor has seen before: the monitor keeps all of
them in --state_dir/checkpoints/, two checkpoints of one size must have the
same root, and a consistency proof fetched from the log must verify against
the nearest smaller and the nearest larger checkpoint kept (consistency is
transitive, so this covers every one). It also re-fetches the previous
checkpoint from the log's archive (/v1/checkpoints/{size}) and checks that
the log still serves the same root for it.

On a violation it writes an evidence file (both signed checkpoints and the
proof, JSON) into --state_dir, prints a SECURITY ERROR and exits 1. With
--once it checks once and exits (for cron); otherwise it polls every
--interval until interrupted. Network errors exit 3 with --once and are
retried otherwise.`

// monitor is the state of one monitoring run.
type monitor struct {
	e      *env
	c      *client.Client
	key    note.Verifier
	policy *checkpoint.Policy
	dir    string
	// seen holds every checkpoint seen, by size (bodies verified when first
	// stored; the state directory is trusted).
	seen  map[uint64]seenCheckpoint
	sizes []uint64 // sorted keys of seen
	// quiet suppresses the report of an unchanged checkpoint (polling).
	quiet bool
}

type seenCheckpoint struct {
	size uint64
	root [32]byte
	note []byte
}

func runMonitor(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "monitor", "--log URL --log_key VKEY [--policy FILE] --state_dir D [--once]", monitorHelp)
	logURL := fs.String("log", "", "the log's base URL")
	logKey := fs.String("log_key", "", "the log's verifier key, or a file holding it")
	policyFile := fs.String("policy", "", "witness policy file (tlog-policy) every checkpoint must meet")
	stateDir := fs.String("state_dir", "", "directory keeping every checkpoint seen and evidence files")
	once := fs.Bool("once", false, "check once and exit")
	interval := fs.Duration("interval", time.Minute, "time between polls")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	if *stateDir == "" {
		return usagef("--state_dir is required")
	}
	if *interval <= 0 {
		return usagef("--interval must be positive")
	}
	m := &monitor{e: e, dir: *stateDir, quiet: !*once}
	if m.key, err = loadLogKey(*logKey); err != nil {
		return err
	}
	if m.policy, err = loadPolicy(*policyFile); err != nil {
		return err
	}
	if m.c, err = newClient(ctx, *logURL, ""); err != nil {
		return err
	}
	defer m.c.Close()
	if err := m.load(); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if *once {
		return m.poll(ctx)
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		err := m.poll(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && exitCode(ctx, err) == exitNetwork:
			fmt.Fprintf(e.stderr, "evident monitor: %v (retrying in %v)\n", err, *interval)
		case err != nil:
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// load reads the checkpoints kept in the state directory.
func (m *monitor) load() error {
	dir := filepath.Join(m.dir, "checkpoints")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m.seen = make(map[uint64]seenCheckpoint)
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
		s, err := checkpoint.Open(b, m.key)
		if err != nil || s.Size != size {
			return fmt.Errorf("%s: not a checkpoint of size %d signed by the log key: %v", de.Name(), size, err)
		}
		m.seen[size] = seenCheckpoint{size: size, root: s.Hash, note: b}
		m.sizes = append(m.sizes, size)
	}
	slices.Sort(m.sizes)
	return nil
}

// poll fetches the latest checkpoint and checks it.
func (m *monitor) poll(ctx context.Context) error {
	raw, err := m.c.Checkpoint(ctx)
	if err != nil {
		return err
	}
	s, err := m.open(raw, "the log's latest checkpoint")
	if err != nil {
		return err
	}
	return m.check(ctx, s)
}

// open verifies a checkpoint's signature and the witness quorum.
func (m *monitor) open(raw []byte, what string) (*checkpoint.Signed, error) {
	var ws []note.Verifier
	if m.policy != nil {
		ws = m.policy.Verifiers()
	}
	s, err := checkpoint.Open(raw, m.key, ws...)
	if err != nil {
		return nil, verifyFailure(what+" does not verify", err)
	}
	if m.policy != nil {
		if cos := m.policy.Cosigners(s); !m.policy.Satisfied(cos) {
			return nil, verifyFailure(fmt.Sprintf("%s (size %d)", what, s.Size), &checkpoint.QuorumError{Missing: m.policy.Missing(cos)})
		}
	}
	return s, nil
}

// check compares s with every checkpoint seen before, and keeps it.
func (m *monitor) check(ctx context.Context, s *checkpoint.Signed) error {
	if old, ok := m.seen[s.Size]; ok {
		if old.root != s.Hash {
			return m.violation(fmt.Sprintf("the log forked: two signed checkpoints of size %d with different roots", s.Size), old.note, s.Note, nil)
		}
		if !m.quiet {
			m.report(s, "unchanged")
		}
		return nil
	}
	i, _ := slices.BinarySearch(m.sizes, s.Size)
	if i > 0 {
		lower := m.seen[m.sizes[i-1]]
		if err := m.consistent(ctx, lower.size, s.Size, lower.root, s.Hash, lower.note, s.Note); err != nil {
			return err
		}
	}
	if i < len(m.sizes) {
		higher := m.seen[m.sizes[i]]
		if err := m.consistent(ctx, s.Size, higher.size, s.Hash, higher.root, s.Note, higher.note); err != nil {
			return err
		}
		fmt.Fprintf(m.e.stderr, "evident monitor: warning: the log served checkpoint size %d after size %d (stale, but consistent)\n", s.Size, higher.size)
	}
	if err := m.store(s); err != nil {
		return err
	}
	if i > 0 {
		if err := m.checkArchive(ctx, m.seen[m.sizes[i-1]]); err != nil {
			return err
		}
	}
	m.report(s, "new")
	return nil
}

// consistent fetches and verifies the consistency proof between two signed
// checkpoints; a proof that fails is a violation.
func (m *monitor) consistent(ctx context.Context, oldSize, newSize uint64, oldRoot, newRoot [32]byte, oldNote, newNote []byte) error {
	var proof [][]byte
	if oldSize > 0 {
		var err error
		if proof, err = m.c.ConsistencyProof(ctx, oldSize, newSize); err != nil {
			return fmt.Errorf("fetching consistency proof %d -> %d: %w", oldSize, newSize, err)
		}
	}
	if err := checkpoint.VerifyConsistency(oldSize, newSize, oldRoot, newRoot, proof); err != nil {
		return m.violation(fmt.Sprintf("the log's checkpoints of sizes %d and %d are not consistent: %v", oldSize, newSize, err), oldNote, newNote, proof)
	}
	return nil
}

// checkArchive re-fetches a checkpoint seen before from the log's archive
// and checks that the log still serves the same root for that size.
func (m *monitor) checkArchive(ctx context.Context, old seenCheckpoint) error {
	raw, err := m.c.CheckpointAt(ctx, old.size)
	if client.IsNotFound(err) {
		return nil // the log keeps no archive of that size
	}
	if err != nil {
		return fmt.Errorf("fetching archived checkpoint %d: %w", old.size, err)
	}
	s, err := checkpoint.Open(raw, m.key)
	if err != nil {
		return verifyFailure(fmt.Sprintf("the log's archived checkpoint %d does not verify", old.size), err)
	}
	if s.Size != old.size || s.Hash != old.root {
		return m.violation(fmt.Sprintf("the log now serves a different checkpoint for size %d than the one it served before", old.size), old.note, raw, nil)
	}
	return nil
}

// store keeps s in the state directory.
func (m *monitor) store(s *checkpoint.Signed) error {
	path := filepath.Join(m.dir, "checkpoints", strconv.FormatUint(s.Size, 10))
	if err := writeFileAtomic(path, s.Note, 0o644); err != nil {
		return fmt.Errorf("keeping checkpoint: %w", err)
	}
	m.seen[s.Size] = seenCheckpoint{size: s.Size, root: s.Hash, note: s.Note}
	i, _ := slices.BinarySearch(m.sizes, s.Size)
	m.sizes = slices.Insert(m.sizes, i, s.Size)
	return nil
}

func (m *monitor) report(s *checkpoint.Signed, status string) {
	var cos []string
	if m.policy != nil {
		cos = m.policy.Cosigners(s)
	}
	out := map[string]any{"ok": true, "status": status, "origin": s.Origin, "tree_size": s.Size,
		"root_hash": fmt.Sprintf("%x", s.Hash), "cosigners": cos, "checkpoints_kept": len(m.sizes)}
	m.e.result(out, fmt.Sprintf("OK: %s checkpoint of %s, size %d, root %x, consistent with %d kept checkpoints", status, s.Origin, s.Size, s.Hash[:8], len(m.sizes)))
}

// evidence is the content of an evidence file.
type evidence struct {
	Time        string   `json:"time"`
	Log         string   `json:"log"`
	Problem     string   `json:"problem"`
	Checkpoints []string `json:"checkpoints"` // signed notes, verbatim
	Proof       []string `json:"consistency_proof,omitempty"`
}

// violation writes an evidence file and returns the SECURITY ERROR.
func (m *monitor) violation(problem string, noteA, noteB []byte, proof [][]byte) error {
	path, err := writeEvidence(m.dir, m.c.URL(), problem, [][]byte{noteA, noteB}, proof)
	if err != nil {
		problem += fmt.Sprintf(" (could not write the evidence file: %v)", err)
	}
	return &securityError{msg: problem, evidence: path}
}

// writeEvidence writes an evidence file into dir and returns its path.
func writeEvidence(dir, log, problem string, notes [][]byte, proof [][]byte) (string, error) {
	now := time.Now().UTC()
	ev := evidence{Time: now.Format(time.RFC3339), Log: log, Problem: problem}
	for _, n := range notes {
		ev.Checkpoints = append(ev.Checkpoints, string(n))
	}
	for _, h := range proof {
		ev.Proof = append(ev.Proof, base64.StdEncoding.EncodeToString(h))
	}
	b, err := jsonIndent(ev)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("evidence-%s.json", now.Format("20060102T150405.000000000Z")))
	if err := writeFileAtomic(path, b, 0o644); err != nil {
		return "", err
	}
	return path, nil
}
