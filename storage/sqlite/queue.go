package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// queueReq is one QueueLeaves call waiting for a group commit.
type queueReq struct {
	ctx    context.Context
	tree   *trillian.Tree
	leaves []*trillian.LogLeaf
	ts     int64 // queue timestamp, Unix nanoseconds
	// appendLeaves: the leaves take the tree's next positions
	// (AppendLeaves) instead of joining its queue (QueueLeaves).
	appendLeaves bool
	// arrived is when QueueLeaves was called; the request fails with
	// ErrWriteTimeout if the committer does not hold the write lock for it
	// by deadline (arrived + Config.WriteLockTimeout).
	arrived, deadline time.Time

	res  []*trillian.QueuedLogLeaf
	err  error
	done chan struct{}
}

func (r *queueReq) treeID() int64 { return r.tree.GetTreeId() }

// QueueLeaves queues leaves for the sequencer. Concurrent calls are written
// together, in one transaction, by the group committer; each call returns
// when the transaction holding its leaves is durable. See the package doc
// for the results of duplicates.
func (l *logStorage) QueueLeaves(ctx context.Context, tr *trillian.Tree, leaves []*trillian.LogLeaf, queueTimestamp time.Time) (_ []*trillian.QueuedLogLeaf, err error) {
	defer l.s.markCorrupt(&err)
	return l.s.write(ctx, tr, leaves, queueTimestamp, false)
}

// AppendLeaves stores leaves at the end of the PREORDERED_LOG tree tr, in
// order, each at the next free position, so that Trillian's sequencer
// (log.IntegrateBatch) integrates them without a queue: each leaf is
// written once, already sequenced. It is the write path of a personality
// that feeds a pre-ordered tree itself, and the one writer of positions:
// this Storage's write lock serializes appends, so two never take one
// position.
//
// Leaves are unique by LeafIdentityHash as with QueueLeaves: an identity
// the tree already holds, or that an earlier leaf of the same group commit
// carries, gets status AlreadyExists with the stored leaf (and its
// LeafIndex) and takes no position, so the tree never has a gap. A new
// leaf is returned with its LeafIndex. Calls are group-committed with
// QueueLeaves calls and are as durable: stored when it returns nil.
func (s *Storage) AppendLeaves(ctx context.Context, tr *trillian.Tree, leaves []*trillian.LogLeaf, ts time.Time) (_ []*trillian.QueuedLogLeaf, err error) {
	defer s.markCorrupt(&err)
	if tr.GetTreeType() != trillian.TreeType_PREORDERED_LOG {
		return nil, status.Errorf(codes.FailedPrecondition, "sqlite storage: appending leaves to tree %d of type %v, want PREORDERED_LOG", tr.GetTreeId(), tr.GetTreeType())
	}
	return s.write(ctx, tr, leaves, ts, true)
}

// write hands leaves to the group committer, to be queued or appended.
func (s *Storage) write(ctx context.Context, tr *trillian.Tree, leaves []*trillian.LogLeaf, queueTimestamp time.Time, appendLeaves bool) ([]*trillian.QueuedLogLeaf, error) {
	qts := timestamppb.New(queueTimestamp)
	if err := qts.CheckValid(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "sqlite storage: bad queue timestamp: %v", err)
	}
	for i, leaf := range leaves {
		if got := len(leaf.GetLeafIdentityHash()); got != hashSize {
			return nil, status.Errorf(codes.InvalidArgument, "sqlite storage: leaves[%d] has a %d-byte identity hash, want %d", i, got, hashSize)
		}
		if got := len(leaf.GetMerkleLeafHash()); got != hashSize {
			return nil, status.Errorf(codes.InvalidArgument, "sqlite storage: leaves[%d] has a %d-byte Merkle leaf hash, want %d", i, got, hashSize)
		}
	}
	for _, leaf := range leaves {
		leaf.QueueTimestamp = qts
	}
	if len(leaves) == 0 {
		return []*trillian.QueuedLogLeaf{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite storage: queueing leaves: %w", err)
	}
	now := time.Now()
	req := &queueReq{ctx: ctx, tree: tr, leaves: leaves, ts: queueTimestamp.UnixNano(), appendLeaves: appendLeaves,
		done: make(chan struct{}), arrived: now, deadline: now.Add(s.cfg.WriteLockTimeout)}
	if err := s.send(ctx, req); err != nil {
		return nil, err
	}
	select {
	case <-req.done:
		return req.res, req.err
	case <-ctx.Done():
		// The committer may still write these leaves; see the package doc.
		return nil, fmt.Errorf("sqlite storage: waiting for the group commit: %w", ctx.Err())
	}
}

