package log

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"

	"github.com/evidentlog/evident/checkpoint"
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
