// Package backend opens the Trillian log that holds an Evident log's entries
// and Merkle tree, and hands the personality Trillian's own client interfaces
// ([trillian.TrillianLogClient], [trillian.TrillianAdminClient]) whichever
// way Trillian runs:
//
//   - in-process on SQLite files (storage/sqlite), the default;
//   - in-process on MySQL/MariaDB through Trillian's storage/mysql, whose
//     schema (storage/mysql/schema/storage.sql in the Trillian module) the
//     operator loads once (see [ErrNoTrillianSchema]);
//   - remotely, over gRPC, to a stock trillian_log_server with a given tree.
//
// In-process, a new log's tree is a PREORDERED_LOG tree that the backend
// appends to (each leaf written once, at the next position, deduplicated
// by identity hash without leaving a gap: sqlite.Storage.AppendLeaves on
// SQLite, appendMySQL's multi-row statements on Trillian's MySQL schema),
// and Trillian's sequencer integrates it as it comes (on SQLite in the
// same transaction as the append: see sqlite.Storage.SetIntegrator, so an
// append returns with its leaves in the tree); a LOG tree (created
// by earlier versions, or through a remote Trillian) is written through
// Trillian's queue. A Trillian that only queues refuses a PREORDERED_LOG
// tree.
//
// In-process, the wiring follows Trillian's own testonly/integration log
// environment: an extension.Registry, the log RPC server and the admin
// server called directly (no socket, no gRPC marshalling), and a sequencer
// that runs Trillian's own integration (log.IntegrateBatch) as soon as
// leaves are queued, up to [Config.BatchSize] at a time and batch after
// batch until the queue is empty, instead of on a fixed tick. Each batch
// that grows the tree wakes whoever waits on [Backend.Grown] (the log's
// publisher), so that no entry waits out a timer on its way to a
// checkpoint.
//
// On SQLite, New first reads the whole file (SQLite's quick_check, see
// [Config.SkipIntegrityCheck]) and refuses a damaged one.
//
// On first start in-process, New creates the log's tree (CreateTree and
// InitLog) and remembers its ID in the state database's settings, so later
// starts reuse it.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/monitoring"
	"github.com/google/trillian/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/evidentlog/evident/storage"
)

// Defaults for Config.
const (
	// DefaultBatchSize is the most leaves the sequencer integrates per run.
	DefaultBatchSize = 2000
	// DefaultConnectTimeout is how long New waits for a remote Trillian.
	DefaultConnectTimeout = 30 * time.Second
)

// TreeIDSetting is the name of the setting (in the state database) that
// holds the Trillian tree ID of an in-process log, in decimal.
const TreeIDSetting = "trillian_tree_id"

// ErrNoTrillianSchema is returned by New in MySQL mode when the database
// lacks Trillian's tables. Load Trillian's schema once, for example:
//
//	mariadb evident < "$(go list -m -f '{{.Dir}}' github.com/google/trillian)/storage/mysql/schema/storage.sql"
var ErrNoTrillianSchema = errors.New("the database has no Trillian schema: load storage/mysql/schema/storage.sql from the Trillian module (github.com/google/trillian) into it once")

// ErrStateLost is returned by New when Config.ExistingLog is set, the state
// database records no tree, and Trillian already holds a log tree with
// entries: the state database was lost or replaced, and creating a new tree
// would start a second history under the same key, a fork. Restore the
// state database from a backup (docs/deployment.md).
var ErrStateLost = errors.New("the state database records no Trillian tree, but Trillian holds a log tree with entries")

