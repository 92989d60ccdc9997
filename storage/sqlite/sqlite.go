// Package sqlite is a durable Trillian storage provider on SQLite: it keeps
// Trillian LOG and PREORDERED_LOG trees (admin data, the queue of
// unsequenced leaves, sequenced leaves, Merkle tiles and signed tree heads)
// in one SQLite file, through the pure-Go driver modernc.org/sqlite.
//
// Open returns a *Storage whose LogStorage and AdminStorage implement
// Trillian's storage.LogStorage and storage.AdminStorage; put them in an
// extension.Registry to run Trillian's log server and sequencer in-process.
// The provider passes Trillian's own conformance suites
// (storage/testonly.AdminStorageTester and
// integration/storagetest.RunLogStorageTests) and end-to-end suite
// (integration.RunLogIntegration).
//
// # Durability
//
// The file is in WAL mode with synchronous=FULL: every write transaction is
// in the write-ahead log and fsynced before the call that made it returns
// success. A QueueLeaves, AddSequencedLeaves, ReadWriteTransaction or admin
// write that returned nil survives a crash of the process or of the machine
// (given storage that honours fsync). A call that returned an error wrote
// nothing, except when its context ended while it waited for a group commit:
// then the leaves may or may not have been queued, and queueing them again is
// safe because duplicates are detected by LeafIdentityHash.
//
// # Concurrency
//
// SQLite has one writer at a time; this package serializes writers in Go so
// that "database is locked" never reaches a caller. A write waits its turn
// for at most Config.WriteLockTimeout (or until its context ends) and then
// fails with ErrWriteTimeout. Reads (snapshots, GetActiveLogIDs) run on a
// separate pool of read-only connections and see a consistent snapshot of
// the last committed state; they never wait for writers, but may wait for
// one of the Config.MaxReadConns connections while that many reads are in
// progress (until their context ends).
//
// QueueLeaves calls that arrive while a write is in progress are coalesced:
// one goroutine commits the waiting requests, up to Config.MaxQueueBatch
// leaves, in a single transaction with a single fsync, and each caller gets
// its own per-leaf results. This group commit is what makes durable
// queueing fast: with many concurrent callers the cost of an fsync is
// shared. A request that fails fails only its own caller: the transaction
// is rolled back and the others are written again without it. If COMMIT
// fails, every caller in it gets the error.
//
// A QueueLeaves waits at most Config.WriteLockTimeout from its call for its
// turn, like any write: each request has its own deadline, requests that
// arrive while the committer waits for the lock join its batch, and a
// request whose deadline passes fails alone, saying how long it waited.
//
// The write-ahead log is copied into the database file by a background
// checkpoint every 100 ms, off the commit path.
//
// # Pre-ordered trees
//
// [Storage.AppendLeaves] is QueueLeaves for a PREORDERED_LOG tree whose
// positions this Storage assigns: each new leaf is written once, at the
// tree's next position, in the same group commit as queued leaves, and
// Trillian's sequencer integrates it without a queue (DequeueLeaves of
// such a tree reads sequenced leaves from the tree's size). Duplicates are
// found by identity hash as below and take no position, so the tree never
// has a gap. Trillian's own AddSequencedLeaves, with positions chosen by
// the caller, works too.
//
// # Duplicates
//
// As in Trillian's MySQL provider, leaves are unique per tree by
// LeafIdentityHash. Queueing an identity that is already stored returns
// status AlreadyExists with the stored leaf (value, extra data, queue
// timestamp, Merkle leaf hash, and, once it is sequenced, its LeafIndex and
// integrate timestamp; LeafIndex is -1 while it is still queued). A later
// duplicate in the same group commit gets the earlier one's leaf.
// Duplicates are found through the identity index, whose keys are held
// in memory until they are merged, many at a time and in key order, into
// its table (identity.go); both parts are consulted, so no duplicate is
// missed, also after a crash.
//
// # Crashes
//
// After a crash, Open recovers the write-ahead log: every committed
// transaction is present and no uncommitted one is. The sequencer's work is
// one transaction (dequeue, sequence, tiles, new tree head), so the stored
// tree head always matches the stored leaves and tiles, and the tree size
// never goes backwards (StoreSignedLogRoot refuses a smaller tree). The
// tests kill a process that queues and sequences with SIGKILL at random
// moments and check exactly this; a power loss is covered by the fsyncs of
// synchronous=FULL, which those tests cannot exercise.
//
// # Limits
//
//   - One Storage per file at a time: Open takes an exclusive flock on the
//     file and fails with ErrInUse while another Storage, in this process or
//     another, has it open (on Unix; elsewhere that is up to the caller).
//   - Hashes are SHA-256 (RFC 6962); LeafIdentityHash and MerkleLeafHash must
//     be 32 bytes.
//   - Log root metadata is not supported (as in the MySQL provider);
//     Tree.StorageSettings must be nil.
//   - GetLeavesByRange returns at most MaxLeavesPerRange leaves per call.
//   - Disk: about 500 bytes per 256-byte leaf (50 MB for 100,000 leaves),
//     plus the write-ahead log beside the file. The log grows while readers
//     or the sequencer hold old snapshots and checkpoints cannot catch up:
//     with 256 callers queueing 100,000 leaves while the sequencer ran, it
//     peaked at 84 MB beside the 50 MB database, and at 138 MB when readers
//     ran as well. A writer that starts the log again from its beginning
//     cuts it back to 64 MiB (journal_size_limit), and once nothing has
//     been written for a checkpoint interval (100 ms) it is truncated to
//     zero bytes. Keep room for the database, a log of a few hundred MB
//     under heavy load, and a copy for backups.
//   - Throughput is bound by one writer. The identity hash index is kept
//     off the commit path (identity.go): about 17 µs an appended leaf in
//     BenchmarkAppendIdentityIndex, against 36 µs with a page of the index
//     written per leaf by each commit. Trillian's log server uses the
//     Merkle leaf hash as the identity hash unless the personality sets
//     one; a personality that sets a different one pays a page write per
//     leaf in the Merkle hash index. Figures are in docs/performance.md.
//   - Memory: the identities not yet merged (a merge starts at 32,768;
//     up to ~131,072 while appends outrun it, when the group commit takes
//     bigger merge steps), those of the last merge (for older snapshots),
//     ~100 bytes each, and a Bloom filter of the merged ones (1.5 bytes a key,
//     6 MiB at least). Open reads the leaf rows above the merged mark, so
//     damage there is found at Open; the filter is built in the
//     background by a scan of the identity table.
//
// # Damage
//
// SQLite keeps no checksums. Config.CheckIntegrity makes Open run PRAGMA
// quick_check, which reads every page and finds structural damage anywhere
// in the file (malformed pages, broken b-trees, a bad free list), though not
// index entries that disagree with their rows. On the 2-core machine of
// docs/performance.md it took 0.17-0.22 s on a file of 100,000 leaves
// (50 MB) and 0.93-1.13 s on one of 1,000,000 leaves (502 MB) with the file
// in the page cache, and 1.0-1.4 s and 9.7-10.8 s from disk; Open without it
// takes about 1 ms (BenchmarkOpenIntegrityCheck). storage/backend runs it
// by default. Without it, structural damage in pages that Open does not read
// is found by the first call that reads them, and every call that meets
// damage fails with ErrCorrupt (gRPC DataLoss; the first one is also logged).
// Damage inside a record that leaves its page well-formed (a changed byte
// in a leaf value, a hash or a tile) is found by neither: only recomputing
// the tree's roots from its leaves finds it, as the crash test's checker
// does and as a log auditor does when it checks every entry's inclusion
// under a signed checkpoint.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/trillian/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// Defaults for the zero fields of Config.
const (
	// DefaultWriteLockTimeout is how long a write waits for its turn.
	DefaultWriteLockTimeout = 30 * time.Second
	// DefaultMaxQueueBatch is the most leaves one group commit writes.
	DefaultMaxQueueBatch = 8192
	// DefaultMaxReadConns is the size of the read-only connection pool.
	DefaultMaxReadConns = 4
)

