package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/google/trillian"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// tiler follows Trillian's tree in order and writes the log's tiles. It
// hashes every entry itself (RFC 6962 leaf hashes of the entries' bytes,
// not Trillian's leaf hashes), builds the tree's nodes with its own compact
// range, and stores the changed tiles, the new leaves' indexes and its new
// size and root in one transaction. The publisher signs a tree only when
// the tiler reached it and computed the same root, so every checkpoint is
// checked twice: by Trillian and by code that does not trust Trillian.
//
// Only the publisher's goroutine calls it. After a restart (or when
// another server of the log tiled further) it resumes from the stored
// tiles, not from Trillian: its compact range and right-edge tiles are
// read back from the tiles table and checked against the stored root.
type tiler struct {
	l      *Log
	loaded bool
	size   uint64
	root   [32]byte
	b      *TileBuilder // at size, from the stored tiles
}

// tileChunk is how many entries one tiler transaction covers at most
// (while catching up on a long backlog, as when a log from before tiles is
// upgraded).
var tileChunk uint64 = 16 * 1024

// load reads the tiler's state from the stored tiles.
func (t *tiler) load(ctx context.Context) error {
	size, root, err := t.l.cfg.State.TiledSize(ctx, t.l.cfg.Origin)
	if err != nil {
		return err
	}
	if size == 0 {
		root = checkpoint.EmptyRoot // nothing stored yet
	}
	*t = tiler{l: t.l, size: size, root: root, b: &TileBuilder{}}
	ts := t.l.tiles
	for level := range t.b.edge {
		n := size >> (tileHeight * level)
		if n == 0 {
			break
		}
		if w := int(n % tileWidth); w > 0 {
			ht, err := ts.hashTile(ctx, level, n/tileWidth, w)
			if err != nil {
				return fmt.Errorf("loading the tiles at size %d: %w", size, err)
			}
			t.b.edge[level] = append([]byte(nil), ht.data[:32*w]...)
		}
	}
	if w := int(size % tileWidth); w > 0 {
		b, err := t.l.entryBundle(ctx, size/tileWidth, w)
		if err != nil {
			return fmt.Errorf("loading the tiles at size %d: %w", size, err)
		}
		t.b.bundle = append([]byte(nil), b...)
	}
	if t.b.rng, err = ts.rangeAt(ctx, size); err != nil {
		return fmt.Errorf("loading the tiles at size %d: %w", size, err)
	}
	if got := t.b.Root(); got != root {
		return fmt.Errorf("the stored tiles of size %d hash to %x, not the stored root %x: %w", size, got, root, errBadProof)
	}
	t.setEdge()
	t.loaded = true
	return nil
}

// setEdge hands the partial level-0 tile the tiler built to the tile
// store, for readers.
func (t *tiler) setEdge() {
	index, width, hashes, bundle := t.b.Partial()
	t.l.tiles.setEdge(&edgeTile{index: index, width: width, hashes: hashes, bundle: bundle})
}