// Config says where Trillian runs. Exactly one of SQLitePath, MySQLDSN and
// Addr is set.
type Config struct {
	// SQLitePath is the SQLite database file of an in-process Trillian
	// (created if missing).
	SQLitePath string
	// SkipIntegrityCheck skips SQLite's PRAGMA quick_check when New opens
	// SQLitePath. The check reads the whole file, so that New refuses a
	// damaged file (sqlite.ErrCorrupt) instead of serving from it. On the
	// 2-core machine of docs/performance.md it took 0.2 s for 100,000
	// leaves (50 MB) and 1 s for 1,000,000 (502 MB) from the page cache,
	// 1-1.4 s and 10-11 s from disk. Damage found later fails the calls
	// that meet it with sqlite.ErrCorrupt (see the storage/sqlite package
	// doc for what neither finds).
	SkipIntegrityCheck bool
	// MySQLDSN is the go-sql-driver/mysql DSN of the database of an
	// in-process Trillian on Trillian's own MySQL storage.
	MySQLDSN string
	// Addr is host:port of a remote Trillian log server (gRPC, plaintext).
	// With TreeID zero, the tree recorded in State is used, or one is
	// created there through Trillian's admin API and recorded.
	Addr string

	// ConnectTimeout is how long New waits for a remote Trillian to accept a
	// connection (DefaultConnectTimeout when zero).
	ConnectTimeout time.Duration

	// TreeID is the Trillian tree of the log. Zero means the tree recorded
	// in State (created on first start).
	TreeID int64
	// ExistingLog says that the log already exists (its key was there
	// before this start): a tree ID missing from State then means a lost
	// state database, and New refuses to create a tree beside a non-empty
	// one (ErrStateLost) instead of forking the log.
	ExistingLog bool
	// AdoptTree, with ExistingLog, makes New use the one log tree with
	// entries that Trillian holds when State records none, instead of
	// refusing (ErrStateLost), without recording it: the state database
	// is being rebuilt (evident-server --rebuild_state, which checks the
	// tree against the witnesses' checkpoints and then records it).
	// Several such trees are an error; name the right one with TreeID.
	AdoptTree bool
	// State is the state database in which the log remembers its tree ID.
	// Required in-process, and remotely when TreeID is zero.
	State *storage.DB

	// NoSequencer, in-process, opens Trillian without starting the
	// sequencer: for reading a log's tree offline (evident-server check)
	// without changing it.
	NoSequencer bool
	// BatchSize is the most leaves the in-process sequencer integrates per
	// run (DefaultBatchSize when zero).
	BatchSize int
	// SequencerInterval, when positive, makes the in-process sequencer
	// also look for queued leaves this often. Leaves queued through this
	// process are integrated at once without it; it is only for leaves
	// that another process queued in the same tree. Zero: never poll.
	SequencerInterval time.Duration
	// MetricFactory receives Trillian's metrics; nil discards them.
	// Trillian's monitoring/prometheus factory registers with the global
	// Prometheus registry, so pass it at most once per process.
	MetricFactory monitoring.MetricFactory
	// Logger receives what the backend has to say; nil means slog.Default().
	Logger *slog.Logger

	// memory, for this package's tests only, runs Trillian in-process on
	// its memory storage.
	memory bool
}

// Backend is an open Trillian log.
type Backend struct {
	// Log is the client of the log's Trillian tree.
	Log trillian.TrillianLogClient
	// Admin is the client of Trillian's admin API.
	Admin trillian.TrillianAdminClient
	// TreeID is the log's Trillian tree.
	TreeID int64
	// Grown, in-process, returns a channel that is closed when the tree
	// next grows (taken before looking at the tree, it misses no growth).
	// It is nil for a remote Trillian, whose growth must be polled.
	Grown func() <-chan struct{}
	// Root, in-process, returns the size and root hash of the tree as this
	// process's sequencer last stored them (ok false before its first
	// integration). Trillian's word, like GetLatestSignedLogRoot's, without
	// a read; another process integrating the same tree can make it older
	// than the latest. Nil for a remote Trillian.
	Root func() (size uint64, hash [32]byte, ok bool)
	// LeafHashes, in-process, returns the Merkle leaf hashes of the leaves
	// [start, end) as the sequencer integrated them, if it still holds
	// them all (it keeps at least the latest 32,768). They are Trillian's word:
	// check them against the tree's root. Nil for a remote Trillian.
	LeafHashes func(start, end uint64) ([][32]byte, bool)
	// Leaves, in-process, returns the leaves [start, end) (index, hashes,
	// value, extra data, timestamps) if the sequencer still holds them all:
	// leaves that this process queued and integrated lately. Nil for a
	// remote Trillian. Like LeafHashes, they are not yet checked against
	// the tree's root.
	Leaves func(start, end uint64) ([]*trillian.LogLeaf, bool)
	// QueueBatch, in-process, queues leaves in one call to Trillian's
	// storage (one durable commit), as QueueLeaf queues one: per leaf, in
	// order, the queued leaf, with status AlreadyExists for a duplicate
	// (the same LeafIdentityHash). Each leaf gives its LeafValue, and may
	// give its Merkle leaf hash (QueueBatch computes it when missing: the
	// caller that gives it vouches for it, and the log's tiler checks it
	// against the entry anyway), its LeafIdentityHash (default: its Merkle
	// leaf hash) and ExtraData. Nil for a remote Trillian.
	QueueBatch func(ctx context.Context, leaves []*trillian.LogLeaf) ([]*trillian.QueuedLogLeaf, error)

	// LeafIndex, in-process, returns the lowest index of a sequenced leaf
	// with the given Merkle leaf hash from Trillian's own index, without a
	// proof (ok false: no such leaf). Trillian's word: a receipt built on
	// it is verified against a signed root. Nil for a remote Trillian.
	LeafIndex func(ctx context.Context, hash [32]byte) (index uint64, ok bool, err error)

	// appends: in-process on a storage that appends to PREORDERED_LOG
	// trees itself, so that new trees are of that type.
	appends bool
	healthy func(context.Context) error
	start   func()
	stop    func() error
	once    sync.Once
	err     error
}

