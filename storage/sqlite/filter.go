package sqlite

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// identityFilter answers, for most new leaves, that leaf_identities does
// not hold their key, so that a group commit looks up only the others
// (lookupStored): a Bloom filter of the table's keys, 12 bits a key and 4
// probes in one 64-byte block, about 1% false positives at capacity. It never answers "no"
// for a key the table holds: a merge adds its keys before it releases the
// write lock, and a filter being built gets them too.
//
// filterBuilder builds it at Open, from a scan of the table, in the
// background (lookups go to the table until it is ready), and again at
// twice the size whenever the keys added reach its capacity.
type identityFilter struct {
	cur     atomic.Pointer[bloom] // answers; nil until built; set under mu
	mu      sync.Mutex
	next    *bloom // being built; gets every key added meanwhile
	build   chan int64
	minKeys int64 // the smallest capacity
}

// minFilterKeys is the smallest capacity of a filter by default (6 MiB).
const minFilterKeys = 1 << 22

func newIdentityFilter(minKeys int) *identityFilter {
	return &identityFilter{build: make(chan int64, 1), minKeys: int64(minKeys)}
}

// absent reports whether the table surely does not hold k.
func (f *identityFilter) absent(k identityKey) bool {
	b := f.cur.Load()
	return b != nil && !b.test(k)
}

// add records keys inserted into the table, in a transaction that is
// committed; it asks for a larger filter when this one is full.
func (f *identityFilter) add(keys []pendingLeaf) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.cur.Load()
	for _, b := range []*bloom{cur, f.next} {
		if b == nil {
			continue
		}
		for _, k := range keys {
			b.add(k.identityKey)
		}
	}
	if cur != nil && f.next == nil && cur.n.Load() >= cur.capacity {
		f.want(2 * cur.capacity)
	}
}

// want asks filterBuilder for a filter of capacity keys.
func (f *identityFilter) want(capacity int64) {
	select {
	case f.build <- max(capacity, f.minKeys):
	default:
	}
}

// filterBuilder builds the filters identityFilter asks for, until Close.
func (s *Storage) filterBuilder() {
	defer s.wg.Done()
	f := s.filter
	for {
		var capacity int64
		select {
		case <-s.closing:
			return
		case capacity = <-f.build:
		}
		if err := s.buildFilter(capacity); err != nil && !s.closed.Load() {
			s.log.Warn("sqlite storage: building the identity filter failed; duplicates are looked up in the table", "path", s.path, "err", err)
		}
	}
}

// buildFilter fills a new filter with every key of leaf_identities and
// makes it the one that answers.
func (s *Storage) buildFilter(capacity int64) error {
	f := s.filter
	b := newBloom(capacity)
	f.mu.Lock()
	f.next = b
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		if f.next == b {
			f.next = nil
		}
		f.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	rows, err := s.rdb.QueryContext(ctx, `SELECT tree_id, leaf_identity_hash FROM leaf_identities`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			tree int64
			hash []byte
		)
		if err := rows.Scan(&tree, &hash); err != nil {
			return err
		}
		if k, ok := keyOf(tree, hash); ok {
			b.add(k)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if filterScanned != nil {
		filterScanned()
	}
	f.mu.Lock()
	f.cur.Store(b)
	f.next = nil
	f.mu.Unlock()
	return nil
}

// filterScanned, for tests, runs when a build has read the table and not
// yet replaced the filter.
var filterScanned func()

// bloom is a blocked Bloom filter of identity keys: the four bits of a key
// lie in one 64-byte block, so that adding or testing a key touches one
// cache line (with the bits spread over 30 MB, a line each was most of
// the cost of building the filter of 10,000,000 keys). Identity hashes
// are SHA-256 outputs, so their bytes serve as the probes' hashes.
type bloom struct {
	words    []atomic.Uint64
	blocks   uint64 // mask of the block index; the blocks are a power of two
	capacity int64
	n        atomic.Int64
}

func newBloom(capacity int64) *bloom {
	bits := uint64(512)
	for bits < uint64(capacity)*12 {
		bits <<= 1
	}
	return &bloom{words: make([]atomic.Uint64, bits/64), blocks: bits/512 - 1, capacity: capacity}
}

// probe returns the first word of k's block and the bits to set in it: 9
// bits of the hash for each of the 4 probes.
func (b *bloom) probe(k identityKey) (uint64, uint64) {
	block := (binary.LittleEndian.Uint64(k.hash[0:8]) ^ uint64(k.tree)*0x9e3779b97f4a7c15) & b.blocks
	return block * 8, binary.LittleEndian.Uint64(k.hash[8:16])
}

func (b *bloom) add(k identityKey) {
	w, h := b.probe(k)
	for i := range 4 {
		bit := (h >> (9 * i)) & 511
		b.words[w+bit>>6].Or(1 << (bit & 63))
	}
	b.n.Add(1)
}

func (b *bloom) test(k identityKey) bool {
	w, h := b.probe(k)
	for i := range 4 {
		bit := (h >> (9 * i)) & 511
		if b.words[w+bit>>6].Load()&(1<<(bit&63)) == 0 {
			return false
		}
	}
	return true
}
