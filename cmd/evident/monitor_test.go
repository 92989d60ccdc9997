package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
