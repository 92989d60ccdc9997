package main

import (
	"bytes"
	ebinary "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
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
//   - the idle server's CPU;
//   - submit-to-receipt latency (p50, p99) with 16 concurrent submitters
//     that each wait for their receipt (closed loop);
//   - sustained entries/s with many concurrent submitters waiting for
//     receipts, and with ?wait=false;
//   - entries/s with receipts through POST /v1/add-entries, 1,000 entries a
//     batch;
//   - an overload: 4,096 submitters against a backlog limit of 2,000
//     (EVIDENT_LOAD_OVERLOAD_FLAGS): every answer must be 2xx or 503 with
//     Retry-After;
//
// reporting beside each rate the server's CPU time per entry (from
// /proc/<pid>/stat), and at the end its peak resident memory (VmHWM).
// Client and server share the machine's cores. EVIDENT_LOAD_FLAGS passes
// extra flags to the server.
func TestLoad(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("EVIDENT_LOAD"))
	if err != nil {
		t.Skip("SKIP: set EVIDENT_LOAD to a duration (e.g. 10s) to run the load generator")
	}
	// EVIDENT_LOAD_FLAGS adds server flags, e.g. "--checkpoint_interval 50ms".
	flags := append([]string{"--max_backlog", "1000000"}, strings.Fields(os.Getenv("EVIDENT_LOAD_FLAGS"))...)
	s := startServer(t, filepath.Join(t.TempDir(), "data"), flags...)
	time.Sleep(2 * time.Second)
	idle0 := processCPU(t, s.Pid())
	time.Sleep(10 * time.Second)
	idle := processCPU(t, s.Pid()) - idle0
	fmt.Printf("evident-server load: idle server: %.2f%% of one core (10 s)\n", float64(idle)/float64(10*time.Second)*100)
	for _, phase := range []struct {
		name    string
		clients int
		query   string
		batch   int
	}{
		{"16 submitters, wait for receipt", 16, "", 0},
		{"256 submitters, wait for receipt", 256, "", 0},
		{"512 submitters, wait for receipt", 512, "", 0},
		{"64 submitters, ?wait=false", 64, "?wait=false", 0},
		{"8 batch submitters, 1,000 a batch", 8, "", 1000},
	} {
		r := runLoad(t, s, phase.clients, phase.query, phase.batch, d)
		fmt.Printf("evident-server load: %-34s %7.0f entries/s  p50 %6.1f ms  p99 %6.1f ms  server CPU %5.1f µs/entry  (%d entries, %d errors, %s)\n",
			phase.name, r.rate, ms(r.p50), ms(r.p99), r.cpuPerEntry, r.n, r.errors, d)
	}
	fmt.Printf("evident-server load: peak resident memory %d MiB\n", peakRSS(t, s.Pid())>>20)

	// Overload: far more submitters than the backlog admits.
	oflags := append([]string{"--max_backlog", "2000"}, strings.Fields(os.Getenv("EVIDENT_LOAD_OVERLOAD_FLAGS"))...)
	o := startServer(t, filepath.Join(t.TempDir(), "data"), oflags...)
	r := runLoad(t, o, 4096, "", 0, d)
	fmt.Printf("evident-server load: %-34s %7.0f entries/s  p50 %6.1f ms  p99 %6.1f ms  server CPU %5.1f µs/entry  (%d entries, %d 503s with Retry-After, %d other errors, %s)\n",
		"4,096 submitters, backlog 2,000", r.rate, ms(r.p50), ms(r.p99), r.cpuPerEntry, r.n, r.refused, r.errors, d)
	fmt.Printf("evident-server load: overload peak resident memory %d MiB\n", peakRSS(t, o.Pid())>>20)
	if r.errors > 0 {
		t.Errorf("overload: %d answers were neither 2xx nor 503 with Retry-After", r.errors)
	}
}

type loadResult struct {
	n, errors   int
	refused     int // 503 with Retry-After
	rate        float64
	p50, p99    time.Duration
	cpuPerEntry float64
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

var loadSeq atomic.Int64

// runLoad runs closed-loop submitters for d: each adds one entry at a time
// to add-entry, or, with batch > 0, that many at a time to add-entries.
func runLoad(t *testing.T, s *server, clients int, query string, batch int, d time.Duration) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	var errs, refused int
	cpu0 := processCPU(t, s.Pid())
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(end) {
				t0 := time.Now()
				var n int
				var code int
				var retry string
				var err error
				if batch > 0 {
					code, n, err = s.addBatch(client, loadEntries(batch))
				} else {
					var h http.Header
					code, h, err = s.addRaw(client, loadEntries(1)[0], query)
					n, retry = 1, h.Get("Retry-After")
				}
				el := time.Since(t0)
				mu.Lock()
				switch {
				case err == nil && code/100 == 2:
					for range n {
						lat = append(lat, el)
					}
				case err == nil && code == http.StatusServiceUnavailable && retry != "":
					refused++
				default:
					errs++
				}
				mu.Unlock()
				if code == http.StatusServiceUnavailable {
					time.Sleep(100 * time.Millisecond) // as a client honouring Retry-After would, briefly
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(t, s.Pid()) - cpu0
	slices.Sort(lat)
	r := loadResult{n: len(lat), errors: errs, refused: refused, rate: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[len(lat)*99/100]
		r.cpuPerEntry = float64(cpu.Microseconds()) / float64(len(lat))
	}
	return r
}

// loadEntries makes n distinct 256-byte entries.
func loadEntries(n int) [][]byte {
	es := make([][]byte, n)
	for i := range es {
		es[i] = make([]byte, 256)
		copy(es[i], strconv.AppendInt([]byte("load entry "), loadSeq.Add(1), 10))
	}
	return es
}

// addRaw posts one entry to add-entry and returns the status and header.
func (s *server) addRaw(client *http.Client, entry []byte, query string) (int, http.Header, error) {
	req, err := http.NewRequest("POST", s.URL+"/v1/add-entry"+query, bytes.NewReader(entry))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, err
}

// addBatch posts entries to add-entries and returns the status and how many
// entries got a receipt.
func (s *server) addBatch(client *http.Client, entries [][]byte) (int, int, error) {
	var body []byte
	for _, e := range entries {
		body = ebinary.BigEndian.AppendUint16(body, uint16(len(e)))
		body = append(body, e...)
	}
	req, err := http.NewRequest("POST", s.URL+"/v1/add-entries", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Receipt string `json:"receipt"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return resp.StatusCode, 0, err
	}
	n := 0
	for _, x := range r.Results {
		if x.Receipt != "" {
			n++
		}
	}
	return resp.StatusCode, n, nil
}

// peakRSS is the peak resident memory of process pid (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/pid/status")
	return 0
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