// MaxLeavesPerRange is the most leaves GetLeavesByRange returns in one call;
// callers ask again for the rest.
const MaxLeavesPerRange = 1 << 16

// Config configures Open. The zero value is ready to use.
type Config struct {
	// Logger receives warnings the provider cannot return to a caller (for
	// example a failed rollback). Nil discards them.
	Logger *slog.Logger
	// WriteLockTimeout bounds how long a write transaction waits for the
	// single writer slot before failing with ErrWriteTimeout. It is also
	// SQLite's busy timeout. Zero means DefaultWriteLockTimeout.
	WriteLockTimeout time.Duration
	// MaxQueueBatch is the most leaves that one group commit of QueueLeaves
	// requests writes in a transaction. A single request larger than this is
	// still written whole. Zero means DefaultMaxQueueBatch.
	MaxQueueBatch int
	// MaxReadConns is the number of read-only connections. Zero means
	// DefaultMaxReadConns.
	MaxReadConns int
	// CheckIntegrity makes Open run SQLite's PRAGMA quick_check, which reads
	// the whole file: slow on large files, but it finds damage anywhere.
	CheckIntegrity bool

	// ackBeforeCommit, for tests only, makes group commit answer callers,
	// then wait this long, then commit: the deliberately broken variant that
	// the crash test must catch.
	ackBeforeCommit time.Duration
	// identityMergeRows and identityMergeChunk, for tests, are how many
	// pending identities start a merge and how many one of its
	// transactions inserts. Zero means the constants of the same names.
	identityMergeRows, identityMergeChunk int
	// identityFilterKeys, for tests, is the smallest capacity of the
	// identity filter. Zero means minFilterKeys.
	identityFilterKeys int
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.WriteLockTimeout <= 0 {
		c.WriteLockTimeout = DefaultWriteLockTimeout
	}
	if c.MaxQueueBatch <= 0 {
		c.MaxQueueBatch = DefaultMaxQueueBatch
	}
	if c.MaxReadConns <= 0 {
		c.MaxReadConns = DefaultMaxReadConns
	}
	if c.identityMergeRows <= 0 {
		c.identityMergeRows = identityMergeRows
	}
	if c.identityMergeChunk <= 0 {
		c.identityMergeChunk = identityMergeChunk
	}
	if c.identityFilterKeys <= 0 {
		c.identityFilterKeys = minFilterKeys
	}
	return c
}

