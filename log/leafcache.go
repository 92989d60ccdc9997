package log

import "sync"

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
