package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/storage"
	"github.com/google/trillian/util/clock"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidentlog/evident/internal/testdb"
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

// FuzzOpen opens arbitrary bytes as a storage file, with and without the
// integrity check: Open must return an error or a working storage, never
// panic or hang. On a file that opens, reads, queueing and a sequencer run
// (dequeue, sequence, tiles, root) must work or fail with a clear error:
// SQLite's report of damage always comes out as ErrCorrupt.
func FuzzOpen(f *testing.F) {
	goodPath := makeStore(f)
	good, err := os.ReadFile(goodPath)
	if err != nil {
		f.Fatal(err)
	}
	damaged := filepath.Join(f.TempDir(), "damaged.db")
	if err := os.WriteFile(damaged, good, 0o600); err != nil {
		f.Fatal(err)
	}
	damageTables(f, damaged)
	bad, err := os.ReadFile(damaged)
	if err != nil {
		f.Fatal(err)
	}
	for _, check := range []bool{true, false} {
		f.Add(good, check)
		f.Add(bad, check)
		f.Add(good[:100], check)
		f.Add(good[:4096], check)
		f.Add([]byte{}, check)
		f.Add([]byte("SQLite format 3\x00"), check)
	}
	f.Fuzz(func(t *testing.T, content []byte, check bool) {
		// Not t.TempDir(): the names of seed subtests ("seed#0") put a
		// '#' in it, which Open refuses before it reads anything.
		dir, err := os.MkdirTemp("", "fuzzopen")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		path := filepath.Join(dir, "trillian.db")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(t.Context(), path, Config{CheckIntegrity: check})
		if err != nil {
			if strings.Contains(err.Error(), "not allowed") {
				t.Fatalf("Open refused the path, not the content: %v", err)
			}
			return
		}
		defer s.Close()
		clear := func(what string, err error) {
			t.Helper()
			if err == nil {
				return
			}
			t.Logf("%s on fuzzed file: %v", what, err)
			if msg := err.Error(); (strings.Contains(msg, "malformed") || strings.Contains(msg, "not a database")) &&
				!strings.Contains(msg, ErrCorrupt.Error()) {
				t.Errorf("%s: SQLite's report of damage is not ErrCorrupt: %v", what, err)
			}
		}
		ls := s.LogStorage()
		ids, err := ls.GetActiveLogIDs(t.Context())
		clear("GetActiveLogIDs", err)
		for _, id := range ids[:min(len(ids), 2)] {
			tree, err := storage.GetTree(t.Context(), s.AdminStorage(), id)
			clear("GetTree", err)
			if err != nil {
				continue
			}
			_, err = ls.QueueLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(14, 1)}, fakeTime)
			clear("QueueLeaves", err)
			log.InitMetrics(nil)
			_, err = log.IntegrateBatch(t.Context(), tree, 50, 0, 0, clock.System, ls, quota.Noop())
			clear("IntegrateBatch", err)
		}
	})
}

// damageTables makes the root pages of leaf_data's three indexes invalid
// b-tree pages.
func damageTables(t testing.TB, path string) {
	t.Helper()
	// The indexes only: Open reads the table's last rows (the leaves not
	// yet in leaf_identities), and the calls below must meet the damage.
	if pages := testdb.DamageSQLiteIndexes(t, path, "leaf_data"); len(pages) != 3 {
		t.Fatalf("leaf_data index root pages %v; want 3", pages)
	}
}

// TestCorruptAfterOpen opens a file whose leaf pages are damaged without the
// integrity check: the damage surfaces on first use, and every call that
// meets it fails with ErrCorrupt (gRPC DataLoss), never with a success or
// an unexplained SQLite error; the first one is logged. With the integrity
// check, Open refuses the file.
func TestCorruptAfterOpen(t *testing.T) {
	path := makeStore(t)
	damageTables(t, path)
	if s, err := Open(t.Context(), path, Config{CheckIntegrity: true}); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open with the integrity check: %v, want ErrCorrupt", err)
	}
	var logged bytes.Buffer
	s, err := Open(t.Context(), path, Config{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatalf("Open without the integrity check: %v", err)
	}
	defer s.Close()
	ls := s.LogStorage()
	ids, err := ls.GetActiveLogIDs(t.Context())
	if err != nil || len(ids) != 1 {
		t.Fatalf("GetActiveLogIDs = %v, %v", ids, err)
	}
	tree, err := storage.GetTree(t.Context(), s.AdminStorage(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"QueueLeaves": func() error {
			_, err := ls.QueueLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(11, 1)}, fakeTime)
			return err
		},
		"DequeueLeaves": func() error {
			return ls.ReadWriteTransaction(t.Context(), tree, func(ctx context.Context, tx storage.LogTreeTX) error {
				_, err := tx.DequeueLeaves(ctx, 10, time.Now())
				return err
			})
		},
		"GetLeavesByHash": func() error {
			tx, err := ls.SnapshotForTree(t.Context(), tree)
			if err != nil {
				return err
			}
			defer tx.Close()
			_, err = tx.GetLeavesByHash(t.Context(), [][]byte{newLeaf(9, 1).MerkleLeafHash}, false)
			return err
		},
		"HardDeleteTree": func() error {
			if _, err := storage.SoftDeleteTree(t.Context(), s.AdminStorage(), tree.TreeId); err != nil {
				return err
			}
			return storage.HardDeleteTree(t.Context(), s.AdminStorage(), tree.TreeId)
		},
	}
	for name, call := range calls {
		err := call()
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrCorrupt) || status.Code(err) != codes.DataLoss {
			t.Errorf("%s on a damaged file: %v, want ErrCorrupt (DataLoss)", name, err)
		}
	}
	if n := strings.Count(logged.String(), "damaged"); n != 1 {
		t.Errorf("logged %d reports of damage, want 1:\n%s", n, logged.String())
	}
}

// TestSchema3MovesTo4: a version 3 file (which stored the partial bottom
// tile) opens, and is marked version 4, so that an older binary, which
// would look for that tile, refuses it rather than fail on it.
func TestSchema3MovesTo4(t *testing.T) {
	path := makeStore(t)
	s, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.wconn.ExecContext(t.Context(), "PRAGMA user_version = 3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(t.Context(), path, Config{}); err != nil {
		t.Fatalf("Open of a version 3 file: %v", err)
	}
	defer s.Close()
	var version int
	if err := s.rdb.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != 4 {
		t.Errorf("version %d after Open (%v), want 4", version, err)
	}
}
