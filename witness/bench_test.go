package witness

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/evidentlog/evident/internal/testproc"
)

// BenchmarkAddCheckpoint measures the add-checkpoint requests per second one
// witness sustains over loopback HTTP when every request advances a log:
// 8 × GOMAXPROCS concurrent clients, each growing its own log of about
// 1,000 entries by one entry per request and sending the consistency proof
// from the size the witness holds (about 10 hashes). So every request does
// the whole job: parse, log signature, state read, consistency proof, a
// compare-and-swap write with fsync (group commit), cosignature. The
// requests are signed before the timer starts; the clients run in this
// process and share its CPUs.
func BenchmarkAddCheckpoint(b *testing.B) {
	clients := 8 * runtime.GOMAXPROCS(0)
	var logs []*testLog
	for i := range clients {
		logs = append(logs, newTestLog(b, fmt.Sprintf("example.com/log%d", i)).grow(1000))
	}
	w := newTestWitness(b, "example.com/witness", logs)
	// Client i sends b.N/clients requests (one more for the first b.N%clients).
	bodies := make([][][]byte, clients)
	for i, l := range logs {
		if _, err := w.AddCheckpoint(b.Context(), l.request(0)); err != nil {
			b.Fatal(err)
		}
		n := b.N / clients
		if i < b.N%clients {
			n++
		}
		for range n {
			old := l.size
			l.grow(1)
			bodies[i] = append(bodies[i], l.request(old).Marshal())
		}
	}
	runClients(b, w, bodies)
}

// BenchmarkAddCheckpointHeld measures requests that resubmit the checkpoint
// the witness holds (old size = size), as a log retrying a round or anyone
// replaying a public checkpoint does: parse, log signature, state read, and
// the stored cosignature as the answer, with no proof to check and no write.
func BenchmarkAddCheckpointHeld(b *testing.B) {
	const nlogs = 64
	var logs []*testLog
	for i := range nlogs {
		logs = append(logs, newTestLog(b, fmt.Sprintf("example.com/log%d", i)).grow(1000))
	}
	w := newTestWitness(b, "example.com/witness", logs)
	clients := 8 * runtime.GOMAXPROCS(0)
	bodies := make([][][]byte, clients)
	for _, l := range logs {
		if _, err := w.AddCheckpoint(b.Context(), l.request(0)); err != nil {
			b.Fatal(err)
		}
	}
	for i := range b.N {
		c, l := i%clients, logs[(i*7)%nlogs]
		bodies[c] = append(bodies[c], l.request(l.size).Marshal())
	}
	runClients(b, w, bodies)
}

// runClients starts one goroutine per element of bodies, each posting its
// bodies in order over loopback HTTP and requiring 200, and reports the
// requests per second and the CPU time per request of the whole process
// (server and clients).
func runClients(b *testing.B, w *testWitness, bodies [][][]byte) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(bodies)}}
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0 := time.Now(), testproc.SelfCPU(b)
	for _, bs := range bodies {
		wg.Go(func() {
			for _, body := range bs {
				resp, err := client.Post(w.url+"/add-checkpoint", "text/plain", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d: %s", resp.StatusCode, answer)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	b.ReportMetric(float64((testproc.SelfCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
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