// send hands req to the committer. Close cannot complete while a send is
// in progress, so every request sent is answered.
func (s *Storage) send(ctx context.Context, req *queueReq) error {
	s.sendMu.RLock()
	defer s.sendMu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.pending.Add(1)
	select {
	case s.queue <- req:
		return nil
	default:
	}
	t := time.NewTimer(time.Until(req.deadline))
	defer t.Stop()
	select {
	case s.queue <- req:
		return nil
	case <-ctx.Done():
		s.pending.Add(-1)
		return fmt.Errorf("sqlite storage: queueing leaves: %w", ctx.Err())
	case <-t.C:
		s.pending.Add(-1)
		return fmt.Errorf("%w (waited %v, the queue was full)", ErrWriteTimeout, time.Since(req.arrived).Truncate(time.Millisecond))
	}
}

// committer is the group commit loop: it takes every waiting request, up to
// Config.MaxQueueBatch leaves, and writes them in one transaction.
func (s *Storage) committer() {
	defer s.wg.Done()
	for {
		var first *queueReq
		select {
		case first = <-s.queue:
		case <-s.closing:
			s.failWaiting()
			return
		}
		batch, n := s.gather([]*queueReq{first}, len(first.leaves))
		batch, n = s.lockForBatch(batch, n)
		if batch == nil {
			continue
		}
		batch, n = s.gather(batch, n)
		s.commitBatch(batch)
		if s.mergeDue() {
			// A step of the identity merge after each group commit, so
			// that appends never outrun the merges however fast they
			// come: a chunk, or twice the keys the commit may have added
			// once four merges' worth are pending.
			step := s.cfg.identityMergeChunk
			if s.ids.pending() >= 4*s.cfg.identityMergeRows {
				step = max(step, 2*n)
			}
			if _, err := s.mergeStep(context.Background(), step, s.cfg.identityMergeRows); err != nil && !s.closed.Load() {
				s.log.Error("sqlite storage: merging the identity index failed; duplicates are still found, from memory", "path", s.path, "err", err)
			}
		}
	}
}

// lockForBatch takes the write lock for batch, which holds n leaves. While
// it waits it adds requests that arrive (up to Config.MaxQueueBatch leaves),
// and fails each request on its own deadline, and each whose caller gave
// up. It returns the requests still waiting, and their number of leaves,
// with the lock held; or nil, without the lock, when none is left.
func (s *Storage) lockForBatch(batch []*queueReq, n int) ([]*queueReq, int) {
	for {
		now := time.Now()
		live := make([]*queueReq, 0, len(batch))
		var next time.Time
		n = 0
		for _, r := range batch {
			switch {
			case r.ctx.Err() != nil:
				r.err = fmt.Errorf("sqlite storage: queueing leaves: %w", r.ctx.Err())
				s.finish([]*queueReq{r}, nil)
			case !now.Before(r.deadline):
				r.err = fmt.Errorf("%w (waited %v)", ErrWriteTimeout, now.Sub(r.arrived).Truncate(time.Millisecond))
				s.finish([]*queueReq{r}, nil)
			default:
				live = append(live, r)
				n += len(r.leaves)
				if next.IsZero() || r.deadline.Before(next) {
					next = r.deadline
				}
			}
		}
		batch = live
		if len(batch) == 0 {
			return nil, 0
		}
		var more <-chan *queueReq
		if n < s.cfg.MaxQueueBatch {
			more = s.queue
		}
		t := time.NewTimer(next.Sub(now))
		select {
		case s.wsem <- struct{}{}:
			t.Stop()
			if s.closed.Load() {
				s.unlockWrite()
				s.finish(batch, ErrClosed)
				return nil, 0
			}
			return batch, n
		case r := <-more:
			batch = append(batch, r)
		case <-t.C:
		case <-s.closing:
			t.Stop()
			s.finish(batch, ErrClosed)
			return nil, 0
		}
		t.Stop()
	}
}

// gather adds waiting requests to batch without blocking.
func (s *Storage) gather(batch []*queueReq, n int) ([]*queueReq, int) {
	for n < s.cfg.MaxQueueBatch {
		select {
		case r := <-s.queue:
			batch = append(batch, r)
			n += len(r.leaves)
		default:
			return batch, n
		}
	}
	return batch, n
}