// New opens Trillian as cfg says and, in-process, starts the sequencer and
// creates the log's tree if it has none yet.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.MetricFactory == nil {
		cfg.MetricFactory = monitoring.InertMetricFactory{}
	}
	n := 0
	for _, set := range []bool{cfg.SQLitePath != "", cfg.MySQLDSN != "", cfg.Addr != "", cfg.memory} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("backend: set exactly one of SQLitePath, MySQLDSN and Addr")
	}
	if cfg.Addr != "" {
		return newRemote(ctx, cfg)
	}
	if cfg.State == nil {
		return nil, errors.New("backend: an in-process Trillian needs the state database (Config.State)")
	}
	b, err := newInProcess(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := b.ensureTree(ctx, cfg); err != nil {
		b.Close()
		return nil, err
	}
	if !cfg.NoSequencer {
		b.start()
	}
	return b, nil
}

// Healthy reports whether Trillian's storage answers.
func (b *Backend) Healthy(ctx context.Context) error { return b.healthy(ctx) }

// Close stops the sequencer and closes Trillian's storage or connection.
// In-flight calls should have finished.
func (b *Backend) Close() error {
	b.once.Do(func() { b.err = b.stop() })
	return b.err
}

// ensureTree sets b.TreeID: the configured one, the one recorded in the
// state database, or a new tree, created, initialized and then recorded.
func (b *Backend) ensureTree(ctx context.Context, cfg Config) error {
	if cfg.TreeID != 0 {
		b.TreeID = cfg.TreeID
		return b.checkTree(ctx)
	}
	v, err := cfg.State.Setting(ctx, TreeIDSetting)
	switch {
	case err == nil:
		id, perr := strconv.ParseInt(string(v), 10, 64)
		if perr != nil || id <= 0 {
			return fmt.Errorf("backend: setting %s holds %q, not a tree ID", TreeIDSetting, v)
		}
		b.TreeID = id
		return b.checkTree(ctx)
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("backend: %w", err)
	}
	if cfg.ExistingLog && cfg.AdoptTree {
		return b.adoptTree(ctx, cfg)
	}
	if cfg.ExistingLog {
		if err := b.checkNoOtherLog(ctx); err != nil {
			return err
		}
	}
	treeType := trillian.TreeType_LOG
	if b.appends {
		treeType = trillian.TreeType_PREORDERED_LOG
	}
	tree, err := b.Admin.CreateTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeState:       trillian.TreeState_ACTIVE,
		TreeType:        treeType,
		DisplayName:     "evident",
		Description:     "Evident log entries",
		MaxRootDuration: durationpb.New(0),
	}})
	if err != nil {
		return fmt.Errorf("backend: creating the log's Trillian tree: %w", err)
	}
	if _, err := b.Log.InitLog(ctx, &trillian.InitLogRequest{LogId: tree.TreeId}); err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("backend: initializing Trillian tree %d: %w", tree.TreeId, err)
	}
	// A concurrent first start may have recorded another tree: both then
	// use the one recorded first (the other stays empty).
	v, err = cfg.State.SetSettingOnce(ctx, TreeIDSetting, []byte(strconv.FormatInt(tree.TreeId, 10)))
	if err != nil {
		return fmt.Errorf("backend: recording tree ID: %w", err)
	}
	if b.TreeID, err = strconv.ParseInt(string(v), 10, 64); err != nil {
		return fmt.Errorf("backend: setting %s holds %q, not a tree ID", TreeIDSetting, v)
	}
	cfg.Logger.Info("created the log's Trillian tree", "tree_id", b.TreeID)
	return nil
}

