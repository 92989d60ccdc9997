package log

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/transparency-dev/merkle/compact"

	"github.com/evidentlog/evident/storage"
)

// The log's tiles (C2SP tlog-tiles, https://c2sp.org/tlog-tiles) are
// written by the tiler (tiler.go) into the state database, and read here:
// to serve them (tilehttp.go) and to build proofs and receipts without
// Trillian (tileproofs.go).
//
// SPEC(tlog-tiles): tiles have height 8: a tile at level L holds up to 256
// consecutive hashes of tree level 8·L; the tree's level-(8·L+j) nodes
// within it (j = 1..8) are computed from them.

const (
	// tileHeight is the height of every tile.
	tileHeight = 8
	// tileWidth is the width of a full tile: 2^tileHeight hashes or entries.
	tileWidth = 1 << tileHeight
	// maxTileLevel is the highest tile level a path may name.
	maxTileLevel = 63
)

// Defaults of the tile caches (Config.TileCacheSize, TileBundleCacheBytes).
const (
	// DefaultTileCacheSize is how many hash tiles the log keeps in memory,
	// each with its inner nodes (16 KiB): 8,192 tiles (128 MiB) cover
	// every level-0 tile of a 2,000,000-entry log.
	DefaultTileCacheSize = 8192
	// DefaultBundleCacheBytes is how many bytes of full entry bundles the
	// log keeps in memory: all of a 1,000,000-entry log of 256-byte
	// entries. Reading a bundle from the state database instead costs
	// about half of a tile GET's CPU.
	DefaultBundleCacheBytes = 320 << 20
)

// tileKey names a tile: its level (storage.EntriesLevel for entry bundles)
// and index.
type tileKey struct {
	level int
	index uint64
}

// hashTile is a hash tile read from storage with its inner nodes: data is
// the tile as served (width hashes of the tile's bottom level), upper[j-1]
// the complete nodes j levels up (width>>j of them).
type hashTile struct {
	width int
	data  []byte
	upper [tileHeight][][32]byte
}

func newHashTile(width int, data []byte) (*hashTile, error) {
	if width < 1 || width > tileWidth || len(data) < 32*width {
		return nil, fmt.Errorf("stored tile of width %d has %d bytes: %w", width, len(data), errBadProof)
	}
	t := &hashTile{width: width, data: data[:32*width]}
	below := func(i int) []byte { return t.data[32*i : 32*i+32] }
	for j := 1; j <= tileHeight; j++ {
		row := make([][32]byte, width>>j)
		for i := range row {
			var l, r []byte
			if j == 1 {
				l, r = below(2*i), below(2*i+1)
			} else {
				l, r = t.upper[j-2][2*i][:], t.upper[j-2][2*i+1][:]
			}
			row[i] = checkpoint.HashChildren(l, r)
		}
		t.upper[j-1] = row
	}
	return t, nil
}

// node returns the node j levels above the tile's bottom at index i within
// the tile (counted on that level).
func (t *hashTile) node(j int, i uint64) ([32]byte, bool) {
	if j == 0 {
		if i >= uint64(t.width) {
			return [32]byte{}, false
		}
		return [32]byte(t.data[32*i : 32*i+32]), true
	}
	row := t.upper[j-1]
	if i >= uint64(len(row)) {
		return [32]byte{}, false
	}
	return row[i], true
}

// tileStore reads the log's tiles from the state database, through
// memory caches: full tiles never change, so they are cached until
// evicted; a partial hash tile above level 0 is cached at the width last
// read, and read again when a wider one is needed. The partial level-0
// hash tile and entry bundle are not stored: the tiler hands over the ones
// it built (edge), and others are made from the entries (rebuild,
// Log.edgeFromEntries).
type tileStore struct {
	db       *storage.DB
	origin   string
	edge     atomic.Pointer[edgeTile]
	rebuild  func(ctx context.Context, index uint64) (*edgeTile, error)
	building sync.Mutex // one rebuild at a time: readers of a new width wait for it

	mu          sync.RWMutex
	hashes      map[tileKey]*hashTile
	maxHashes   int
	bundles     map[uint64][]byte // full entry bundles
	bundleBytes int
	maxBytes    int
}

func newTileStore(db *storage.DB, origin string, maxHashes, maxBytes int) *tileStore {
	return &tileStore{db: db, origin: origin, hashes: map[tileKey]*hashTile{}, maxHashes: maxHashes,
		bundles: map[uint64][]byte{}, maxBytes: maxBytes}
}

// errNoTile is returned when a tile that a tree of the given size needs is
// not stored (yet): the caller falls back to Trillian.
var errNoTile = errors.New("tile not stored")

