package log

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// TileBuilder computes a log's tlog-tiles from its entries, in order: the
// hash tiles (the tree's nodes at every eighth level, from its own compact
// range) and the entry bundles. The log's tiler stores what it builds;
// `evident-server check` compares it with what is stored.
type TileBuilder struct {
	rng    *compact.Range
	edge   [maxTileLevel/tileHeight + 1][]byte // the bottom row of the partial hash tile at each tile level
	bundle []byte                              // the partial entry bundle
	dirty  [maxTileLevel/tileHeight + 1]bool   // the partial hash tiles changed since Changed
}

// NewTileBuilder returns a builder of the tiles of an empty log.
func NewTileBuilder() *TileBuilder {
	return &TileBuilder{rng: rangeFactory.NewEmptyRange(0)}
}

// Size is the number of entries added.
func (b *TileBuilder) Size() uint64 { return b.rng.End() }

// Root is the root of the tree of the entries added.
func (b *TileBuilder) Root() [32]byte {
	if b.rng.End() == 0 {
		return checkpoint.EmptyRoot
	}
	r, err := b.rng.GetRootHash(nil)
	if err != nil || len(r) != 32 {
		return [32]byte{}
	}
	return [32]byte(r)
}

// Add appends the entry value, whose leaf hash is hash, and calls full
// with every tile it completes (the tile's Data is then the caller's).
func (b *TileBuilder) Add(value []byte, hash [32]byte, full func(storage.Tile)) error {
	if len(value) > MaxEntrySize {
		return fmt.Errorf("entry %d has %d bytes, more than an entry bundle can hold (%d)", b.rng.End(), len(value), MaxEntrySize)
	}
	index := b.rng.End()
	err := b.rng.Append(hash[:], func(id compact.NodeID, h []byte) { // visits the leaf too
		if id.Level%tileHeight != 0 {
			return
		}
		level := int(id.Level / tileHeight)
		if b.edge[level] == nil {
			b.edge[level] = make([]byte, 0, 32*tileWidth)
		}
		b.edge[level] = append(b.edge[level], h...)
		b.dirty[level] = true
		if len(b.edge[level]) == 32*tileWidth {
			full(storage.Tile{Level: level, Index: id.Index / tileWidth, Width: tileWidth, Data: b.edge[level]})
			b.edge[level], b.dirty[level] = nil, false
		}
	})
	if err != nil {
		return err
	}
	if b.bundle == nil {
		// Room for a bundle of entries this size: one allocation, not
		// one per doubling.
		b.bundle = make([]byte, 0, min(tileWidth*(2+len(value)), 1<<20))
	}
	b.bundle = appendBundleEntry(b.bundle, value)
	if index%tileWidth == tileWidth-1 {
		full(storage.Tile{Level: storage.EntriesLevel, Index: index / tileWidth, Width: tileWidth, Data: b.bundle})
		b.bundle = nil
	}
	return nil
}

// Changed returns copies of the partial hash tiles above level 0 whose
// bottom row grew since the last call (all of them on a new builder). The
// partial level-0 hash tile and the partial entry bundle are not among
// them: they change with every entry, and they are served from the
// entries themselves (Partial, Log.edgeFromEntries) instead of being
// stored again each time they grow.
func (b *TileBuilder) Changed() []storage.Tile {
	var out []storage.Tile
	size := b.rng.End()
	for level, e := range b.edge {
		if level > 0 && b.dirty[level] && len(e) > 0 {
			n := size >> (tileHeight * level)
			out = append(out, storage.Tile{Level: level, Index: n / tileWidth, Width: len(e) / 32, Data: append([]byte(nil), e...)})
		}
		b.dirty[level] = false
	}
	return out
}

// Partial returns the partial level-0 tile: its index, width, the leaf
// hashes of its hash tile and its entry bundle (nil at a tile boundary).
// They are shared, not copied: the builder only appends past them, so
// they never change, and their capacity is clipped so that no caller's
// append can write into the builder's.
func (b *TileBuilder) Partial() (index uint64, width int, hashes, bundle []byte) {
	size := b.rng.End()
	return size / tileWidth, int(size % tileWidth), b.edge[0][:len(b.edge[0]):len(b.edge[0])], b.bundle[:len(b.bundle):len(b.bundle)]
}

// appendBundleEntry appends entry to the entry bundle b: its length as a
// big-endian uint16, then its bytes (SPEC(tlog-tiles)).
func appendBundleEntry(b, entry []byte) []byte {
	b = append(b, byte(len(entry)>>8), byte(len(entry)))
	return append(b, entry...)
}
