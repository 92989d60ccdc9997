package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testproc"
)

// binary is the evident-server built for these tests.
var binary string

// witnessBinary is evident-witness, built for the tests that need witnesses.
var witnessBinary string

func TestMain(m *testing.M) {
	testproc.Main(m, func(dir string) {
		binary = filepath.Join(dir, "evident-server")
		witnessBinary = filepath.Join(dir, "evident-witness")
	}, ".", "../evident-witness")
}

// server is a running evident-server process with the identity it printed.
type server struct {
	*testproc.Proc
	t      testing.TB
	origin string
	vkey   string
	token  string
}

// startServer runs the binary on dataDir with extra flags and waits for it
// to listen.
func startServer(t testing.TB, dataDir string, flags ...string) *server {
	t.Helper()
	args := append([]string{"--data_dir", dataDir, "--listen", "127.0.0.1:0"}, flags...)
	p := testproc.Start(t, binary, args...)
	s := &server{Proc: p, t: t, origin: p.Lines["origin"], vkey: p.Lines["vkey"]}
	if f, ok := p.Lines["write token"]; ok {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("the printed token file: %v", err)
		}
		s.token = strings.TrimSpace(string(b))
	}
	return s
}

// terminate sends SIGTERM and returns the exit error.
func (s *server) terminate() error {
	err := s.Stop(30 * time.Second)
	if errors.Is(err, testproc.ErrNotStopped) {
		s.t.Fatalf("evident-server did not stop on SIGTERM:\n%s", s.Stderr())
	}
	return err
}

type addResult struct {
	Index     uint64 `json:"index"`
	LeafHash  []byte `json:"leaf_hash"`
	Duplicate bool   `json:"duplicate"`
	Receipt   string `json:"receipt"`
	Error     string `json:"error"`
}

// add submits entry; err is a transport error (the server may be dead).
func (s *server) add(client *http.Client, entry []byte, query string) (int, addResult, error) {
	req, err := http.NewRequest("POST", s.URL+"/v1/add-entry"+query, bytes.NewReader(entry))
	if err != nil {
		return 0, addResult{}, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, addResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, addResult{}, err
	}
	var r addResult
	if err := json.Unmarshal(b, &r); err != nil {
		return resp.StatusCode, r, fmt.Errorf("answer %d %q: %v", resp.StatusCode, b, err)
	}
	return resp.StatusCode, r, nil
}

func (s *server) get(path string) (int, []byte) {
	s.t.Helper()
	resp, err := http.Get(s.URL + path)
	var b []byte
	if err == nil {
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}

func (s *server) checkpoint() *checkpoint.Signed {
	s.t.Helper()
	v, err := checkpoint.NewVerifier(s.vkey)
	if err != nil {
		s.t.Fatal(err)
	}
	code, b := s.get("/checkpoint")
	if code != 200 {
		s.t.Fatalf("/checkpoint: %d %s", code, b)
	}
	c, err := checkpoint.Open(b, v)
	if err != nil {
		s.t.Fatalf("/checkpoint: %v", err)
	}
	return c
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestFirstStartRestartAndShutdown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	for _, f := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {filepath.Join(dir, keyFile), 0o600}, {filepath.Join(dir, tokenFile), 0o600}} {
		if got := mode(t, f.path); got != f.want {
			t.Errorf("%s: mode %o, want %o", f.path, got, f.want)
		}
	}
	vk, err := os.ReadFile(filepath.Join(dir, vkeyFile))
	if err != nil || string(vk) != s.vkey+"\n" {
		t.Errorf("%s = %q, %v; want the printed vkey %q on one line", vkeyFile, vk, err, s.vkey)
	}
	if _, err := note.NewVerifier(s.vkey); err != nil || !strings.HasPrefix(s.vkey, s.origin+"+") {
		t.Errorf("vkey %q for origin %q: %v", s.vkey, s.origin, err)
	}
	if c := s.checkpoint(); c.Size != 0 || c.Origin != s.origin {
		t.Errorf("a new log's checkpoint: size %d origin %q", c.Size, c.Origin)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	code, r, err := s.add(client, []byte("first"), "")
	if err != nil || code != 200 {
		t.Fatalf("add: %d %+v %v", code, r, err)
	}
	if err := s.terminate(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Stderr())
	}

	// A second server with another origin on the same data is refused.
	cmd := exec.Command(binary, "--data_dir", dir, "--listen", "127.0.0.1:0", "--origin", "other.example/log")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "origin") {
		t.Errorf("restart with a different --origin: %v\n%s", err, out)
	}

	s2 := startServer(t, dir)
	if s2.origin != s.origin || s2.vkey != s.vkey || s2.token != s.token {
		t.Errorf("restart changed the identity: %q %q, want %q %q", s2.origin, s2.vkey, s.origin, s.vkey)
	}
	if c := s2.checkpoint(); c.Size != 1 {
		t.Errorf("after restart: size %d, want 1", c.Size)
	}
	code, r2, err := s2.add(client, []byte("first"), "")
	if err != nil || code != 200 || !r2.Duplicate || r2.Index != r.Index {
		t.Errorf("re-adding after restart: %d %+v %v, want a duplicate at %d", code, r2, err, r.Index)
	}
	code, r3, err := s2.add(client, []byte("second"), "")
	if err != nil || code != 200 || r3.Index != 1 {
		t.Errorf("adding after restart: %d %+v %v, want index 1", code, r3, err)
	}
	if code, b := s2.get("/metrics"); code != 200 || !bytes.Contains(b, []byte("evident_entries_added_total")) || !bytes.Contains(b, []byte("trillian_")) {
		t.Errorf("/metrics lacks our or Trillian's metrics: %d", code)
	}
}

func TestFlags(t *testing.T) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Errorf("--help: %v", err)
	}
	for _, f := range []string{"-listen", "-data_dir", "-origin", "-checkpoint_interval", "-max_entry_size", "-mysql_dsn", "-mysql_dsn_file", "EVIDENT_SERVER_MYSQL_DSN", "second one exits", "-trillian_addr", "-tree_id", "-witness_policy_file", "-witness_fail_open", "-skip_integrity_check"} {
		if !bytes.Contains(out, []byte(f)) {
			t.Errorf("--help does not mention %s", f)
		}
	}
	// A bad witness policy stops the server before it opens anything.
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy")
	if err := os.WriteFile(policy, []byte("witness w1 not-a-key http://127.0.0.1:1\nquorum w1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--data_dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--witness_policy_file", policy)
	if out, err := cmd.CombinedOutput(); err == nil || !bytes.Contains(out, []byte("policy line 1")) {
		t.Errorf("evident-server with a bad witness policy: %v\n%s\nwant a failure naming the policy line", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "state.db")); err == nil {
		t.Error("evident-server with a bad witness policy created its state database")
	}
	if bytes.Contains(out, []byte("mysql_uri")) || bytes.Contains(out, []byte("ephemeral")) {
		t.Errorf("--help shows Trillian's library flags:\n%s", out)
	}
	for _, args := range [][]string{
		{"--max_entry_size", "65536"},
		{"--max_entry_size", "0"},
		{"--witness_fail_open"},
		{"--no_such_flag"},
		{"stray"},
	} {
		cmd := exec.Command(binary, args...)
		cmd.Dir = t.TempDir()
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("evident-server %q succeeded:\n%s", args, out)
		} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("evident-server %q: %v, want exit code 2", args, err)
		}
	}
}