// hashTile returns the hash tile (level, index) at a width of at least
// width.
func (s *tileStore) hashTile(ctx context.Context, level int, index uint64, width int) (*hashTile, error) {
	if level > 0 || width == tileWidth {
		return s.storedHashTile(ctx, level, index, width)
	}
	s.mu.RLock()
	t := s.hashes[tileKey{level, index}] // a full one, at level 0
	s.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	e, err := s.edgeTile(ctx, index, width)
	if err != nil {
		return nil, err
	}
	if e == nil { // full by now
		return s.storedHashTile(ctx, level, index, width)
	}
	return e.hashTile()
}

// storedHashTile returns the stored hash tile (level, index) at a width of
// at least width. A partial level-0 tile stored by an older version is
// never read: it is not kept up to date (see edgeTile).
func (s *tileStore) storedHashTile(ctx context.Context, level int, index uint64, width int) (*hashTile, error) {
	k := tileKey{level, index}
	s.mu.RLock()
	t := s.hashes[k]
	s.mu.RUnlock()
	if t != nil && t.width >= width {
		return t, nil
	}
	st, err := s.db.GetTile(ctx, s.origin, level, index)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("hash tile %d/%d: %w", level, index, errNoTile)
	}
	if err != nil {
		return nil, err
	}
	if st.Width < width || level == 0 && st.Width != tileWidth {
		return nil, fmt.Errorf("hash tile %d/%d has width %d, not %d: %w", level, index, st.Width, width, errNoTile)
	}
	if t, err = newHashTile(st.Width, st.Data); err != nil {
		return nil, fmt.Errorf("hash tile %d/%d: %w", level, index, err)
	}
	s.mu.Lock()
	if len(s.hashes) >= s.maxHashes {
		for k := range s.hashes { // evict one at random
			delete(s.hashes, k)
			break
		}
	}
	s.hashes[k] = t
	s.mu.Unlock()
	return t, nil
}

// edgeTile is a partial level-0 tile: its index, width, the bottom row of
// its hash tile and its entry bundle, as the tiler built them or as made
// from the entries; and its hash tile, made when first needed.
type edgeTile struct {
	index          uint64
	width          int
	hashes, bundle []byte

	once sync.Once
	ht   *hashTile
	err  error
}

func (e *edgeTile) hashTile() (*hashTile, error) {
	e.once.Do(func() { e.ht, e.err = newHashTile(e.width, e.hashes) })
	return e.ht, e.err
}

// setEdge keeps e for readers unless a partial tile further on is kept.
func (s *tileStore) setEdge(e *edgeTile) {
	for {
		cur := s.edge.Load()
		if cur != nil && (cur.index > e.index || cur.index == e.index && cur.width >= e.width) {
			return
		}
		if s.edge.CompareAndSwap(cur, e) {
			return
		}
	}
}

// edgeTile returns the partial level-0 tile index at a width of at least
// width: the one kept, or one made from the entries (and kept); nil when
// the tile is full by now (and so stored).
func (s *tileStore) edgeTile(ctx context.Context, index uint64, width int) (*edgeTile, error) {
	if e := s.edge.Load(); e != nil && e.index == index && e.width >= width {
		return e, nil
	}
	if s.rebuild == nil {
		return nil, fmt.Errorf("partial tile %d: %w", index, errNoTile)
	}
	s.building.Lock()
	defer s.building.Unlock()
	if e := s.edge.Load(); e != nil && e.index == index && e.width >= width {
		return e, nil // built while this one waited
	}
	e, err := s.rebuild(ctx, index)
	if err != nil || e == nil {
		return nil, err
	}
	s.setEdge(e)
	if e.width < width {
		return nil, fmt.Errorf("partial tile %d has width %d, not %d: %w", index, e.width, width, errNoTile)
	}
	return e, nil
}

// node returns the hash of the perfect subtree id, which must be complete.
func (s *tileStore) node(ctx context.Context, id compact.NodeID) ([32]byte, error) {
	level, j := int(id.Level/tileHeight), int(id.Level%tileHeight)
	perTile := uint64(tileWidth >> j) // nodes of id's level in one tile
	index, i := id.Index/perTile, id.Index%perTile
	t, err := s.hashTile(ctx, level, index, int(i+1)<<j)
	if err != nil {
		return [32]byte{}, err
	}
	h, ok := t.node(j, i)
	if !ok {
		return [32]byte{}, fmt.Errorf("node %d/%d not in its tile: %w", id.Level, id.Index, errNoTile)
	}
	return h, nil
}