func (s *Storage) failWaiting() {
	for {
		select {
		case r := <-s.queue:
			s.finish([]*queueReq{r}, ErrClosed)
		default:
			return
		}
	}
}

// finish answers every request of batch that has no answer yet with err.
func (s *Storage) finish(batch []*queueReq, err error) {
	s.pending.Add(-int64(len(batch)))
	for _, r := range batch {
		if r.res == nil && r.err == nil {
			r.err = err
		}
		r.res = ifNoErr(r.res, r.err)
		close(r.done)
	}
}

func ifNoErr(res []*trillian.QueuedLogLeaf, err error) []*trillian.QueuedLogLeaf {
	if err != nil {
		return nil
	}
	return res
}

// commitBatch writes batch in one transaction, holding the write lock, and
// answers every request. The requests are written one after the other,
// without a savepoint each (which would copy every page a request changes
// into a sub-journal first): if one fails, the transaction is rolled back,
// that request gets its error, and the others are written again in a new
// transaction, so that a failure fails only its own caller. Appended
// leaves are integrated in the same transaction where the tree has an
// Integrator; if that fails, the leaves are written again without it. If
// COMMIT fails, every caller in the transaction gets the error: none of
// their leaves were stored.
func (s *Storage) commitBatch(batch []*queueReq) {
	ctx := context.Background()
	integrate := true
	var stored map[identityKey]int64 // read once: a rolled-back attempt leaves the table as it was
	for {
		var live []*queueReq
		for _, r := range batch {
			switch {
			case r.err != nil:
			case r.ctx.Err() != nil:
				r.err = fmt.Errorf("sqlite storage: queueing leaves: %w", r.ctx.Err())
			default:
				live = append(live, r)
			}
		}
		if len(live) == 0 {
			s.unlockWrite()
			s.finish(batch, nil)
			return
		}
		if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			s.unlockWrite()
			s.finish(batch, fmt.Errorf("sqlite storage: begin: %w", err))
			return
		}
		failed := false
		var err error
		if stored == nil {
			if stored, err = s.lookupStored(ctx, live); err != nil {
				s.rollback()
				s.unlockWrite()
				s.finish(batch, fmt.Errorf("sqlite storage: queueing leaves: %w", err))
				return
			}
		}
		st := batchState{initialized: make(map[int64]bool), ends: make(map[int64]int64), stored: stored}
		for _, r := range live {
			res, err := s.queueRequest(ctx, r, st)
			if err != nil {
				if !errors.Is(err, storage.ErrTreeNeedsInit) {
					err = fmt.Errorf("sqlite storage: queueing leaves: %w", err)
				}
				r.err, failed = err, true
				break
			}
			r.res = res
		}
		var after []func()
		if !failed {
			if after, err = s.integrateAppended(ctx, live, integrate); err != nil {
				s.integrationFailed(err)
				integrate, failed = false, true
			}
		}
		if failed {
			// Undo the transaction, and write the others again.
			s.rollback()
			for _, r := range live {
				r.res = nil
			}
			continue
		}
		if d := s.cfg.ackBeforeCommit; d > 0 {
			s.finish(batch, nil) // deliberately broken, for the crash test only
			time.Sleep(d)
			if err := s.commitWrite(); err != nil {
				s.log.Warn("sqlite storage: commit failed after early answer", "err", err)
			}
			return
		}
		if err := s.commitWrite(); err != nil {
			for _, r := range live {
				r.res, r.err = nil, err
			}
			s.finish(batch, nil)
			return
		}
		s.groupCommits.Add(1)
		for _, f := range after {
			f()
		}
		s.finish(batch, nil)
		return
	}
}

// batchState is what a group commit caches per tree: whether the tree has
// a root, and the next free position of an appended tree; and the rowids
// of the leaves that leaf_identities holds, of all the identity hashes the
// transaction writes (lookupStored).
type batchState struct {
	initialized map[int64]bool
	ends        map[int64]int64
	stored      map[identityKey]int64
}

// queueRequest writes r's leaves, if r's tree has a root.
func (s *Storage) queueRequest(ctx context.Context, r *queueReq, st batchState) ([]*trillian.QueuedLogLeaf, error) {
	ok, seen := st.initialized[r.treeID()]
	if !seen {
		if err := s.w.queryRow(ctx, selectHasRootSQL, []any{r.treeID()}, &ok); err != nil {
			return nil, err
		}
		st.initialized[r.treeID()] = ok
	}
	if !ok {
		return nil, storage.ErrTreeNeedsInit
	}
	return s.writeRequest(ctx, r, st)
}

