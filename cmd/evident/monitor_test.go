package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evidentlog/evident/internal/testlog"
	"github.com/evidentlog/evident/monitor"
)

func monitorOnce(t *testing.T, l *testlog.Log, stateDir string, extra ...string) result {
	t.Helper()
	policy := writeFile(t, t.TempDir(), "policy", []byte(l.Policy()), 0o644)
	args := append([]string{"monitor", "--once", "--log", l.URL, "--log_key", l.VKey, "--policy", policy, "--state_dir", stateDir}, extra...)
	return evident(t, nil, args...)
}

// wantSecurityError checks a SECURITY ERROR and its evidence file.
func wantSecurityError(t *testing.T, r result, stateDir, problem string, nCheckpoints int) {
	t.Helper()
	wantCode(t, r, exitFailed)
	if !strings.Contains(r.stderr, "SECURITY ERROR: ") || !strings.Contains(r.stderr, problem) {
		t.Fatalf("stderr %q lacks SECURITY ERROR and %q", r.stderr, problem)
	}
	files, _ := filepath.Glob(filepath.Join(stateDir, "evidence-*.json"))
	if len(files) != 1 {
		t.Fatalf("%d evidence files, want 1", len(files))
	}
	if !strings.Contains(r.stderr, files[0]) {
		t.Errorf("stderr %q does not name the evidence file %s", r.stderr, files[0])
	}
	b, _ := os.ReadFile(files[0])
	var ev monitor.Evidence
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Checkpoints) != nCheckpoints || ev.Problem == "" {
		t.Errorf("evidence has %d checkpoints (want %d), problem %q", len(ev.Checkpoints), nCheckpoints, ev.Problem)
	}
}

func addN(l *testlog.Log, from, n int) {
	for i := from; i < from+n; i++ {
		l.Add([]byte(fmt.Sprintf("entry %d", i)))
	}
}

func TestMonitorHonestLog(t *testing.T) {
	l := testlog.New(t, 2)
	state := t.TempDir()
	for round := range 4 {
		addN(l, round*10, 3+round)
		r := monitorOnce(t, l, state)
		wantCode(t, r, exitOK)
		if !strings.Contains(r.stdout, "OK: new checkpoint") {
			t.Errorf("round %d: %q", round, r.stdout)
		}
	}
	r := monitorOnce(t, l, state, "--json")
	wantCode(t, r, exitOK)
	if m := r.json(t); m["status"] != "unchanged" || m["checkpoints_kept"] != 4.0 {
		t.Errorf("monitor --json = %v", m)
	}
	kept, _ := os.ReadDir(filepath.Join(state, "checkpoints"))
	if len(kept) != 4 {
		t.Errorf("%d checkpoints kept, want 4", len(kept))
	}
}

// TestMonitorFork: the log rewrites an old entry and grows; its new
// checkpoint is not consistent with the one the monitor saw.
func TestMonitorFork(t *testing.T) {
	l := testlog.New(t, 2)
	state := t.TempDir()
	addN(l, 0, 9)
	wantCode(t, monitorOnce(t, l, state), exitOK)
	l.Rewrite(2, []byte("a different entry 2"))
	addN(l, 100, 3)
	wantSecurityError(t, monitorOnce(t, l, state), state, "not consistent", 2)
}

// TestMonitorSameSizeDifferentRoot: the log serves a checkpoint of a size
// it served before, with another root.
func TestMonitorSameSizeDifferentRoot(t *testing.T) {
	l := testlog.New(t, 2)
	state := t.TempDir()
	addN(l, 0, 9)
	wantCode(t, monitorOnce(t, l, state), exitOK)
	l.Rewrite(4, []byte("rewritten"))
	l.Republish()
	wantSecurityError(t, monitorOnce(t, l, state), state, "two signed checkpoints of size 9 with different roots", 2)
}

// TestMonitorArchiveChanged: the log grows honestly, but its archive now
// serves another root for the size the monitor saw before.
func TestMonitorArchiveChanged(t *testing.T) {
	l := testlog.New(t, 2)
	state := t.TempDir()
	addN(l, 0, 9)
	wantCode(t, monitorOnce(t, l, state), exitOK)
	addN(l, 9, 5)
	l.SetArchive(9, [32]byte{1, 2, 3})
	wantSecurityError(t, monitorOnce(t, l, state), state, "different checkpoint for size 9", 2)
}

// TestMonitorRejectsUnverifiable: a checkpoint without the quorum, or with
// another log key, fails verification (exit 1) without evidence.
func TestMonitorRejectsUnverifiable(t *testing.T) {
	l := testlog.New(t, 2)
	addN(l, 0, 3)
	state := t.TempDir()
	// A policy that requires a third witness the log does not have.
	_, extraV, _ := keyPair(t, "witness9.example")
	policy := writeFile(t, t.TempDir(), "policy", []byte(fmt.Sprintf("log %s\nwitness w0 %s\nwitness w1 %s\nwitness w9 %s\ngroup g all w0 w1 w9\nquorum g\n", l.VKey, l.WitnessVKeys[0], l.WitnessVKeys[1], extraV)), 0o644)
	r := evident(t, nil, "monitor", "--once", "--log", l.URL, "--log_key", l.VKey, "--policy", policy, "--state_dir", state)
	wantCode(t, r, exitFailed)
	if !strings.Contains(r.stderr, "missing cosignatures from w9") {
		t.Errorf("stderr %q", r.stderr)
	}
	// The network failing is exit 3.
	r = evident(t, nil, "monitor", "--once", "--log", "http://127.0.0.1:1", "--log_key", l.VKey, "--state_dir", state)
	wantCode(t, r, exitNetwork)
}

