package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
)

// BenchmarkAuditE2E runs the real "evident audit" binary (no state: every
// entry fetched and verified) against the real evident-server on loopback,
// holding EVIDENT_AUDIT_ENTRIES entries (default 20,000) of about 100 bytes.
// It reports entries/s and the CLI's CPU per entry. EVIDENT_AUDIT_PARALLEL
// sets --parallel (default: the CLI's default).
func BenchmarkAuditE2E(b *testing.B) {
	n := 20000
	if v := os.Getenv("EVIDENT_AUDIT_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	srv := startRealServer(b)
	tok, err := os.ReadFile(srv.tokenFile)
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(b.Context(), client.Config{URL: srv.url, Token: string(tok[:len(tok)-1])})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// Load the log with ?wait=false submissions from 64 goroutines.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Go(func() {
			for i := w; i < n; i += 64 {
				if _, err := c.QueueEntry(b.Context(), fmt.Appendf(nil, `{"event":"audit-bench","id":%d,"pad":"0123456789012345678901234567890123456789012345678901234567890"}`, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	key, _ := checkpoint.NewVerifier(srv.vkey)
	for {
		raw, err := c.Checkpoint(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		s, err := checkpoint.Open(raw, key)
		if err != nil {
			b.Fatal(err)
		}
		if s.Size >= uint64(n) {
			break
		}
		time.Sleep(100 * time.Millisecond) // waiting for the publisher
	}
	var cpu time.Duration
	b.ResetTimer()
	for b.Loop() {
		args := []string{"audit", "--log", srv.url, "--log_key", srv.vkey, "--json"}
		if p := os.Getenv("EVIDENT_AUDIT_PARALLEL"); p != "" {
			args = append(args, "--parallel", p)
		}
		cmd := exec.Command(evidentBin, args...)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("audit: %v\n%s", err, out)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil || m["ok"] != true {
			b.Fatalf("audit output %s", out)
		}
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cli-cpu-µs/entry")
}

// BenchmarkSubmitJSONLE2E runs the real "evident submit --jsonl" (wait for
// each receipt, verify it, write it durably) against the real evident-server
// on loopback: 10,000 new lines per iteration, --concurrency from
// EVIDENT_SUBMIT_CONCURRENCY (default 256). It reports lines/s and the
// CLI's CPU per line.
func BenchmarkSubmitJSONLE2E(b *testing.B) {
	conc := "256"
	if v := os.Getenv("EVIDENT_SUBMIT_CONCURRENCY"); v != "" {
		conc = v
	}
	const n = 10000
	srv := startRealServer(b)
	dir := b.TempDir()
	var cpu time.Duration
	iter := 0
	for b.Loop() {
		b.StopTimer()
		var in []byte
		for i := range n {
			in = fmt.Appendf(in, `{"event":"bench","iter":%d,"id":%d,"pad":"0123456789012345678901234567890123456789"}`+"\n", iter, i)
		}
		input := dir + fmt.Sprintf("/in%d.jsonl", iter)
		if err := os.WriteFile(input, in, 0o644); err != nil {
			b.Fatal(err)
		}
		iter++
		b.StartTimer()
		args := []string{"submit", "--log", srv.url, "--token_file", srv.tokenFile, "--jsonl", input, "--concurrency", conc, "--json"}
		if os.Getenv("EVIDENT_SUBMIT_NOVERIFY") == "" {
			args = append(args, "--log_key", srv.vkey)
		}
		cmd := exec.Command(evidentBin, args...)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("submit: %v\n%s", err, out)
		}
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cli-cpu-µs/line")
}