// writeRequest writes one request's leaves inside the batch transaction:
// queued (without a position), or for AppendLeaves at the tree's next
// positions, which ends caches per tree for the batch. A leaf whose
// identity hash the tree holds, stored before or earlier in this
// transaction, is answered as a duplicate and not written.
func (s *Storage) writeRequest(ctx context.Context, r *queueReq, st batchState) ([]*trillian.QueuedLogLeaf, error) {
	ends := st.ends
	var next int64
	if r.appendLeaves {
		var ok bool
		if next, ok = ends[r.treeID()]; !ok {
			if err := s.w.queryRow(ctx, selectEndSQL, []any{r.treeID()}, &next); err != nil {
				return nil, err
			}
		}
	}
	res := make([]*trillian.QueuedLogLeaf, len(r.leaves))
	for i, leaf := range r.leaves {
		k, _ := keyOf(r.treeID(), leaf.LeafIdentityHash) // write checked the size
		rowid, dup := s.ids.findWrite(k)
		if !dup {
			rowid, dup = st.stored[k]
		}
		if dup {
			var err error
			if res[i], err = s.duplicate(ctx, rowid, leaf); err != nil {
				return nil, err
			}
			continue
		}
		var seq, integrated any // NULL while queued
		if r.appendLeaves {
			seq, integrated = next, 0
		}
		if err := s.insertLeaf(ctx, r.treeID(), leaf, r.ts, seq, integrated); err != nil {
			return nil, err
		}
		if r.appendLeaves {
			leaf.LeafIndex = next
			next++
		}
		res[i] = &trillian.QueuedLogLeaf{Leaf: leaf}
	}
	if r.appendLeaves {
		ends[r.treeID()] = next
	}
	return res, nil
}

// duplicate is the answer to a leaf whose identity hash the tree holds:
// AlreadyExists, with the stored leaf.
func (s *Storage) duplicate(ctx context.Context, rowid int64, leaf *trillian.LogLeaf) (*trillian.QueuedLogLeaf, error) {
	rows, err := s.w.query(ctx, selectLeafByRowidSQL, rowid)
	if err != nil {
		return nil, err
	}
	got, err := scanLeaves(rows)
	if err != nil {
		return nil, err
	}
	if len(got) == 0 || !bytes.Equal(got[0].LeafIdentityHash, leaf.LeafIdentityHash) {
		return nil, fmt.Errorf("the identity index names row %d for identity hash %x, which holds no such leaf", rowid, leaf.LeafIdentityHash)
	}
	return &trillian.QueuedLogLeaf{
		Leaf:   got[0],
		Status: status.Newf(codes.AlreadyExists, "leaf already exists: %x", leaf.LeafIdentityHash).Proto(),
	}, nil
}

// insertLeaf writes a leaf whose identity hash the tree does not hold, in
// the open write transaction, and indexes it. It fails if the leaf's
// position is taken.
func (s *Storage) insertLeaf(ctx context.Context, treeID int64, leaf *trillian.LogLeaf, queued int64, seq, integrated any) error {
	k, ok := keyOf(treeID, leaf.LeafIdentityHash)
	if !ok {
		return fmt.Errorf("leaf has a %d-byte identity hash, want %d", len(leaf.LeafIdentityHash), hashSize)
	}
	res, err := s.w.exec(ctx, insertLeafDataSQL, treeID, leaf.LeafIdentityHash, leaf.MerkleLeafHash,
		nonNil(leaf.LeafValue), leaf.ExtraData, queued, seq, integrated)
	n, err := affected(res, err)
	if err != nil {
		return err
	}
	if n != 1 {
		return errPositionTaken
	}
	rowid, err := res.LastInsertId()
	if err != nil {
		return err
	}
	s.ids.add(k, rowid)
	return nil
}

// errPositionTaken is insertLeaf's error for a leaf whose sequence number
// the tree holds.
var errPositionTaken = errors.New("leaf position taken")

func sortByIndex(leaves []*trillian.LogLeaf) {
	slices.SortStableFunc(leaves, func(a, b *trillian.LogLeaf) int {
		switch {
		case a.LeafIndex < b.LeafIndex:
			return -1
		case a.LeafIndex > b.LeafIndex:
			return 1
		}
		return 0
	})
}
