package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/storage"
)

// runFails runs the binary with env added to the environment, expects it
// to exit with code want (within a minute: it is killed then), and returns
// its output.
func runFails(t *testing.T, want int, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != want {
		t.Errorf("evident-server %q: %v, want exit code %d\n%s", args, err, want, out)
	}
	return string(out)
}

// writeTokens returns the names of the write tokens in the state database
// of a stopped SQLite server, by hash.
func writeTokens(t *testing.T, dir string) map[storage.TokenHash]string {
	t.Helper()
	db, err := storage.OpenSQLite(t.Context(), filepath.Join(dir, stateDB))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list, err := db.Tokens(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[storage.TokenHash]string{}
	for _, tk := range list {
		got[tk.Hash] = tk.Name
	}
	return got
}

// TestRotateWriteToken deletes the token file and restarts: the old token
// is refused, the new one works, and a stale copy of the old one cannot
// come back.
func TestRotateWriteToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	client := &http.Client{Timeout: 30 * time.Second}
	s := startServer(t, dir)
	oldToken := s.token
	if code, r, err := s.add(client, []byte("before"), "?wait=false"); err != nil || code != 202 {
		t.Fatalf("add with the first token: %d %+v %v", code, r, err)
	}
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}

	tokenPath := filepath.Join(dir, tokenFile)
	if err := os.Remove(tokenPath); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dir)
	if s.token == oldToken || s.token == "" {
		t.Fatalf("after deleting %s the token is %q (old %q), want a new one", tokenFile, s.token, oldToken)
	}
	old := *s
	old.token = oldToken
	if code, r, err := old.add(client, []byte("with the old token"), "?wait=false"); err != nil || code != 401 {
		t.Errorf("add with the rotated-out token: %d %+v %v, want 401", code, r, err)
	}
	if code, r, err := s.add(client, []byte("with the new token"), "?wait=false"); err != nil || code != 202 {
		t.Errorf("add with the new token: %d %+v %v, want 202", code, r, err)
	}
	waitFor(t, s, func() bool { return strings.Contains(s.Stderr(), "write token rotated") }, "the rotation to be logged")
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	want := map[storage.TokenHash]string{storage.HashToken(s.token): tokenFile}
	got := writeTokens(t, dir)
	if len(got) != 1 || got[storage.HashToken(s.token)] != tokenFile {
		t.Errorf("stored tokens after rotation: %v, want only the new one %v", got, want)
	}

	// A stale copy of the old token (a server not yet given the new file,
	// a restored backup) is refused, and the new token stays.
	if err := os.WriteFile(tokenPath, []byte(oldToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(out, "rotation replaced") || strings.Contains(out, oldToken) {
		t.Errorf("start with a revoked token: want an explanation without the token:\n%s", out)
	}
	if got := writeTokens(t, dir); len(got) != 1 || got[storage.HashToken(s.token)] != tokenFile {
		t.Errorf("stored tokens after the refused start: %v, want only the new one", got)
	}
}

// TestLostKeyRefused removes the log's key from an existing log: the
// server refuses to start, says how to recover, and creates nothing.
func TestLostKeyRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, keyFile)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	for _, lose := range []string{"", stateDB} {
		if lose != "" {
			if err := os.Remove(filepath.Join(dir, lose)); err != nil {
				t.Fatal(err)
			}
		}
		out := runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0")
		if !strings.Contains(out, "Restore log.key") {
			t.Errorf("start without %s (and without %q): want advice to restore it:\n%s", keyFile, lose, out)
		}
		if _, err := os.Stat(keyPath); err == nil {
			t.Fatalf("start without %s (and without %q) created a new key", keyFile, lose)
		}
		if vk, err := os.ReadFile(filepath.Join(dir, vkeyFile)); err != nil || string(vk) != s.vkey+"\n" {
			t.Errorf("%s = %q, %v after the refused start, want the log's %q", vkeyFile, vk, err, s.vkey)
		}
	}
}

