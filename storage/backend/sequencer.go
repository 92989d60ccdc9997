package backend

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/extension"
	tlog "github.com/google/trillian/log"
	tstorage "github.com/google/trillian/storage"
	"github.com/google/trillian/types"
	"github.com/google/trillian/util/clock"
)

// sequencer runs Trillian's integration (log.IntegrateBatch, the work of
// Trillian's sequencer) for one tree as soon as leaves are queued, instead
// of on a fixed tick: every successful QueueLeaf or AddSequencedLeaves
// through this process's client wakes it, and it integrates batch after
// batch until the queue is empty. Leaves queued while a batch is being
// integrated go into the next one, so under load each batch carries
// everything that arrived meanwhile, and when idle it does nothing at all.
// On the embedded SQLite storage a pre-ordered tree is integrated by the
// group commit that appends to it (integrateIn), and this loop does only
// what that leaves: batches beyond the first, and integration while the
// committer's is paused after a failure.
//
// Each batch that grows the tree closes the channel that Grown handed out,
// which wakes the log's publisher. The sequencer also keeps the leaves it
// integrated lately (as Trillian's integration assigned them their
// indexes): their Merkle leaf hashes, and their values and extra data (as
// a pre-ordered tree's integration read them, or, for a LOG tree, as this
// process queued them, remembered at queueing by identity hash), so that
// the publisher, the tiler and attribution need not read new leaves back
// from storage; they check them against the tree's root before they use
// them.
type sequencer struct {
	reg      extension.Registry
	batch    int
	interval time.Duration // fallback poll; 0: only when woken
	log      *slog.Logger

	wake  chan struct{} // buffered, 1: a pending wake-up
	grown signal
	tree  *trillian.Tree // set by start

	mu     sync.Mutex
	start  uint64     // the index of hashes[0]
	hashes [][32]byte // the leaf hashes of [start, start+len(hashes))
	// leaves[i] is the leaf at start+i with its value and extra data, or
	// nil when this process did not queue it (or forgot it).
	leaves     []*trillian.LogLeaf
	leafBytes  int // of the values and extra data in leaves
	valuesFrom int // leaves[:valuesFrom] are all nil

	pending      map[[32]byte]*trillian.LogLeaf // queued, not yet integrated, by identity hash
	pendingBytes int

	root     types.LogRootV1 // the latest root an integration stored
	haveRoot bool
}

// maxPending and maxPendingBytes bound the leaves remembered between
// queueing and integration: beyond them, the memory is dropped, and those
// leaves are read back from storage instead. Leaves queued here but
// integrated by another process's sequencer (two personalities on one
// MySQL tree) are dropped the same way. maxKeptBytes bounds the values
// and extra data kept of integrated leaves: the oldest are dropped first
// (their hashes stay). Entries of up to 64 KiB would otherwise make the
// windows gigabytes.
const (
	maxPending      = 1 << 18
	maxPendingBytes = 64 << 20
	maxKeptBytes    = 64 << 20
)

func leafBytes(l *trillian.LogLeaf) int { return len(l.LeafValue) + len(l.ExtraData) }

// remember records newly queued leaves of a LOG tree (not duplicates),
// whose integration does not read their values, so that keep can hand
// them out once they are integrated.
func (s *sequencer) remember(res []*trillian.QueuedLogLeaf) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range res {
		n += leafBytes(r.GetLeaf())
	}
	if s.pending == nil || len(s.pending)+len(res) > maxPending || s.pendingBytes+n > maxPendingBytes {
		s.pending, s.pendingBytes = make(map[[32]byte]*trillian.LogLeaf, len(res)), 0
	}
	for _, r := range res {
		l := r.GetLeaf()
		if r.GetStatus().GetCode() != 0 || len(l.GetLeafIdentityHash()) != 32 {
			continue
		}
		id := [32]byte(l.LeafIdentityHash)
		if old := s.pending[id]; old != nil {
			s.pendingBytes -= leafBytes(old)
		} else if len(s.pending) >= maxPending || s.pendingBytes+leafBytes(l) > maxPendingBytes {
			continue // one batch beyond the bounds: the rest is read back
		}
		s.pending[id] = l
		s.pendingBytes += leafBytes(l)
	}
}

