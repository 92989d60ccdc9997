package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// realWitness is a running evident-witness process.
type realWitness struct {
	vkey, url string
}

// startRealWitness runs evident-witness following the log with logVKey.
func startRealWitness(t *testing.T, name, logVKey string) *realWitness {
	t.Helper()
	if witnessBuildErr != nil {
		t.Fatal(witnessBuildErr)
	}
	dir := t.TempDir()
	logs := writeFile(t, dir, "logs.txt", []byte("log "+logVKey+"\n"), 0o644)
	cmd := exec.Command(witnessBin, "--name", name, "--listen", "127.0.0.1:0", "--data_dir", filepath.Join(dir, "data"), "--logs_file", logs)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	w := &realWitness{}
	vkeys, addrs := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "vkey: "); ok {
				vkeys <- v
			}
		}
	}()
	addrRE := regexp.MustCompile(`evident-witness serving.* addr=(127\.0\.0\.1:\d+)`)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
		cmd.Wait()
		close(exited)
	}()
	timeout := time.After(60 * time.Second)
	for w.vkey == "" || w.url == "" {
		select {
		case v := <-vkeys:
			w.vkey = v
		case a := <-addrs:
			w.url = "http://" + a
		case <-exited:
			t.Fatalf("evident-witness exited: %s", log.String())
		case <-timeout:
			t.Fatalf("evident-witness did not start")
		}
	}
	return w
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