var (
	// ErrWriteTimeout is returned (wrapped) when a write waited
	// Config.WriteLockTimeout for its turn. Its gRPC code is Unavailable:
	// the caller may retry later.
	ErrWriteTimeout = status.Error(codes.Unavailable, "sqlite storage: timed out waiting for the write lock")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = status.Error(codes.Unavailable, "sqlite storage: closed")
	// ErrSchemaTooNew is returned by Open when the file was written by a
	// newer version of this package. Run the newer program; do not
	// downgrade a database.
	ErrSchemaTooNew = errors.New("sqlite storage: database schema is newer than this program supports")
	// ErrNotStorage is returned by Open when the file is an SQLite database
	// that was not created by this package.
	ErrNotStorage = errors.New("sqlite storage: file is not an Evident Trillian storage database")
	// ErrInUse is returned by Open when another Storage, in this process or
	// another, has the file open. Close that one first.
	ErrInUse = errors.New("sqlite storage: database file is in use by another Storage")
	// ErrCorrupt is returned (wrapped with SQLite's own error) by Open when
	// the file is not a database, is truncated or is damaged, and by any
	// later call that meets damage SQLite detects (a malformed page); those
	// later errors have the gRPC code DataLoss. Retrying does not help: stop,
	// and restore the file from a backup.
	ErrCorrupt = errors.New("sqlite storage: database file is corrupt or not a database")
)

// Storage is an open SQLite file holding Trillian trees. It is safe for
// concurrent use.
type Storage struct {
	cfg  Config
	log  *slog.Logger
	path string
	lock *os.File // holds the flock that keeps other Storages out

	wdb   *sql.DB
	w     *stmtConn // the single write connection; use only with the write lock
	wconn *sql.Conn
	wsem  chan struct{} // the write lock: holding a token means owning w
	rdb   *sql.DB
	cdb   *sql.DB // the checkpointer's connection
	// written wakes the checkpointer after a commit (buffered, 1).
	written chan struct{}

	queue  chan *queueReq
	integ  integrators
	edge   edgeTiles // guarded by the write lock
	ids    identities
	filter *identityFilter
	// mergeWake wakes identityMerger (buffered, 1).
	mergeWake chan struct{}
	// groupCommits counts the transactions the committer ran, and pending
	// the requests sent to it and not yet answered; for tests.
	groupCommits atomic.Int64
	pending      atomic.Int64
	closing      chan struct{}
	closed       atomic.Bool
	corruptSeen  atomic.Bool  // a damaged file was reported (and logged) after Open
	sendMu       sync.RWMutex // held for reading while sending to queue
	once         sync.Once
	wg           sync.WaitGroup
}

