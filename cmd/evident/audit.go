package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

const auditHelp = `
Audits a log: fetches its latest checkpoint and verifies it (log signature,
and with --policy the witness quorum), downloads every entry, recomputes the
RFC 6962 Merkle root from SHA-256(0x00 || entry) with a compact range, and
checks that it equals the checkpoint's root. This proves that the entries
the log serves are exactly the ones its signed checkpoint commits to.

Downloads run --parallel batches of --batch entries ahead of the
verification, so that hashing, not the network, sets the pace.

With --state_dir the audit is resumable: the compact range (at most 64
hashes) is saved there every few seconds and on interruption, and after a
successful audit the verified size is kept, so the next run only fetches
new entries (and, by matching the new root, proves the old entries are
unchanged). Without --state_dir every run starts from entry 0.

A root mismatch prints a SECURITY ERROR and exits 1.`

// auditState is the resumable state kept in --state_dir/audit.json.
type auditState struct {
	Origin string `json:"origin"`
	// Verified is a range whose root matched VerifiedCheckpoint.
	Verified           *rangeState `json:"verified,omitempty"`
	VerifiedCheckpoint string      `json:"verified_checkpoint,omitempty"`
	// Progress is a range built from entries not yet matched to a root.
	Progress *rangeState `json:"progress,omitempty"`
}

// rangeState is a compact range [0, Size) of the log's tree.
type rangeState struct {
	Size   uint64   `json:"size"`
	Hashes [][]byte `json:"hashes"` // base64 in JSON
}

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

func (r *rangeState) toRange() (*compact.Range, error) {
	if r == nil {
		return rangeFactory.NewEmptyRange(0), nil
	}
	for _, h := range r.Hashes {
		if len(h) != 32 {
			return nil, fmt.Errorf("compact range hash of %d bytes, want 32", len(h))
		}
	}
	return rangeFactory.NewRange(0, r.Size, r.Hashes)
}

func fromRange(r *compact.Range) *rangeState {
	return &rangeState{Size: r.End(), Hashes: r.Hashes()}
}

// appendEntries adds the leaf hash of each entry to r: the verification
// work of an audit.
func appendEntries(r *compact.Range, entries [][]byte) error {
	for _, e := range entries {
		h := checkpoint.LeafHash(e)
		if err := r.Append(h[:], nil); err != nil {
			return err
		}
	}
	return nil
}

// rootOf returns the root hash of a range starting at 0.
func rootOf(r *compact.Range) ([32]byte, error) {
	if r.End() == 0 {
		return checkpoint.EmptyRoot, nil
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h), nil
}

type auditor struct {
	e        *env
	c        *client.Client
	key      note.Verifier
	policy   *checkpoint.Policy
	dir      string
	batch    int
	parallel int
}

func runAudit(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "audit", "--log URL --log_key VKEY [--policy FILE] [--state_dir D]", auditHelp)
	logURL := fs.String("log", "", "the log's base URL")
	logKey := fs.String("log_key", "", "the log's verifier key, or a file holding it")
	policyFile := fs.String("policy", "", "witness policy file (tlog-policy) the checkpoint must meet")
	stateDir := fs.String("state_dir", "", "directory for resumable state (default: none, start from 0)")
	a := &auditor{e: e}
	fs.IntVar(&a.batch, "batch", client.MaxEntriesPerRequest, "entries per request")
	fs.IntVar(&a.parallel, "parallel", 2, "requests in flight ahead of verification (more only helps when the log is remote: on a 2-core machine with the log local, 2 was fastest)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	if a.batch < 1 || a.batch > client.MaxEntriesPerRequest || a.parallel < 1 || a.parallel > 64 {
		return usagef("--batch must be in 1..%d and --parallel in 1..64", client.MaxEntriesPerRequest)
	}
	a.dir = *stateDir
	if a.key, err = loadLogKey(*logKey); err != nil {
		return err
	}
	if a.policy, err = loadPolicy(*policyFile); err != nil {
		return err
	}
	if a.c, err = newClient(ctx, *logURL, ""); err != nil {
		return err
	}
	defer a.c.Close()
	return a.run(ctx)
}

func (a *auditor) run(ctx context.Context) error {
	raw, err := a.c.Checkpoint(ctx)
	if err != nil {
		return err
	}
	var ws []note.Verifier
	if a.policy != nil {
		ws = a.policy.Verifiers()
	}
	s, err := checkpoint.Open(raw, a.key, ws...)
	if err != nil {
		return verifyFailure("the log's checkpoint does not verify", err)
	}
	if a.policy != nil {
		if cos := a.policy.Cosigners(s); !a.policy.Satisfied(cos) {
			return verifyFailure("the log's checkpoint", &checkpoint.QuorumError{Missing: a.policy.Missing(cos)})
		}
	}
	st, err := a.loadState(s.Origin)
	if err != nil {
		return err
	}
	start, err := a.startRange(st, s)
	if err != nil || start == nil {
		return err
	}
	from := start.End()
	prog := newProgress(a.e.stderr, "audit", int64(s.Size), int64(from))
	began := time.Now()
	r, ferr := a.verifyEntries(ctx, start, s.Size, st, prog)
	prog.Finish()
	elapsed := time.Since(began)
	if ferr != nil {
		if r != nil && a.dir != "" {
			st.Progress = fromRange(r)
			if err := a.saveState(st); err != nil {
				return errors.Join(ferr, fmt.Errorf("saving audit state: %w", err))
			}
		}
		return ferr
	}
	root, err := rootOf(r)
	if err != nil {
		return err
	}
	if root != s.Hash {
		st.Progress = nil // built from entries that do not match: never resume from it
		if a.dir != "" {
			a.saveState(st)
		}
		msg := fmt.Sprintf("the %d entries the log serves hash to root %x, but its signed checkpoint of size %d has root %x", s.Size, root, s.Size, s.Hash)
		path := ""
		if a.dir != "" {
			path, _ = writeEvidence(a.dir, a.c.URL(), msg, [][]byte{s.Note}, nil)
		}
		return &securityError{msg: msg, evidence: path}
	}
	st.Verified, st.VerifiedCheckpoint, st.Progress = fromRange(r), string(s.Note), nil
	if a.dir != "" {
		if err := a.saveState(st); err != nil {
			return fmt.Errorf("saving audit state: %w", err)
		}
	}
	n := s.Size - from
	rate := float64(n) / max(elapsed.Seconds(), 1e-9)
	out := map[string]any{"ok": true, "origin": s.Origin, "tree_size": s.Size, "root_hash": fmt.Sprintf("%x", s.Hash),
		"entries_this_run": n, "entries_per_second": int64(rate), "seconds": elapsed.Seconds()}
	a.e.result(out, fmt.Sprintf("OK: all %d entries of %s hash to the signed root %x (%d fetched and verified this run, %.0f entries/s)",
		s.Size, s.Origin, s.Hash[:8], n, rate))
	return nil
}

