package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/internal/testproc"
	"github.com/evidentlog/evident/storage"
)

// witnessServing finds the address in evident-witness's "serving" log line.
var witnessServing = regexp.MustCompile(`evident-witness serving.* addr=(127\.0\.0\.1:\d+)`)

// testWitness is a running evident-witness process following one log.
type testWitness struct {
	*testproc.Proc
	vkey, url string
}

func startWitness(t *testing.T, name, logVKey string) *testWitness {
	t.Helper()
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs.txt")
	if err := os.WriteFile(logs, []byte("log "+logVKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testproc.StartReady(t, func(lines map[string]string, stderr string) bool {
		return lines["vkey"] != "" && witnessServing.MatchString(stderr)
	}, witnessBinary, "--name", name, "--listen", "127.0.0.1:0", "--data_dir", filepath.Join(dir, "data"), "--logs_file", logs)
	t.Cleanup(func() { p.Stop(30 * time.Second) })
	return &testWitness{Proc: p, vkey: p.Lines["vkey"], url: "http://" + witnessServing.FindStringSubmatch(p.Stderr())[1]}
}

// copyFiles copies the named files that exist from one directory to
// another (replacing, or removing those that do not exist in from).
func copyFiles(t *testing.T, from, to string, names ...string) {
	t.Helper()
	for _, n := range names {
		os.Remove(filepath.Join(to, n))
		b, err := os.ReadFile(filepath.Join(from, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	stateFiles = []string{stateDB, stateDB + "-wal", stateDB + "-shm"}
	treeFiles  = []string{treeDB, treeDB + "-wal", treeDB + "-shm"}
)

// maxSigned returns the largest size of a checkpoint the stopped log's state
// database records as signed or published.
func maxSigned(t *testing.T, dir, origin string) uint64 {
	t.Helper()
	db, err := storage.OpenSQLite(context.Background(), filepath.Join(dir, stateDB))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n uint64
	if s, err := db.LatestSigned(context.Background(), origin, 1<<63-1); err == nil {
		n = s.Size
	} else if !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	if c, err := db.LatestCheckpoint(context.Background(), origin); err == nil {
		n = max(n, c.Size)
	} else {
		t.Fatal(err)
	}
	return n
}

// TestRestoreOlderBackup is the restore drill of docs/deployment.md: a log
// with a witness is restored from a backup older than what the witness
// holds. It must not sign below the witness's checkpoint, nor a diverging
// tree once its new entries take it past that size; restored to the newer
// backup it carries on. Restored with an older state database but the
// newer tree, it learns the witness's checkpoint, checks the tree against
// it, and carries on by itself.
func TestRestoreOlderBackup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	vkey, origin := s.vkey, s.origin
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	w := startWitness(t, "witness.example", vkey)
	policy := filepath.Join(t.TempDir(), "policy")
	if err := os.WriteFile(policy, fmt.Appendf(nil, "log %s\nwitness w0 %s %s\nquorum w0\n", vkey, w.vkey, w.url), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--witness_policy_file", policy, "--wait_timeout", "3s"}
	client := &http.Client{Timeout: 30 * time.Second}
	addN := func(s *server, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if code, r, err := s.add(client, fmt.Appendf(nil, "entry %d", i), ""); err != nil || code != 200 {
				t.Fatalf("add %d: %d %q %v", i, code, r.Error, err)
			}
		}
	}
	backup := func() string {
		b := t.TempDir()
		copyFiles(t, dir, b, append(stateFiles, treeFiles...)...)
		return b
	}

	s = startServer(t, dir, flags...)
	addN(s, 0, 3)
	s.terminate()
	older := backup() // 3 entries
	s = startServer(t, dir, flags...)
	addN(s, 3, 3)
	s.terminate()
	newer := backup() // 6 entries, held by the witness

	// The older backup: the log learns at start that the witness holds 6
	// and signs nothing, neither below 6 nor past it on another history.
	copyFiles(t, older, dir, append(stateFiles, treeFiles...)...)
	s = startServer(t, dir, flags...)
	if cp := s.checkpoint(); cp.Size != 3 {
		t.Fatalf("restored older backup serves size %d, want 3", cp.Size)
	}
	for i := range 4 {
		if code, r, err := s.add(client, fmt.Appendf(nil, "after the restore %d", i), ""); err == nil && code == 200 {
			t.Fatalf("entry added after restoring an older backup got a receipt: %+v", r)
		}
	}
	// The entry was queued (Trillian has 4 entries), no checkpoint covers
	// it, and the log refuses further entries while it cannot publish.
	code, health := s.get("/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(health), "witness w0 holds size 6") ||
		!strings.Contains(string(health), "does not sign below what witnesses hold") {
		t.Errorf("/healthz after restoring an older backup: %d\n%s\nwant 503 saying the witness holds size 6; stderr:\n%s", code, health, s.Stderr())
	}
	if cp := s.checkpoint(); cp.Size != 3 {
		t.Errorf("restored older backup now serves size %d, want 3", cp.Size)
	}
	if !strings.Contains(s.Stderr(), "a witness holds a larger checkpoint of this log than the latest published one") {
		t.Errorf("no warning at start that the witness holds more:\n%s", s.Stderr())
	}
	s.terminate()
	if n := maxSigned(t, dir, origin); n != 3 {
		t.Errorf("after restoring the older backup the log signed a checkpoint of size %d; want nothing past 3", n)
	}
	if code, b := get(t, w.url+"/evidence"); code != 200 || strings.Contains(string(b), origin) {
		t.Errorf("the witness holds evidence against the log (%d): %s", code, b)
	}

	// The newer backup: the log carries on from 6.
	copyFiles(t, newer, dir, append(stateFiles, treeFiles...)...)
	s = startServer(t, dir, flags...)
	addN(s, 6, 1)
	if cp := s.checkpoint(); cp.Size != 7 {
		t.Errorf("after restoring the newer backup: size %d, want 7", cp.Size)
	}
	s.terminate()

	// An older state database with the newer tree: the witness serves its
	// checkpoint of size 7; the log verifies the tree against it and
	// carries on without the operator.
	copyFiles(t, older, dir, stateFiles...)
	s = startServer(t, dir, flags...)
	addN(s, 7, 1)
	cp := s.checkpoint()
	if cp.Size != 8 {
		t.Errorf("older state, newer tree: size %d, want 8", cp.Size)
	}
	code, b := s.get("/v1/proof/consistency?first=7&second=8")
	if code != 200 {
		t.Errorf("consistency proof from the witness's size 7: %d %s", code, b)
	}
	if !strings.Contains(s.Stderr(), "recorded it") {
		t.Errorf("no log line saying the witness's checkpoint was learned:\n%s", s.Stderr())
	}
	s.terminate()
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestRebuildState loses a log's state database and rebuilds it with
// --rebuild_state from the tree and the witnesses' checkpoints; a state
// database of another log, a rebuild without enough witnesses, and a
// rebuild onto an older tree are refused and change nothing.
func TestRebuildState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	vkey := s.vkey
	s.terminate()
	w0 := startWitness(t, "w0.example", vkey)
	w1 := startWitness(t, "w1.example", vkey)
	writePolicy := func(w1url string) string {
		p := filepath.Join(t.TempDir(), "policy")
		text := fmt.Sprintf("log %s\nwitness w0 %s %s\nwitness w1 %s %s\ngroup any 1 w0 w1\nquorum any\n", vkey, w0.vkey, w0.url, w1.vkey, w1url)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	policy := writePolicy(w1.url)
	client := &http.Client{Timeout: 30 * time.Second}
	s = startServer(t, dir, "--witness_policy_file", policy)
	for i := range 3 {
		if code, r, err := s.add(client, fmt.Appendf(nil, "entry %d", i), ""); err != nil || code != 200 {
			t.Fatalf("add: %d %q %v", code, r.Error, err)
		}
	}
	s.terminate()
	olderTree := t.TempDir()
	copyFiles(t, dir, olderTree, treeFiles...)
	s = startServer(t, dir, "--witness_policy_file", policy)
	for i := 3; i < 5; i++ {
		if code, r, err := s.add(client, fmt.Appendf(nil, "entry %d", i), ""); err != nil || code != 200 {
			t.Fatalf("add: %d %q %v", code, r.Error, err)
		}
	}
	before := s.checkpoint()
	s.terminate()

	// Another log's state database.
	other := filepath.Join(t.TempDir(), "other")
	s2 := startServer(t, other)
	s2.terminate()
	saved := t.TempDir()
	copyFiles(t, dir, saved, stateFiles...)
	copyFiles(t, other, dir, stateFiles...)
	out := runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(out, "belongs to another log") {
		t.Errorf("start on another log's state database: want a refusal naming it:\n%s", out)
	}
	copyFiles(t, saved, dir, stateFiles...)
	// The same origin under another key (a state database from a log
	// created anew with the same --origin).
	same := filepath.Join(t.TempDir(), "same")
	s3 := startServer(t, same, "--origin", s.origin)
	s3.terminate()
	copyFiles(t, same, dir, stateFiles...)
	out = runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(out, "belongs to another log with the origin") {
		t.Errorf("start on a state database of another key with this origin: want a refusal:\n%s", out[:min(len(out), 2000)])
	}

	// Lost: refused, and the message names the way out.
	copyFiles(t, t.TempDir(), dir, stateFiles...) // removes them
	out = runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(out, "does not record the log's tree") || !strings.Contains(out, "--rebuild_state") {
		t.Errorf("start without a state database: want a refusal naming --rebuild_state:\n%s", out)
	}
	out = runFails(t, 2, nil, "--data_dir", dir, "--listen", "127.0.0.1:0", "--rebuild_state")
	if !strings.Contains(out, "--rebuild_state needs --witness_policy_file") {
		t.Errorf("--rebuild_state without a policy:\n%s", out)
	}
	// w1 unreachable: it alone could have cosigned a newer checkpoint.
	dead := writePolicy("http://127.0.0.1:1")
	out = runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0", "--rebuild_state", "--witness_policy_file", dead, "--witness_timeout", "2s")
	if !strings.Contains(out, "too few witnesses served their checkpoint") || !strings.Contains(out, "w1") {
		t.Errorf("--rebuild_state with w1 down:\n%s", out)
	}
	// An older tree than the witnesses hold.
	newerTree := t.TempDir()
	copyFiles(t, dir, newerTree, treeFiles...)
	copyFiles(t, olderTree, dir, treeFiles...)
	out = runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0", "--rebuild_state", "--witness_policy_file", policy)
	if !strings.Contains(out, "Trillian's tree has 3 entries, but witness") || !strings.Contains(out, "holds a checkpoint of size 5") {
		t.Errorf("--rebuild_state on an older tree:\n%s", out)
	}
	copyFiles(t, newerTree, dir, treeFiles...)
	// Refused attempts recorded no tree.
	out = runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(out, "does not record the log's tree") {
		t.Errorf("after refused rebuilds the state database records a tree:\n%s", out)
	}

	// Rebuilt: the same checkpoint, and the log carries on.
	s = startServer(t, dir, "--rebuild_state", "--witness_policy_file", policy)
	after := s.checkpoint()
	if after.Size != before.Size || after.Hash != before.Hash {
		t.Errorf("rebuilt log serves size %d root %x; before the loss: size %d root %x", after.Size, after.Hash, before.Size, before.Hash)
	}
	if code, r, err := s.add(client, []byte("after the rebuild"), ""); err != nil || code != 200 || r.Index != 5 {
		t.Errorf("add after the rebuild: %d %+v %v", code, r, err)
	}
	if !strings.Contains(s.Stderr(), "rebuilt the state database from the witnesses' checkpoints") {
		t.Errorf("no log line about the rebuild:\n%s", s.Stderr())
	}
	s.terminate()
	// Once rebuilt, the flag is refused: the state database is not lost.
	out = runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0", "--rebuild_state", "--witness_policy_file", policy)
	if !strings.Contains(out, "is not lost") {
		t.Errorf("--rebuild_state on a healthy state database:\n%s", out)
	}
	s = startServer(t, dir, "--witness_policy_file", policy)
	if cp := s.checkpoint(); cp.Size != 6 {
		t.Errorf("restart after the rebuild: size %d, want 6", cp.Size)
	}
	s.terminate()
}
