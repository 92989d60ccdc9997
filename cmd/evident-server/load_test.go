package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoad is the load generator behind scripts/bench.sh. It runs only when
// EVIDENT_LOAD is set to a duration (e.g. EVIDENT_LOAD=10s): it starts the
// real binary on a fresh data directory and measures
//
//   - submit-to-receipt latency (p50, p99) with 16 concurrent submitters
//     that each wait for their receipt (closed loop);
//   - sustained entries/s with many concurrent submitters waiting for
//     receipts, and with ?wait=false;
//
// reporting beside each rate the server's CPU time per entry (from
// /proc/<pid>/stat). Client and server share the machine's cores.
// EVIDENT_LOAD_FLAGS passes extra flags to the server.
func TestLoad(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("EVIDENT_LOAD"))
	if err != nil {
		t.Skip("SKIP: set EVIDENT_LOAD to a duration (e.g. 10s) to run the load generator")
	}
	// EVIDENT_LOAD_FLAGS adds server flags, e.g. "--checkpoint_interval 50ms".
	flags := append([]string{"--max_backlog", "1000000"}, strings.Fields(os.Getenv("EVIDENT_LOAD_FLAGS"))...)
	s := startServer(t, filepath.Join(t.TempDir(), "data"), flags...)
	idle0 := processCPU(t, s.Pid())
	time.Sleep(3 * time.Second)
	idle := processCPU(t, s.Pid()) - idle0
	fmt.Printf("evident-server load: idle server (sequencer and publisher polling): %.1f%% of one core\n", float64(idle)/float64(3*time.Second)*100)
	for _, phase := range []struct {
		name    string
		clients int
		query   string
	}{
		{"16 submitters, wait for receipt", 16, ""},
		{"256 submitters, wait for receipt", 256, ""},
		{"512 submitters, wait for receipt", 512, ""},
		{"64 submitters, ?wait=false", 64, "?wait=false"},
	} {
		r := runLoad(t, s, phase.clients, phase.query, d)
		fmt.Printf("evident-server load: %-34s %7.0f entries/s  p50 %6.1f ms  p99 %6.1f ms  server CPU %5.1f µs/entry  (%d entries, %d errors, %s)\n",
			phase.name, r.rate, ms(r.p50), ms(r.p99), r.cpuPerEntry, r.n, r.errors, d)
	}
}

type loadResult struct {
	n, errors   int
	rate        float64
	p50, p99    time.Duration
	cpuPerEntry float64
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

var loadSeq atomic.Int64

func runLoad(t *testing.T, s *server, clients int, query string, d time.Duration) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	var errs int
	cpu0 := processCPU(t, s.Pid())
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			entry := make([]byte, 256)
			for time.Now().Before(end) {
				n := loadSeq.Add(1)
				copy(entry, strconv.AppendInt([]byte("load entry "), n, 10))
				t0 := time.Now()
				code, _, err := s.add(client, entry, query)
				el := time.Since(t0)
				mu.Lock()
				if err != nil || code/100 != 2 {
					errs++
				} else {
					lat = append(lat, el)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(t, s.Pid()) - cpu0
	slices.Sort(lat)
	r := loadResult{n: len(lat), errors: errs, rate: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[len(lat)*99/100]
		r.cpuPerEntry = float64(cpu.Microseconds()) / float64(len(lat))
	}
	return r
}

// processCPU is the user+system CPU time of process pid so far.
func processCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which is in parentheses).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}
