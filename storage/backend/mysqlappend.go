package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/trillian"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Bounds of one statement of appendMySQL: rows, and bytes of values and
// extra data (MariaDB's max_allowed_packet is 16 MiB by default).
const (
	appendRowsPerStatement  = 1000
	appendBytesPerStatement = 4 << 20
	appendAttempts          = 5
)

// appendMySQL appends leaves at the end of the PREORDERED_LOG tree treeID
// in Trillian's MySQL schema (LeafData and SequencedLeafData, as Trillian's
// own AddSequencedLeaves writes them), in one transaction, committed when
// it returns nil. Trillian's sequencer then integrates them from there.
//
// For each leaf in order it answers what QueueLeaves would: a new leaf is
// returned with its LeafIndex, the next free position; a leaf whose
// identity hash the tree holds, or an earlier leaf of the call carries, gets
// status AlreadyExists with the stored leaf (its hashes and LeafIndex) and
// takes no position, so that integration never meets a gap.
//
// A handful of statements per call, not per leaf: a lock on the tree's row
// in Trees, which serializes appenders of the tree across processes (the
// next position is read under it), one lookup of the identity hashes the
// tree already holds, and multi-row INSERTs. A deadlock or lock timeout
// is retried a few times.
func appendMySQL(ctx context.Context, db *sql.DB, treeID int64, leaves []*trillian.LogLeaf, ts time.Time) ([]*trillian.QueuedLogLeaf, error) {
	qts := timestamppb.New(ts)
	if err := qts.CheckValid(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "appending to tree %d: bad queue timestamp: %v", treeID, err)
	}
	for i, l := range leaves {
		if len(l.GetLeafIdentityHash()) != 32 || len(l.GetMerkleLeafHash()) != 32 {
			return nil, status.Errorf(codes.InvalidArgument, "appending to tree %d: leaves[%d] has a %d-byte identity hash and a %d-byte Merkle leaf hash, want 32 and 32",
				treeID, i, len(l.GetLeafIdentityHash()), len(l.GetMerkleLeafHash()))
		}
	}
	if len(leaves) == 0 {
		return []*trillian.QueuedLogLeaf{}, nil
	}
	for attempt := 1; ; attempt++ {
		res, err := appendMySQLOnce(ctx, db, treeID, leaves, ts)
		if err == nil || attempt == appendAttempts || !retryableMySQL(err) || ctx.Err() != nil {
			if err != nil {
				return nil, fmt.Errorf("appending %d leaves to tree %d: %w", len(leaves), treeID, err)
			}
			for _, r := range res {
				r.Leaf.QueueTimestamp = qts
			}
			return res, nil
		}
	}
}

// retryableMySQL reports whether err is a deadlock or a lock wait timeout,
// after which the transaction can be run again.
func retryableMySQL(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

func appendMySQLOnce(ctx context.Context, db *sql.DB, treeID int64, leaves []*trillian.LogLeaf, ts time.Time) ([]*trillian.QueuedLogLeaf, error) {
	// Read committed: each read sees what the appender before this one
	// committed, once the lock below is taken.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var id int64
	if err := tx.QueryRowContext(ctx, `SELECT TreeId FROM Trees WHERE TreeId = ? FOR UPDATE`, treeID).Scan(&id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, status.Errorf(codes.NotFound, "no tree %d", treeID)
		}
		return nil, err
	}
	var next int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(SequenceNumber) + 1, 0) FROM SequencedLeafData WHERE TreeId = ?`, treeID).Scan(&next); err != nil {
		return nil, err
	}
	stored, err := storedLeaves(ctx, tx, treeID, leaves)
	if err != nil {
		return nil, err
	}
	res := make([]*trillian.QueuedLogLeaf, len(leaves))
	first := make(map[[32]byte]*trillian.LogLeaf, len(leaves)) // new leaves of this call
	var fresh []*trillian.LogLeaf
	for i, l := range leaves {
		key := [32]byte(l.LeafIdentityHash)
		old := stored[key]
		if old == nil {
			old = first[key]
		}
		if old != nil {
			res[i] = &trillian.QueuedLogLeaf{Leaf: old,
				Status: status.Newf(codes.AlreadyExists, "leaf already exists: %x", l.LeafIdentityHash).Proto()}
			continue
		}
		n := &trillian.LogLeaf{LeafValue: l.LeafValue, ExtraData: l.ExtraData, LeafIdentityHash: l.LeafIdentityHash,
			MerkleLeafHash: l.MerkleLeafHash, LeafIndex: next}
		next++
		first[key] = n
		fresh = append(fresh, n)
		res[i] = &trillian.QueuedLogLeaf{Leaf: n}
	}
	for start := 0; start < len(fresh); {
		end, size := start, 0
		for end < len(fresh) && end-start < appendRowsPerStatement && (end == start || size+len(fresh[end].LeafValue)+len(fresh[end].ExtraData) <= appendBytesPerStatement) {
			size += len(fresh[end].LeafValue) + len(fresh[end].ExtraData)
			end++
		}
		if err := insertAppended(ctx, tx, treeID, fresh[start:end], ts); err != nil {
			return nil, err
		}
		start = end
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return res, nil
}

// storedLeaves returns the leaves of the tree with the identity hashes of
// leaves, by identity hash: their hashes and positions.
func storedLeaves(ctx context.Context, tx *sql.Tx, treeID int64, leaves []*trillian.LogLeaf) (map[[32]byte]*trillian.LogLeaf, error) {
	out := make(map[[32]byte]*trillian.LogLeaf)
	for start := 0; start < len(leaves); start += appendRowsPerStatement {
		chunk := leaves[start:min(start+appendRowsPerStatement, len(leaves))]
		args := make([]any, 0, 1+len(chunk))
		args = append(args, treeID)
		for _, l := range chunk {
			args = append(args, l.LeafIdentityHash)
		}
		rows, err := tx.QueryContext(ctx, `SELECT s.LeafIdentityHash, s.MerkleLeafHash, s.SequenceNumber FROM SequencedLeafData s
			WHERE s.TreeId = ? AND s.LeafIdentityHash IN (`+placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var l trillian.LogLeaf
			if err := rows.Scan(&l.LeafIdentityHash, &l.MerkleLeafHash, &l.LeafIndex); err != nil {
				rows.Close()
				return nil, err
			}
			if len(l.LeafIdentityHash) == 32 {
				out[[32]byte(l.LeafIdentityHash)] = &l
			}
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// insertAppended writes leaves in LeafData and SequencedLeafData, one
// statement each.
func insertAppended(ctx context.Context, tx *sql.Tx, treeID int64, leaves []*trillian.LogLeaf, ts time.Time) error {
	data := make([]any, 0, 5*len(leaves))
	seq := make([]any, 0, 5*len(leaves))
	for _, l := range leaves {
		value := l.LeafValue
		if value == nil {
			value = []byte{} // LeafValue is NOT NULL
		}
		data = append(data, treeID, l.LeafIdentityHash, value, l.ExtraData, ts.UnixNano())
		seq = append(seq, treeID, l.LeafIndex, l.LeafIdentityHash, l.MerkleLeafHash, 0)
	}
	rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", len(leaves)), ", ")
	if _, err := tx.ExecContext(ctx, `INSERT INTO LeafData (TreeId, LeafIdentityHash, LeafValue, ExtraData, QueueTimestampNanos) VALUES `+rows, data...); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO SequencedLeafData (TreeId, SequenceNumber, LeafIdentityHash, MerkleLeafHash, IntegrateTimestampNanos) VALUES `+rows, seq...)
	return err
}

// placeholders returns "?, ?, ..." for n arguments.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
