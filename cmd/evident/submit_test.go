package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/internal/testlog"
)

// countLines counts complete lines in path.
func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// killWhen runs evident with args until done holds, then kills it with
// SIGKILL. The test fails if the run ends before that.
func killWhen(t *testing.T, done func() bool, args ...string) {
	t.Helper()
	cmd := exec.Command(evidentBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for !done() {
		select {
		case err := <-exited:
			t.Fatalf("the first run ended before it was interrupted (%v): %s", err, stderr.String())
		case <-time.After(10 * time.Millisecond): // polling for progress, not timing anything
		}
	}
	cmd.Process.Kill() // SIGKILL
	<-exited
}

// TestSubmitJSONLResume submits 10,000 lines, kills the process (SIGKILL)
// part-way, resumes, and checks that every line ends with exactly one
// receipt that verifies.
func TestSubmitJSONLResume(t *testing.T) {
	const n = 10000
	l := testlog.New(t, 1)
	dir := t.TempDir()
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, `{"event":"payment","id":%d,"amount":"%d.00"}`+"\n", i, i*7%1000)
		if i == 500 {
			in.WriteString("\n") // empty lines are not entries
		}
	}
	input := writeFile(t, dir, "events.jsonl", in.Bytes(), 0o644)
	receipts := input + ".receipts"
	token := writeFile(t, dir, "token", []byte(l.Token), 0o600)
	policy := writeFile(t, dir, "policy", []byte(l.Policy()), 0o644)
	args := []string{"submit", "--log", l.URL, "--batch", "1", "--token_file", token, "--log_key", l.VKey, "--policy", policy, "--jsonl", input, "--concurrency", "16"}

	// First run: after 3,000 requests the log stops answering; the process
	// is killed once it has written receipts.
	gate := make(chan struct{}, 2*n)
	for range 3000 {
		gate <- struct{}{}
	}
	l.SetGate(gate)
	killWhen(t, func() bool { return countLines(receipts) >= 2500 }, args...)
	first := countLines(receipts)
	if first >= n {
		t.Fatalf("the first run wrote all %d receipts; it should have been interrupted", first)
	}
	// Simulate a record cut short by the kill.
	f, _ := os.OpenFile(receipts, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"line":99999,"index":1,"leaf`)
	f.Close()
	for range n {
		gate <- struct{}{}
	}

	r := evident(t, nil, append(args, "--json")...)
	wantCode(t, r, exitOK)
	m := r.json(t)
	if m["lines"] != float64(n) || m["already_had_receipts"] != float64(first) || m["submitted"] != float64(n-first) || m["failed"] != 0.0 {
		t.Errorf("summary %v; want %d lines, %d already done", m, n, first)
	}
	checkReceipts(t, l.VKey, in.Bytes(), receipts, n)

	// A third run has nothing to do.
	r = evident(t, nil, append(args, "--json")...)
	wantCode(t, r, exitOK)
	if m := r.json(t); m["submitted"] != 0.0 || m["already_had_receipts"] != float64(n) {
		t.Errorf("third run summary %v", m)
	}
}

// checkReceipts checks one receipt per non-empty input line, each verifying.
func checkReceipts(t *testing.T, vkey string, input []byte, receipts string, n int) {
	t.Helper()
	key, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(input, []byte("\n"))
	f, err := os.Open(receipts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[int]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec client.JournalRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("receipts file line %q: %v", sc.Bytes(), err)
		}
		if seen[rec.Line] {
			t.Fatalf("two receipts for line %d", rec.Line)
		}
		seen[rec.Line] = true
		rc, err := checkpoint.ParseReceipt([]byte(rec.Receipt))
		if err != nil {
			t.Fatalf("line %d: %v", rec.Line, err)
		}
		if rec.Line < 1 || rec.Line > len(lines) {
			t.Fatalf("record for line %d", rec.Line)
		}
		if _, err := checkpoint.VerifyReceipt(rc, lines[rec.Line-1], key, nil); err != nil {
			t.Fatalf("line %d: receipt does not verify: %v", rec.Line, err)
		}
		if rc.Index != rec.Index {
			t.Fatalf("line %d: record index %d, receipt index %d", rec.Line, rec.Index, rc.Index)
		}
	}
	if len(seen) != n {
		t.Errorf("%d receipts, want %d", len(seen), n)
	}
	for i, line := range lines {
		if len(line) > 0 && !seen[i+1] {
			t.Errorf("line %d has no receipt", i+1)
		}
	}
}

