package witness

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAddCheckpoint measures the add-checkpoint requests per second one
// witness sustains over loopback HTTP: parallel clients, each re-submitting
// the checkpoint of its own log (old size = size), so that every request
// does the whole job (parse, log signature, state read, compare-and-swap
// write with fsync, cosignature) and none is refused. Clients run in this
// process and share its CPUs.
func BenchmarkAddCheckpoint(b *testing.B) {
	const nlogs = 64
	var logs []*testLog
	for i := range nlogs {
		logs = append(logs, newTestLog(b, fmt.Sprintf("example.com/log%d", i)).grow(1000))
	}
	w := newTestWitness(b, "example.com/witness", logs)
	bodies := make([][]byte, nlogs)
	for i, l := range logs {
		if _, err := w.AddCheckpoint(b.Context(), l.request(0)); err != nil {
			b.Fatal(err)
		}
		bodies[i] = l.request(l.size).Marshal()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var next atomic.Int64
	b.SetParallelism(8) // 8 × GOMAXPROCS concurrent clients
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		for pb.Next() {
			body := bodies[i%nlogs]
			i += 7
			resp, err := client.Post(w.url+"/add-checkpoint", "text/plain", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
}

// cpuTime returns the CPU time (user + system) this process used so far:
// server and clients together.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPoolCosign measures the publish latency the witness round adds
// per checkpoint: Pool.Cosign against two witnesses on loopback with an
// all-of-two quorum, the log growing by one entry per checkpoint (so each
// witness verifies a real consistency proof). It reports p50 and p99.
func BenchmarkPoolCosign(b *testing.B) {
	l := newTestLog(b, "example.com/log").grow(1000)
	w1 := newTestWitness(b, "example.com/w1", []*testLog{l})
	w2 := newTestWitness(b, "example.com/w2", []*testLog{l})
	p := testPool(b, "all", false, w1, w2)
	if _, err := p.Cosign(b.Context(), l.checkpoint(), l.proofFunc()); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		l.grow(1)
		cp, proof := l.checkpoint(), l.proofFunc()
		b.StartTimer()
		t0 := time.Now()
		if _, err := p.Cosign(b.Context(), cp, proof); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
