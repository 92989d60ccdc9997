package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
	"github.com/google/trillian/storage/storagepb"
	"github.com/google/trillian/storage/tree"
	"github.com/google/trillian/types"
	"github.com/transparency-dev/merkle/compact"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// hashSize is the size of every hash this provider stores (SHA-256).
const hashSize = 32

const (
	selectLatestRootSQL = `SELECT revision, timestamp_nanos, tree_size, root_hash FROM tree_heads
		WHERE tree_id = ? ORDER BY revision DESC LIMIT 1`
	insertTreeHeadSQL = `INSERT INTO tree_heads (tree_id, revision, timestamp_nanos, tree_size, root_hash)
		VALUES (?, ?, ?, ?, ?)`
	selectSubtreeSQL = `SELECT nodes FROM subtrees WHERE tree_id = ? AND subtree_id = ?`
	// The Merkle hashes of sequenced leaves, for a partial bottom tile.
	selectMerkleHashesSQL = `SELECT sequence_number, merkle_leaf_hash FROM leaf_data
		WHERE tree_id = ? AND sequence_number >= ? AND sequence_number < ?
		ORDER BY sequence_number`
	upsertSubtreeSQL = `INSERT INTO subtrees (tree_id, subtree_id, nodes) VALUES (?, ?, ?)
		ON CONFLICT (tree_id, subtree_id) DO UPDATE SET nodes = excluded.nodes`
	selectQueuedSQL = `SELECT leaf_identity_hash, merkle_leaf_hash, queue_timestamp_nanos, rowid
		FROM leaf_data INDEXED BY leaf_data_queue
		WHERE tree_id = ? AND sequence_number IS NULL AND queue_timestamp_nanos <= ?
		ORDER BY queue_timestamp_nanos, leaf_identity_hash LIMIT ?`
	sequenceLeafSQL = `UPDATE leaf_data SET sequence_number = ?, integrate_timestamp_nanos = ?
		WHERE rowid = ? AND tree_id = ? AND sequence_number IS NULL`
	// insertLeafDataSQL does nothing when the sequence number is taken
	// (AddSequencedLeaves). Identity hashes are checked before it.
	insertLeafDataSQL = `INSERT INTO leaf_data
		(tree_id, leaf_identity_hash, merkle_leaf_hash, leaf_value, extra_data, queue_timestamp_nanos,
		 sequence_number, integrate_timestamp_nanos)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	leafColumns            = `sequence_number, merkle_leaf_hash, leaf_identity_hash, leaf_value, extra_data, queue_timestamp_nanos, integrate_timestamp_nanos`
	selectLeavesByRangeSQL = `SELECT ` + leafColumns + ` FROM leaf_data
		WHERE tree_id = ? AND sequence_number >= ? AND sequence_number < ?
		ORDER BY sequence_number`
	// Sequenced leaves by Merkle hash: those whose identity hash is their
	// Merkle hash are found through the identity index (storedLeaf, then
	// this by rowid), the others through the (partial) Merkle hash index.
	selectLeavesByMerkleSameSQL = `SELECT ` + leafColumns + ` FROM leaf_data
		WHERE rowid = ?3 AND tree_id = ?1 AND leaf_identity_hash = ?2 AND merkle_leaf_hash = ?2 AND sequence_number IS NOT NULL`
	selectLeavesByMerkleOtherSQL = `SELECT ` + leafColumns + ` FROM leaf_data INDEXED BY leaf_data_merkle
		WHERE tree_id = ?1 AND merkle_leaf_hash = ?2 AND merkle_leaf_hash != leaf_identity_hash AND sequence_number IS NOT NULL`
	// selectLeafByRowidSQL reads a stored leaf for a duplicate; the
	// sequence number and integrate time are NULL while it is queued.
	selectLeafByRowidSQL = `SELECT ` + leafColumns + ` FROM leaf_data WHERE rowid = ?`
	selectActiveLogsSQL  = `SELECT tree_id FROM trees
		WHERE tree_type IN ('LOG', 'PREORDERED_LOG') AND tree_state IN ('ACTIVE', 'DRAINING') AND deleted = 0`
	selectHasRootSQL = `SELECT EXISTS (SELECT 1 FROM tree_heads WHERE tree_id = ?)`
	// selectEndSQL is the next free position of a tree: one more than its
	// highest sequence number (the end of leaf_data_sequence).
	selectEndSQL = `SELECT COALESCE(MAX(sequence_number) + 1, 0) FROM leaf_data
		WHERE tree_id = ? AND sequence_number IS NOT NULL`
)

// logStorage implements Trillian's storage.LogStorage.
type logStorage struct{ s *Storage }

func (l *logStorage) CheckDatabaseAccessible(ctx context.Context) (err error) {
	defer l.s.markCorrupt(&err)
	return checkAccessible(ctx, l.s)
}

func (l *logStorage) GetActiveLogIDs(ctx context.Context) (_ []int64, err error) {
	defer l.s.markCorrupt(&err)
	if l.s.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := l.s.rdb.QueryContext(ctx, selectActiveLogsSQL)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: listing active logs: %w", err)
	}
	defer rows.Close()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite storage: listing active logs: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// SnapshotForTree starts a read-only transaction on the read pool. As in
// Trillian's MySQL provider, for a tree without a root it returns the open
// transaction together with storage.ErrTreeNeedsInit.
func (l *logStorage) SnapshotForTree(ctx context.Context, tr *trillian.Tree) (_ storage.ReadOnlyLogTreeTX, err error) {
	defer l.s.markCorrupt(&err)
	if l.s.closed.Load() {
		return nil, ErrClosed
	}
	tx, err := l.s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: begin snapshot: %w", err)
	}
	t := newLogTX(l.s, tr, newStmtConn(tx.PrepareContext), false, func(commit bool) error {
		if commit {
			return tx.Commit()
		}
		return tx.Rollback()
	})
	if err := t.readRoot(ctx); err != nil {
		if errors.Is(err, storage.ErrTreeNeedsInit) {
			return t, err
		}
		t.Close()
		return nil, err
	}
	return t, nil
}

// beginWriteTX takes the write lock and starts a log transaction. The
// error may be storage.ErrTreeNeedsInit, with a usable transaction.
func (l *logStorage) beginWriteTX(ctx context.Context, tr *trillian.Tree) (*logTX, error) {
	s := l.s
	if err := s.beginWrite(ctx); err != nil {
		return nil, err
	}
	t := newLogTX(s, tr, s.w, true, func(commit bool) error {
		if commit {
			return s.commitWrite()
		}
		s.rollbackWrite()
		return nil
	})
	if err := t.readRoot(ctx); err != nil {
		if errors.Is(err, storage.ErrTreeNeedsInit) {
			return t, err
		}
		t.Close()
		return nil, err
	}
	return t, nil
}

// ReadWriteTransaction runs f in a write transaction and commits it if f
// returns nil. It is never retried.
func (l *logStorage) ReadWriteTransaction(ctx context.Context, tr *trillian.Tree, f storage.LogTXFunc) (err error) {
	defer l.s.markCorrupt(&err)
	t, err := l.beginWriteTX(ctx, tr)
	if err != nil && !errors.Is(err, storage.ErrTreeNeedsInit) {
		return err
	}
	defer t.Close()
	if err := f(ctx, t); err != nil {
		return err
	}
	return t.Commit(ctx)
}

func (l *logStorage) AddSequencedLeaves(ctx context.Context, tr *trillian.Tree, leaves []*trillian.LogLeaf, ts time.Time) (_ []*trillian.QueuedLogLeaf, err error) {
	defer l.s.markCorrupt(&err)
	t, err := l.beginWriteTX(ctx, tr)
	if t != nil {
		defer t.Close()
	}
	if err != nil {
		return nil, err
	}
	res, err := t.addSequencedLeaves(ctx, leaves, ts)
	if err != nil {
		return nil, err
	}
	if err := t.Commit(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// dequeued remembers which row a dequeued leaf is.
type dequeued struct {
	leafID int64 // rowid in leaf_data
}

// logTX is a read-only snapshot or a read-write transaction on one tree.
type logTX struct {
	mu       sync.Mutex
	s        *Storage
	q        *stmtConn
	writable bool
	end      func(commit bool) error
	done     bool
	failed   error // set when a write statement failed: the transaction cannot commit

	treeID   int64
	treeType trillian.TreeType
	hasRoot  bool
	root     types.LogRootV1
	slr      *trillian.SignedLogRoot
	writeRev int64
	tiles    tileCache
	dequeued map[string]dequeued
	// appended are leaves this transaction appended (an Integrator's),
	// at consecutive positions.
	appended []*trillian.LogLeaf
}

func newLogTX(s *Storage, tr *trillian.Tree, q *stmtConn, writable bool, end func(bool) error) *logTX {
	return &logTX{
		s: s, q: q, writable: writable, end: end,
		treeID:   tr.TreeId,
		treeType: tr.TreeType,
		dequeued: make(map[string]dequeued),
	}
}

// readRoot loads the latest tree head; the write revision follows it.
func (t *logTX) readRoot(ctx context.Context) error {
	var rev, ts, size int64
	var hash []byte
	err := t.q.queryRow(t.stmtCtx(ctx), selectLatestRootSQL, []any{t.treeID}, &rev, &ts, &size, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		t.writeRev = 0
		return storage.ErrTreeNeedsInit
	}
	if err != nil {
		return fmt.Errorf("sqlite storage: reading root of tree %d: %w", t.treeID, err)
	}
	t.root = types.LogRootV1{TreeSize: uint64(size), RootHash: hash, TimestampNanos: uint64(ts)}
	b, err := t.root.MarshalBinary()
	if err != nil {
		return fmt.Errorf("sqlite storage: root of tree %d: %w", t.treeID, err)
	}
	t.slr = &trillian.SignedLogRoot{LogRoot: b}
	t.hasRoot = true
	t.writeRev = rev + 1
	return nil
}

// stmtCtx is the context for statements. Write statements run to
// completion once started: an interrupted SQLite statement can end the
// whole transaction, after which later statements would autocommit.
func (t *logTX) stmtCtx(ctx context.Context) context.Context {
	if t.writable {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// check is called first by every method; the caller holds t.mu.
func (t *logTX) check(ctx context.Context) error {
	switch {
	case t.done:
		return errors.New("sqlite storage: transaction already finished")
	case t.failed != nil:
		return t.failed
	}
	return ctx.Err()
}

// fail records a write error: the transaction can then only roll back.
func (t *logTX) fail(err error) error {
	if t.writable && t.failed == nil {
		t.failed = fmt.Errorf("sqlite storage: transaction aborted by an earlier error: %w", err)
	}
	return err
}

func (t *logTX) checkWritable(ctx context.Context) error {
	if !t.writable {
		return status.Error(codes.FailedPrecondition, "sqlite storage: write in a read-only snapshot")
	}
	return t.check(ctx)
}

func (t *logTX) Commit(ctx context.Context) (err error) {
	defer t.s.markCorrupt(&err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return errors.New("sqlite storage: transaction already finished")
	}
	if err := t.check(ctx); err != nil {
		t.done = true
		t.end(false)
		return err
	}
	if t.writable {
		if err := t.storeTiles(t.stmtCtx(ctx)); err != nil {
			t.done = true
			t.end(false)
			return err
		}
	}
	t.done = true
	return t.end(true)
}

func (t *logTX) Close() (err error) {
	defer t.s.markCorrupt(&err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil
	}
	t.done = true
	if err := t.end(false); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}

// loadTile returns the stored tile id, whole: for a write transaction
// from the edge the last committed one left, if there, else from its row;
// nil when none is stored.
func (t *logTX) loadTile(ctx context.Context) loadFunc {
	return func(id []byte) (*storagepb.SubtreeProto, error) {
		if t.writable {
			if st := t.s.edge.take(t.treeID, id); st != nil {
				return st, nil
			}
		}
		if len(id) == bottomTileIDLen {
			return t.bottomTile(ctx, id)
		}
		return t.tileRow(ctx, id)
	}
}

// tileRow reads tile id from its row, whole; nil when there is none.
func (t *logTX) tileRow(ctx context.Context, id []byte) (*storagepb.SubtreeProto, error) {
	var nodes []byte
	err := t.q.queryRow(ctx, selectSubtreeSQL, []any{t.treeID, id}, &nodes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: reading tile %x of tree %d: %w", id, t.treeID, err)
	}
	st := new(storagepb.SubtreeProto)
	if err := proto.Unmarshal(nodes, st); err != nil {
		return nil, fmt.Errorf("sqlite storage: decoding tile %x of tree %d: %w", id, t.treeID, err)
	}
	if st.Prefix == nil {
		st.Prefix = []byte{} // the top tile's: never NULL when written back
	}
	if string(st.Prefix) != string(id) {
		return nil, fmt.Errorf("sqlite storage: tile %x of tree %d holds tile %x", id, t.treeID, st.Prefix)
	}
	if err := populate(st); err != nil {
		return nil, fmt.Errorf("sqlite storage: tree %d: %w", t.treeID, err)
	}
	return st, nil
}

// bottomTile returns the bottom tile id (its leaves are the tree's) as of
// the transaction's tree head: a full one from its row; a partial one,
// which is never stored (its row, written by an older version, may be
// behind), made from the Merkle hashes of the sequenced leaves it holds.
// Nil when the tree does not reach it.
func (t *logTX) bottomTile(ctx context.Context, id []byte) (*storagepb.SubtreeProto, error) {
	start := binary.BigEndian.Uint64(append(make([]byte, 8-len(id), 8), id...)) * tileLeaves
	size := t.root.TreeSize
	if !t.hasRoot || start >= size {
		return nil, nil
	}
	end := min(size, start+tileLeaves)
	if end-start == tileLeaves {
		st, err := t.tileRow(ctx, id)
		if err != nil {
			return nil, err
		}
		if st == nil || len(st.Leaves) != tileLeaves {
			return nil, fmt.Errorf("sqlite storage: tree %d of size %d has no full tile %x", t.treeID, size, id)
		}
		return st, nil
	}
	rows, err := t.q.query(ctx, selectMerkleHashesSQL, t.treeID, int64(start), int64(end))
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: reading the leaves of tile %x of tree %d: %w", id, t.treeID, err)
	}
	defer rows.Close()
	var hashes [][]byte
	for rows.Next() {
		var seq int64
		var h []byte
		if err := rows.Scan(&seq, &h); err != nil {
			return nil, fmt.Errorf("sqlite storage: reading the leaves of tile %x of tree %d: %w", id, t.treeID, err)
		}
		if seq != int64(start)+int64(len(hashes)) || len(h) != hashSize {
			return nil, fmt.Errorf("sqlite storage: tree %d: leaf %d (of %d bytes) where leaf %d was expected", t.treeID, seq, len(h), int64(start)+int64(len(hashes)))
		}
		hashes = append(hashes, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite storage: reading the leaves of tile %x of tree %d: %w", id, t.treeID, err)
	}
	if uint64(len(hashes)) != end-start {
		return nil, fmt.Errorf("sqlite storage: tree %d of size %d holds %d sequenced leaves from %d, want %d", t.treeID, size, len(hashes), start, end-start)
	}
	return bottomTileOf(id, hashes)
}

// storeTiles writes the tiles the transaction changed (but not a partial
// bottom tile: see bottomTile), and hands every tile it holds to the edge
// for when it commits.
func (t *logTX) storeTiles(ctx context.Context) error {
	for _, row := range t.tiles.updated() {
		if len(row.Prefix) == bottomTileIDLen && len(row.Leaves) < tileLeaves {
			continue
		}
		b, err := proto.Marshal(row)
		if err != nil {
			return fmt.Errorf("sqlite storage: encoding tile: %w", err)
		}
		if _, err := t.q.exec(ctx, upsertSubtreeSQL, t.treeID, row.Prefix, b); err != nil {
			return t.fail(fmt.Errorf("sqlite storage: writing tile %x of tree %d: %w", row.Prefix, t.treeID, err))
		}
	}
	if len(t.tiles.tiles) > 0 {
		// A transaction that used no tile leaves the edge as it was.
		t.s.edge.used(t.treeID, t.tiles.tiles)
	}
	return nil
}

func (t *logTX) GetMerkleNodes(ctx context.Context, ids []compact.NodeID) (_ []tree.Node, err error) {
	defer t.s.markCorrupt(&err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	return t.tiles.getNodes(ids, t.loadTile(t.stmtCtx(ctx)))
}

func (t *logTX) SetMerkleNodes(ctx context.Context, nodes []tree.Node) (err error) {
	defer t.s.markCorrupt(&err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkWritable(ctx); err != nil {
		return err
	}
	return t.tiles.setNodes(nodes, t.loadTile(t.stmtCtx(ctx)))
}

func (t *logTX) LatestSignedLogRoot(ctx context.Context) (*trillian.SignedLogRoot, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.hasRoot {
		return nil, storage.ErrTreeNeedsInit
	}
	return t.slr, nil
}

// StoreSignedLogRoot stores a new tree head at the write revision. It
// refuses a head smaller than the current one: a log never shrinks.
func (t *logTX) StoreSignedLogRoot(ctx context.Context, root *trillian.SignedLogRoot) (err error) {
	defer t.s.markCorrupt(&err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkWritable(ctx); err != nil {
		return err
	}
	var lr types.LogRootV1
	if err := lr.UnmarshalBinary(root.GetLogRoot()); err != nil {
		return status.Errorf(codes.InvalidArgument, "sqlite storage: parsing log root: %v", err)
	}
	if len(lr.Metadata) != 0 {
		return status.Error(codes.Unimplemented, "sqlite storage: log root metadata is not supported")
	}
	if t.hasRoot && lr.TreeSize < t.root.TreeSize {
		return status.Errorf(codes.FailedPrecondition, "sqlite storage: tree %d: new root size %d is smaller than stored size %d", t.treeID, lr.TreeSize, t.root.TreeSize)
	}
	if lr.TreeSize > 1<<63-1 || lr.TimestampNanos > 1<<63-1 {
		return status.Error(codes.InvalidArgument, "sqlite storage: log root size or timestamp out of range")
	}
	if _, err := t.q.exec(t.stmtCtx(ctx), insertTreeHeadSQL, t.treeID, t.writeRev,
		int64(lr.TimestampNanos), int64(lr.TreeSize), lr.RootHash); err != nil {
		return t.fail(fmt.Errorf("sqlite storage: storing root of tree %d: %w", t.treeID, err))
	}
	return nil
}

func (t *logTX) DequeueLeaves(ctx context.Context, limit int, cutoff time.Time) (_ []*trillian.LogLeaf, err error) {
	defer t.s.markCorrupt(&err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkWritable(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	if t.treeType == trillian.TreeType_PREORDERED_LOG {
		if !t.hasRoot {
			return nil, storage.ErrTreeNeedsInit
		}
		if leaves, ok := t.appendedRange(int64(t.root.TreeSize), int64(limit)); ok {
			return leaves, nil
		}
		return t.leavesByRange(ctx, int64(t.root.TreeSize), int64(limit))
	}
	rows, err := t.q.query(t.stmtCtx(ctx), selectQueuedSQL, t.treeID, cutoff.UnixNano(), limit)
	if err != nil {
		return nil, t.fail(fmt.Errorf("sqlite storage: dequeueing from tree %d: %w", t.treeID, err))
	}
	defer rows.Close()
	leaves := make([]*trillian.LogLeaf, 0, min(limit, 4096))
	for rows.Next() {
		var id, mh []byte
		var qts, leafID int64
		if err := rows.Scan(&id, &mh, &qts, &leafID); err != nil {
			return nil, t.fail(fmt.Errorf("sqlite storage: dequeueing from tree %d: %w", t.treeID, err))
		}
		if len(id) != hashSize {
			return nil, fmt.Errorf("sqlite storage: dequeued a leaf with a %d-byte identity hash", len(id))
		}
		k := string(id)
		if _, ok := t.dequeued[k]; ok {
			continue // already returned by an earlier DequeueLeaves in this transaction
		}
		t.dequeued[k] = dequeued{leafID: leafID}
		leaves = append(leaves, &trillian.LogLeaf{
			LeafIdentityHash: id,
			MerkleLeafHash:   mh,
			QueueTimestamp:   timestamppb.New(time.Unix(0, qts)),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail(fmt.Errorf("sqlite storage: dequeueing from tree %d: %w", t.treeID, err))
	}
	return leaves, nil
}

// UpdateSequencedLeaves gives dequeued leaves their positions, which takes
// them out of the queue.
func (t *logTX) UpdateSequencedLeaves(ctx context.Context, leaves []*trillian.LogLeaf) (err error) {
	defer t.s.markCorrupt(&err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkWritable(ctx); err != nil {
		return err
	}
	sctx := t.stmtCtx(ctx)
	for _, leaf := range leaves {
		if len(leaf.LeafIdentityHash) != hashSize {
			return errors.New("sqlite storage: sequenced leaf has a bad identity hash size")
		}
		if err := leaf.IntegrateTimestamp.CheckValid(); err != nil {
			return fmt.Errorf("sqlite storage: bad integrate timestamp: %w", err)
		}
		dq, ok := t.dequeued[string(leaf.LeafIdentityHash)]
		if !ok {
			return fmt.Errorf("sqlite storage: leaf %x was not dequeued in this transaction", leaf.LeafIdentityHash)
		}
		if leaf.LeafIndex < 0 {
			return fmt.Errorf("sqlite storage: negative leaf index %d", leaf.LeafIndex)
		}
		res, err := t.q.exec(sctx, sequenceLeafSQL, leaf.LeafIndex, leaf.IntegrateTimestamp.AsTime().UnixNano(), dq.leafID, t.treeID)
		if err := oneRow(res, err); err != nil {
			return t.fail(fmt.Errorf("sqlite storage: sequencing leaf %d of tree %d: %w", leaf.LeafIndex, t.treeID, err))
		}
	}
	return nil
}

// oneRow checks that a statement succeeded and changed exactly one row.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("%d rows changed, want 1", n)
	}
	return nil
}

// addSequencedLeaves stores leaves at the positions they carry, for
// PREORDERED_LOG trees; conflicts are reported per leaf as in Trillian's
// MySQL provider.
func (t *logTX) addSequencedLeaves(ctx context.Context, leaves []*trillian.LogLeaf, ts time.Time) ([]*trillian.QueuedLogLeaf, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkWritable(ctx); err != nil {
		return nil, err
	}
	sctx := t.stmtCtx(ctx)
	res := make([]*trillian.QueuedLogLeaf, len(leaves))
	ok := status.New(codes.OK, "OK").Proto()
	for i, leaf := range leaves {
		if got := len(leaf.LeafIdentityHash); got != hashSize {
			return nil, status.Errorf(codes.FailedPrecondition, "leaves[%d] has identity hash size %d, want %d", i, got, hashSize)
		}
		if got := len(leaf.MerkleLeafHash); got != hashSize {
			return nil, status.Errorf(codes.FailedPrecondition, "leaves[%d] has Merkle leaf hash size %d, want %d", i, got, hashSize)
		}
		if leaf.LeafIndex < 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "leaves[%d] has negative index %d", i, leaf.LeafIndex)
		}
		res[i] = &trillian.QueuedLogLeaf{Status: ok}
		// Taken: by this identity hash, or else by this index.
		_, sameID, err := t.s.storedLeaf(sctx, t.q, true, t.treeID, leaf.LeafIdentityHash)
		if err != nil {
			return nil, t.fail(fmt.Errorf("sqlite storage: adding leaf %d: %w", leaf.LeafIndex, err))
		}
		if sameID {
			res[i].Status = status.New(codes.FailedPrecondition, "conflicting LeafIdentityHash").Proto()
			continue
		}
		err = t.s.insertLeaf(sctx, t.treeID, leaf, ts.UnixNano(), leaf.LeafIndex, 0)
		if errors.Is(err, errPositionTaken) {
			res[i].Status = status.New(codes.FailedPrecondition, "conflicting LeafIndex").Proto()
			continue
		}
		if err != nil {
			return nil, t.fail(fmt.Errorf("sqlite storage: adding leaf %d: %w", leaf.LeafIndex, err))
		}
	}
	return res, nil
}

func affected(r sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// nonNil stores an absent leaf value as an empty one (the column is NOT NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (t *logTX) GetLeavesByRange(ctx context.Context, start, count int64) (_ []*trillian.LogLeaf, err error) {
	defer t.s.markCorrupt(&err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	return t.leavesByRange(ctx, start, count)
}

func (t *logTX) leavesByRange(ctx context.Context, start, count int64) ([]*trillian.LogLeaf, error) {
	if count <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "invalid count %d, want > 0", count)
	}
	if start < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "invalid start %d, want >= 0", start)
	}
	count = min(count, MaxLeavesPerRange)
	if t.treeType == trillian.TreeType_LOG {
		size := int64(t.root.TreeSize)
		if size <= 0 {
			return nil, status.Errorf(codes.OutOfRange, "empty tree")
		}
		if start >= size {
			return nil, status.Errorf(codes.OutOfRange, "invalid start %d, want < TreeSize(%d)", start, size)
		}
		count = min(count, size-start)
	}
	rows, err := t.q.query(t.stmtCtx(ctx), selectLeavesByRangeSQL, t.treeID, start, start+count)
	if err != nil {
		return nil, t.fail(fmt.Errorf("sqlite storage: reading leaves of tree %d: %w", t.treeID, err))
	}
	leaves, err := scanLeaves(rows)
	if err != nil {
		return nil, t.fail(fmt.Errorf("sqlite storage: reading leaves of tree %d: %w", t.treeID, err))
	}
	for i, leaf := range leaves {
		if want := start + int64(i); leaf.LeafIndex != want {
			if want < int64(t.root.TreeSize) {
				return nil, fmt.Errorf("sqlite storage: tree %d: got leaf index %d, want %d", t.treeID, leaf.LeafIndex, want)
			}
			return leaves[:i], nil
		}
	}
	return leaves, nil
}

func (t *logTX) GetLeavesByHash(ctx context.Context, hashes [][]byte, orderBySequence bool) (_ []*trillian.LogLeaf, err error) {
	defer t.s.markCorrupt(&err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	var ret []*trillian.LogLeaf
	sctx := t.stmtCtx(ctx)
	for _, h := range hashes {
		rowid, same, err := t.s.storedLeaf(sctx, t.q, t.writable, t.treeID, h)
		if err != nil {
			return nil, t.fail(fmt.Errorf("sqlite storage: reading leaves of tree %d by hash: %w", t.treeID, err))
		}
		for _, q := range []string{selectLeavesByMerkleSameSQL, selectLeavesByMerkleOtherSQL} {
			args := []any{t.treeID, h}
			if q == selectLeavesByMerkleSameSQL {
				if !same {
					continue
				}
				args = append(args, rowid)
			}
			rows, err := t.q.query(sctx, q, args...)
			if err != nil {
				return nil, t.fail(fmt.Errorf("sqlite storage: reading leaves of tree %d by hash: %w", t.treeID, err))
			}
			leaves, err := scanLeaves(rows)
			if err != nil {
				return nil, t.fail(fmt.Errorf("sqlite storage: reading leaves of tree %d by hash: %w", t.treeID, err))
			}
			ret = append(ret, leaves...)
		}
	}
	if orderBySequence {
		sortByIndex(ret)
	}
	return ret, nil
}

// scanLeaves reads rows of (sequence number, Merkle hash, identity hash,
// value, extra data, queue time, integrate time); the sequence number and
// integrate time may be NULL for a queued leaf, which gets index -1.
func scanLeaves(rows *sql.Rows) ([]*trillian.LogLeaf, error) {
	defer rows.Close()
	var ret []*trillian.LogLeaf
	for rows.Next() {
		var (
			leaf     trillian.LogLeaf
			seq, its sql.NullInt64
			qts      int64
		)
		if err := rows.Scan(&seq, &leaf.MerkleLeafHash, &leaf.LeafIdentityHash, &leaf.LeafValue,
			&leaf.ExtraData, &qts, &its); err != nil {
			return nil, err
		}
		leaf.LeafIndex = -1
		if seq.Valid {
			leaf.LeafIndex = seq.Int64
		}
		leaf.QueueTimestamp = timestamppb.New(time.Unix(0, qts))
		if its.Valid {
			leaf.IntegrateTimestamp = timestamppb.New(time.Unix(0, its.Int64))
		}
		if len(leaf.MerkleLeafHash) != hashSize {
			return nil, fmt.Errorf("stored leaf has a %d-byte Merkle hash", len(leaf.MerkleLeafHash))
		}
		ret = append(ret, &leaf)
	}
	return ret, rows.Err()
}
