package main

import (
	"database/sql"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/storage/backend"
)

// TestMySQLMode runs the binary with --mysql_dsn: Trillian in-process on
// MariaDB through Trillian's storage/mysql, and the state in MariaDB.
func TestMySQLMode(t *testing.T) {
	dsn := testdb.MySQL(t)
	dir := filepath.Join(t.TempDir(), "data")

	// Without Trillian's schema the server refuses to start, and says why.
	cmd := exec.Command(binary, "--data_dir", dir, "--listen", "127.0.0.1:0", "--mysql_dsn", dsn)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "storage.sql") {
		t.Errorf("start on a database without Trillian's schema: %v\n%s", err, out)
	}

	loadTrillianSchema(t, dsn)
	s := startServer(t, dir, "--mysql_dsn", dsn)
	client := &http.Client{Timeout: 30 * time.Second}
	code, r, err := s.add(client, []byte("on mariadb"), "")
	if err != nil || code != 200 || r.Index != 0 {
		t.Fatalf("add: %d %+v %v\n%s", code, r, err, s.Stderr())
	}
	if err := s.terminate(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}

	// The DSN from a file, which keeps a password out of the process list.
	dsnPath := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(dsnPath, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dir, "--mysql_dsn_file", dsnPath)
	if c := s.checkpoint(); c.Size != 1 {
		t.Errorf("after restart: size %d, want 1", c.Size)
	}
	code, r, err = s.add(client, []byte("again on mariadb"), "")
	if err != nil || code != 200 || r.Index != 1 {
		t.Errorf("add after restart: %d %+v %v", code, r, err)
	}
	if err := s.terminate(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}

	// The store checks out offline (evident-server check on MariaDB).
	if out, err := exec.Command(binary, "check", "--data_dir", dir, "--mysql_dsn", dsn).CombinedOutput(); err != nil || !strings.Contains(string(out), "OK: 2 entries") {
		t.Errorf("evident-server check on MariaDB: %v\n%s", err, out)
	}
	// A changed value in MariaDB is found and named (exit 1), and the
	// restored one checks out again.
	tdb, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer tdb.Close()
	damage := func(q string) {
		t.Helper()
		if _, err := tdb.ExecContext(t.Context(), q, s.Lines["tree"]); err != nil {
			t.Fatal(err)
		}
	}
	damage(`UPDATE LeafData SET LeafValue = 'on mariadX' WHERE TreeId = ? AND LeafValue = 'on mariadb'`)
	out, err := exec.Command(binary, "check", "--data_dir", dir, "--mysql_dsn", dsn).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "DAMAGED") || !strings.Contains(string(out), "entry 0: its value does not hash to its stored leaf hash") {
		t.Errorf("evident-server check on MariaDB with entry 0 changed: %v, want exit 1 naming entry 0\n%s", err, out)
	}
	damage(`UPDATE LeafData SET LeafValue = 'on mariadb' WHERE TreeId = ? AND LeafValue = 'on mariadX'`)
	if out, err := exec.Command(binary, "check", "--data_dir", dir, "--mysql_dsn", dsn).CombinedOutput(); err != nil {
		t.Errorf("evident-server check on MariaDB after the repair: %v\n%s", err, out)
	}

	// Without its key, the log in MariaDB is not made a new log: the data
	// directory holds no database, but the state database records the tree.
	if err := os.Remove(filepath.Join(dir, keyFile)); err != nil {
		t.Fatal(err)
	}
	out2 := runFails(t, 1, []string{dsnEnv + "=" + dsn}, "--data_dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(out2, "state database records") || !strings.Contains(out2, "Restore log.key") {
		t.Errorf("start on MariaDB without %s: want a refusal with advice:\n%s", keyFile, out2)
	}
	if _, err := os.Stat(filepath.Join(dir, keyFile)); err == nil {
		t.Errorf("start on MariaDB without %s created a new key", keyFile)
	}

	// Nor when the state database no longer records the tree but holds the
	// log's checkpoints.
	state, err := storage.OpenMySQL(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	if _, err := state.SQL().ExecContext(t.Context(), `DELETE FROM settings WHERE name = ?`, backend.TreeIDSetting); err != nil {
		t.Fatal(err)
	}
	dir2 := filepath.Join(t.TempDir(), "data")
	out2 = runFails(t, 1, []string{dsnEnv + "=" + dsn}, "--data_dir", dir2, "--listen", "127.0.0.1:0", "--tree_id", s.Lines["tree"])
	if !strings.Contains(out2, "published checkpoints") || !strings.Contains(out2, "Restore log.key") {
		t.Errorf("a new key on a state database holding checkpoints: want a refusal with advice:\n%s", out2)
	}

	// Nor does a new key take over the tree when it is named with --tree_id
	// and the state database holds nothing of it.
	if _, err := state.SQL().ExecContext(t.Context(), `DELETE FROM checkpoints`); err != nil {
		t.Fatal(err)
	}
	out2 = runFails(t, 1, []string{dsnEnv + "=" + dsn}, "--data_dir", dir2, "--listen", "127.0.0.1:0", "--tree_id", s.Lines["tree"])
	if !strings.Contains(out2, "already holds 2 entries") {
		t.Errorf("a new key on --tree_id %s, a tree with entries: want a refusal:\n%s", s.Lines["tree"], out2)
	}
	if _, err := os.Stat(filepath.Join(dir2, keyFile)); err == nil {
		t.Errorf("a new key on --tree_id %s, a tree with entries, was written", s.Lines["tree"])
	}
}
