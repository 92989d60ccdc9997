package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/internal/atomicfile"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Defaults for AuditorConfig.
const (
	// DefaultBatch is the default number of entries per request.
	DefaultBatch = client.MaxEntriesPerRequest
	// DefaultParallel is the default number of requests in flight ahead of
	// verification. Against a distant log each request costs a round trip,
	// and only requests in flight hide it: with 100 ms per request and
	// batches of 1,000, one request at a time fetches about 9,500
	// entries/s, 2 about 19,000, 8 about 70,000 and 16 about 100,000
	// (BenchmarkAuditDistantLog, 2 cores), while verification alone runs
	// at over a million per second.
	DefaultParallel = 16
	// MaxParallel bounds AuditorConfig.Parallel.
	MaxParallel = 64
	// DefaultBufferBytes is the default bound on the bytes of entries
	// fetched but not yet verified.
	DefaultBufferBytes = 64 << 20
)

// saveEvery is how often an audit in progress saves its state.
const saveEvery = 5 * time.Second

// AuditorConfig configures an Auditor.
type AuditorConfig struct {
	// Client reaches the log. Required; the caller closes it.
	Client *client.Client
	// LogKey verifies the log's signature on its checkpoint. Required.
	LogKey note.Verifier
	// Policy, if set, is a witness quorum the checkpoint must meet.
	Policy *checkpoint.Policy
	// StateDir, if set, makes the audit resumable: the AuditState is kept
	// in StateDir/audit.json. Empty: every audit starts from entry 0.
	StateDir string
	// Batch is the number of entries per request, 1 to
	// client.MaxEntriesPerRequest (0: DefaultBatch).
	Batch int
	// Parallel is the number of requests in flight ahead of verification,
	// 1 to MaxParallel (0: DefaultParallel).
	Parallel int
	// BufferBytes bounds the entries fetched but not yet verified: no new
	// request starts while they hold more bytes (0: DefaultBufferBytes).
	// Memory is bounded by BufferBytes plus Parallel answers of Batch
	// entries.
	BufferBytes int64
	// Progress, if set, is called with the number of entries verified so
	// far (counting those verified by earlier runs) and the checkpoint's
	// size: once before the first fetch, then after each batch. It runs on
	// the verifying goroutine, so it must be quick.
	Progress func(done, total uint64)
	// Logger receives debug records; nil discards them.
	Logger *slog.Logger
}

// Auditor recomputes a log's Merkle root from every entry it serves and
// checks it against the log's signed checkpoint. It is not safe for
// concurrent use.
type Auditor struct {
	cfg AuditorConfig
	log *slog.Logger
}

// AuditResult is what a successful Audit found.
type AuditResult struct {
	// Checkpoint is the log's checkpoint, verified, whose root the entries
	// matched.
	Checkpoint *checkpoint.Signed
	// Unchanged is set when the log had not grown since the last audit
	// kept in the state directory (nothing was fetched).
	Unchanged bool
	// From is the first entry fetched in this run; Checkpoint.Size - From
	// entries were fetched and verified.
	From uint64
	// Elapsed is the time spent fetching and verifying entries.
	Elapsed time.Duration
}

