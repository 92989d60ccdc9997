package main

import (
	"context"
	"database/sql"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/evidentlog/evident/checkpoint"
)

// runCheckBinary runs "evident-server check" on dir and returns its exit
// code and output.
func runCheckBinary(t *testing.T, dir string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "check", "--data_dir", dir).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestCheck checks a stopped log's store offline: a good one passes; a
// changed byte in one stored entry's value is found and named; a changed
// entry together with its stored leaf hash is found by the root of the
// published checkpoint that covers it; a changed stored tile is named.
func TestCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	client := &http.Client{Timeout: 30 * time.Second}
	const n = 260 // a full tile and a partial one of width 4
	for i := range n {
		query, want := "?wait=false", http.StatusAccepted
		if i == n-1 {
			query, want = "", http.StatusOK // a receipt: a checkpoint covers it
		}
		if code, r, err := s.add(client, []byte(strings.Repeat("entry ", 5)+string(rune('a'+i))), query); err != nil || code != want {
			t.Fatalf("add: %d %v %v", code, r.Error, err)
		}
	}
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	code, out := runCheckBinary(t, dir)
	if code != 0 || !strings.Contains(out, "OK: 260 entries") {
		t.Fatalf("check of a good store: exit %d\n%s", code, out)
	}

	// A changed byte in a stored tile: a full entry bundle and a full
	// hash tile. (Partial level-0 tiles are not stored: the entries are
	// checked against the roots.)
	sdb, err := sql.Open("sqlite", filepath.Join(dir, stateDB))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	for _, tc := range []struct {
		level int
		name  string
		idx   int
	}{{-1, "tile/entries/000 (width 256)", 0}, {0, "tile/0/000 (width 256)", 0}} {
		var data []byte
		if err := sdb.QueryRow(`SELECT data FROM tiles WHERE level = ? AND idx = ?`, tc.level, tc.idx).Scan(&data); err != nil {
			t.Fatalf("reading tile %s: %v", tc.name, err)
		}
		bad := append([]byte(nil), data...)
		bad[len(bad)-1] ^= 1
		if _, err := sdb.Exec(`UPDATE tiles SET data = ? WHERE level = ? AND idx = ?`, bad, tc.level, tc.idx); err != nil {
			t.Fatal(err)
		}
		code, out = runCheckBinary(t, dir)
		if code != 1 || !strings.Contains(out, "the stored tile "+tc.name+" differs") {
			t.Errorf("check with %s changed: exit %d, want 1 naming it\n%s", tc.name, code, out)
		}
		if _, err := sdb.Exec(`UPDATE tiles SET data = ? WHERE level = ? AND idx = ?`, data, tc.level, tc.idx); err != nil {
			t.Fatal(err)
		}
	}
	if code, out := runCheckBinary(t, dir); code != 0 {
		t.Fatalf("check after the tiles' repair: exit %d\n%s", code, out)
	}

	db, err := sql.Open("sqlite", filepath.Join(dir, treeDB))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	// A changed value: its stored leaf hash no longer matches.
	exec(`UPDATE leaf_data SET leaf_value = CAST('entry entry entry entry entry X' AS BLOB) WHERE sequence_number = 7`)
	code, out = runCheckBinary(t, dir)
	if code != 1 || !strings.Contains(out, "DAMAGED: damage found: entry 7: its value does not hash to its stored leaf hash") {
		t.Errorf("check with entry 7 changed: exit %d, want 1 naming entry 7\n%s", code, out)
	}
	// The value and its leaf hash both changed: the roots tell.
	exec(`UPDATE leaf_data SET merkle_leaf_hash = ?, leaf_identity_hash = ? WHERE sequence_number = 7`,
		leafHashOf("entry entry entry entry entry X"), leafHashOf("entry entry entry entry entry X"))
	code, out = runCheckBinary(t, dir)
	if code != 1 || !strings.Contains(out, "but the published checkpoint of size") || !strings.Contains(out, "an entry below") {
		t.Errorf("check with entry 7 and its hash changed: exit %d, want 1 from a root mismatch\n%s", code, out)
	}
	// A missing data directory is a usage error, not damage.
	if code, out := runCheckBinary(t, filepath.Join(t.TempDir(), "none")); code != 2 {
		t.Errorf("check of a missing directory: exit %d, want 2\n%s", code, out)
	}
}

func leafHashOf(s string) []byte {
	h := checkpoint.LeafHash([]byte(s))
	return h[:]
}
