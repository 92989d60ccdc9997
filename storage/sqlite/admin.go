package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const selectTreesSQL = `SELECT tree_id, tree_state, tree_type, display_name, description,
	create_time_nanos, update_time_nanos, max_root_duration_nanos, deleted, delete_time_nanos
	FROM trees`

// adminStorage implements Trillian's storage.AdminStorage.
type adminStorage struct{ s *Storage }

func (a *adminStorage) CheckDatabaseAccessible(ctx context.Context) (err error) {
	defer a.s.markCorrupt(&err)
	return checkAccessible(ctx, a.s)
}

func checkAccessible(ctx context.Context, s *Storage) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.rdb.PingContext(ctx)
}

// Snapshot starts a read-only transaction on the read pool.
func (a *adminStorage) Snapshot(ctx context.Context) (_ storage.ReadOnlyAdminTX, err error) {
	defer a.s.markCorrupt(&err)
	if a.s.closed.Load() {
		return nil, ErrClosed
	}
	tx, err := a.s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: begin snapshot: %w", err)
	}
	return &adminTX{s: a.s, q: newStmtConn(tx.PrepareContext), end: func(commit bool) error {
		if commit {
			return tx.Commit()
		}
		return tx.Rollback()
	}}, nil
}

// ReadWriteTransaction runs f in a write transaction and commits it if f
// returns nil.
func (a *adminStorage) ReadWriteTransaction(ctx context.Context, f storage.AdminTXFunc) (err error) {
	defer a.s.markCorrupt(&err)
	s := a.s
	if err := s.beginWrite(ctx); err != nil {
		return err
	}
	tx := &adminTX{s: s, q: s.w, writable: true, end: func(commit bool) error {
		if commit {
			return s.commitWrite()
		}
		s.rollbackWrite()
		return nil
	}}
	defer tx.Close()
	if err := f(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// adminTX is a read-only or read-write admin transaction.
type adminTX struct {
	s        *Storage
	q        *stmtConn
	writable bool
	end      func(commit bool) error
	done     bool
}

func (t *adminTX) Commit() (err error) {
	defer t.s.markCorrupt(&err)
	if t.done {
		return errors.New("sqlite storage: transaction already finished")
	}
	t.done = true
	return t.end(true)
}

func (t *adminTX) Close() (err error) {
	defer t.s.markCorrupt(&err)
	if t.done {
		return nil
	}
	t.done = true
	if err := t.end(false); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}

// ctx returns the context for statements: writes are not interrupted
// halfway (an interrupted SQLite statement can end the transaction), so
// they only check ctx before they start.
func (t *adminTX) ctx(ctx context.Context) (context.Context, error) {
	if t.done {
		return nil, errors.New("sqlite storage: transaction already finished")
	}
	if !t.writable {
		return ctx, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

func (t *adminTX) GetTree(ctx context.Context, treeID int64) (_ *trillian.Tree, err error) {
	defer t.s.markCorrupt(&err)
	ctx, err = t.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := t.q.query(ctx, selectTreesSQL+" WHERE tree_id = ?", treeID)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: reading tree %d: %w", treeID, err)
	}
	trees, err := scanTrees(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: reading tree %d: %w", treeID, err)
	}
	if len(trees) == 0 {
		return nil, status.Errorf(codes.NotFound, "tree %d not found", treeID)
	}
	return trees[0], nil
}

func (t *adminTX) ListTrees(ctx context.Context, includeDeleted bool) (_ []*trillian.Tree, err error) {
	defer t.s.markCorrupt(&err)
	ctx, err = t.ctx(ctx)
	if err != nil {
		return nil, err
	}
	q := selectTreesSQL
	if !includeDeleted {
		q += " WHERE deleted = 0"
	}
	rows, err := t.q.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: listing trees: %w", err)
	}
	trees, err := scanTrees(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: listing trees: %w", err)
	}
	return trees, nil
}

func scanTrees(rows *sql.Rows) ([]*trillian.Tree, error) {
	defer rows.Close()
	trees := []*trillian.Tree{}
	for rows.Next() {
		var (
			tr                       trillian.Tree
			state, typ               string
			created, updated, maxDur int64
			deleted                  bool
			deleteTime               sql.NullInt64
		)
		if err := rows.Scan(&tr.TreeId, &state, &typ, &tr.DisplayName, &tr.Description,
			&created, &updated, &maxDur, &deleted, &deleteTime); err != nil {
			return nil, err
		}
		s, ok := trillian.TreeState_value[state]
		if !ok {
			return nil, fmt.Errorf("tree %d: unknown tree_state %q", tr.TreeId, state)
		}
		ty, ok := trillian.TreeType_value[typ]
		if !ok {
			return nil, fmt.Errorf("tree %d: unknown tree_type %q", tr.TreeId, typ)
		}
		tr.TreeState = trillian.TreeState(s)
		tr.TreeType = trillian.TreeType(ty)
		tr.CreateTime = timestamppb.New(time.Unix(0, created))
		tr.UpdateTime = timestamppb.New(time.Unix(0, updated))
		tr.MaxRootDuration = durationpb.New(time.Duration(maxDur))
		tr.Deleted = deleted
		if deleteTime.Valid {
			tr.DeleteTime = timestamppb.New(time.Unix(0, deleteTime.Int64))
		}
		trees = append(trees, &tr)
	}
	return trees, rows.Err()
}

func (t *adminTX) writeCtx(ctx context.Context) (context.Context, error) {
	if !t.writable {
		return nil, status.Error(codes.FailedPrecondition, "sqlite storage: write in a read-only transaction")
	}
	return t.ctx(ctx)
}

func validateSettings(tree *trillian.Tree) error {
	if tree.StorageSettings != nil {
		return status.Error(codes.InvalidArgument, "sqlite storage: storage_settings must be empty")
	}
	switch tree.TreeType {
	case trillian.TreeType_LOG, trillian.TreeType_PREORDERED_LOG:
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "sqlite storage: tree_type %s is not supported", tree.TreeType)
}

func (t *adminTX) CreateTree(ctx context.Context, tree *trillian.Tree) (_ *trillian.Tree, err error) {
	defer t.s.markCorrupt(&err)
	ctx, err = t.writeCtx(ctx)
	if err != nil {
		return nil, err
	}
	if err := storage.ValidateTreeForCreation(ctx, tree); err != nil {
		return nil, err
	}
	if err := validateSettings(tree); err != nil {
		return nil, err
	}
	id, err := storage.NewTreeID()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	nt := proto.Clone(tree).(*trillian.Tree)
	nt.TreeId = id
	nt.CreateTime = timestamppb.New(now)
	nt.UpdateTime = timestamppb.New(now)
	_, err = t.q.exec(ctx, `INSERT INTO trees (tree_id, tree_state, tree_type, display_name, description,
		create_time_nanos, update_time_nanos, max_root_duration_nanos, deleted, delete_time_nanos)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, NULL)`,
		nt.TreeId, nt.TreeState.String(), nt.TreeType.String(), nt.DisplayName, nt.Description,
		now.UnixNano(), now.UnixNano(), int64(nt.MaxRootDuration.AsDuration()))
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: creating tree: %w", err)
	}
	return nt, nil
}

func (t *adminTX) UpdateTree(ctx context.Context, treeID int64, updateFunc func(*trillian.Tree)) (_ *trillian.Tree, err error) {
	defer t.s.markCorrupt(&err)
	ctx, err = t.writeCtx(ctx)
	if err != nil {
		return nil, err
	}
	tree, err := t.GetTree(ctx, treeID)
	if err != nil {
		return nil, err
	}
	before := proto.Clone(tree).(*trillian.Tree)
	updateFunc(tree)
	if err := storage.ValidateTreeForUpdate(ctx, before, tree); err != nil {
		return nil, err
	}
	if err := validateSettings(tree); err != nil {
		return nil, err
	}
	now := time.Now()
	tree.UpdateTime = timestamppb.New(now)
	_, err = t.q.exec(ctx, `UPDATE trees SET tree_state = ?, tree_type = ?, display_name = ?, description = ?,
		update_time_nanos = ?, max_root_duration_nanos = ? WHERE tree_id = ?`,
		tree.TreeState.String(), tree.TreeType.String(), tree.DisplayName, tree.Description,
		now.UnixNano(), int64(tree.MaxRootDuration.AsDuration()), treeID)
	if err != nil {
		return nil, fmt.Errorf("sqlite storage: updating tree %d: %w", treeID, err)
	}
	return tree, nil
}

func (t *adminTX) SoftDeleteTree(ctx context.Context, treeID int64) (_ *trillian.Tree, err error) {
	defer t.s.markCorrupt(&err)
	return t.setDeleted(ctx, treeID, true)
}

func (t *adminTX) UndeleteTree(ctx context.Context, treeID int64) (_ *trillian.Tree, err error) {
	defer t.s.markCorrupt(&err)
	return t.setDeleted(ctx, treeID, false)
}

func (t *adminTX) setDeleted(ctx context.Context, treeID int64, deleted bool) (*trillian.Tree, error) {
	ctx, err := t.writeCtx(ctx)
	if err != nil {
		return nil, err
	}
	if err := t.checkDeleted(ctx, treeID, !deleted); err != nil {
		return nil, err
	}
	var deleteTime any
	if deleted {
		deleteTime = time.Now().UnixNano()
	}
	if _, err := t.q.exec(ctx, "UPDATE trees SET deleted = ?, delete_time_nanos = ? WHERE tree_id = ?",
		deleted, deleteTime, treeID); err != nil {
		return nil, fmt.Errorf("sqlite storage: updating tree %d: %w", treeID, err)
	}
	return t.GetTree(ctx, treeID)
}

// checkDeleted fails with NotFound if the tree does not exist and with
// FailedPrecondition if its deleted flag is not want.
func (t *adminTX) checkDeleted(ctx context.Context, treeID int64, want bool) error {
	var deleted bool
	err := t.q.queryRow(ctx, "SELECT deleted FROM trees WHERE tree_id = ?", []any{treeID}, &deleted)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return status.Errorf(codes.NotFound, "tree %d not found", treeID)
	case err != nil:
		return fmt.Errorf("sqlite storage: reading tree %d: %w", treeID, err)
	case want && !deleted:
		return status.Errorf(codes.FailedPrecondition, "tree %d is not soft deleted", treeID)
	case !want && deleted:
		return status.Errorf(codes.FailedPrecondition, "tree %d already soft deleted", treeID)
	}
	return nil
}

// HardDeleteTree removes a soft-deleted tree and everything stored for it.
func (t *adminTX) HardDeleteTree(ctx context.Context, treeID int64) (err error) {
	defer t.s.markCorrupt(&err)
	ctx, err = t.writeCtx(ctx)
	if err != nil {
		return err
	}
	if err := t.checkDeleted(ctx, treeID, true); err != nil {
		return err
	}
	for _, table := range []string{"leaf_identities", "leaf_data", "subtrees", "tree_heads", "trees"} {
		if _, err := t.q.exec(ctx, "DELETE FROM "+table+" WHERE tree_id = ?", treeID); err != nil {
			return fmt.Errorf("sqlite storage: deleting tree %d from %s: %w", treeID, table, err)
		}
	}
	if _, err := t.q.exec(ctx, lowerMergedSQL); err != nil {
		return fmt.Errorf("sqlite storage: deleting tree %d: %w", treeID, err)
	}
	t.s.ids.dropped = append(t.s.ids.dropped, treeID)
	return nil
}
