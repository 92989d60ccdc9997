package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
)

// makeStore creates a storage file holding one initialized tree with a few
// queued leaves, closes it and returns its path.
func makeStore(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trillian.db")
	s, err := Open(context.Background(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	tree := newInitializedTree(t, s)
	var leaves []*trillian.LogLeaf
	for i := range 500 {
		leaves = append(leaves, newLeaf(9, uint64(i)))
	}
	if _, err := s.LogStorage().QueueLeaves(context.Background(), tree, leaves, fakeTime); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trillian.db")
	s, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %v, want 0600", p, got)
		}
	}
	var mode string
	if err := s.wconn.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var sync int
	if err := s.wconn.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Errorf("synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := makeStore(t)
	s, err := Open(t.Context(), path, Config{CheckIntegrity: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.rdb.QueryRow("SELECT count(*) FROM leaf_data WHERE sequence_number IS NULL").Scan(&n); err != nil || n != 500 {
		t.Errorf("queued leaves after reopen = %d, %v; want 500", n, err)
	}
}

// TestOpenBadFiles checks that bad files and paths give a clear error at
// Open, never a panic, and are left as they were.
func TestOpenBadFiles(t *testing.T) {
	good, err := os.ReadFile(makeStore(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(good) < 8192 {
		t.Fatalf("test store is only %d bytes", len(good))
	}
	flipped := bytes.Clone(good)
	for i := 4096; i < 4096+8; i++ { // damage the b-tree header of the second page
		flipped[i] ^= 0x5a
	}
	newer := newerSchemaFile(t)
	otherDB := otherDatabase(t)

	tests := []struct {
		name      string
		content   []byte // written to the file; nil: see setup
		setup     func(dir string) string
		cfg       Config
		wantErr   error
		wantInMsg string
	}{
		{name: "garbage", content: bytes.Repeat([]byte("not a database "), 1000), wantErr: ErrCorrupt},
		{name: "truncated header", content: good[:50], wantErr: ErrCorrupt},
		{name: "truncated half", content: good[:len(good)/2], wantErr: ErrCorrupt},
		{name: "truncated one page", content: good[:4096], wantErr: ErrCorrupt},
		{name: "damaged page with integrity check", content: flipped, cfg: Config{CheckIntegrity: true}, wantErr: ErrCorrupt},
		{name: "newer schema", content: newer, wantErr: ErrSchemaTooNew},
		{name: "other database", content: otherDB, wantErr: ErrNotStorage},
		{name: "missing directory", setup: func(dir string) string { return filepath.Join(dir, "nope", "trillian.db") }, wantInMsg: "create it first"},
		{name: "path is a directory", setup: func(dir string) string { return dir }, wantInMsg: "not a regular file"},
		{name: "parent is a file", setup: func(dir string) string {
			p := filepath.Join(dir, "file")
			os.WriteFile(p, []byte("x"), 0o600)
			return filepath.Join(p, "trillian.db")
		}, wantInMsg: "not a directory"},
		{name: "question mark", setup: func(dir string) string { return filepath.Join(dir, "a?b.db") }, wantInMsg: "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "trillian.db")
			if tc.setup != nil {
				path = tc.setup(dir)
			} else if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(t.Context(), path, tc.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded, want an error")
			}
			t.Logf("Open: %v", err)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Open error %q is not %q", err, tc.wantErr)
			}
			if tc.wantInMsg != "" && !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Errorf("Open error %q does not contain %q", err, tc.wantInMsg)
			}
			if tc.content != nil {
				got, err := os.ReadFile(path)
				if err != nil || !bytes.Equal(got, tc.content) {
					t.Errorf("Open changed the file (%v)", err)
				}
			}
		})
	}
}

// newerSchemaFile returns a storage file whose schema version is one more
// than this code knows.
func newerSchemaFile(t *testing.T) []byte {
	t.Helper()
	path := makeStore(t)
	s, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.wconn.ExecContext(t.Context(), fmt.Sprintf("PRAGMA user_version = %d", schemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// otherDatabase returns an SQLite file with a table of someone else's.
func otherDatabase(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenTwice checks that a second Storage cannot open a file in use, and
// can once the first is closed.
func TestOpenTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trillian.db")
	s, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(t.Context(), path, Config{}); !errors.Is(err, ErrInUse) {
		if err == nil {
			s2.Close()
		}
		t.Errorf("second Open = %v, want ErrInUse", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s.Close()
}

// TestClosed checks that calls after Close fail with ErrClosed.
func TestClosed(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "trillian.db"), Config{})
	if err != nil {
		t.Fatal(err)
	}
	tree := newInitializedTree(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ls := s.LogStorage()
	if _, err := ls.QueueLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(1, 1)}, fakeTime); !errors.Is(err, ErrClosed) {
		t.Errorf("QueueLeaves after Close: %v, want ErrClosed", err)
	}
	if err := ls.ReadWriteTransaction(t.Context(), tree, func(context.Context, storage.LogTreeTX) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadWriteTransaction after Close: %v, want ErrClosed", err)
	}
	if _, err := ls.SnapshotForTree(t.Context(), tree); !errors.Is(err, ErrClosed) {
		t.Errorf("SnapshotForTree after Close: %v, want ErrClosed", err)
	}
}

// FuzzOpen opens arbitrary bytes as a storage file: Open must return an
// error or a working storage, never panic or hang.
func FuzzOpen(f *testing.F) {
	good, err := os.ReadFile(makeStore(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:100])
	f.Add(good[:4096])
	f.Add([]byte{})
	f.Add([]byte("SQLite format 3\x00"))
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "trillian.db")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(t.Context(), path, Config{CheckIntegrity: true})
		if err != nil {
			return
		}
		defer s.Close()
		// A file that opens must answer reads without panicking.
		if _, err := s.LogStorage().GetActiveLogIDs(t.Context()); err != nil {
			t.Logf("GetActiveLogIDs on fuzzed file: %v", err)
		}
	})
}
