package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// BenchmarkWitnessedReceipts runs 16 closed-loop submitters, each waiting
// for its receipt, against the real evident-server with two real
// evident-witness processes and a policy that needs both (2-of-2), for
// EVIDENT_BENCH_DUR (default 10s) per iteration. It reports the
// submit-to-receipt p50 and p99 and entries/s; every receipt carries both
// cosignatures.
func BenchmarkWitnessedReceipts(b *testing.B) {
	d := 10 * time.Second
	if v, err := time.ParseDuration(os.Getenv("EVIDENT_BENCH_DUR")); err == nil {
		d = v
	}
	dataDir := filepath.Join(b.TempDir(), "data")
	first := startRealServerIn(b, dataDir)
	vkey := first.vkey
	first.stop()
	w0 := startRealWitness(b, "witness0.example", vkey)
	w1 := startRealWitness(b, "witness1.example", vkey)
	policy := writeFile(b, b.TempDir(), "policy", []byte(fmt.Sprintf(
		"log %s\nwitness w0 %s %s\nwitness w1 %s %s\ngroup both all w0 w1\nquorum both\n",
		vkey, w0.vkey, w0.url, w1.vkey, w1.url)), 0o644)
	srv := startRealServerIn(b, dataDir, "--witness_policy_file", policy)
	token, err := os.ReadFile(srv.tokenFile)
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(b.Context(), client.Config{URL: srv.url, Token: strings.TrimSpace(string(token))})
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	var mu sync.Mutex
	var seq atomic.Int64
	for b.Loop() {
		end := time.Now().Add(d)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for time.Now().Before(end) {
					t0 := time.Now()
					r, err := c.AddEntry(b.Context(), fmt.Appendf(nil, "witnessed entry %d", seq.Add(1)))
					if err != nil {
						b.Error(err)
						return
					}
					if n := strings.Count(string(r.Receipt), "\n— witness"); n != 2 {
						b.Errorf("receipt with %d cosignatures, want 2", n)
						return
					}
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		b.Fatal("no receipts")
	}
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "entries/s")
}
