package sqlite

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
)

// An IntegrateFunc integrates leaves of tree, a PREORDERED_LOG tree, in the
// transaction of the group commit that appended them: ls is this storage,
// except that its ReadWriteTransaction runs on that open transaction and
// leaves its end to the committer (it is what Trillian's log.IntegrateBatch
// needs). It returns what to do once the commit is durable (nil for
// nothing); it is called after COMMIT succeeded, and never if the
// transaction was rolled back.
//
// An error undoes the whole transaction: the committer writes the same
// leaves again without integrating them, answers their callers as usual,
// and leaves integration to the sequencer for a while (it calls the
// Integrator's Appended).
type IntegrateFunc func(ctx context.Context, tree *trillian.Tree, ls storage.LogStorage) (committed func(), err error)

// An Integrator is set per tree with SetIntegrator.
type Integrator struct {
	Integrate IntegrateFunc
	// Appended is called after a commit that appended leaves to the tree
	// without integrating them: the integrator is paused after a failure.
	Appended func()
}

// integratePause is how long the committer leaves integration to the
// sequencer after an IntegrateFunc failed.
const integratePause = time.Second

// integrators holds the Integrator of each tree, and when the last failure
// paused them.
type integrators struct {
	mu      sync.Mutex
	byTree  map[int64]Integrator
	paused  time.Time
	lastErr string
}

// SetIntegrator makes every group commit that appends leaves to the tree
// treeID integrate them in the same transaction, so that an appended leaf
// is in the tree (and in its stored root) when its commit is durable: one
// transaction, one fsync and no read of the leaves by another transaction
// per batch, where a separate sequencer needs two of each. It is meant
// for the process that owns the tree; a zero Integrator removes it.
// Leaves appended before it is set are not integrated by the committer.
func (s *Storage) SetIntegrator(treeID int64, in Integrator) {
	s.integ.mu.Lock()
	defer s.integ.mu.Unlock()
	if in.Integrate == nil {
		delete(s.integ.byTree, treeID)
		return
	}
	if s.integ.byTree == nil {
		s.integ.byTree = make(map[int64]Integrator)
	}
	s.integ.byTree[treeID] = in
}

// integrator returns the Integrator of treeID, and whether the committer
// integrates now (it does not while paused after a failure).
func (s *Storage) integrator(treeID int64) (Integrator, bool) {
	s.integ.mu.Lock()
	defer s.integ.mu.Unlock()
	in, ok := s.integ.byTree[treeID]
	return in, ok && !time.Now().Before(s.integ.paused)
}

// integrationFailed pauses integration in the committer, and logs err once
// per distinct message.
func (s *Storage) integrationFailed(err error) {
	s.integ.mu.Lock()
	defer s.integ.mu.Unlock()
	s.integ.paused = time.Now().Add(integratePause)
	if msg := err.Error(); msg != s.integ.lastErr {
		s.integ.lastErr = msg
		s.log.Warn("sqlite storage: integrating appended leaves in their commit failed; the sequencer integrates them instead", "path", s.path, "err", err)
	}
}

// appendedTo is a tree that a group commit appended new leaves to, and
// those leaves in the order of their positions.
type appendedTo struct {
	tree   *trillian.Tree
	leaves []*trillian.LogLeaf
}

// appended returns the trees to which live requests appended at least one
// new leaf, each once, with those leaves.
func appended(live []*queueReq) []appendedTo {
	var out []appendedTo
	for _, r := range live {
		if !r.appendLeaves {
			continue
		}
		i := slices.IndexFunc(out, func(a appendedTo) bool { return a.tree.TreeId == r.treeID() })
		for _, q := range r.res {
			if q.GetStatus() != nil {
				continue
			}
			if i < 0 {
				out, i = append(out, appendedTo{tree: r.tree}), len(out)
			}
			out[i].leaves = append(out[i].leaves, q.Leaf)
		}
	}
	return out
}

// integrateAppended runs the Integrators of the trees that live appended
// to, in the open write transaction. It returns what to call once the
// transaction is durable: the integrators' committed functions, and the
// Appended of each tree that was not integrated.
func (s *Storage) integrateAppended(ctx context.Context, live []*queueReq, integrate bool) ([]func(), error) {
	var after []func()
	for _, a := range appended(live) {
		in, now := s.integrator(a.tree.TreeId)
		switch {
		case in.Integrate == nil:
		case !integrate || !now:
			if in.Appended != nil {
				after = append(after, in.Appended)
			}
		default:
			done, err := in.Integrate(ctx, a.tree, txLogStorage{&logStorage{s: s}, a.leaves})
			if err != nil {
				return nil, err
			}
			if done != nil {
				after = append(after, done)
			}
		}
	}
	return after, nil
}

// txLogStorage is the log storage an IntegrateFunc is given: its
// ReadWriteTransaction runs on the group commit's open transaction, and
// the committer commits or rolls back after it. It is used only by the
// committer, which holds the write lock. appended are the leaves the
// transaction appended, which its DequeueLeaves returns without reading
// them back.
type txLogStorage struct {
	*logStorage
	appended []*trillian.LogLeaf
}

func (l txLogStorage) ReadWriteTransaction(ctx context.Context, tr *trillian.Tree, f storage.LogTXFunc) (err error) {
	defer l.s.markCorrupt(&err)
	t := newLogTX(l.s, tr, l.s.w, true, func(bool) error { return nil })
	t.appended = l.appended
	defer t.Close()
	if err := t.readRoot(ctx); err != nil && !errors.Is(err, storage.ErrTreeNeedsInit) {
		return err
	}
	if err := f(ctx, t); err != nil {
		return err
	}
	return t.Commit(ctx)
}

// appendedRange returns the leaves [start, start+count) from those this
// transaction appended, if they begin there and hold consecutive
// positions; the leaves beyond them are not read.
func (t *logTX) appendedRange(start, count int64) ([]*trillian.LogLeaf, bool) {
	a := t.appended
	if len(a) == 0 || a[0].LeafIndex > start || start >= a[0].LeafIndex+int64(len(a)) {
		return nil, false
	}
	for i, l := range a {
		if l.LeafIndex != a[0].LeafIndex+int64(i) {
			return nil, false
		}
	}
	a = a[start-a[0].LeafIndex:]
	return a[:min(int64(len(a)), count, MaxLeavesPerRange)], true
}