// keptHashes is how many recent leaf hashes the sequencer keeps at least
// (1 MiB; at most twice that).
const keptHashes = 1 << 15

func newSequencer(reg extension.Registry, batch int, interval time.Duration, log *slog.Logger) *sequencer {
	tlog.InitMetrics(reg.MetricFactory)
	return &sequencer{reg: reg, batch: batch, interval: interval, log: log, wake: make(chan struct{}, 1)}
}

// kick wakes the sequencer; it never blocks.
func (s *sequencer) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// seqBackoff bounds the wait after a failed integration: storage that
// fails is not asked again at once, and leaves queued meanwhile wake it.
const (
	seqMinBackoff = 10 * time.Millisecond
	seqMaxBackoff = 2 * time.Second
)

// run integrates until ctx ends. It starts with a pass, for leaves queued
// before this process started.
func (s *sequencer) run(ctx context.Context, treeID int64) {
	s.kick()
	var poll <-chan time.Time
	if s.interval > 0 {
		t := time.NewTicker(s.interval)
		defer t.Stop()
		poll = t.C
	}
	backoff := time.Duration(0)
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-poll:
		}
		err := s.drain(ctx, treeID)
		switch {
		case err == nil:
			backoff, lastErr = 0, ""
			continue
		case ctx.Err() != nil:
			return
		}
		if err.Error() != lastErr {
			// Logged once per distinct error; the publisher's /healthz
			// shows that the tree does not grow.
			s.log.Error("integrating queued leaves", "tree_id", treeID, "error", err)
			lastErr = err.Error()
		}
		backoff = min(max(2*backoff, seqMinBackoff), seqMaxBackoff)
		s.kick() // try again after the backoff
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// drain integrates batches until one comes back short.
func (s *sequencer) drain(ctx context.Context, treeID int64) error {
	tree, err := s.treeFor(ctx, treeID)
	if err != nil {
		return err
	}
	for {
		n, leaves, root, err := s.integrateBatch(ctx, tree, s.reg.LogStorage)
		if err != nil {
			return err
		}
		s.integrated(leaves, root)
		if n < s.batch {
			return nil
		}
	}
}

// integrateBatch runs one batch of Trillian's integration of tree on ls,
// and returns how many leaves it integrated, those leaves and the root it
// stored (nil when none).
func (s *sequencer) integrateBatch(ctx context.Context, tree *trillian.Tree, ls tstorage.LogStorage) (int, []*trillian.LogLeaf, []byte, error) {
	c := &capturingStorage{LogStorage: ls}
	n, err := tlog.IntegrateBatch(ctx, tree, s.batch, 0, 0, clock.System, c, s.reg.QuotaManager)
	return n, c.leaves, c.root, err
}

// integrated keeps what committed integrations stored, and wakes the
// publisher; it does nothing when they stored nothing.
func (s *sequencer) integrated(leaves []*trillian.LogLeaf, root []byte) {
	if len(leaves) == 0 && root == nil {
		return
	}
	s.keep(leaves)
	s.setRoot(root)
	s.grown.notify()
}

// batchesInCommit bounds the batches integrateIn integrates in one group
// commit: by default 8,000 leaves, about the most one commit appends.
const batchesInCommit = 4

