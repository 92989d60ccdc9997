package log

import (
	"bytes"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/google/trillian"
	"google.golang.org/protobuf/proto"
)

// TestRecentAttributions attributes published entries from the leaves in
// memory, across tile boundaries and up to the partial tile at the edge,
// and refuses them (so that the attributer reads them back the long way)
// when a leaf in memory does not hash to the tiles, wherever it is.
func TestRecentAttributions(t *testing.T) {
	var tamper atomic.Int64 // the index of the leaf to change in memory, or -1
	tamper.Store(-1)
	tl := newTestLog(t, func(cfg *Config) {
		leaves := cfg.Leaves
		cfg.Leaves = func(start, end uint64) ([]*trillian.LogLeaf, bool) {
			ls, ok := leaves(start, end)
			if i := tamper.Load(); ok && i >= int64(start) && i < int64(end) {
				ls = slices.Clone(ls)
				c := proto.Clone(ls[i-int64(start)]).(*trillian.LogLeaf)
				c.LeafValue = append([]byte("not "), c.LeafValue...)
				ls[i-int64(start)] = c
			}
			return ls, ok
		}
	})
	ops := tl.flushOps()
	entries := make([][]byte, 600)
	for i := range entries {
		entries[i] = fmt.Appendf(nil, "entry %d", i)
	}
	if code, _, r := tl.addBatch(encodeBatch(entries), ""); code != 200 || len(r.Results) != len(entries) {
		t.Fatalf("add-entries: %d %s", code, r.Error)
	}
	size := tl.log.pub.latest().size
	if size != ops+uint64(len(entries)) || size%tileWidth == 0 {
		t.Fatalf("published size %d; want %d, ending in a partial tile", size, ops+uint64(len(entries)))
	}
	for _, start := range []uint64{0, 250, size - 1} {
		as, ok := tl.log.recentAttributions(t.Context(), start, size-start)
		if !ok || uint64(len(as)) != size-start {
			t.Fatalf("recentAttributions(%d, %d): %d, %v", start, size-start, len(as), ok)
		}
		for j, a := range as {
			i := start + uint64(j)
			if a.Index != i || a.Tenant != "default" {
				t.Fatalf("attribution %d: %+v", i, a)
			}
			if i >= ops && !bytes.Equal(a.LeafHash[:], leafHash(entries[i-ops])) {
				t.Fatalf("attribution %d: leaf hash %x, want %x", i, a.LeafHash, leafHash(entries[i-ops]))
			}
		}
	}
	for _, i := range []uint64{ops, 255, 256, 300, size - 1} {
		tamper.Store(int64(i))
		if _, ok := tl.log.recentAttributions(t.Context(), 0, size); ok {
			t.Errorf("recentAttributions accepted a changed leaf %d", i)
		}
	}
}