// Open opens the storage file at path, creating it (mode 0600) and its
// schema if it does not exist. The directory must exist and be writable:
// SQLite creates the -wal and -shm files next to the database file. It
// fails with a clear error, never a panic, if the file or its directory is
// not writable (naming which), is not a database, is damaged or truncated
// (ErrCorrupt), was created by something else (ErrNotStorage), or has a
// newer schema (ErrSchemaTooNew).
func Open(ctx context.Context, path string, cfg Config) (*Storage, error) {
	cfg = cfg.withDefaults()
	if err := prepareFile(path); err != nil {
		return nil, err
	}
	s := &Storage{
		cfg:       cfg,
		log:       cfg.Logger,
		path:      path,
		wsem:      make(chan struct{}, 1),
		queue:     make(chan *queueReq, 4096),
		closing:   make(chan struct{}),
		written:   make(chan struct{}, 1),
		mergeWake: make(chan struct{}, 1),
		filter:    newIdentityFilter(cfg.identityFilterKeys),
	}
	s.ids.filter = s.filter
	var err error
	if s.lock, err = lockFile(path); err != nil {
		return nil, err
	}
	if err := s.open(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	s.wg.Add(4)
	go s.committer()
	go s.checkpointer()
	go s.identityMerger()
	go s.filterBuilder()
	s.wakeMerger()
	return s, nil
}

// prepareFile checks the path and creates the file with mode 0600, so that
// SQLite (which gives the -wal and -shm files the same mode) does not create
// it world-readable.
func prepareFile(path string) error {
	if path == "" {
		return errors.New("sqlite storage: empty path")
	}
	if strings.ContainsAny(path, "?#") {
		return fmt.Errorf("sqlite storage: path %q: '?' and '#' are not allowed", path)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("sqlite storage: directory of %s: %w (create it first)", path, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("sqlite storage: %s is not a directory", dir)
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return fmt.Errorf("sqlite storage: %s is not a regular file", path)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("sqlite storage: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite storage: creating %s: %w", path, err)
	}
	return f.Close()
}

func (s *Storage) open(ctx context.Context) error {
	busy := s.cfg.WriteLockTimeout.Milliseconds()
	// journal_mode is set by checkSchema, once the file is known to be ours:
	// it is a persistent change that a foreign file must not get.
	// The write connection checkpoints only as a backstop (the WAL beyond
	// 20,000 pages): checkpointer does it in the background.
	// temp_store(MEMORY) keeps the sub-journal, where SQLite saves each
	// page's old content the first time a savepoint changes it (every
	// group-committed request has one), in memory instead of a temporary
	// file: one pwrite per page less. It holds no committed data.
	wdsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=synchronous(FULL)&_pragma=cache_size(-65536)&_pragma=wal_autocheckpoint(20000)&_pragma=journal_size_limit(%d)&_pragma=temp_store(MEMORY)", s.path, busy, walSizeLimit)
	var err error
	if s.wdb, err = sql.Open("sqlite", wdsn); err != nil {
		return fmt.Errorf("sqlite storage: opening %s: %w", s.path, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	if s.wconn, err = s.wdb.Conn(ctx); err != nil {
		return s.openErr(err)
	}
	s.w = newStmtConn(s.wconn.PrepareContext)
	if err := s.checkSchema(ctx); err != nil {
		return err
	}
	if s.cfg.CheckIntegrity {
		if err := s.quickCheck(ctx); err != nil {
			return err
		}
	}
	if err := s.loadIdentities(ctx); err != nil {
		return err
	}
	rdsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=query_only(1)&_pragma=cache_size(-16384)", s.path, busy)
	if s.rdb, err = sql.Open("sqlite", rdsn); err != nil {
		return fmt.Errorf("sqlite storage: opening %s: %w", s.path, err)
	}
	s.rdb.SetMaxOpenConns(s.cfg.MaxReadConns)
	s.rdb.SetMaxIdleConns(s.cfg.MaxReadConns)
	if _, err := s.rdb.ExecContext(ctx, "SELECT count(*) FROM trees"); err != nil {
		return s.openErr(err)
	}
	// The checkpointer never waits: with no busy timeout, a checkpoint that
	// would have to wait for a reader or the writer does what it can and
	// reports busy, and is tried again at the next tick.
	cdsn := fmt.Sprintf("%s?_pragma=busy_timeout(0)&_pragma=synchronous(FULL)&_pragma=journal_size_limit(%d)", s.path, walSizeLimit)
	if s.cdb, err = sql.Open("sqlite", cdsn); err != nil {
		return fmt.Errorf("sqlite storage: opening %s: %w", s.path, err)
	}
	s.cdb.SetMaxOpenConns(1)
	return nil
}

// checkpointInterval is how often checkpointer copies committed pages from
// the write-ahead log into the database file.
const checkpointInterval = 100 * time.Millisecond

// walSizeLimit is SQLite's journal_size_limit: when a writer starts the
// write-ahead log again from its beginning, a longer file is cut to this
// size.
const walSizeLimit = 64 << 20

// checkpointer copies the write-ahead log into the database file in the
// background (PRAGMA wal_checkpoint(PASSIVE) on its own connection), so
// that commits do not pay for it. It runs every checkpointInterval while
// writes come (commitWrite wakes it); when nothing was written for a tick
// and everything is copied, it truncates the log to zero bytes
// (wal_checkpoint(TRUNCATE), which gives up rather than wait for a reader)
// and sleeps until the next write: an idle store costs nothing.
// Durability does not depend on it: a commit is durable once its WAL frames
// are fsynced.
func (s *Storage) checkpointer() {
	defer s.wg.Done()
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	lastFrames := int64(-1)
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		var busy, frames, copied int64
		if err := s.cdb.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
			s.log.Warn("sqlite storage: checkpoint failed", "path", s.path, "err", err)
			continue
		}
		idle := frames == copied && frames == lastFrames
		lastFrames = frames
		if !idle {
			continue
		}
		if frames > 0 {
			if err := s.cdb.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &copied); err != nil {
				s.log.Warn("sqlite storage: truncating checkpoint failed", "path", s.path, "err", err)
				continue
			}
			if busy != 0 {
				continue // a reader held it: try again next tick
			}
		}
		// Idle: wait for the next write.
		t.Stop()
		select {
		case <-s.closing:
			return
		case <-s.written:
		}
		lastFrames = -1
		t.Reset(checkpointInterval)
	}
}

// openErr turns an error met while opening into one that says what is
// wrong with the file.
func (s *Storage) openErr(err error) error {
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3lib.SQLITE_CORRUPT, sqlite3lib.SQLITE_NOTADB:
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, s.path, err)
		case sqlite3lib.SQLITE_CANTOPEN, sqlite3lib.SQLITE_READONLY, sqlite3lib.SQLITE_PERM:
			// SQLite says "unable to open" or "readonly" without saying
			// what: most often the directory, where it creates -wal and
			// -shm next to the file.
			dir := filepath.Dir(s.path)
			if derr := dirWritable(dir); derr != nil {
				return fmt.Errorf("sqlite storage: opening %s: the directory %s must be writable, SQLite creates %s-wal and %s-shm there (%v): %w",
					s.path, dir, filepath.Base(s.path), filepath.Base(s.path), derr, err)
			}
			return fmt.Errorf("sqlite storage: opening %s: check that it and its -wal and -shm files are readable and writable: %w", s.path, err)
		}
	}
	return fmt.Errorf("sqlite storage: opening %s: %w", s.path, err)
}