// NewAuditor returns an Auditor. It checks cfg but does not touch the log.
func NewAuditor(cfg AuditorConfig) (*Auditor, error) {
	if cfg.Client == nil || cfg.LogKey == nil {
		return nil, errors.New("monitor: Client and LogKey are required")
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	if cfg.Batch < 1 || cfg.Batch > client.MaxEntriesPerRequest || cfg.Parallel < 1 || cfg.Parallel > MaxParallel {
		return nil, fmt.Errorf("monitor: Batch must be in 1..%d and Parallel in 1..%d", client.MaxEntriesPerRequest, MaxParallel)
	}
	a := &Auditor{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return a, nil
}

// Audit fetches and verifies the log's checkpoint, then fetches every entry
// not verified before, recomputes the RFC 6962 root with a compact range
// and compares it with the checkpoint's. Entries that do not match are a
// *RootMismatchError; a checkpoint of a size audited before with another
// root a *ForkError; a smaller one a *ShrinkError; a checkpoint that does
// not verify a *VerifyError. With a StateDir, progress is saved every few
// seconds and when the audit stops early, and the verified range after a
// success; a state file that cannot be used wraps ErrBadState.
func (a *Auditor) Audit(ctx context.Context) (*AuditResult, error) {
	s, err := fetchChecked(ctx, a.cfg.Client, a.cfg.LogKey, a.cfg.Policy, "the log's checkpoint", false)
	if err != nil {
		return nil, err
	}
	st := &AuditState{Origin: s.Origin}
	if a.cfg.StateDir != "" {
		if st, err = LoadAuditState(a.cfg.StateDir, s.Origin); err != nil {
			return nil, err
		}
	}
	start, err := a.startRange(st, s)
	if err != nil {
		return nil, err
	}
	if start == nil {
		return &AuditResult{Checkpoint: s, Unchanged: true, From: s.Size}, nil
	}
	res := &AuditResult{Checkpoint: s, From: start.End()}
	began := time.Now()
	r, ferr := a.verifyEntries(ctx, start, s.Size, st)
	res.Elapsed = time.Since(began)
	if ferr != nil {
		if r != nil && a.cfg.StateDir != "" {
			st.Progress = rangeOf(r)
			if err := st.Save(a.cfg.StateDir); err != nil {
				return nil, errors.Join(ferr, fmt.Errorf("saving audit state: %w", err))
			}
		}
		return nil, ferr
	}
	root, err := rootOf(r)
	if err != nil {
		return nil, err
	}
	if root != s.Hash {
		st.Progress = nil // built from entries that do not match: never resume from it
		if a.cfg.StateDir != "" {
			st.Save(a.cfg.StateDir) // the error to report is the mismatch
		}
		msg := fmt.Sprintf("the %d entries the log serves hash to root %x, but its signed checkpoint of size %d has root %x", s.Size, root, s.Size, s.Hash)
		return nil, &RootMismatchError{Size: s.Size, Got: root, Want: s.Hash, Evidence: newEvidence(a.cfg.Client.URL(), msg, [][]byte{s.Note}, nil)}
	}
	st.Verified, st.VerifiedCheckpoint, st.Progress = rangeOf(r), string(s.Note), nil
	if a.cfg.StateDir != "" {
		if err := st.Save(a.cfg.StateDir); err != nil {
			return nil, fmt.Errorf("saving audit state: %w", err)
		}
	}
	a.log.Debug("audit matched", "origin", s.Origin, "size", s.Size, "from", res.From)
	return res, nil
}

// startRange chooses where to resume: the saved progress, the last verified
// range, or entry 0. It returns nil when the log has not grown since the
// last audit.
func (a *Auditor) startRange(st *AuditState, s *checkpoint.Signed) (*compact.Range, error) {
	if v := st.Verified; v != nil {
		if v.Size > s.Size {
			return nil, &ShrinkError{Size: s.Size, Audited: v.Size}
		}
		if v.Size == s.Size {
			old, err := checkpoint.Open([]byte(st.VerifiedCheckpoint), a.cfg.LogKey)
			if err != nil {
				return nil, fmt.Errorf("audit state: %w", err)
			}
			if old.Hash != s.Hash {
				msg := fmt.Sprintf("the log forked: two signed checkpoints of size %d with different roots", s.Size)
				return nil, &ForkError{Size: s.Size, Evidence: newEvidence(a.cfg.Client.URL(), msg, [][]byte{old.Note, s.Note}, nil)}
			}
			return nil, nil
		}
	}
	rs := st.Verified
	if p := st.Progress; p != nil && p.Size <= s.Size && (rs == nil || p.Size >= rs.Size) {
		rs = p
	}
	r, err := rs.compact()
	if err != nil {
		return nil, fmt.Errorf("audit state: %w", err)
	}
	return r, nil
}

// fetched is a batch of entries, filled in by a fetcher.
type fetched struct {
	start   uint64
	entries [][]byte
	bytes   int64 // the entries' total length
	err     error
	done    chan struct{}
}

// buffer counts the bytes of entries fetched but not yet verified, and
// holds back new fetches while they exceed max.
type buffer struct {
	mu    sync.Mutex
	used  int64
	max   int64
	freed chan struct{} // signalled when bytes are released
}

// wait returns once fewer than max bytes are held, or false when ctx ends.
func (b *buffer) wait(ctx context.Context) bool {
	for {
		b.mu.Lock()
		ok := b.used < b.max
		b.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-b.freed:
		case <-ctx.Done():
			return false
		}
	}
}

// add holds n more bytes (released when n < 0).
func (b *buffer) add(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
	if n < 0 {
		select {
		case b.freed <- struct{}{}:
		default:
		}
	}
}

// verifyEntries appends the entries [r.End(), size) to r, with up to
// Parallel requests in flight ahead of the verification (and no new one
// while BufferBytes of fetched entries wait). On error it returns r as far
// as it got.
func (a *Auditor) verifyEntries(ctx context.Context, r *compact.Range, size uint64, st *AuditState) (*compact.Range, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batch, parallel := uint64(a.cfg.Batch), a.cfg.Parallel
	queue := make(chan *fetched, parallel)
	sem := make(chan struct{}, parallel)
	buf := &buffer{max: a.cfg.BufferBytes, freed: make(chan struct{}, 1)}
	go func() {
		defer close(queue)
		for start := r.End(); start < size; start += batch {
			f := &fetched{start: start, done: make(chan struct{})}
			if !buf.wait(ctx) {
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem; close(f.done) }()
				f.entries, f.err = a.fetch(ctx, f.start, min(batch, size-f.start))
				for _, e := range f.entries {
					f.bytes += int64(len(e))
				}
				buf.add(f.bytes)
			}()
			select {
			case queue <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	a.progress(r.End(), size)
	lastSave := time.Now()
	for f := range queue {
		<-f.done
		if f.err != nil {
			return r, f.err
		}
		err := appendEntries(r, f.entries)
		buf.add(-f.bytes)
		if err != nil {
			return r, err
		}
		a.progress(r.End(), size)
		if a.cfg.StateDir != "" && time.Since(lastSave) > saveEvery {
			st.Progress = rangeOf(r)
			if err := st.Save(a.cfg.StateDir); err != nil {
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

func (a *Auditor) progress(done, total uint64) {
	if a.cfg.Progress != nil {
		a.cfg.Progress(done, total)
	}
}

// fetch gets count entries from start, in several requests if the log
// answers with fewer.
func (a *Auditor) fetch(ctx context.Context, start, count uint64) ([][]byte, error) {
	var out [][]byte
	for uint64(len(out)) < count {
		at := start + uint64(len(out))
		es, err := a.cfg.Client.Entries(ctx, at, int(count-uint64(len(out))))
		if isServerError(err) {
			return nil, a.firstUnservable(ctx, at, count-uint64(len(out)), err)
		}
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

// isServerError reports whether err is the log's own refusal (HTTP 500),
// which retrying does not cure, as opposed to an unreachable or busy log.
func isServerError(err error) bool {
	var he *client.HTTPError
	return errors.As(err, &he) && he.StatusCode == http.StatusInternalServerError
}

// firstUnservable finds, one entry at a time, the first of [start,
// start+count) that the log refuses to serve (a range request fails as a
// whole), and returns it as an UnservableError.
func (a *Auditor) firstUnservable(ctx context.Context, start, count uint64, rangeErr error) error {
	for i := start; i < start+count; i++ {
		_, err := a.cfg.Client.Entries(ctx, i, 1)
		switch {
		case isServerError(err):
			return &UnservableError{Index: i, Err: err}
		case err != nil:
			return fmt.Errorf("fetching entry %d: %w", i, err)
		}
	}
	return &UnservableError{Index: start, Err: rangeErr} // the range failed, no single entry did
}

// AuditState is the resumable state of an Auditor, kept as JSON in
// <dir>/audit.json.
type AuditState struct {
	// Origin is the audited log's origin line.
	Origin string `json:"origin"`
	// Verified is a range whose root matched VerifiedCheckpoint.
	Verified           *Range `json:"verified,omitempty"`
	VerifiedCheckpoint string `json:"verified_checkpoint,omitempty"`
	// Progress is a range built from entries not yet matched to a root.
	Progress *Range `json:"progress,omitempty"`
}

// Range is a compact range [0, Size) of a log's tree: at most 64 hashes.
type Range struct {
	// Size is the number of entries the range covers.
	Size uint64 `json:"size"`
	// Hashes are the range's node hashes, 32 bytes each (base64 in JSON).
	Hashes [][]byte `json:"hashes"`
}

// auditStateFile is the state file's name in the state directory.
const auditStateFile = "audit.json"

// LoadAuditState reads dir/audit.json (creating dir if needed) for the log
// with the given origin. A missing file is a fresh state; a directory or
// file that cannot be read, a file that is not JSON, or one for another
// origin wraps ErrBadState. The ranges it holds
// are checked when an audit uses them.
func LoadAuditState(dir, origin string) (*AuditState, error) {
	st := &AuditState{Origin: origin}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, &stateError{fmt.Sprintf("state directory: %v", err)}
	}
	path := filepath.Join(dir, auditStateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, &stateError{fmt.Sprintf("audit state: %v", err)}
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, &stateError{fmt.Sprintf("audit state %s: %v", path, err)}
	}
	if st.Origin != origin {
		return nil, &stateError{fmt.Sprintf("audit state %s is for log %q, not %q", path, st.Origin, origin)}
	}
	return st, nil
}

// Save writes st to dir/audit.json atomically.
func (st *AuditState) Save(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, auditStateFile), append(b, '\n'), 0o644)
}

var rangeFactory = &compact.RangeFactory{Hash: checkpoint.Hasher.HashChildren}

// compact returns r as a compact range; nil is the empty range.
func (r *Range) compact() (*compact.Range, error) {
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

func rangeOf(r *compact.Range) *Range {
	return &Range{Size: r.End(), Hashes: r.Hashes()}
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