// startRange chooses where to resume: the saved progress, the last verified
// range, or entry 0. It returns nil (and prints) when there is nothing to do.
func (a *auditor) startRange(st *auditState, s *checkpoint.Signed) (*compact.Range, error) {
	if v := st.Verified; v != nil {
		if v.Size > s.Size {
			return nil, &failure{reason: "consistency", err: fmt.Errorf("the log's checkpoint has size %d, smaller than the size %d audited before", s.Size, v.Size)}
		}
		if v.Size == s.Size {
			old, err := checkpoint.Open([]byte(st.VerifiedCheckpoint), a.key)
			if err != nil {
				return nil, fmt.Errorf("audit state: %w", err)
			}
			if old.Hash != s.Hash {
				msg := fmt.Sprintf("the log forked: two signed checkpoints of size %d with different roots", s.Size)
				path, _ := writeEvidence(a.dir, a.c.URL(), msg, [][]byte{old.Note, s.Note}, nil)
				return nil, &securityError{msg: msg, evidence: path}
			}
			a.e.result(map[string]any{"ok": true, "origin": s.Origin, "tree_size": s.Size, "root_hash": fmt.Sprintf("%x", s.Hash), "entries_this_run": 0},
				fmt.Sprintf("OK: %s has not grown since the last audit (size %d, root %x)", s.Origin, s.Size, s.Hash[:8]))
			return nil, nil
		}
	}
	rs := st.Verified
	if p := st.Progress; p != nil && p.Size <= s.Size && (rs == nil || p.Size >= rs.Size) {
		rs = p
	}
	r, err := rs.toRange()
	if err != nil {
		return nil, fmt.Errorf("audit state: %w", err)
	}
	return r, nil
}

func (a *auditor) statePath() string { return filepath.Join(a.dir, "audit.json") }

func (a *auditor) loadState(origin string) (*auditState, error) {
	st := &auditState{Origin: origin}
	if a.dir == "" {
		return st, nil
	}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	b, err := os.ReadFile(a.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, usagef("audit state %s: %v", a.statePath(), err)
	}
	if st.Origin != origin {
		return nil, usagef("audit state %s is for log %q, not %q", a.statePath(), st.Origin, origin)
	}
	return st, nil
}

func (a *auditor) saveState(st *auditState) error {
	b, err := jsonIndent(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(a.statePath(), b, 0o644)
}

// fetched is a batch of entries, filled in by a fetcher.
type fetched struct {
	start   uint64
	entries [][]byte
	err     error
	done    chan struct{}
}

// verifyEntries appends the entries [r.End(), size) to r, fetching them
// --parallel batches ahead. On error it returns r as far as it got.
func (a *auditor) verifyEntries(ctx context.Context, r *compact.Range, size uint64, st *auditState, prog *progress) (*compact.Range, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan *fetched, a.parallel)
	sem := make(chan struct{}, a.parallel)
	go func() {
		defer close(queue)
		for start := r.End(); start < size; start += uint64(a.batch) {
			f := &fetched{start: start, done: make(chan struct{})}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem; close(f.done) }()
				f.entries, f.err = a.fetch(ctx, f.start, min(uint64(a.batch), size-f.start))
			}()
			select {
			case queue <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	lastSave := time.Now()
	for f := range queue {
		<-f.done
		if f.err != nil {
			return r, f.err
		}
		if err := appendEntries(r, f.entries); err != nil {
			return r, err
		}
		prog.Add(int64(len(f.entries)))
		if a.dir != "" && time.Since(lastSave) > 5*time.Second {
			st.Progress = fromRange(r)
			if err := a.saveState(st); err != nil {
				return r, fmt.Errorf("saving audit state: %w", err)
			}
			lastSave = time.Now()
		}
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if r.End() != size {
		return r, fmt.Errorf("audit stopped at entry %d of %d", r.End(), size)
	}
	return r, nil
}

// fetch gets count entries from start, in several requests if the log
// answers with fewer.
func (a *auditor) fetch(ctx context.Context, start, count uint64) ([][]byte, error) {
	var out [][]byte
	for uint64(len(out)) < count {
		at := start + uint64(len(out))
		es, err := a.c.Entries(ctx, at, int(count-uint64(len(out))))
		if err != nil {
			return nil, fmt.Errorf("fetching entries from %d: %w", at, err)
		}
		if len(es) == 0 {
			return nil, fmt.Errorf("the log served no entry at index %d, below its checkpoint's size: %w", at, client.ErrBadResponse)
		}
		out = append(out, es...)
	}
	return out, nil
}