// leafHashes returns the leaf hashes of the level-0 tile index, at least
// width of them (32 bytes each), for readers of every leaf (attribution's
// checks, warming the leaf cache), not of a few nodes. A partial tile's
// come from the edge as they are, and a full one not kept is read as
// stored: neither goes through hashTile, which would hash the tile's
// inner nodes (and keep a full one) for no reader that asked for them.
func (s *tileStore) leafHashes(ctx context.Context, index uint64, width int) ([]byte, error) {
	s.mu.RLock()
	t := s.hashes[tileKey{0, index}] // a full one
	s.mu.RUnlock()
	if t != nil {
		return t.data, nil
	}
	if width < tileWidth {
		e, err := s.edgeTile(ctx, index, width)
		if err != nil {
			return nil, err
		}
		if e != nil {
			return e.hashes[:32*e.width], nil
		}
	}
	st, err := s.db.GetTile(ctx, s.origin, 0, index)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, fmt.Errorf("hash tile 0/%d: %w", index, errNoTile)
	case err != nil:
		return nil, err
	case st.Width != tileWidth:
		return nil, fmt.Errorf("hash tile 0/%d has width %d, not %d: %w", index, st.Width, tileWidth, errNoTile)
	case len(st.Data) < 32*tileWidth:
		return nil, fmt.Errorf("hash tile 0/%d has %d bytes: %w", index, len(st.Data), errBadProof)
	}
	return st.Data[:32*tileWidth], nil
}

// nodes returns the hashes of ids.
func (s *tileStore) nodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := s.node(ctx, id)
		if err != nil {
			return nil, err
		}
		out[i] = h[:]
	}
	return out, nil
}

// rangeAt returns the compact range [0, size) of the tiled tree.
func (s *tileStore) rangeAt(ctx context.Context, size uint64) (*compact.Range, error) {
	hashes, err := s.nodes(ctx, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	return rangeFactory.NewRange(0, size, hashes)
}

// root returns the root of the tiled tree of the given size, from the
// stored tiles.
func (s *tileStore) root(ctx context.Context, size uint64) ([32]byte, error) {
	if size == 0 {
		return checkpoint.EmptyRoot, nil
	}
	rng, err := s.rangeAt(ctx, size)
	if err != nil {
		return [32]byte{}, err
	}
	r, err := rng.GetRootHash(nil)
	if err != nil || len(r) != 32 {
		return [32]byte{}, fmt.Errorf("root of size %d from the tiles: %v: %w", size, err, errBadProof)
	}
	return [32]byte(r), nil
}

// bundle returns the entry bundle index at a width of at least width,
// and its width: a partial one from edgeTile, or a full one. A partial
// bundle stored by an older version is never read: it is not kept up to
// date (and is overwritten once the bundle is full).
func (s *tileStore) bundle(ctx context.Context, index uint64, width int) ([]byte, int, error) {
	s.mu.RLock()
	b := s.bundles[index]
	s.mu.RUnlock()
	if b != nil {
		return b, tileWidth, nil
	}
	if width < tileWidth {
		e, err := s.edgeTile(ctx, index, width)
		if err != nil {
			return nil, 0, err
		}
		if e != nil {
			return e.bundle, e.width, nil
		}
	}
	st, err := s.db.GetTile(ctx, s.origin, storage.EntriesLevel, index)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, 0, fmt.Errorf("entry bundle %d: %w", index, errNoTile)
	}
	if err != nil {
		return nil, 0, err
	}
	if st.Width != tileWidth {
		return nil, 0, fmt.Errorf("entry bundle %d is not full: %w", index, errNoTile)
	}
	if len(st.Data) <= s.maxBytes/16 {
		s.mu.Lock()
		for k, v := range s.bundles { // evict at random until it fits
			if s.bundleBytes+len(st.Data) <= s.maxBytes {
				break
			}
			delete(s.bundles, k)
			s.bundleBytes -= len(v)
		}
		if _, ok := s.bundles[index]; !ok {
			s.bundles[index] = st.Data
			s.bundleBytes += len(st.Data)
		}
		s.mu.Unlock()
	}
	return st.Data, st.Width, nil
}

// bundlePrefix returns the first n entries of an entry bundle, as a
// bundle.
func bundlePrefix(b []byte, n int) ([]byte, error) {
	off := 0
	for range n {
		if off+2 > len(b) {
			return nil, fmt.Errorf("entry bundle too short: %w", errBadProof)
		}
		off += 2 + (int(b[off])<<8 | int(b[off+1]))
		if off > len(b) {
			return nil, fmt.Errorf("entry bundle too short: %w", errBadProof)
		}
	}
	return b[:off], nil
}