// adoptTree records as the log's tree the one log tree with entries that
// Trillian holds (see Config.AdoptTree).
func (b *Backend) adoptTree(ctx context.Context, cfg Config) error {
	trees, err := b.nonEmptyTrees(ctx)
	if err != nil {
		return err
	}
	switch len(trees) {
	case 0:
		return errors.New("backend: rebuilding the state database: Trillian holds no log tree with entries, so there is nothing to rebuild from")
	case 1:
	default:
		var ids []string
		for _, t := range trees {
			ids = append(ids, strconv.FormatInt(t.id, 10))
		}
		return fmt.Errorf("backend: rebuilding the state database: Trillian holds %d log trees with entries (%s); name the log's with --tree_id", len(trees), strings.Join(ids, ", "))
	}
	b.TreeID = trees[0].id
	cfg.Logger.Warn("rebuilding the state database: using Trillian's only log tree with entries", "tree_id", b.TreeID)
	return b.checkTree(ctx)
}

// tree is a Trillian log tree and its size.
type tree struct {
	id   int64
	size uint64
}

// nonEmptyTrees returns Trillian's log trees with entries.
func (b *Backend) nonEmptyTrees(ctx context.Context) ([]tree, error) {
	resp, err := b.Admin.ListTrees(ctx, &trillian.ListTreesRequest{})
	if err != nil {
		return nil, fmt.Errorf("backend: listing Trillian's trees: %w", err)
	}
	var trees []tree
	for _, t := range resp.GetTree() {
		if t.TreeType != trillian.TreeType_LOG && t.TreeType != trillian.TreeType_PREORDERED_LOG {
			continue
		}
		r, err := b.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: t.TreeId})
		if err != nil {
			continue // not initialized: no entries
		}
		var root types.LogRootV1
		if err := root.UnmarshalBinary(r.GetSignedLogRoot().GetLogRoot()); err != nil {
			return nil, fmt.Errorf("backend: root of Trillian tree %d: %w", t.TreeId, err)
		}
		if root.TreeSize > 0 {
			trees = append(trees, tree{t.TreeId, root.TreeSize})
		}
	}
	return trees, nil
}

// checkNoOtherLog fails with ErrStateLost if Trillian holds a log tree with
// entries. An empty one is what a first start that stopped between creating
// its tree and recording it leaves behind: harmless.
func (b *Backend) checkNoOtherLog(ctx context.Context) error {
	trees, err := b.nonEmptyTrees(ctx)
	if err != nil || len(trees) == 0 {
		return err
	}
	return fmt.Errorf("backend: %w (tree %d, %d entries)", ErrStateLost, trees[0].id, trees[0].size)
}

// checkTree checks that b.TreeID names an active log tree.
func (b *Backend) checkTree(ctx context.Context) error {
	tree, err := b.Admin.GetTree(ctx, &trillian.GetTreeRequest{TreeId: b.TreeID})
	if err != nil {
		return fmt.Errorf("backend: Trillian tree %d: %w", b.TreeID, err)
	}
	switch {
	case tree.TreeState != trillian.TreeState_ACTIVE:
		return fmt.Errorf("backend: Trillian tree %d is in state %v, want ACTIVE", b.TreeID, tree.TreeState)
	case tree.TreeType == trillian.TreeType_PREORDERED_LOG && !b.appends:
		return fmt.Errorf("backend: Trillian tree %d is a PREORDERED_LOG tree, which only evident-server's in-process Trillian (on SQLite or --mysql_dsn) can add to; this Trillian queues leaves, and needs a LOG tree", b.TreeID)
	case tree.TreeType != trillian.TreeType_LOG && tree.TreeType != trillian.TreeType_PREORDERED_LOG:
		return fmt.Errorf("backend: Trillian tree %d is a %v tree, want a LOG", b.TreeID, tree.TreeType)
	}
	return nil
}
