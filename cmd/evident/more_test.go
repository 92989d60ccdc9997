package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evidentlog/evident/internal/testlog"
)

func TestProgressLine(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, "audit", 200, 50)
	p.Add(50)
	line := p.line()
	for _, want := range []string{"audit [", "100/200", " 50%", "/s", "ETA "} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
	p.Log("a message")
	p.Finish()
	// Not a terminal: no bar is drawn, only the message.
	if b.String() != "a message\n" {
		t.Errorf("output to a non-terminal = %q", b.String())
	}
}

// TestSubmitJSONLInterrupt: Ctrl-C stops a --jsonl run with exit 130 and a
// summary, keeping the receipts written so far.
func TestSubmitJSONLInterrupt(t *testing.T) {
	l := testlog.New(t, 0)
	dir := t.TempDir()
	var in bytes.Buffer
	for i := range 500 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	input := writeFile(t, dir, "in.jsonl", in.Bytes(), 0o644)
	token := writeFile(t, dir, "token", []byte(l.Token), 0o600)
	gate := make(chan struct{}, 1000)
	for range 100 {
		gate <- struct{}{}
	}
	l.SetGate(gate)
	cmd := exec.Command(evidentBin, "submit", "--log", l.URL, "--batch", "1", "--token_file", token, "--jsonl", input, "--concurrency", "4")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for countLines(input+".receipts") < 100 {
		time.Sleep(10 * time.Millisecond) // polling for progress, not timing anything
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d (%v), want %d\n%s", code, err, exitInterrupted, stderr.String())
	}
	if !strings.Contains(stderr.String(), "100 submitted now") || !strings.Contains(stderr.String(), "400 remaining") {
		t.Errorf("summary: %s", stderr.String())
	}
	if got := countLines(input + ".receipts"); got != 100 {
		t.Errorf("%d receipts kept, want 100", got)
	}
}

// TestMonitorLoop: without --once the monitor keeps polling, and stops
// with a SECURITY ERROR when the log forks.
func TestMonitorLoop(t *testing.T) {
	l := testlog.New(t, 1)
	addN(l, 0, 5)
	state := t.TempDir()
	policy := writeFile(t, t.TempDir(), "policy", []byte(l.Policy()), 0o644)
	cmd := exec.Command(evidentBin, "monitor", "--log", l.URL, "--log_key", l.VKey, "--policy", policy, "--state_dir", state, "--interval", "20ms")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("monitor never %s; stdout %q stderr %q", what, stdout.String(), stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	checkpoints := func(n int) func() bool {
		return func() bool { return countFiles(state+"/checkpoints") >= n }
	}
	waitFor("kept the first checkpoint", checkpoints(1))
	addN(l, 5, 3)
	waitFor("kept the second checkpoint", checkpoints(2))
	l.Rewrite(1, []byte("history rewritten"))
	addN(l, 8, 1)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitFailed || !strings.Contains(stderr.String(), "SECURITY ERROR") {
		t.Fatalf("exit %d (%v), stderr %q; want 1 and a SECURITY ERROR", code, err, stderr.String())
	}
}

func countFiles(dir string) int {
	out, _ := exec.Command("ls", dir).Output()
	return len(strings.Fields(string(out)))
}

func TestReceiptNotFound(t *testing.T) {
	l := testlog.New(t, 0)
	addN(l, 0, 3)
	r := evident(t, nil, "receipt", "--log", l.URL, "--leaf_hash", strings.Repeat("ab", 32))
	wantCode(t, r, exitFailed)
	if !strings.Contains(r.stderr, "not in the log's published tree") || !strings.Contains(r.stderr, "HTTP 404") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = evident(t, nil, "receipt", "--json", "--log", l.URL, "--leaf_hash", strings.Repeat("ab", 32))
	wantCode(t, r, exitFailed)
	if m := r.json(t); m["reason"] != "not_found" || m["http_status"] != 404.0 {
		t.Errorf("receipt --json of a missing entry = %v", m)
	}
	r = evident(t, nil, "receipt", "--log", l.URL, "--leaf_hash", "xyz")
	wantCode(t, r, exitUsage)
}
