// Package storage holds Evident's own state, beside the Merkle tree that
// Trillian keeps: the checkpoints the log has published, the checkpoints it
// signed and showed witnesses before publishing, the hashes of write
// tokens, tenants and their API keys (and, on a server with several logs,
// which tenant may use which named log), small settings, and a witness's
// per-log state and evidence.
//
// One small SQL layer serves two engines: an SQLite file in the data
// directory (the embedded default) and MySQL/MariaDB (production). Both are
// reached through database/sql with "?" placeholders; the few statements that
// differ between the dialects are chosen by [DB.Dialect]. The schema is
// created on open and is versioned: a database written by a newer Evident is
// refused rather than misread.
//
// Subpackages hold the rest of "where data lives": storage/sqlite is a
// Trillian storage provider on SQLite, and storage/backend opens Trillian
// in-process (on SQLite or MySQL) or remotely.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // MySQL/MariaDB driver, for OpenMySQL.
	_ "modernc.org/sqlite"             // Pure-Go SQLite driver, for OpenSQLite.
)

// Dialect names the SQL engine behind a DB.
type Dialect string

// The dialects a DB can speak.
const (
	SQLite Dialect = "sqlite"
	MySQL  Dialect = "mysql"
)

// SchemaVersion is the version of the schema this code writes and reads.
// Version 2 added signed_checkpoints, version 3 events, version 4 tiles
// (tiles, tiled, tile_leaves), version 5 tenants (tenants, api_keys,
// auth_generation, tenant_entries, ops_records), version 6 log_grants
// (tenants' grants of a server's named logs); version 7 stores no partial
// level-0 tiles (the right edge's hash tile and entry bundle, made from the
// entries), which older versions read; opening an older database adds the
// missing tables (every CREATE is idempotent) and the default tenant, and
// keeps all data.
const SchemaVersion = 7

// DefaultBusyTimeout is how long an SQLite write waits for another writer
// before it fails.
const DefaultBusyTimeout = 10 * time.Second

// ErrNewerSchema is returned by the Open functions when the database was
// written by a newer version of Evident. Upgrade Evident; do not downgrade a
// database.
var ErrNewerSchema = errors.New("database schema is newer than this version of Evident")

// DB is Evident's own state database.
type DB struct {
	db      *sql.DB
	dialect Dialect
	// tiles is the pool PutTiles writes with: on SQLite a second pool of
	// the same file whose connections commit without waiting for the disk
	// (see PutTiles), so that no round sets and resets the pragma; on
	// MySQL db itself.
	tiles *sql.DB

	stmtsMu sync.RWMutex
	stmts   map[stmtKey]*sql.Stmt // see stmt
}

// OpenSQLite opens (creating if needed, mode 0600) the SQLite database at
// path, in WAL mode with full synchronous commits, so that a write that
// returned success survives a crash of the process or the machine.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening state database: %w", err)
	}
	f.Close()
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(" + fmt.Sprint(DefaultBusyTimeout.Milliseconds()) + ")" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)" +
		// Reads (tiles, entry bundles of up to 16 MiB) from the mapped file,
		// not with a read system call per page.
		"&_pragma=mmap_size(1073741824)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening state database %s: %w", path, err)
	}
	d, err := open(ctx, db, SQLite, path)
	if err != nil {
		return nil, err
	}
	if d.tiles, err = sql.Open("sqlite", strings.Replace(dsn, "synchronous(FULL)", "synchronous(NORMAL)", 1)); err != nil {
		d.Close()
		return nil, fmt.Errorf("opening state database %s: %w", path, err)
	}
	d.tiles.SetMaxIdleConns(1)
	return d, nil
}

// OpenMySQL opens the MySQL/MariaDB database named by dsn (in
// go-sql-driver/mysql form, e.g. "user:pass@tcp(127.0.0.1:3306)/evident").
func OpenMySQL(ctx context.Context, dsn string) (*DB, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening state database: bad MySQL DSN: %w", err)
	}
	return open(ctx, db, MySQL, "MySQL")
}

// MaxIdleConns is how many idle connections a DB keeps for reuse. Reads
// of tiles and leaf indexes come from many requests at once; the default
// of database/sql (2) made most of them open, configure and close a
// connection of their own (a third of a receipt's CPU with 64 readers).
const MaxIdleConns = 256

func open(ctx context.Context, db *sql.DB, d Dialect, what string) (*DB, error) {
	db.SetMaxIdleConns(MaxIdleConns)
	s := &DB{db: db, dialect: d, tiles: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %s: %w", what, err)
	}
	return s, nil
}

// migrate creates the schema if it is missing and refuses newer schemas.
func (d *DB) migrate(ctx context.Context) error {
	if _, err := d.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("not a usable database: %w", err)
	}
	var v int
	err := d.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("reading schema version: %w", err)
	case v > SchemaVersion:
		return fmt.Errorf("version %d, this build knows %d: %w", v, SchemaVersion, ErrNewerSchema)
	case v == SchemaVersion:
		return nil
	}
	for _, stmt := range schema(d.dialect) {
		if _, err := d.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("creating schema: %w", err)
		}
	}
	if err := d.seedTenants(ctx); err != nil {
		return err
	}
	if _, err := d.db.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
		return fmt.Errorf("writing schema version: %w", err)
	}
	if _, err := d.db.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, SchemaVersion); err != nil {
		return fmt.Errorf("writing schema version: %w", err)
	}
	return nil
}

// Dialect reports which SQL engine d speaks.
func (d *DB) Dialect() Dialect { return d.dialect }

// SQL returns the underlying database handle, for the query methods of this
// package's other files and for tests.
func (d *DB) SQL() *sql.DB { return d.db }

// Close closes the database.
func (d *DB) Close() error {
	d.stmtsMu.Lock()
	for _, st := range d.stmts {
		st.Close()
	}
	d.stmts = nil
	d.stmtsMu.Unlock()
	if d.tiles != nil && d.tiles != d.db {
		d.tiles.Close()
	}
	return d.db.Close()
}

// stmt returns query prepared on d, preparing it at its first use: the
// statements of every receipt and every publishing round are parsed once,
// not at each call (in the pure-Go SQLite that parse cost a round ~25 µs;
// on MySQL a prepared statement saves round trips). database/sql prepares
// it again on each connection that runs it, once.
func (d *DB) stmt(query string) (*sql.Stmt, error) {
	return d.stmtOn(d.db, query)
}

// stmtOn is stmt on db, d.db or d.tiles.
func (d *DB) stmtOn(db *sql.DB, query string) (*sql.Stmt, error) {
	k := stmtKey{db, query}
	d.stmtsMu.RLock()
	st, ok := d.stmts[k]
	d.stmtsMu.RUnlock()
	if ok {
		return st, nil // the receipts' path: many readers at once
	}
	d.stmtsMu.Lock()
	defer d.stmtsMu.Unlock()
	if st, ok := d.stmts[k]; ok {
		return st, nil
	}
	st, err := db.Prepare(query)
	if err != nil {
		return nil, err
	}
	if d.stmts == nil {
		d.stmts = make(map[stmtKey]*sql.Stmt)
	}
	d.stmts[k] = st
	return st, nil
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// isDuplicate reports whether err is a primary-key or unique violation, in
// either dialect.
func isDuplicate(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || // SQLite
		strings.Contains(s, "constraint failed: PRIMARY KEY") ||
		strings.Contains(s, "Error 1062") // MySQL ER_DUP_ENTRY
}