// TestLostStateRefused removes the state database of a log with entries,
// keeping its key and its Trillian tree: the server refuses to start (a new
// tree under the same key would fork the log), says how to recover, and
// starts again once the state database is restored.
func TestLostStateRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	client := &http.Client{Timeout: 30 * time.Second}
	if code, r, err := s.add(client, []byte("an entry before the loss"), ""); err != nil || code != 200 {
		t.Fatalf("add: %d %v %v", code, r.Error, err)
	}
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	backup := t.TempDir()
	for _, f := range []string{stateDB, stateDB + "-wal", stateDB + "-shm"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue // no -wal or -shm after a clean stop
		}
		if err := os.WriteFile(filepath.Join(backup, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, f))
	}
	out := runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(out, "does not record the log's tree") || !strings.Contains(out, "Restore it from a backup") || !strings.Contains(out, "1 entries") {
		t.Errorf("start without %s: want a refusal that says what is missing and how to restore it:\n%s", stateDB, out)
	}
	// Restored, the log starts and its entry is still there.
	for _, f := range []string{stateDB, stateDB + "-wal", stateDB + "-shm"} {
		os.Remove(filepath.Join(dir, f))
		if b, err := os.ReadFile(filepath.Join(backup, f)); err == nil {
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	s = startServer(t, dir)
	defer s.terminate()
	if cp := s.checkpoint(); cp.Size != 1 {
		t.Errorf("after restoring %s: checkpoint size %d, want 1", stateDB, cp.Size)
	}
}

// TestBadStartCreatesNothing runs the binary with a bad flag, file or
// address: it fails, and the data directory is not created.
func TestBadStartCreatesNothing(t *testing.T) {
	tmp := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	badPolicy := filepath.Join(tmp, "policy")
	if err := os.WriteFile(badPolicy, []byte("witness w1 not-a-key http://127.0.0.1:1\nquorum w1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		code int
		env  []string
		args []string
		want string
	}{
		{"busy port", 1, nil, []string{"--listen", busy.Addr().String()}, "address already in use"},
		{"bad origin", 2, nil, []string{"--origin", "bad origin+x"}, "--origin"},
		{"bad policy", 1, nil, []string{"--witness_policy_file", badPolicy}, "policy line 1"},
		{"missing policy", 1, nil, []string{"--witness_policy_file", filepath.Join(tmp, "nope")}, "--witness_policy_file"},
		{"zero checkpoint interval", 2, nil, []string{"--checkpoint_interval", "0s"}, "--checkpoint_interval must be positive"},
		{"negative checkpoint interval", 2, nil, []string{"--checkpoint_interval", "-1s"}, "--checkpoint_interval must be positive"},
		{"zero wait timeout", 2, nil, []string{"--wait_timeout", "0s"}, "--wait_timeout must be positive"},
		{"negative witness timeout", 2, nil, []string{"--witness_timeout", "-5s"}, "--witness_timeout must be positive"},
		{"zero shutdown timeout", 2, nil, []string{"--shutdown_timeout", "0s"}, "--shutdown_timeout must be positive"},
		{"negative sequencer interval", 2, nil, []string{"--sequencer_interval", "-1s"}, "--sequencer_interval must not be negative"},
		{"negative commit linger", 2, nil, []string{"--commit_linger", "-1ms"}, "--commit_linger must be between 0 and 1s"},
		{"commit linger too long", 2, nil, []string{"--commit_linger", "2s"}, "--commit_linger must be between 0 and 1s"},
		{"zero batch size", 2, nil, []string{"--batch_size", "0"}, "--batch_size"},
		{"negative backlog", 2, nil, []string{"--max_backlog", "-1"}, "--max_backlog"},
		{"negative tree", 2, nil, []string{"--tree_id", "-1"}, "--tree_id"},
		{"tree ID for a new SQLite log", 1, nil, []string{"--tree_id", "5"}, "--tree_id"},
		{"two DSNs", 2, []string{dsnEnv + "=u:pw@tcp(127.0.0.1:1)/x"}, []string{"--mysql_dsn", "u@tcp(127.0.0.1:1)/x"}, "give the MySQL DSN once"},
		{"missing DSN file", 2, nil, []string{"--mysql_dsn_file", filepath.Join(tmp, "nope")}, "--mysql_dsn_file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(tmp, "data-"+strings.ReplaceAll(c.name, " ", "-"))
			args := append([]string{"--data_dir", dir, "--listen", "127.0.0.1:0"}, c.args...)
			out := runFails(t, c.code, c.env, args...)
			if !strings.Contains(out, c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, out)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the data directory exists after the failed start (%v)", err)
			}
		})
	}
}

// TestDSNFromEnvironmentNotLogged gives an unreachable MySQL DSN with a
// password through the environment: the start fails, without the password
// in the output.
func TestDSNFromEnvironmentNotLogged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out := runFails(t, 1, []string{dsnEnv + "=evident:s3cret-pw@tcp(127.0.0.1:1)/evident"}, "--data_dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(out, "state database") || strings.Contains(out, "s3cret-pw") {
		t.Errorf("start with an unreachable DSN from $%s: want a state database error without the password:\n%s", dsnEnv, out)
	}
}

// TestSecondSignalExits sends SIGTERM while a request waits for a
// checkpoint, then SIGTERM again: the second one ends the process at once
// instead of waiting for the request.
func TestSecondSignalExits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir, "--checkpoint_interval", "1h", "--wait_timeout", "20s", "--shutdown_timeout", "1m")
	go func() {
		client := &http.Client{Timeout: time.Minute}
		s.add(client, []byte("waits for a checkpoint that never comes"), "")
	}()
	// The entry is counted once queued, before its request waits.
	waitFor(t, s, func() bool {
		_, b := s.get("/metrics")
		return bytes.Contains(b, []byte(`evident_entries_added_total{result="new"} 1`))
	}, "the entry to be queued")
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, func() bool { return strings.Contains(s.Stderr(), "shutting down") }, "the server to start shutting down")
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Exited():
	case <-time.After(2 * time.Minute):
		t.Fatalf("the server did not exit after two signals:\n%s", s.Stderr())
	}
	var ee *exec.ExitError
	if err := s.Wait(); !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Errorf("after a second SIGTERM: exit %v, want killed by the signal\n%s", err, s.Stderr())
	}
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, s *server, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s:\n%s", what, s.Stderr())
		}
	}
}

// TestSkipIntegrityCheck damages the indexes of trillian.db's leaf table
// (Open reads the table's last rows itself): the server
// refuses to start, unless told to skip the check at open.
func TestSkipIntegrityCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	testdb.DamageSQLiteIndexes(t, filepath.Join(dir, treeDB), "leaf_data")
	out := runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(out, "corrupt") {
		t.Errorf("start on a damaged trillian.db: want a refusal naming the damage:\n%s", out)
	}
	s = startServer(t, dir, "--skip_integrity_check")
	if c := s.checkpoint(); c.Size != 0 {
		t.Errorf("with --skip_integrity_check: size %d, want 0", c.Size)
	}
}
