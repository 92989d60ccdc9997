package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/trillian"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limits of one appendMySQL statement. appendChunkBytes bounds the bytes of
// values one INSERT carries: it stays under the smallest max_allowed_packet
// in use (4 MiB, MySQL 5.7's default) with room for the statement's text.
// appendMaxParams is MySQL's limit on the placeholders of a prepared
// statement. appendLookupChunk bounds the identity hashes one lookup asks
// for. A single leaf (value and extra data) larger than appendChunkBytes
// is refused.
const (
	appendChunkBytes  = 3 << 20
	appendMaxParams   = 65535
	appendLookupChunk = 4096
	appendHashSize    = 32
	// appendAttempts bounds the transactions one call runs when InnoDB
	// reports a deadlock, a lock wait timeout or a duplicate key (another
	// writer that does not take appendMySQL's lock).
	appendAttempts = 5
)

// appendMySQL appends leaves to the end of the PREORDERED_LOG tree treeID held in
// Trillian's MySQL schema on db, in one transaction that is durable (committed) when it returns nil.
// For each leaf in order it returns what Trillian's QueueLeaves would: a new leaf gets
// {Leaf: leaf with LeafIndex = its position and QueueTimestamp = ts}; a leaf whose
// LeafIdentityHash the tree already holds, or that an earlier leaf of this call carries,
// gets {Leaf: the stored/earlier leaf (identity hash, Merkle leaf hash, LeafIndex at least),
// Status: codes.AlreadyExists}. New leaves get contiguous positions starting at the tree's
// current end (1 + the highest SequenceNumber, or 0), so that integration never meets a gap.
//
// The returned leaves are new values (sharing the callers' byte slices);
// the callers' leaves are not changed. Bad input (a nil leaf, an empty
// value, a hash that is not 32 bytes, a leaf over appendChunkBytes) is an
// InvalidArgument status error and writes nothing.
//
// Appenders serialize on a row lock on the tree's TreeControl row (see
// appendOnce); the tree's primary keys catch any writer that does not.
func appendMySQL(ctx context.Context, db *sql.DB, treeID int64, leaves []*trillian.LogLeaf, ts time.Time) ([]*trillian.QueuedLogLeaf, error) {
	if err := checkAppend(treeID, leaves, ts); err != nil {
		return nil, err
	}
	if len(leaves) == 0 {
		return []*trillian.QueuedLogLeaf{}, nil
	}
	var err error
	for attempt := range appendAttempts {
		if attempt > 0 {
			// Back off a little, with jitter, so that two writers that
			// collided do not collide again.
			d := time.Duration(attempt)*10*time.Millisecond + rand.N(10*time.Millisecond)
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("backend: appending to tree %d: %w (after %v)", treeID, ctx.Err(), err)
			case <-time.After(d):
			}
		}
		var res []*trillian.QueuedLogLeaf
		res, err = appendOnce(ctx, db, treeID, leaves, ts)
		if err == nil {
			return res, nil
		}
		if !retryableAppend(err) {
			return nil, fmt.Errorf("backend: appending to tree %d: %w", treeID, err)
		}
	}
	return nil, fmt.Errorf("backend: appending to tree %d: gave up after %d attempts: %w", treeID, appendAttempts, err)
}

// checkAppend validates appendMySQL's input before anything is written.
func checkAppend(treeID int64, leaves []*trillian.LogLeaf, ts time.Time) error {
	bad := func(format string, args ...any) error {
		return status.Errorf(codes.InvalidArgument, "backend: appending to tree %d: %s", treeID, fmt.Sprintf(format, args...))
	}
	if ts.IsZero() || !time.Unix(0, ts.UnixNano()).Equal(ts) {
		return bad("queue timestamp %v is not representable in nanoseconds since 1970", ts)
	}
	for i, l := range leaves {
		switch {
		case l == nil:
			return bad("leaves[%d] is nil", i)
		case len(l.LeafValue) == 0:
			return bad("leaves[%d] has an empty LeafValue", i)
		case len(l.MerkleLeafHash) != appendHashSize:
			return bad("leaves[%d] has a %d-byte MerkleLeafHash, want %d", i, len(l.MerkleLeafHash), appendHashSize)
		case len(l.LeafIdentityHash) != appendHashSize:
			return bad("leaves[%d] has a %d-byte LeafIdentityHash, want %d", i, len(l.LeafIdentityHash), appendHashSize)
		case leafBytes(l) > appendChunkBytes:
			return bad("leaves[%d] holds %d bytes of value and extra data, at most %d", i, leafBytes(l), appendChunkBytes)
		}
	}
	return nil
}

