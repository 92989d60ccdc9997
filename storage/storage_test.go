package storage

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/internal/testdb"
)

// eachDB runs f on a fresh SQLite file and on a fresh MariaDB database (the
// latter skips visibly without EVIDENT_MYSQL_DSN).
func eachDB(t *testing.T, f func(t *testing.T, db *DB)) {
	t.Run("sqlite", func(t *testing.T) { f(t, openTestSQLite(t)) })
	t.Run("mysql", func(t *testing.T) {
		db, err := OpenMySQL(t.Context(), testdb.MySQL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		f(t, db)
	})
}

// openTestSQLite opens a new SQLite state database in a temporary
// directory, closed when tb ends.
func openTestSQLite(tb testing.TB) *DB {
	tb.Helper()
	db, err := OpenSQLite(tb.Context(), filepath.Join(tb.TempDir(), "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestOpenCreatesSchema(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		for _, table := range []string{"settings", "checkpoints", "signed_checkpoints", "write_tokens", "witness_state", "witness_evidence"} {
			var n int
			if err := db.SQL().QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
				t.Errorf("table %s: %v", table, err)
			} else if n != 0 {
				t.Errorf("table %s has %d rows, want 0", table, n)
			}
		}
		var v int
		if err := db.SQL().QueryRowContext(t.Context(), "SELECT version FROM schema_version").Scan(&v); err != nil || v != SchemaVersion {
			t.Errorf("schema version = %d, %v; want %d", v, err, SchemaVersion)
		}
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().Exec("INSERT INTO settings (name, value) VALUES ('k', 'v')"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	if err := db.SQL().QueryRow("SELECT value FROM settings WHERE name = 'k'").Scan(&got); err != nil || got != "v" {
		t.Errorf("after reopen: value = %q, %v; want \"v\"", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode = %o, want 600", perm)
	}
}

// TestMigrateFromVersion1 opens a database as version 1 left it (no
// signed_checkpoints) and checks that migrating adds the table and keeps the
// data.
func TestMigrateFromVersion1(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if err := db.AddCheckpoint(ctx, "o", 1, []byte("note"), time.UnixMilli(1)); err != nil {
			t.Fatal(err)
		}
		for _, stmt := range []string{"DROP TABLE signed_checkpoints", "UPDATE schema_version SET version = 1"} {
			if _, err := db.SQL().ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.migrate(ctx); err != nil {
			t.Fatalf("migrating from version 1: %v", err)
		}
		var n, v int
		if err := db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM signed_checkpoints").Scan(&n); err != nil {
			t.Errorf("signed_checkpoints after migrating: %v", err)
		}
		if err := db.SQL().QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&v); err != nil || v != SchemaVersion {
			t.Errorf("schema version = %d, %v; want %d", v, err, SchemaVersion)
		}
		if c, err := db.Checkpoint(ctx, "o", 1); err != nil || string(c.Note) != "note" {
			t.Errorf("checkpoint after migrating: %v, %v", c, err)
		}
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		if _, err := db.SQL().Exec("UPDATE schema_version SET version = ?", SchemaVersion+1); err != nil {
			t.Fatal(err)
		}
		err := db.migrate(t.Context())
		if !errors.Is(err, ErrNewerSchema) {
			t.Errorf("migrate over a newer schema: err = %v, want ErrNewerSchema", err)
		}
	})
}

func TestOpenBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database\n", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path string }{
		{"garbage", garbage},
		{"missing dir", filepath.Join(dir, "no", "such", "dir", "state.db")},
		{"directory", dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := OpenSQLite(context.Background(), tc.path)
			if err == nil {
				db.Close()
				t.Fatalf("OpenSQLite(%s) succeeded, want an error", tc.path)
			}
		})
	}
}

func TestIsDuplicate(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ins := func() error {
			_, err := db.SQL().Exec("INSERT INTO checkpoints (origin, size, note, published_at) VALUES ('o', 1, ?, 0)", []byte("n"))
			return err
		}
		if err := ins(); err != nil {
			t.Fatal(err)
		}
		err := ins()
		if !isDuplicate(err) {
			t.Errorf("second insert of one key: isDuplicate(%v) = false", err)
		}
		if isDuplicate(sql.ErrNoRows) {
			t.Error("isDuplicate(sql.ErrNoRows) = true")
		}
	})
}