// isCorrupt reports whether err is SQLite's report of a damaged file.
func isCorrupt(err error) bool {
	var se *sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3lib.SQLITE_CORRUPT, sqlite3lib.SQLITE_NOTADB:
		return true
	}
	return false
}

// markCorrupt wraps *errp as ErrCorrupt when it is SQLite's report of a
// damaged file, met after Open, and logs the first such error: Trillian's
// sequencer reports the errors of its runs only to its own (klog) output,
// and a damaged file needs the operator.
func (s *Storage) markCorrupt(errp *error) {
	err := *errp
	if err == nil || !isCorrupt(err) || errors.Is(err, ErrCorrupt) {
		return
	}
	*errp = dataLossError{fmt.Errorf("%w: %s: %w", ErrCorrupt, s.path, err)}
	if s.corruptSeen.CompareAndSwap(false, true) {
		s.log.Error("sqlite storage: the database file is damaged; stop the server and restore the file from a backup", "path", s.path, "err", err)
	}
}

// dataLossError gives an ErrCorrupt met after Open the gRPC code DataLoss.
type dataLossError struct{ error }

func (e dataLossError) Unwrap() error { return e.error }

func (e dataLossError) GRPCStatus() *status.Status { return status.New(codes.DataLoss, e.Error()) }

func (s *Storage) quickCheck(ctx context.Context) error {
	rows, err := s.wconn.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return s.openErr(err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return s.openErr(err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return s.openErr(err)
	}
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], "...")
		}
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, s.path, strings.Join(problems, "; "))
	}
	return nil
}