// retryableAppend reports whether err ended a transaction that is worth
// running again from the start: ER_LOCK_DEADLOCK (1213),
// ER_LOCK_WAIT_TIMEOUT (1205), or ER_DUP_ENTRY (1062), which means that a
// writer not taking appendMySQL's lock got there first (the next attempt
// reads what it wrote).
func retryableAppend(err error) bool {
	var me *gomysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1213, 1205, 1062:
		return true
	}
	return false
}

// appendOnce is one transaction of appendMySQL.
//
// The lock: SELECT ... FOR UPDATE on the tree's TreeControl row. It is one
// record lock on a primary key that exists whether or not the tree has
// leaves, so two appenders queue on it and the second reads the end the
// first committed. Locking the highest SequencedLeafData row would not do:
// on an empty tree there is no row, and InnoDB's gap locks that stand in
// for it are shared, so both appenders would pass and then deadlock on
// their inserts. The Trees row would serialize appenders too, but
// Trillian's sequencer takes a shared lock on it (the foreign-key checks
// of its Subtree and TreeHead inserts), so appends and integration would
// wait for each other; nothing of Trillian's locks TreeControl in its
// write paths. The transaction runs at READ COMMITTED: every read after
// the lock sees what earlier lock holders committed, whatever the server's
// default isolation. (MySQL refuses writes at READ COMMITTED when
// binlog_format is STATEMENT; MariaDB's default MIXED and MySQL's ROW are
// fine.)
//
// When the commit fails the leaves may or may not be stored; a caller that
// sends them again learns their positions as AlreadyExists.
func appendOnce(ctx context.Context, db *sql.DB, treeID int64, leaves []*trillian.LogLeaf, ts time.Time) ([]*trillian.QueuedLogLeaf, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	end, err := lockTreeEnd(ctx, tx, treeID)
	if err != nil {
		return nil, err
	}
	stored, err := storedLeaves(ctx, tx, treeID, leaves)
	if err != nil {
		return nil, err
	}
	res, fresh := assignPositions(leaves, stored, end, ts)
	if err := insertLeafData(ctx, tx, treeID, fresh, ts); err != nil {
		return nil, err
	}
	if err := insertSequenced(ctx, tx, treeID, fresh); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing: %w", err)
	}
	return res, nil
}