func TestSubmitJSONLChangedInput(t *testing.T) {
	l := testlog.New(t, 0)
	dir := t.TempDir()
	input := writeFile(t, dir, "in.jsonl", []byte("a\nb\nc\n"), 0o644)
	token := writeFile(t, dir, "token", []byte(l.Token), 0o600)
	wantCode(t, evident(t, nil, "submit", "--log", l.URL, "--batch", "1", "--token_file", token, "--jsonl", input), exitOK)
	writeFile(t, dir, "in.jsonl", []byte("a\nB\nc\nd\n"), 0o644)
	r := evident(t, nil, "submit", "--log", l.URL, "--batch", "1", "--token_file", token, "--jsonl", input)
	wantCode(t, r, exitUsage)
	if !strings.Contains(r.stderr, "line 2 of") || !strings.Contains(r.stderr, "changed") {
		t.Errorf("stderr %q", r.stderr)
	}
	if got := countLines(filepath.Join(dir, "in.jsonl.receipts")); got != 3 {
		t.Errorf("receipts file has %d lines after a refused run, want 3", got)
	}
}

func TestSubmitErrors(t *testing.T) {
	l := testlog.New(t, 0)
	dir := t.TempDir()
	entry := writeFile(t, dir, "e", []byte("x"), 0o644)
	bad := writeFile(t, dir, "bad-token", []byte("wrong"), 0o600)
	r := evident(t, nil, "submit", "--log", l.URL, "--batch", "1", "--token_file", bad, entry)
	wantCode(t, r, exitNetwork)
	if !strings.Contains(r.stderr, "HTTP 401") || !strings.Contains(r.stderr, "bad token") {
		t.Errorf("stderr %q lacks the status and the server's message", r.stderr)
	}
	if _, err := os.Stat(entry + ".tlog-proof"); err == nil {
		t.Error("a failed submit wrote a receipt")
	}
	// A receipt the log signed with another key is refused, not written.
	good := writeFile(t, dir, "token", []byte(l.Token), 0o600)
	_, other, _ := checkpoint.GenerateKey("test.example/log")
	r = evident(t, nil, "submit", "--log", l.URL, "--batch", "1", "--token_file", good, "--log_key", other, entry)
	wantCode(t, r, exitFailed)
	if _, err := os.Stat(entry + ".tlog-proof"); err == nil {
		t.Error("a receipt that does not verify was written")
	}
}

// TestSubmitVerifiesEveryReceipt: receipts that share one checkpoint are
// each checked for inclusion (the checkpoint's verification is cached, the
// proof's is not).
func TestSubmitVerifiesEveryReceipt(t *testing.T) {
	l := testlog.New(t, 1)
	dir := t.TempDir()
	token := writeFile(t, dir, "token", []byte(l.Token), 0o600)
	policy := writeFile(t, dir, "policy", []byte(l.Policy()), 0o644)
	a := writeFile(t, dir, "a", []byte("first entry"), 0o644)
	bf := writeFile(t, dir, "b", []byte("second entry"), 0o644)
	c := writeFile(t, dir, "c", []byte("third entry"), 0o644)
	l.Add([]byte("first entry"), []byte("second entry"), []byte("third entry"))
	l.SetBadProof(func(i uint64) bool { return i == 2 })
	// All three are duplicates now, so their receipts share the latest
	// checkpoint; the third has a bad proof.
	r := evident(t, nil, "submit", "--log", l.URL, "--batch", "1", "--token_file", token, "--log_key", l.VKey, "--policy", policy, a, bf, c)
	wantCode(t, r, exitFailed)
	if !strings.Contains(r.stderr, "the log returned a receipt that does not verify: the entry does not match this receipt") {
		t.Errorf("stderr %q", r.stderr)
	}
	for _, p := range []string{a, bf} {
		if _, err := os.Stat(p + ".tlog-proof"); err != nil {
			t.Errorf("no receipt for %s: %v", p, err)
		}
	}
	if _, err := os.Stat(c + ".tlog-proof"); err == nil {
		t.Error("a receipt with a bad proof was written")
	}
}

// TestSubmitJSONLStopsOnRunErrors: an answer that is not about one entry (a
// bad token, a wrong URL) stops the run at once with one message and exit
// 3; it does not send every line.
func TestSubmitJSONLStopsOnRunErrors(t *testing.T) {
	const n, conc = 500, 4
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	for _, tc := range []struct {
		name, url, want, hint string
		route                 string
	}{
		{"bad token", "", "HTTP 401", "check the write token", "POST /v1/add-entry"},
		{"wrong URL", "/not-the-log", "HTTP 404", "check --log", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := testlog.New(t, 0)
			dir := t.TempDir()
			input := writeFile(t, dir, "in.jsonl", in.Bytes(), 0o644)
			token := writeFile(t, dir, "token", []byte(l.Token), 0o600)
			if tc.name == "bad token" {
				token = writeFile(t, dir, "token", []byte("wrong"), 0o600)
			}
			r := evident(t, nil, "submit", "--log", l.URL+tc.url, "--batch", "1", "--token_file", token, "--jsonl", input, "--concurrency", strconv.Itoa(conc))
			wantCode(t, r, exitNetwork)
			if got := strings.Count(r.stderr, tc.want); got != 1 {
				t.Errorf("stderr has %q %d times, want once:\n%s", tc.want, got, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.hint) || !strings.Contains(r.stderr, "stopped the run") {
				t.Errorf("stderr %q lacks %q", r.stderr, tc.hint)
			}
			if !strings.Contains(r.stderr, "0 failed, 500 remaining") {
				t.Errorf("summary: %s", r.stderr)
			}
			if got := l.Requests(tc.route); got > conc {
				t.Errorf("the log got %d requests, want at most %d (one per worker)", got, conc)
			}
		})
	}
}