// TestMonitorProofRefused: a log that answers 400 to the consistency proof
// between a kept checkpoint and its new one is a SECURITY ERROR with both
// signed notes as evidence, exit 1; with --json too, on stderr.
func TestMonitorProofRefused(t *testing.T) {
	l := testlog.New(t, 2)
	addN(l, 0, 3)
	state := t.TempDir()
	wantCode(t, monitorOnce(t, l, state), exitOK)
	addN(l, 3, 5)
	l.SetRefuseConsistency(400)
	r := monitorOnce(t, l, state, "--json")
	wantSecurityError(t, r, state, "the log refuses to prove consistency between checkpoints it signed", 2)
	if m := r.json(t); m["security_error"] != true || m["evidence"] == "" {
		t.Errorf("--json = %v", m)
	}
}

// TestMonitorExitCodes: a state directory that cannot be used or that was
// kept for another log key exits 2; a log key that is not among the
// policy's log lines exits 1; the first check says it is the first.
func TestMonitorExitCodes(t *testing.T) {
	l := testlog.New(t, 1)
	addN(l, 0, 3)
	state := t.TempDir()
	r := monitorOnce(t, l, state)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "the first checkpoint kept") {
		t.Errorf("first check: %q", r.stdout)
	}
	addN(l, 3, 1)
	if r := monitorOnce(t, l, state); !strings.Contains(r.stdout, "consistent with the 1 other checkpoint kept") {
		t.Errorf("second check: %q", r.stdout)
	}
	other := testlog.New(t, 1)
	addN(other, 0, 5)
	r = monitorOnce(t, other, state)
	wantCode(t, r, exitUsage)
	if !strings.Contains(r.stderr, "signed by the log key") {
		t.Errorf("state of another log: %q", r.stderr)
	}
	notDir := writeFile(t, t.TempDir(), "file", []byte("x"), 0o644)
	wantCode(t, monitorOnce(t, l, notDir), exitUsage)
	// The policy lists another log.
	policy := writeFile(t, t.TempDir(), "policy", []byte(strings.Replace(l.Policy(), l.VKey, other.VKey, 1)), 0o644)
	r = evident(t, nil, "monitor", "--once", "--log", l.URL, "--log_key", l.VKey, "--policy", policy, "--state_dir", t.TempDir())
	wantCode(t, r, exitFailed)
	if !strings.Contains(r.stderr, "not one of the policy's log lines") {
		t.Errorf("log key not in the policy: %q", r.stderr)
	}
	r = evident(t, nil, "audit", "--log", l.URL, "--log_key", l.VKey, "--policy", policy)
	wantCode(t, r, exitFailed)
}

// TestMonitorLoopEnds: the polling monitor exits 130 on SIGINT and SIGTERM,
// and 3 (not retrying forever) when the log answers 404.
func TestMonitorLoopEnds(t *testing.T) {
	l := testlog.New(t, 0)
	addN(l, 0, 3)
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM} {
		state := t.TempDir()
		cmd := exec.Command(evidentBin, "monitor", "--log", l.URL, "--log_key", l.VKey, "--state_dir", state, "--interval", "1h")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for countFiles(state+"/checkpoints") < 1 {
			time.Sleep(10 * time.Millisecond) // polling for progress, not timing anything
		}
		cmd.Process.Signal(sig)
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
			t.Errorf("%v: exit %d, want %d; stderr %q", sig, code, exitInterrupted, stderr.String())
		}
	}
	r := evident(t, nil, "monitor", "--log", l.URL+"/not-the-log", "--log_key", l.VKey, "--state_dir", t.TempDir(), "--interval", "10ms")
	wantCode(t, r, exitNetwork)
	if !strings.Contains(r.stderr, "HTTP 404") || strings.Contains(r.stderr, "retrying") {
		t.Errorf("stderr %q", r.stderr)
	}
}

// TestLogKeyMessages: --log_key says what is wrong with it.
func TestLogKeyMessages(t *testing.T) {
	dir := t.TempDir()
	r := evident(t, nil, "keygen", "--name", "example.com/log", "--out", filepath.Join(dir, "log.key"))
	wantCode(t, r, exitOK)
	skey, _ := os.ReadFile(filepath.Join(dir, "log.key"))
	receipt := writeFile(t, dir, "r", []byte("x"), 0o644)
	for _, tc := range []struct{ key, want string }{
		{filepath.Join(dir, "missing.pub"), "no such file, and not a verifier key"},
		{filepath.Join(dir, "log.key"), "is a private signing key: give the log's verifier key instead"},
		{strings.TrimSpace(string(skey)), "--log_key is a private signing key"},
		{writeFile(t, dir, "junk", []byte("example.com/log+zz+AAAA\n"), 0o644), "is not a log verifier key"},
	} {
		r := evident(t, nil, "verify", "--log_key", tc.key, "--entry", receipt, receipt)
		wantCode(t, r, exitUsage)
		if !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "PRIVATE+KEY") {
			t.Errorf("--log_key %s: stderr %q, want %q and no private key", filepath.Base(tc.key), r.stderr, tc.want)
		}
	}
}