// lockTreeEnd takes the tree's append lock, checks that the tree is an
// active PREORDERED_LOG and returns its end: 1 + its highest sequence
// number, or 0.
func lockTreeEnd(ctx context.Context, tx *sql.Tx, treeID int64) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT TreeId FROM TreeControl WHERE TreeId = ? FOR UPDATE`, treeID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, status.Errorf(codes.NotFound, "tree %d not found (it has no TreeControl row)", treeID)
	}
	if err != nil {
		return 0, fmt.Errorf("locking the tree: %w", err)
	}
	var (
		treeType, state string
		deleted         sql.NullBool
		highest         sql.NullInt64
	)
	err = tx.QueryRowContext(ctx, `
		SELECT t.TreeType, t.TreeState, t.Deleted,
			(SELECT MAX(s.SequenceNumber) FROM SequencedLeafData s WHERE s.TreeId = t.TreeId)
		FROM Trees t WHERE t.TreeId = ?`, treeID).Scan(&treeType, &state, &deleted, &highest)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, status.Errorf(codes.NotFound, "tree %d not found", treeID)
	case err != nil:
		return 0, fmt.Errorf("reading the tree's end: %w", err)
	case deleted.Valid && deleted.Bool:
		return 0, status.Errorf(codes.NotFound, "tree %d is deleted", treeID)
	case treeType != trillian.TreeType_PREORDERED_LOG.String():
		return 0, status.Errorf(codes.FailedPrecondition, "tree %d is a %s tree, want PREORDERED_LOG", treeID, treeType)
	case state != trillian.TreeState_ACTIVE.String():
		return 0, status.Errorf(codes.FailedPrecondition, "tree %d is %s, not ACTIVE", treeID, state)
	case !highest.Valid:
		return 0, nil
	}
	return highest.Int64 + 1, nil
}

// storedLeaves returns the leaves of the tree whose identity hashes are
// among those of leaves, by identity hash.
func storedLeaves(ctx context.Context, tx *sql.Tx, treeID int64, leaves []*trillian.LogLeaf) (map[string]*trillian.LogLeaf, error) {
	var ids [][]byte
	asked := make(map[string]bool, len(leaves))
	for _, l := range leaves {
		if !asked[string(l.LeafIdentityHash)] {
			asked[string(l.LeafIdentityHash)] = true
			ids = append(ids, l.LeafIdentityHash)
		}
	}
	stored := make(map[string]*trillian.LogLeaf)
	for len(ids) > 0 {
		n := min(len(ids), appendLookupChunk)
		if err := lookupIdentities(ctx, tx, treeID, ids[:n], stored); err != nil {
			return nil, err
		}
		ids = ids[n:]
	}
	return stored, nil
}

// lookupIdentities adds to stored the tree's leaves with the identity
// hashes ids. A leaf without a position (LeafData with no
// SequencedLeafData row, as Trillian's QueueLeaves leaves until its
// sequencer runs) is an error: such a tree is not one appendMySQL writes.
func lookupIdentities(ctx context.Context, tx *sql.Tx, treeID int64, ids [][]byte, stored map[string]*trillian.LogLeaf) error {
	var q strings.Builder
	q.WriteString(`SELECT d.LeafIdentityHash, d.LeafValue, d.ExtraData, d.QueueTimestampNanos, q.MerkleLeafHash, q.SequenceNumber
		FROM LeafData d LEFT JOIN SequencedLeafData q
			ON q.TreeId = d.TreeId AND q.LeafIdentityHash = d.LeafIdentityHash
		WHERE d.TreeId = ? AND d.LeafIdentityHash IN (`)
	args := make([]any, 0, len(ids)+1)
	args = append(args, treeID)
	for i, id := range ids {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('?')
		args = append(args, id)
	}
	q.WriteByte(')')
	rows, err := tx.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return fmt.Errorf("looking up identity hashes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, value, extra, hash []byte
			qts                    int64
			index                  sql.NullInt64
		)
		if err := rows.Scan(&id, &value, &extra, &qts, &hash, &index); err != nil {
			return fmt.Errorf("looking up identity hashes: %w", err)
		}
		if !index.Valid {
			return status.Errorf(codes.FailedPrecondition, "tree %d holds leaf %x without a position: not a tree appended to in order", treeID, id)
		}
		stored[string(id)] = &trillian.LogLeaf{
			LeafIdentityHash: id,
			MerkleLeafHash:   hash,
			LeafValue:        value,
			ExtraData:        extra,
			LeafIndex:        index.Int64,
			QueueTimestamp:   timestamppb.New(time.Unix(0, qts)),
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("looking up identity hashes: %w", err)
	}
	return nil
}

// assignPositions builds appendMySQL's results: leaves the tree holds
// (stored) or that an earlier leaf of the call carries are AlreadyExists;
// the others get the positions end, end+1, ... and are returned as fresh,
// in order.
func assignPositions(leaves []*trillian.LogLeaf, stored map[string]*trillian.LogLeaf, end int64, ts time.Time) (res []*trillian.QueuedLogLeaf, fresh []*trillian.LogLeaf) {
	exists := status.New(codes.AlreadyExists, "a leaf with this identity hash is in the tree").Proto()
	earlier := make(map[string]*trillian.LogLeaf)
	res = make([]*trillian.QueuedLogLeaf, len(leaves))
	for i, l := range leaves {
		id := string(l.LeafIdentityHash)
		if s, ok := stored[id]; ok {
			res[i] = &trillian.QueuedLogLeaf{Leaf: copyLeaf(s), Status: exists}
			continue
		}
		if e, ok := earlier[id]; ok {
			res[i] = &trillian.QueuedLogLeaf{Leaf: copyLeaf(e), Status: exists}
			continue
		}
		n := copyLeaf(l)
		n.LeafIndex = end + int64(len(fresh))
		n.QueueTimestamp = timestamppb.New(ts)
		n.IntegrateTimestamp = nil
		earlier[id] = n
		fresh = append(fresh, n)
		res[i] = &trillian.QueuedLogLeaf{Leaf: n} // fresh is only inserted, never changed
	}
	return res, fresh
}

// appendLeafBytes is the size of a leaf's value and extra data.
func appendLeafBytes(l *trillian.LogLeaf) int { return len(l.LeafValue) + len(l.ExtraData) }

// copyLeaf returns a new leaf with l's fields; the byte slices are shared.
func copyLeaf(l *trillian.LogLeaf) *trillian.LogLeaf {
	return &trillian.LogLeaf{
		MerkleLeafHash:     l.MerkleLeafHash,
		LeafValue:          l.LeafValue,
		ExtraData:          l.ExtraData,
		LeafIndex:          l.LeafIndex,
		LeafIdentityHash:   l.LeafIdentityHash,
		QueueTimestamp:     l.QueueTimestamp,
		IntegrateTimestamp: l.IntegrateTimestamp,
	}
}

// insertLeafData writes the LeafData rows of fresh, in statements of at
// most appendChunkBytes of values.
func insertLeafData(ctx context.Context, tx *sql.Tx, treeID int64, fresh []*trillian.LogLeaf, ts time.Time) error {
	const cols = 5
	qts := ts.UnixNano()
	return insertChunked(ctx, tx, "LeafData", "TreeId, LeafIdentityHash, LeafValue, ExtraData, QueueTimestampNanos", cols, fresh,
		func(l *trillian.LogLeaf) int { return 16 + len(l.LeafIdentityHash) + leafBytes(l) },
		func(args []any, l *trillian.LogLeaf) []any {
			return append(args, treeID, l.LeafIdentityHash, l.LeafValue, l.ExtraData, qts)
		})
}

// insertSequenced writes the SequencedLeafData rows of fresh at their
// positions. The integrate timestamp is 0, as Trillian's own preordered
// path leaves it.
func insertSequenced(ctx context.Context, tx *sql.Tx, treeID int64, fresh []*trillian.LogLeaf) error {
	const cols = 5
	return insertChunked(ctx, tx, "SequencedLeafData", "TreeId, SequenceNumber, LeafIdentityHash, MerkleLeafHash, IntegrateTimestampNanos", cols, fresh,
		func(l *trillian.LogLeaf) int { return 24 + len(l.LeafIdentityHash) + len(l.MerkleLeafHash) },
		func(args []any, l *trillian.LogLeaf) []any {
			return append(args, treeID, l.LeafIndex, l.LeafIdentityHash, l.MerkleLeafHash, 0)
		})
}

// insertChunked inserts one row per leaf into table's columns, in multi-row INSERTs of at most appendChunkBytes of values (by
// size) and appendMaxParams placeholders, and checks that every row was
// written.
func insertChunked(ctx context.Context, tx *sql.Tx, table, columns string, cols int, leaves []*trillian.LogLeaf, size func(*trillian.LogLeaf) int, row func([]any, *trillian.LogLeaf) []any) error {
	tuple := "(?" + strings.Repeat(",?", cols-1) + ")"
	for len(leaves) > 0 {
		n := chunkEnd(leaves, cols, size)
		var q strings.Builder
		q.Grow(len(table) + len(columns) + 24 + n*(len(tuple)+1))
		fmt.Fprintf(&q, "INSERT INTO %s (%s) VALUES ", table, columns)
		args := make([]any, 0, n*cols)
		for i, l := range leaves[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(tuple)
			args = row(args, l)
		}
		r, err := tx.ExecContext(ctx, q.String(), args...)
		if err != nil {
			return fmt.Errorf("inserting into %s (%d rows): %w", table, n, err)
		}
		if got, err := r.RowsAffected(); err != nil || got != int64(n) {
			return fmt.Errorf("inserting into %s: %d of %d rows written (%v)", table, got, n, err)
		}
		leaves = leaves[n:]
	}
	return nil
}

// chunkEnd returns how many leaves, from the first, one INSERT of cols
// columns takes: at least one, and as many more as fit in appendChunkBytes
// (by size) and appendMaxParams.
func chunkEnd(leaves []*trillian.LogLeaf, cols int, size func(*trillian.LogLeaf) int) int {
	maxRows := appendMaxParams / cols
	n, total := 0, 0
	for n < len(leaves) && n < maxRows {
		b := size(leaves[n])
		if n > 0 && total+b > appendChunkBytes {
			break
		}
		total += b
		n++
	}
	return n
}
