package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testproc"
	"github.com/evidentlog/evident/witness"
)

// TestBinary builds evident-witness and runs it as a process: the first
// start creates the key (0600) and prints the vkey, the witness cosigns a
// log listed after a SIGHUP reload, a restart keeps its key and state, and
// SIGTERM shuts it down cleanly.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: builds and runs the binary")
	}
	dir := t.TempDir()
	binDir, cleanup, err := testproc.Build(".")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	bin := filepath.Join(binDir, "evident-witness")
	data := filepath.Join(dir, "data")
	logsFile := filepath.Join(dir, "logs.txt")
	if err := os.WriteFile(logsFile, []byte("# none yet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testproc.FreePorts(t, 1))

	p, vkey := start(t, bin, "--listen", addr, "--data_dir", data, "--logs_file", logsFile, "--name", "example.com/w1")
	fi, err := os.Stat(filepath.Join(data, witness.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	if di, err := os.Stat(data); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, %v; want mode 0700", di, err)
	}
	if b, _ := os.ReadFile(filepath.Join(data, witness.VKeyFile)); strings.TrimSpace(string(b)) != vkey {
		t.Errorf("witness.vkey %q, printed %q", b, vkey)
	}

	lskey, lvkey, err := checkpoint.GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := checkpoint.NewSigner(lskey)
	cp, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: "example.com/log", Size: 0, Hash: checkpoint.EmptyRoot}, signer)
	if err != nil {
		t.Fatal(err)
	}
	body := (&witness.Request{Checkpoint: cp}).Marshal()
	if code := postCode(t, addr, body); code != 404 {
		t.Fatalf("before reload: %d, want 404", code)
	}
	if err := os.WriteFile(logsFile, []byte("log "+lvkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for postCode(t, addr, body) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the witness did not follow the log after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop(t, p)

	p, vkey2 := start(t, bin, "--listen", addr, "--data_dir", data, "--logs_file", logsFile)
	if vkey2 != vkey {
		t.Errorf("vkey after restart %q, want %q", vkey2, vkey)
	}
	if code := postCode(t, addr, (&witness.Request{OldSize: 0, Checkpoint: cp}).Marshal()); code != 200 {
		t.Errorf("same checkpoint after restart: %d, want 200", code)
	}
	stop(t, p)

	// A wrong name for an existing key is refused.
	out, err := exec.Command(bin, "--listen", addr, "--data_dir", data, "--name", "example.com/other").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "named") {
		t.Errorf("start with another name: %v %s", err, out)
	}
}

// TestStartMistakes: a first start without --name, or with a --listen
// address that cannot be listened on, fails with a clear message and
// creates no key and no database.
func TestStartMistakes(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: builds and runs the binary")
	}
	binDir, cleanup, err := testproc.Build(".")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	bin := filepath.Join(binDir, "evident-witness")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := fmt.Sprintf("127.0.0.1:%d", testproc.FreePorts(t, 1))
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no name on first start", []string{"--listen", free}, 2, "--name"},
		{"invalid port", []string{"--listen", ":99999", "--name", "example.com/w1"}, 1, "--listen"},
		{"port in use", []string{"--listen", busy.Addr().String(), "--name", "example.com/w1"}, 1, "--listen"},
		{"missing logs file", []string{"--listen", free, "--name", "example.com/w1", "--logs_file", "/nonexistent/logs"}, 1, "logs file"},
		{"unknown key type", []string{"--listen", free, "--name", "example.com/w1", "--key_type", "rsa"}, 2, "--key_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			cmd := exec.Command(bin, append(tt.args, "--data_dir", data)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tt.code {
				t.Fatalf("exit %v, want code %d; stderr:\n%s", err, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tt.want)
			}
			for _, f := range []string{witness.KeyFile, "witness.db"} {
				if _, err := os.Stat(filepath.Join(data, f)); err == nil {
					t.Errorf("%s was created", f)
				}
			}
		})
	}
}

// start runs the binary and waits until it prints its vkey (its first
// line) and serves.
func start(t *testing.T, bin string, args ...string) (*testproc.Proc, string) {
	t.Helper()
	p := testproc.StartReady(t, func(lines map[string]string, _ string) bool {
		return len(lines) > 0
	}, bin, args...)
	vkey, ok := p.Lines["vkey"]
	if !ok {
		t.Fatalf("first line %v, want the vkey; stderr:\n%s", p.Lines, p.Stderr())
	}
	addr := args[1]
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("witness not serving: %v; stderr:\n%s", err, p.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p, vkey
}

func stop(t *testing.T, p *testproc.Proc) {
	t.Helper()
	err := p.Stop(15 * time.Second)
	if errors.Is(err, testproc.ErrNotStopped) {
		t.Fatal("no exit 15s after SIGTERM")
	}
	if err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

func postCode(t *testing.T, addr string, body []byte) int {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s/add-checkpoint", addr), "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