// TestSubmitJSONLEntryErrors: an entry the log refuses (413) fails that
// line only; the others get receipts, and the summary's first error is the
// first failed line in input order.
func TestSubmitJSONLEntryErrors(t *testing.T) {
	l := testlog.New(t, 0)
	dir := t.TempDir()
	var in bytes.Buffer
	const n = 60
	for i := 1; i <= n; i++ {
		if i == 7 || i == 41 {
			in.WriteString(strings.Repeat("x", 70000) + "\n")
			continue
		}
		fmt.Fprintf(&in, "line %d\n", i)
	}
	input := writeFile(t, dir, "in.jsonl", in.Bytes(), 0o644)
	token := writeFile(t, dir, "token", []byte(l.Token), 0o600)
	r := evident(t, nil, "submit", "--log", l.URL, "--batch", "1", "--token_file", token, "--jsonl", input, "--concurrency", "16", "--json")
	wantCode(t, r, exitNetwork)
	m := r.json(t)
	if m["failed"] != 2.0 || m["submitted"] != float64(n-2) || m["remaining"] != 2.0 {
		t.Errorf("summary %v", m)
	}
	if e, _ := m["error"].(string); !strings.HasPrefix(e, "2 lines failed; first: line 7: ") || !strings.Contains(e, "HTTP 413") {
		t.Errorf("error %q, want the first failed line in input order (7)", e)
	}
	if got := countLines(input + ".receipts"); got != n-2 {
		t.Errorf("%d receipts, want %d", got, n-2)
	}
}

// TestSubmitJSONLWriteFailure: when the receipts file cannot be written
// (here: the file size limit, RLIMIT_FSIZE, so writes fail with EFBIG) the
// run stops; only the lines whose records were written count as submitted.
func TestSubmitJSONLWriteFailure(t *testing.T) {
	l := testlog.New(t, 0)
	dir := t.TempDir()
	var in bytes.Buffer
	const n = 2000
	for i := range n {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	input := writeFile(t, dir, "in.jsonl", in.Bytes(), 0o644)
	token := writeFile(t, dir, "token", []byte(l.Token), 0o600)
	// ulimit -f counts 512-byte blocks in sh: 64 KiB of receipts, then EFBIG.
	cmd := exec.CommandContext(t.Context(), "sh", "-c", `ulimit -f 128 && exec "$@"`, "sh", evidentBin,
		"submit", "--log", l.URL, "--batch", "1", "--token_file", token, "--jsonl", input, "--concurrency", "4", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != exitNetwork {
		t.Fatalf("exit %d (%v), want %d\nstdout %s\nstderr %s", code, err, exitNetwork, stdout.String(), stderr.String())
	}
	m := result{stdout: stdout.String()}.json(t)
	if e, _ := m["error"].(string); !strings.Contains(e, "writing receipts") || !strings.Contains(e, "stopped the run") {
		t.Errorf("error %q", e)
	}
	kept := countLines(input + ".receipts")
	if kept == 0 || m["submitted"] != float64(kept) {
		t.Errorf("summary says %v submitted, the receipts file holds %d complete records", m["submitted"], kept)
	}
	if sent := l.Requests("POST /v1/add-entry"); sent > kept+50 {
		t.Errorf("the log got %d entries after the receipts file filled at %d records: the run went on", sent, kept)
	}
	// The next run (without the limit) completes every line.
	r := evident(t, nil, "submit", "--log", l.URL, "--batch", "1", "--token_file", token, "--jsonl", input, "--json")
	wantCode(t, r, exitOK)
	checkReceipts(t, l.VKey, in.Bytes(), input+".receipts", n)
}

// TestJSONLStatsFirstInInputOrder: the summary's first error is the failed
// line that comes first in the input, whatever order the answers came in.
func TestJSONLStatsFirstInInputOrder(t *testing.T) {
	st := &jsonlStats{}
	for _, n := range []int{41, 7, 19} {
		st.fail(n, fmt.Errorf("line %d: refused", n))
	}
	if st.firstLine != 7 || st.firstErr.Error() != "line 7: refused" || st.failed.Load() != 3 {
		t.Errorf("first %d %v, failed %d; want line 7 of 3", st.firstLine, st.firstErr, st.failed.Load())
	}
}
