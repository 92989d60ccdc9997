package log

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testproc"
	"github.com/evidentlog/evident/storage"
)

// BenchmarkAddEntry adds entries over HTTP on loopback from parallel
// clients, waiting for receipts or not: 8 clients per GOMAXPROCS (16 on 2
// cores).
func BenchmarkAddEntry(b *testing.B) {
	for _, q := range []string{"", "?wait=false"} {
		b.Run("query="+q, func(b *testing.B) {
			tl := newTestLog(b, nil)
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := fmt.Appendf(nil, "bench entry %d", n.Add(1))
					if code, r := tl.add(e, q); code/100 != 2 {
						b.Errorf("add: %d %s", code, r.Error)
					}
				}
			})
		})
	}
}

// BenchmarkEntries reads entries of a published tree of 2,048 through
// Log.Entries (what GET /v1/entries serves): 1,000 at a time, and one.
func BenchmarkEntries(b *testing.B) {
	tl := newTestLog(b, nil)
	const size = 2048
	for i := range size {
		if _, err := tl.be.Log.QueueLeaf(b.Context(), &trillian.QueueLeafRequest{
			LogId: tl.be.TreeID, Leaf: &trillian.LogLeaf{LeafValue: fmt.Appendf(nil, "bench entry %d", i)}}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for tl.log.pub.latest().size != size {
		if time.Now().After(deadline) {
			b.Fatalf("the log did not publish size %d", size)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, count := range []uint64{1000, 1} {
		b.Run(fmt.Sprintf("count=%d", count), func(b *testing.B) {
			var start uint64 = 3
			for b.Loop() {
				got, err := tl.log.Entries(b.Context(), start, count)
				if err != nil || uint64(len(got)) != count {
					b.Fatalf("Entries(%d, %d): %d entries, %v", start, count, len(got), err)
				}
				start = (start + 517) % (size - count)
			}
		})
	}
}

// BenchmarkTileBuilder adds 256-byte entries to a TileBuilder, taking the
// changed tiles every 50 entries as the tiler does each round under load:
// the tiler's own CPU and allocations per entry.
func BenchmarkTileBuilder(b *testing.B) {
	entry := make([]byte, 256)
	tb := NewTileBuilder()
	full := func(storage.Tile) {}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint64(entry, uint64(i))
		if err := tb.Add(entry, checkpoint.LeafHash(entry), full); err != nil {
			b.Fatal(err)
		}
		if i%50 == 49 {
			tb.Changed()
		}
	}
}

// BenchmarkAddEntryHTTP puts the log's add-entry beside its HTTP alone:
// 256 clients (keeping their connections) post 256-byte entries and wait
// for the answers, to the real log ("log", Trillian in-process on SQLite,
// receipts in the answers) or to a handler that only reads the entry and
// writes an answer of the same size ("http-only"). It reports entries/s
// and the CPU per entry of the whole process, server and clients: the
// difference is what the log does beyond HTTP.
func BenchmarkAddEntryHTTP(b *testing.B) {
	var answer []byte // a real answer, taken from the log
	b.Run("log", func(b *testing.B) {
		tl := newTestLog(b, nil)
		body := benchAddEntries(b, tl.srv.URL, tl.token)
		answer = body
	})
	b.Run("http-only", func(b *testing.B) {
		if answer == nil {
			b.Skip("needs the log's answer: run with the log")
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
		}))
		defer srv.Close()
		benchAddEntries(b, srv.URL, "token")
	})
}

// benchAddEntries posts b.N distinct entries to url from 256 clients and
// returns the last answer.
func benchAddEntries(b *testing.B, url, token string) []byte {
	const clients = 256
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer c.CloseIdleConnections()
	var n atomic.Int64
	var last atomic.Value
	post := func(i int64) {
		e := make([]byte, 256)
		binary.BigEndian.PutUint64(e, uint64(i))
		req, err := http.NewRequest("POST", url+"/v1/add-entry", bytes.NewReader(e))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"receipt":"c2sp.org/tlog-proof@v1\n`)) {
			b.Errorf("add-entry: %d %.100q %v", resp.StatusCode, body, err)
			return
		}
		last.Store(body)
	}
	post(-1) // the first checkpoint, and a connection
	cpu0, start := testproc.SelfCPU(b), time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
				post(i)
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
	b.ReportMetric(float64((testproc.SelfCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/entry")
	body, _ := last.Load().([]byte)
	return body
}