// LogStorage returns the Trillian log storage for an extension.Registry.
func (s *Storage) LogStorage() storage.LogStorage { return &logStorage{s: s} }

// AdminStorage returns the Trillian admin storage for an extension.Registry.
func (s *Storage) AdminStorage() storage.AdminStorage { return &adminStorage{s: s} }

// Close stops the group committer (failing queued requests that were not
// yet written with ErrClosed), waits up to Config.WriteLockTimeout for the
// write in progress, and closes the file. Calls after Close fail with
// ErrClosed.
func (s *Storage) Close() error {
	var err error
	s.once.Do(func() {
		s.sendMu.Lock()
		s.closed.Store(true)
		close(s.closing)
		s.sendMu.Unlock()
		s.wg.Wait()
		t := time.NewTimer(s.cfg.WriteLockTimeout)
		defer t.Stop()
		select {
		case s.wsem <- struct{}{}:
		case <-t.C:
			s.log.Warn("sqlite storage: closing while a write transaction is still open", "path", s.path)
		}
		err = s.closeDBs()
	})
	return err
}

func (s *Storage) closeDBs() error {
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.close())
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.cdb != nil {
		errs = append(errs, s.cdb.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close()) // releases the flock, last
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite storage: closing %s: %w", s.path, err)
	}
	return nil
}

// lockWrite takes the single writer slot, waiting at most
// Config.WriteLockTimeout or until ctx ends.
func (s *Storage) lockWrite(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	select {
	case s.wsem <- struct{}{}:
	default:
		t := time.NewTimer(s.cfg.WriteLockTimeout)
		defer t.Stop()
		select {
		case s.wsem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("sqlite storage: waiting for the write lock: %w", ctx.Err())
		case <-t.C:
			return fmt.Errorf("%w (waited %v)", ErrWriteTimeout, s.cfg.WriteLockTimeout)
		case <-s.closing:
			return ErrClosed
		}
	}
	if s.closed.Load() {
		<-s.wsem
		return ErrClosed
	}
	return nil
}

func (s *Storage) unlockWrite() { <-s.wsem }

// beginWrite takes the write lock and starts a write transaction.
func (s *Storage) beginWrite(ctx context.Context) error {
	if err := s.lockWrite(ctx); err != nil {
		return err
	}
	if _, err := s.wconn.ExecContext(context.WithoutCancel(ctx), "BEGIN IMMEDIATE"); err != nil {
		s.unlockWrite()
		return fmt.Errorf("sqlite storage: begin: %w", err)
	}
	return nil
}

// commitWrite commits the write transaction and releases the write lock.
func (s *Storage) commitWrite() error {
	defer s.unlockWrite()
	if _, err := s.wconn.ExecContext(context.Background(), "COMMIT"); err != nil {
		s.rollback()
		return fmt.Errorf("sqlite storage: commit: %w", err)
	}
	s.edge.committed()
	if s.ids.committed() >= s.cfg.identityMergeRows {
		s.wakeMerger()
	}
	select {
	case s.written <- struct{}{}:
	default:
	}
	return nil
}

// rollbackWrite rolls back the write transaction and releases the write lock.
func (s *Storage) rollbackWrite() {
	s.rollback()
	s.unlockWrite()
}

func (s *Storage) rollback() {
	s.edge.rolledBack()
	s.ids.rolledBack()
	if _, err := s.wconn.ExecContext(context.Background(), "ROLLBACK"); err != nil && !strings.Contains(err.Error(), "no transaction is active") {
		s.log.Warn("sqlite storage: rollback failed", "path", s.path, "err", err)
	}
}