// integrateIn is the sqlite.IntegrateFunc of a pre-ordered tree: it
// integrates in the transaction of the group commit that appended the
// leaves (ls runs IntegrateBatch's transactions on it), batch after batch
// up to batchesInCommit, and once that is durable, keeps what it
// integrated and wakes the publisher as drain does. Where more leaves
// wait, it wakes the loop for them.
func (s *sequencer) integrateIn(ctx context.Context, tree *trillian.Tree, ls tstorage.LogStorage) (func(), error) {
	var leaves []*trillian.LogLeaf
	var root []byte
	n := 0
	for range batchesInCommit {
		got, batchLeaves, batchRoot, err := s.integrateBatch(ctx, tree, ls)
		if err != nil {
			return nil, err
		}
		if n = got; n > 0 {
			leaves, root = append(leaves, batchLeaves...), batchRoot
		}
		if n < s.batch {
			break
		}
	}
	return func() {
		s.integrated(leaves, root)
		if n >= s.batch {
			s.kick()
		}
	}, nil
}

// keep remembers the hashes of newly integrated leaves, dropping the oldest
// beyond keptHashes. Leaves that do not follow on from those kept replace
// them; leaves kept already are skipped.
func (s *sequencer) keep(leaves []*trillian.LogLeaf) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range leaves {
		if l.LeafIndex < 0 || len(l.MerkleLeafHash) != 32 {
			s.hashes, s.leaves, s.leafBytes, s.valuesFrom = s.hashes[:0], s.leaves[:0], 0, 0
			return
		}
		i, end := uint64(l.LeafIndex), s.start+uint64(len(s.hashes))
		if i >= s.start && i < end {
			// Kept already: two integrations (the committer's and this
			// loop's) reported out of order. A position's leaf never
			// changes.
			continue
		}
		if i != end {
			s.start, s.hashes, s.leaves, s.leafBytes, s.valuesFrom = i, s.hashes[:0], s.leaves[:0], 0, 0
		}
		s.hashes = append(s.hashes, [32]byte(l.MerkleLeafHash))
		var kept *trillian.LogLeaf
		if len(l.LeafIdentityHash) == 32 {
			id := [32]byte(l.LeafIdentityHash)
			if q := s.pending[id]; q != nil {
				delete(s.pending, id)
				s.pendingBytes -= leafBytes(q)
				kept = &trillian.LogLeaf{LeafIndex: l.LeafIndex, MerkleLeafHash: l.MerkleLeafHash, LeafIdentityHash: l.LeafIdentityHash,
					LeafValue: q.LeafValue, ExtraData: q.ExtraData, QueueTimestamp: l.QueueTimestamp, IntegrateTimestamp: l.IntegrateTimestamp}
			}
		}
		if kept == nil && l.LeafValue != nil {
			// A pre-ordered tree's integration read the leaf, value and
			// all, from storage.
			kept = l
		}
		if kept != nil {
			s.leafBytes += leafBytes(kept)
		}
		s.leaves = append(s.leaves, kept)
	}
	for ; s.leafBytes > maxKeptBytes && s.valuesFrom < len(s.leaves); s.valuesFrom++ {
		if l := s.leaves[s.valuesFrom]; l != nil {
			s.leafBytes -= leafBytes(l)
			s.leaves[s.valuesFrom] = nil
		}
	}
	// Trimmed only at twice the size, so that each hash is copied at most
	// once on average.
	if drop := len(s.hashes) - keptHashes; drop > keptHashes {
		s.start += uint64(drop)
		s.hashes = append(s.hashes[:0:0], s.hashes[drop:]...)
		for _, l := range s.leaves[:drop] {
			if l != nil {
				s.leafBytes -= leafBytes(l)
			}
		}
		s.leaves = append(s.leaves[:0:0], s.leaves[drop:]...)
		s.valuesFrom = max(0, s.valuesFrom-drop)
	}
}

// setRoot remembers root (a marshalled LogRootV1 that an integration
// stored), unless it is not newer than the one remembered.
func (s *sequencer) setRoot(root []byte) {
	var r types.LogRootV1
	if root == nil || r.UnmarshalBinary(root) != nil || len(r.RootHash) != 32 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.haveRoot || r.TreeSize > s.root.TreeSize {
		s.root, s.haveRoot = r, true
	}
}