// reach extends the tiles to Trillian's tree (size, root), or checks that
// the tiles already there hash to root. An *InconsistencyError means the
// entries Trillian holds do not hash to its root (pub is the latest
// published checkpoint, for the evidence).
func (t *tiler) reach(ctx context.Context, size uint64, root [32]byte, pub *published) error {
	if !t.loaded {
		if err := t.load(ctx); err != nil {
			return err
		}
	}
	for t.size < size {
		end := min(size, t.size+tileChunk)
		u, err := t.extend(ctx, end)
		if err != nil {
			t.loaded = false // the range and edges may be half-extended
			return err
		}
		if end == size && u.Root != root {
			t.loaded = false
			return &InconsistencyError{Published: pub.note, Size: size, Root: root, Reason: fmt.Sprintf("the log's tiler hashed Trillian's entries to the root %x", u.Root)}
		}
		err = t.l.cfg.State.PutTiles(ctx, t.l.cfg.Origin, t.size, *u)
		if errors.Is(err, storage.ErrTiledElsewhere) {
			if err := t.load(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			t.loaded = false
			return err
		}
		t.l.leaves.add(leavesKept(t.size, u.Leaves, size, t.l.leaves.max))
		t.setEdge()
		t.size, t.root = u.Size, u.Root
		t.l.metrics.tiled.Set(float64(t.size))
	}
	if size < t.size {
		// Tiled further already (a previous round whose checkpoint was
		// not published, or another server of the log): the root of
		// size follows from the stored tiles.
		got, err := t.l.tiles.root(ctx, size)
		if err != nil {
			return err
		}
		if got != root {
			return &InconsistencyError{Published: pub.note, Size: size, Root: root, Reason: "Trillian's root differs from the root of the tiles the log computed from the entries"}
		}
		return nil
	}
	if t.root != root {
		return &InconsistencyError{Published: pub.note, Size: size, Root: root, Reason: fmt.Sprintf("the log's tiles hash to the root %x", t.root)}
	}
	return nil
}

// leavesKept returns the leaves [first, first+len(hashes)) that a cache
// of max leaves still holds once the tiler reaches size: a tiler that
// catches up on a long backlog (a log filled past the API, or restored)
// adds only the last max leaves, instead of churning the cache with every
// leaf of the log (which grew it from ~80 to ~200 MB at 10,000,000).
func leavesKept(first uint64, hashes [][32]byte, size uint64, max int) (uint64, [][32]byte) {
	if lo := size - min(size, uint64(max)); first < lo {
		skip := min(lo-first, uint64(len(hashes)))
		first, hashes = first+skip, hashes[skip:]
	}
	return first, hashes
}

// extend reads the entries [t.size, end) and adds them to the tiles,
// returning the tiles they filled or changed.
func (t *tiler) extend(ctx context.Context, end uint64) (*storage.TileUpdate, error) {
	start := t.size
	values, hashes, err := t.l.readEntries(ctx, start, end)
	if err != nil {
		return nil, err
	}
	u := &storage.TileUpdate{Size: end, Leaves: hashes, NoLeafIndex: t.l.cfg.LeafIndex != nil}
	full := func(tile storage.Tile) { u.Tiles = append(u.Tiles, tile) }
	for i, v := range values {
		if err := t.b.Add(v, hashes[i], full); err != nil {
			return nil, err
		}
	}
	u.Tiles = append(u.Tiles, t.b.Changed()...)
	u.Root = t.b.Root()
	return u, nil
}

// entryBundle returns the entry bundle index of width width (< 256: a
// partial one), from the tile store.
func (l *Log) entryBundle(ctx context.Context, index uint64, width int) ([]byte, error) {
	b, _, err := l.tiles.bundle(ctx, index, width)
	if err != nil {
		return nil, err
	}
	return bundlePrefix(b, width)
}

// edgeFromEntries makes the partial level-0 tile index (its hash tile and
// entry bundle) of the tiled tree from the entries, and checks that they
// hash, with the stored tiles left of them, to the tiled root. It is nil
// when the tiles reach past that tile (it is full, and stored). The tiler
// does not store partial level-0 tiles: rewriting the growing hash tile
// and bundle each round cost the publisher ~6% of the server's CPU under
// load, and the entries are at hand.
func (l *Log) edgeFromEntries(ctx context.Context, index uint64) (*edgeTile, error) {
	size, root, err := l.cfg.State.TiledSize(ctx, l.cfg.Origin)
	if err != nil {
		return nil, err
	}
	switch {
	case size/tileWidth > index:
		return nil, nil
	case size/tileWidth < index || size%tileWidth == 0:
		return nil, fmt.Errorf("tile %d is past the tiled tree of size %d: %w", index, size, errNoTile)
	}
	start := index * tileWidth
	values, hashes, err := l.readEntries(ctx, start, size)
	if err != nil {
		return nil, err
	}
	rng, err := l.tiles.rangeAt(ctx, start)
	if err != nil {
		return nil, err
	}
	e := &edgeTile{index: index, width: int(size - start), hashes: make([]byte, 0, 32*len(hashes))}
	n := 0
	for i, h := range hashes {
		if err := rng.Append(h[:], nil); err != nil {
			return nil, err
		}
		if len(values[i]) > MaxEntrySize {
			return nil, fmt.Errorf("entry %d has %d bytes, more than an entry bundle can hold: %w", start+uint64(i), len(values[i]), errBadProof)
		}
		e.hashes = append(e.hashes, h[:]...)
		n += 2 + len(values[i])
	}
	if got, err := rng.GetRootHash(nil); err != nil || !bytes.Equal(got, root[:]) {
		// Never served; a proof built from the tiles falls back to
		// Trillian (errNoTile), whose answer is verified in turn.
		return nil, fmt.Errorf("the entries %d to %d read from Trillian and the stored tiles do not hash to the tiled root %x: %w (%w)", start, size, root, errBadProof, errNoTile)
	}
	e.bundle = make([]byte, 0, n)
	for _, v := range values {
		e.bundle = appendBundleEntry(e.bundle, v)
	}
	return e, nil
}

// readEntries returns the entries [start, end), in order, and their leaf
// hashes, computed here: those the sequencer of this process still holds
// (Config.Leaves) if each hashes to the leaf hash Trillian integrated at
// its index, else from Trillian. Either way they are Trillian's word until
// their root (or leaf hashes) are checked.
func (l *Log) readEntries(ctx context.Context, start, end uint64) ([][]byte, [][32]byte, error) {
	out := make([][]byte, 0, end-start)
	hashes := make([][32]byte, 0, end-start)
	if l.cfg.Leaves != nil {
		if leaves, ok := l.cfg.Leaves(start, end); ok {
			for i, leaf := range leaves {
				h := checkpoint.LeafHash(leaf.LeafValue)
				if uint64(leaf.LeafIndex) != start+uint64(i) || !bytes.Equal(h[:], leaf.MerkleLeafHash) {
					out, hashes = out[:0], hashes[:0]
					break
				}
				out, hashes = append(out, leaf.LeafValue), append(hashes, h)
			}
			if len(out) == int(end-start) {
				return out, hashes, nil
			}
		}
	}
	for next := start; next < end; {
		resp, err := l.cfg.Trillian.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{
			LogId: l.cfg.TreeID, StartIndex: int64(next), Count: int64(min(end-next, 1000))})
		if err != nil {
			return nil, nil, fmt.Errorf("reading entries from Trillian: %w", err)
		}
		if len(resp.Leaves) == 0 {
			return nil, nil, fmt.Errorf("Trillian returned no entries from %d", next)
		}
		for _, leaf := range resp.Leaves {
			if next == end {
				break
			}
			if uint64(leaf.LeafIndex) != next {
				return nil, nil, fmt.Errorf("Trillian returned entry %d where %d was expected: %w", leaf.LeafIndex, next, errBadProof)
			}
			out, hashes = append(out, leaf.LeafValue), append(hashes, checkpoint.LeafHash(leaf.LeafValue))
			next++
		}
	}
	return out, hashes, nil
}
