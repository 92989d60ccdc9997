package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/trillian"
	"github.com/google/trillian/extension"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/server"
	"github.com/google/trillian/server/admin"
	"github.com/google/trillian/storage/memory"
	"github.com/google/trillian/storage/mysql"
	"github.com/google/trillian/util/clock"

	"github.com/evidentlog/evident/storage/sqlite"
)

// newInProcess starts Trillian's log server, admin server and sequencer in
// this process on the storage cfg names.
func newInProcess(ctx context.Context, cfg Config) (*Backend, error) {
	reg := extension.Registry{QuotaManager: quota.Noop(), MetricFactory: cfg.MetricFactory}
	var closeStorage func() error
	var appendLeaves appendFunc
	var st *sqlite.Storage // the embedded storage, if it is
	switch {
	case cfg.memory:
		ts := memory.NewTreeStorage()
		reg.AdminStorage = memory.NewAdminStorage(ts)
		reg.LogStorage = memory.NewLogStorage(ts, cfg.MetricFactory)
		closeStorage = func() error { return nil }
	case cfg.MySQLDSN != "":
		db, _, err := openMySQL(ctx, cfg.MySQLDSN)
		if err != nil {
			return nil, err
		}
		reg.AdminStorage = mysql.NewAdminStorage(db)
		reg.LogStorage = mysql.NewLogStorage(db, cfg.MetricFactory)
		closeStorage = db.Close
		appendLeaves = func(ctx context.Context, tree *trillian.Tree, leaves []*trillian.LogLeaf, ts time.Time) ([]*trillian.QueuedLogLeaf, error) {
			return appendMySQL(ctx, db, tree.TreeId, leaves, ts)
		}
	default:
		var err error
		st, err = openSQLite(ctx, cfg)
		if err != nil {
			return nil, err
		}
		reg.AdminStorage = st.AdminStorage()
		reg.LogStorage = st.LogStorage()
		closeStorage = st.Close
		appendLeaves = st.AppendLeaves
	}

	logServer := server.NewTrillianLogRPCServer(reg, clock.System)
	adminServer := admin.New(reg, []trillian.TreeType{trillian.TreeType_LOG, trillian.TreeType_PREORDERED_LOG})

	seqCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	seq := newSequencer(reg, cfg.BatchSize, cfg.SequencerInterval, cfg.Logger)
	var wg sync.WaitGroup
	lc := logClient{s: logServer, trees: &treeCache{admin: reg.AdminStorage}, queued: seq.kick, remember: seq.remember,
		storage: reg.LogStorage, appendLeaves: appendLeaves, appendsIntegrated: st != nil}
	b := &Backend{
		appends:    appendLeaves != nil,
		Log:        lc,
		Admin:      adminClient{adminServer},
		Grown:      seq.grown.wait,
		LeafHashes: seq.leafHashes,
		Root:       seq.latestRoot,
		Leaves:     seq.leafRange,
		healthy:    func(ctx context.Context) error { return reg.LogStorage.CheckDatabaseAccessible(ctx) },
		stop: func() error {
			cancel()
			wg.Wait()
			return closeStorage()
		},
	}
	b.QueueBatch = func(ctx context.Context, leaves []*trillian.LogLeaf) ([]*trillian.QueuedLogLeaf, error) {
		return lc.queueBatch(ctx, b.TreeID, leaves)
	}
	b.LeafIndex = func(ctx context.Context, hash [32]byte) (uint64, bool, error) {
		tree, err := lc.trees.get(ctx, b.TreeID)
		if err != nil {
			return 0, false, err
		}
		tx, err := reg.LogStorage.SnapshotForTree(ctx, tree)
		if err != nil {
			return 0, false, err
		}
		defer tx.Close()
		leaves, err := tx.GetLeavesByHash(ctx, [][]byte{hash[:]}, false)
		if err != nil {
			return 0, false, err
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, false, err
		}
		first, ok := uint64(0), false
		for _, l := range leaves {
			if l.LeafIndex >= 0 && (!ok || uint64(l.LeafIndex) < first) {
				first, ok = uint64(l.LeafIndex), true
			}
		}
		return first, ok, nil
	}
	// The sequencer starts once the tree exists and is initialized.
	// On the embedded storage, each group commit that appends to the tree
	// also integrates it, and the sequencer's loop is left what that
	// does not do: leaves queued to a LOG tree or appended before start,
	// batches beyond one, and integration after a failure there.
	b.start = func() {
		if st != nil {
			st.SetIntegrator(b.TreeID, sqlite.Integrator{Integrate: seq.integrateIn, Appended: seq.kick})
		}
		wg.Go(func() { seq.run(seqCtx, b.TreeID) })
	}
	return b, nil
}

// openMySQL opens Trillian's MySQL database and checks that Trillian's
// schema is there, returning how many trees its tables hold.
func openMySQL(ctx context.Context, dsn string) (*sql.DB, int, error) {
	db, err := mysql.OpenDB(dsn)
	if err != nil {
		return nil, 0, fmt.Errorf("backend: opening MySQL for Trillian: %w", err)
	}
	var n int
	err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM Trees`).Scan(&n)
	if err != nil {
		db.Close()
		if isNoSuchTable(err) {
			return nil, 0, fmt.Errorf("backend: %w", ErrNoTrillianSchema)
		}
		return nil, 0, fmt.Errorf("backend: MySQL for Trillian: %w", err)
	}
	return db, n, nil
}

// isNoSuchTable reports whether err is MySQL's ER_NO_SUCH_TABLE.
func isNoSuchTable(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == 1146
}
