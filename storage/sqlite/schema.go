package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// schemaSQL creates the tables of a new file.
//
//go:embed schema.sql
var schemaSQL string

const (
	// schemaVersion is the PRAGMA user_version this code writes and reads.
	// Version 1 existed only during development, and is refused. Version 2
	// indexed identity hashes in leaf_data itself; Open migrates it.
	// Version 3 stored the Merkle tree's partial bottom tile at every
	// integration, and its readers need it there; version 4 makes it from
	// the leaves (nodes.go), so a file written by this code must not be
	// opened by an older one: Open moves a version 3 file to 4 by its
	// number alone.
	schemaVersion = 4
	// applicationID marks our files (PRAGMA application_id): "EvTr".
	applicationID = 0x45765472
)

// checkSchema creates the schema in a new file, and refuses a file with a
// newer schema or one that another program created.
func (s *Storage) checkSchema(ctx context.Context) error {
	var appID, version, objects int64
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return s.openErr(err)
	}
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return s.openErr(err)
	}
	if err := s.wconn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&objects); err != nil {
		return s.openErr(err)
	}
	switch {
	case appID == applicationID && version == schemaVersion:
		return s.setWAL(ctx)
	case appID == applicationID && version == 3:
		if err := s.setWAL(ctx); err != nil {
			return err
		}
		return s.execAll(ctx, "moving the schema from version 3", fmt.Sprintf("PRAGMA user_version = %d", schemaVersion))
	case appID == applicationID && version == 2:
		if err := s.setWAL(ctx); err != nil {
			return err
		}
		return s.migrate2(ctx)
	case appID == applicationID && version > schemaVersion:
		return fmt.Errorf("%w: %s has schema version %d, this program knows up to %d", ErrSchemaTooNew, s.path, version, schemaVersion)
	case appID == applicationID:
		return fmt.Errorf("%w: %s has schema version %d, from a development build; this program reads only version %d", ErrNotStorage, s.path, version, schemaVersion)
	case appID != 0 || version != 0 || objects != 0:
		return fmt.Errorf("%w: %s (application_id %#x, user_version %d)", ErrNotStorage, s.path, appID, version)
	}
	if err := s.setWAL(ctx); err != nil {
		return err
	}
	return s.execAll(ctx, "creating the schema",
		schemaSQL,
		fmt.Sprintf("PRAGMA application_id = %d", applicationID),
		fmt.Sprintf("PRAGMA user_version = %d", schemaVersion),
	)
}

// execAll runs stmts in one write transaction, at Open.
func (s *Storage) execAll(ctx context.Context, what string, stmts ...string) error {
	if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return s.openErr(err)
	}
	for _, q := range append(stmts, "COMMIT") {
		if _, err := s.wconn.ExecContext(ctx, q); err != nil {
			s.rollback()
			return fmt.Errorf("%w (%s)", s.openErr(err), what)
		}
	}
	return nil
}

// migrate2 moves a version 2 file's identity index (leaf_data_identity) into
// leaf_identities, in one transaction: on a large file this reads every
// leaf's key once, in key order.
func (s *Storage) migrate2(ctx context.Context) error {
	start := time.Now()
	tables := schemaSQL[strings.Index(schemaSQL, "CREATE TABLE leaf_identities"):]
	err := s.execAll(ctx, "migrating the schema from version 2",
		tables,
		`INSERT INTO leaf_identities (tree_id, leaf_identity_hash, leaf_rowid)
			SELECT tree_id, leaf_identity_hash, rowid FROM leaf_data INDEXED BY leaf_data_identity
			ORDER BY tree_id, leaf_identity_hash`,
		advanceMergedSQL,
		`DROP INDEX leaf_data_identity`,
		fmt.Sprintf("PRAGMA user_version = %d", schemaVersion),
	)
	if err != nil {
		return err
	}
	s.log.Info("sqlite storage: migrated the schema from version 2 (identity index)", "path", s.path, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// setWAL puts the file in WAL mode (a persistent setting).
func (s *Storage) setWAL(ctx context.Context) error {
	var mode string
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return s.openErr(err)
	}
	if mode != "wal" {
		return fmt.Errorf("sqlite storage: %s: journal_mode is %q, could not set WAL", s.path, mode)
	}
	return nil
}

// stmtConn runs statements on one connection or transaction, preparing each
// distinct SQL text once and reusing it.
type stmtConn struct {
	prepare func(ctx context.Context, query string) (*sql.Stmt, error)
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
}

func newStmtConn(prepare func(ctx context.Context, query string) (*sql.Stmt, error)) *stmtConn {
	return &stmtConn{prepare: prepare, stmts: make(map[string]*sql.Stmt)}
}

func (c *stmtConn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st
	return st, nil
}

func (c *stmtConn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (c *stmtConn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a query expected to return at most one row; it returns
// sql.ErrNoRows when there is none.
func (c *stmtConn) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}

func (c *stmtConn) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	c.stmts = nil
	return errors.Join(errs...)
}
