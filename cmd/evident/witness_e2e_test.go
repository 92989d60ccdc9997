package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/internal/testproc"
)

// realWitness is a running evident-witness process.
type realWitness struct {
	vkey, url string
}

// witnessAddr finds the address in evident-witness's "serving" log line.
var witnessAddr = regexp.MustCompile(`evident-witness serving.* addr=(127\.0\.0\.1:\d+)`)

// startRealWitness runs evident-witness following the log with logVKey. It
// is ready once it has printed its vkey and logged the address it serves.
func startRealWitness(t testing.TB, name, logVKey string) *realWitness {
	t.Helper()
	if witnessBuildErr != nil {
		t.Fatal(witnessBuildErr)
	}
	dir := t.TempDir()
	logs := writeFile(t, dir, "logs.txt", []byte("log "+logVKey+"\n"), 0o644)
	p := testproc.StartReady(t, func(lines map[string]string, stderr string) bool {
		return lines["vkey"] != "" && witnessAddr.MatchString(stderr)
	}, witnessBin, "--name", name, "--listen", "127.0.0.1:0", "--data_dir", filepath.Join(dir, "data"), "--logs_file", logs)
	t.Cleanup(func() { p.Stop(30 * time.Second) })
	return &realWitness{vkey: p.Lines["vkey"], url: "http://" + witnessAddr.FindStringSubmatch(p.Stderr())[1]}
}

// TestE2EWitnessed runs the whole system: the real log with two real
// witnesses and a policy requiring both. Receipts carry real cosignatures;
// verify, monitor and audit check them, and the tampering table runs on a
// real cosigned receipt.
func TestE2EWitnessed(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	first := startRealServerIn(t, dataDir) // creates the log's key
	vkey := first.vkey
	first.stop()
	w0 := startRealWitness(t, "witness0.example", vkey)
	w1 := startRealWitness(t, "witness1.example", vkey)
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy", []byte(fmt.Sprintf(
		"log %s\nwitness w0 %s %s\nwitness w1 %s %s\ngroup both all w0 w1\nquorum both\n",
		vkey, w0.vkey, w0.url, w1.vkey, w1.url)), 0o644)
	srv := startRealServerIn(t, dataDir, "--witness_policy_file", policy)

	var lines strings.Builder
	for i := range 50 {
		fmt.Fprintf(&lines, `{"ai_decision":%d}`+"\n", i)
	}
	jsonl := writeFile(t, dir, "decisions.jsonl", []byte(lines.String()), 0o644)
	wantCode(t, evident(t, nil, "submit", "--log", srv.url, "--token_file", srv.tokenFile, "--log_key", vkey, "--policy", policy, "--jsonl", jsonl), exitOK)
	entry := writeFile(t, dir, "approval.txt", []byte("change 7781 approved by the CAB"), 0o644)
	wantCode(t, evident(t, nil, "submit", "--log", srv.url, "--token_file", srv.tokenFile, "--log_key", vkey, "--policy", policy, entry), exitOK)
	r := evident(t, nil, "verify", "--log_key", vkey, "--policy", policy, "--entry", entry, entry+".tlog-proof")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "w0 (witness0.example) at") || !strings.Contains(r.stdout, "w1 (witness1.example) at") {
		t.Errorf("verify: %q", r.stdout)
	}
	wantCode(t, evident(t, nil, "monitor", "--once", "--log", srv.url, "--log_key", vkey, "--policy", policy, "--state_dir", t.TempDir()), exitOK)
	wantCode(t, evident(t, nil, "audit", "--log", srv.url, "--log_key", vkey, "--policy", policy), exitOK)

	lines.Reset()
	for i := range 60 {
		fmt.Fprintf(&lines, `{"later":%d}`+"\n", i)
	}
	wantCode(t, evident(t, nil, "submit", "--log", srv.url, "--token_file", srv.tokenFile, "--jsonl", writeFile(t, dir, "later.jsonl", []byte(lines.String()), 0o644)), exitOK)
	r = evident(t, nil, "receipt", "--log", srv.url, "--entry", entry, "--log_key", vkey, "--policy", policy)
	wantCode(t, r, exitOK)
	checkTampering(t, vkey, entry, []byte(r.stdout), policy)
}
