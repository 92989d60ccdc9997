package log

import (
	"context"
	"sync"
	"time"
)

// DefaultLeafCacheSize is how many of the most recently tiled leaves' indexes
// the log keeps in memory (about 80 bytes each), so that receipts of recent
// entries, the ones writers ask for, need no database query.
const DefaultLeafCacheSize = 1 << 20

// leafCache maps the leaf hashes the tiler of this process stored last to
// their indexes: a bounded first-in, first-out cache in front of the
// tiler's index in the state database. It is only a shortcut: a receipt
// built from it is verified like any other, and a leaf it does not hold is
// looked up in the database.
type leafCache struct {
	mu    sync.RWMutex
	index map[[32]byte]uint64
	ring  [][32]byte // insertion order, for eviction
	next  int        // the ring slot written next
	max   int
}

func newLeafCache(max int) *leafCache {
	return &leafCache{index: make(map[[32]byte]uint64), max: max}
}

// add records the leaves [first, first+len(hashes)) (a repeated hash keeps
// its first index, as in the database).
func (c *leafCache) add(first uint64, hashes [][32]byte) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range hashes {
		if _, ok := c.index[h]; ok {
			continue
		}
		if len(c.ring) < c.max {
			c.ring = append(c.ring, h)
		} else {
			delete(c.index, c.ring[c.next])
			c.ring[c.next] = h
			c.next = (c.next + 1) % c.max
		}
		c.index[h] = first + uint64(i)
	}
}

// get returns the index of the leaf with this hash, if cached.
func (c *leafCache) get(h [32]byte) (uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, ok := c.index[h]
	return i, ok
}

// fill records the newest of the leaves [first, first+len(hashes)) that
// fit in the room the cache has left, evicting nothing, and reports
// whether room is left: for warming a new cache with leaves older than
// those the tiler adds.
func (c *leafCache) fill(first uint64, hashes [][32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.ring); len(hashes) > room {
		first += uint64(len(hashes) - room)
		hashes = hashes[len(hashes)-room:]
	}
	for i, h := range hashes {
		if _, ok := c.index[h]; ok {
			continue
		}
		c.ring = append(c.ring, h)
		c.index[h] = first + uint64(i)
	}
	return len(c.ring) < c.max
}

// warmLeaves fills the leaf cache, after a start, with the hashes of the
// leaves of the tiled tree, read from their level-0 hash
// tiles, newest first, for as long as the cache has room: a restarted
// server then answers receipts of its recent entries, as it did before,
// without an index query each. It reads at most one tile at a time and
// stops at the first error (the cache is only a shortcut).
func (l *Log) warmLeaves(ctx context.Context) {
	if l.leaves.max <= 0 {
		return
	}
	size, _, err := l.cfg.State.TiledSize(ctx, l.cfg.Origin)
	if err != nil || size == 0 {
		return
	}
	start := time.Now()
	defer func() {
		l.leaves.mu.RLock()
		n := len(l.leaves.ring)
		l.leaves.mu.RUnlock()
		l.log.Info("warmed the leaf cache from the tiles", "leaves", n, "took", time.Since(start).Round(time.Millisecond))
	}()
	for idx := int64((size - 1) / tileWidth); idx >= 0 && ctx.Err() == nil; idx-- {
		first := uint64(idx) * tileWidth
		w := int(min(size-first, tileWidth))
		data, err := l.tiles.leafHashes(ctx, uint64(idx), w)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("warming the leaf cache from the tiles stopped", "tile", idx, "error", err)
			}
			return
		}
		hashes := make([][32]byte, w)
		for i := range hashes {
			hashes[i] = [32]byte(data[32*i : 32*i+32])
		}
		if !l.leaves.fill(first, hashes) {
			return
		}
	}
}