// latestRoot returns the size and hash of the latest root an integration
// by this sequencer stored.
func (s *sequencer) latestRoot() (uint64, [32]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.haveRoot {
		return 0, [32]byte{}, false
	}
	return s.root.TreeSize, [32]byte(s.root.RootHash), true
}

// leafRange returns the leaves [start, end) with their values and extra
// data, if it still holds all of them.
func (s *sequencer) leafRange(start, end uint64) ([]*trillian.LogLeaf, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if start < s.start || end > s.start+uint64(len(s.leaves)) || start > end {
		return nil, false
	}
	out := s.leaves[start-s.start : end-s.start]
	if slices.Contains(out, nil) {
		return nil, false
	}
	return slices.Clone(out), true
}

// leafHashes returns the Merkle leaf hashes of [start, end), if it still
// holds all of them.
func (s *sequencer) leafHashes(start, end uint64) ([][32]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if start < s.start || end > s.start+uint64(len(s.hashes)) || start > end {
		return nil, false
	}
	return append([][32]byte(nil), s.hashes[start-s.start:end-s.start]...), true
}

// capturingStorage is Trillian's log storage, seen by one IntegrateBatch:
// it records the leaves that the batch's transaction sequenced, once the
// transaction committed.
type capturingStorage struct {
	tstorage.LogStorage
	leaves []*trillian.LogLeaf
	root   []byte // the marshalled LogRootV1 the last transaction stored
}

func (c *capturingStorage) ReadWriteTransaction(ctx context.Context, tree *trillian.Tree, f tstorage.LogTXFunc) error {
	var got []*trillian.LogLeaf
	var root []byte
	err := c.LogStorage.ReadWriteTransaction(ctx, tree, func(ctx context.Context, tx tstorage.LogTreeTX) error {
		got, root = got[:0], nil // should the storage run f again
		return f(ctx, capturingTX{LogTreeTX: tx, got: &got, root: &root, preordered: tree.TreeType == trillian.TreeType_PREORDERED_LOG})
	})
	if err == nil {
		c.leaves = append(c.leaves, got...)
		if root != nil {
			c.root = root
		}
	}
	return err
}

type capturingTX struct {
	tstorage.LogTreeTX
	got        *[]*trillian.LogLeaf
	root       *[]byte
	preordered bool
}

func (t capturingTX) StoreSignedLogRoot(ctx context.Context, root *trillian.SignedLogRoot) error {
	if err := t.LogTreeTX.StoreSignedLogRoot(ctx, root); err != nil {
		return err
	}
	*t.root = root.GetLogRoot()
	return nil
}

// DequeueLeaves of a PREORDERED_LOG tree returns the leaves that the batch
// integrates, already at their positions (a LOG tree's get theirs in
// UpdateSequencedLeaves).
func (t capturingTX) DequeueLeaves(ctx context.Context, limit int, cutoff time.Time) ([]*trillian.LogLeaf, error) {
	leaves, err := t.LogTreeTX.DequeueLeaves(ctx, limit, cutoff)
	if err == nil && t.preordered {
		*t.got = append(*t.got, leaves...)
	}
	return leaves, err
}

func (t capturingTX) UpdateSequencedLeaves(ctx context.Context, leaves []*trillian.LogLeaf) error {
	if err := t.LogTreeTX.UpdateSequencedLeaves(ctx, leaves); err != nil {
		return err
	}
	*t.got = append(*t.got, leaves...)
	return nil
}

// treeFor reads the tree once; its type and ID never change.
func (s *sequencer) treeFor(ctx context.Context, treeID int64) (*trillian.Tree, error) {
	if s.tree == nil {
		t, err := tstorage.GetTree(ctx, s.reg.AdminStorage, treeID)
		if err != nil {
			return nil, err
		}
		s.tree = t
	}
	return s.tree, nil
}

// signal is a broadcast: wait returns a channel that the next notify
// closes. A caller takes the channel before it looks at the state the
// signal announces changes of, so that no change is missed.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
