package log

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestLeafCache(t *testing.T) {
	h := func(b byte) [32]byte { return [32]byte{b} }
	c := newLeafCache(3)
	c.add(10, [][32]byte{h(1), h(2)})
	c.add(12, [][32]byte{h(1), h(3), h(4)}) // h(1) keeps 10; h(4) evicts h(1)
	for _, tc := range []struct {
		leaf byte
		want uint64
		ok   bool
	}{{1, 0, false}, {2, 11, true}, {3, 13, true}, {4, 14, true}, {5, 0, false}} {
		got, ok := c.get(h(tc.leaf))
		if ok != tc.ok || got != tc.want {
			t.Errorf("get(%d) = %d, %v; want %d, %v", tc.leaf, got, ok, tc.want, tc.ok)
		}
	}
	off := newLeafCache(-1)
	off.add(0, [][32]byte{h(1)})
	if _, ok := off.get(h(1)); ok {
		t.Error("a disabled cache holds a leaf")
	}
}

// TestLeafCacheWarmsAfterRestart restarts a log and checks that its leaf
// cache comes back with the newest leaves, read from the tiles.
func TestLeafCacheWarmsAfterRestart(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.LeafCacheSize = 100 })
	const n = 300 // a full tile and 44 leaves of the next
	var hashes [][32]byte
	for i := range n {
		code, r := tl.add(fmt.Appendf(nil, "entry %d", i), "")
		if code != http.StatusOK || r.Index != uint64(i) {
			t.Fatalf("add %d: %d %+v", i, code, r)
		}
		hashes = append(hashes, [32]byte(r.LeafHash))
	}
	tl.stop()
	tl.start()
	defer tl.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tl.log.leaves.mu.RLock()
		cached := len(tl.log.leaves.ring)
		tl.log.leaves.mu.RUnlock()
		if cached == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leaf cache holds %d leaves after the restart, want 100", cached)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, h := range hashes {
		got, ok := tl.log.leaves.get(h)
		if want := i >= n-100; ok != want || (ok && got != uint64(i)) {
			t.Errorf("leaf %d: cached %v at %d; want cached %v", i, ok, got, want)
		}
	}
	code, body := tl.get(fmt.Sprintf("/v1/receipt?leaf_hash=%x", hashes[n-1]))
	if code != http.StatusOK {
		t.Fatalf("receipt of the last entry: %d %s", code, body)
	}
}

// TestLeavesKept checks which leaves of a tiler's step go into a cache of
// max leaves: only those the cache still holds once the tiler reaches the
// tree's size.
func TestLeavesKept(t *testing.T) {
	hashes := make([][32]byte, 10)
	for i := range hashes {
		hashes[i][0] = byte(i)
	}
	for _, c := range []struct {
		first, size uint64
		max         int
		wantFirst   uint64
		wantN       int
	}{
		{first: 0, size: 10, max: 100, wantFirst: 0, wantN: 10},   // all fit
		{first: 0, size: 10, max: 4, wantFirst: 6, wantN: 4},      // the last 4
		{first: 0, size: 100, max: 4, wantFirst: 10, wantN: 0},    // all evicted later
		{first: 90, size: 100, max: 5, wantFirst: 95, wantN: 5},   // a later step
		{first: 90, size: 100, max: 10, wantFirst: 90, wantN: 10}, // exactly
		{first: 0, size: 10, max: 0, wantFirst: 10, wantN: 0},     // no cache
	} {
		first, got := leavesKept(c.first, hashes, c.size, c.max)
		if first != c.wantFirst || len(got) != c.wantN || (len(got) > 0 && got[0][0] != byte(first-c.first)) {
			t.Errorf("leavesKept(%d, 10 leaves, size %d, max %d) = %d and %d leaves; want %d and %d", c.first, c.size, c.max, first, len(got), c.wantFirst, c.wantN)
		}
	}
}
