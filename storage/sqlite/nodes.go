package sqlite

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/google/trillian/storage/storagepb"
	"github.com/google/trillian/storage/tree"
	"github.com/transparency-dev/merkle/compact"

	"github.com/evidentlog/evident/checkpoint"
)

// The tree's Merkle nodes are stored as Trillian stores them: in tiles of
// 8 levels (storagepb.SubtreeProto rows of the subtrees table), each named
// by the path from the top of a 64-level tree to the tile's root, holding
// its bottom level ("leaves") by suffix and, while it is partial, its
// inner nodes. A full tile is stored without its inner nodes, which follow
// from its leaves.
//
// tileCache is one transaction's view of them. Unlike Trillian's
// storage/cache, which it replaces here, it keeps a tile whole once loaded
// (a full tile's inner nodes are recomputed once, a partial tile's are
// taken as stored), so that the tiles of the tree's right edge, which a
// write transaction hands to the next (edge.go), are not hashed again by
// every integration. The rows it writes are the ones Trillian's cache
// writes, and it reads theirs; but a partial bottom tile (whose leaves are
// the tree's) is not written at all: logTX.bottomTile makes it from the
// sequenced leaves when the edge does not hold it.

const (
	tileLevels = 8                 // levels of nodes in a tile
	tileLeaves = 1 << tileLevels   // nodes on a tile's bottom level
	treeLevels = 64                // the height of the tree tiles are cut from
	tileDepth  = int32(tileLevels) // SubtreeProto.Depth of every tile
)

// suffixes[bits][i] is the key of the node i of a tile's level 8-bits:
// base64 of the bit count and the node's index, left-aligned in a byte.
var suffixes [tileLevels + 1][]string

func init() {
	for bits := 1; bits <= tileLevels; bits++ {
		suffixes[bits] = make([]string, 1<<bits)
		for i := range suffixes[bits] {
			suffixes[bits][i] = base64.StdEncoding.EncodeToString([]byte{byte(bits), byte(i << (tileLevels - bits))})
		}
	}
}

// locate returns the ID of the tile that holds node id, the node's key in
// it, and whether it is on the tile's bottom level. A tile's root is a
// bottom node of the tile above.
func locate(id compact.NodeID) (tileID []byte, key string, bottom bool, err error) {
	if id.Level >= treeLevels {
		return nil, "", false, fmt.Errorf("node %d/%d is above the tree", id.Level, id.Index)
	}
	n := (treeLevels - id.Level - 1) / tileLevels // bytes of the tile's path
	bits := treeLevels - id.Level - tileLevels*n  // levels of the node below the tile's root, 1..8
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id.Index>>bits)
	return b[8-n:], suffixes[bits][id.Index&(1<<bits-1)], bits == tileLevels, nil
}

// tileCache holds the tiles a transaction read or wrote, by ID.
type tileCache struct {
	tiles map[string]*storagepb.SubtreeProto
	dirty map[string]bool
}

// loadFunc returns the stored tile id, whole (see populate), or nil when
// none is stored.
type loadFunc func(id []byte) (*storagepb.SubtreeProto, error)

// tile returns tile id, loading it on first use; nil when not stored,
// which is not remembered (setNodes then creates the tile, and for
// getNodes it is an error).
func (c *tileCache) tile(id []byte, load loadFunc) (*storagepb.SubtreeProto, error) {
	if st, ok := c.tiles[string(id)]; ok {
		return st, nil
	}
	st, err := load(id)
	if err != nil || st == nil {
		return nil, err
	}
	c.keep(st)
	return st, nil
}

// keep adds tile st to the cache.
func (c *tileCache) keep(st *storagepb.SubtreeProto) {
	if c.tiles == nil {
		c.tiles = make(map[string]*storagepb.SubtreeProto)
	}
	c.tiles[string(st.Prefix)] = st
}

// getNodes returns the stored nodes of ids; those not stored are left out,
// and a node in a tile that is not stored is an error.
func (c *tileCache) getNodes(ids []compact.NodeID, load loadFunc) ([]tree.Node, error) {
	out := make([]tree.Node, 0, len(ids))
	for _, id := range ids {
		tid, key, bottom, err := locate(id)
		if err != nil {
			return nil, err
		}
		st, err := c.tile(tid, load)
		if err != nil {
			return nil, err
		}
		if st == nil {
			return nil, fmt.Errorf("tile %x of node %d/%d not found", tid, id.Level, id.Index)
		}
		h := st.InternalNodes[key]
		if bottom {
			h = st.Leaves[key]
		}
		if h != nil {
			out = append(out, tree.Node{ID: id, Hash: h})
		}
	}
	return out, nil
}

// setNodes sets nodes, creating the tiles not stored yet.
func (c *tileCache) setNodes(nodes []tree.Node, load loadFunc) error {
	for _, n := range nodes {
		tid, key, bottom, err := locate(n.ID)
		if err != nil {
			return err
		}
		st, err := c.tile(tid, load)
		if err != nil {
			return err
		}
		if st == nil {
			st = &storagepb.SubtreeProto{Prefix: tid, Depth: tileDepth, Leaves: map[string][]byte{}, InternalNodes: map[string][]byte{}}
			c.keep(st)
		}
		m := st.InternalNodes
		if bottom {
			m = st.Leaves
		}
		if old, ok := m[key]; ok && string(old) == string(n.Hash) {
			continue
		}
		m[key] = n.Hash
		if c.dirty == nil {
			c.dirty = make(map[string]bool)
		}
		c.dirty[string(tid)] = true
	}
	return nil
}

// updated returns the tiles changed, each as its row is stored (a full
// tile without its inner nodes); the tiles in the cache stay whole.
func (c *tileCache) updated() []*storagepb.SubtreeProto {
	var out []*storagepb.SubtreeProto
	for id := range c.dirty {
		st := c.tiles[id]
		if len(st.Leaves) == 0 {
			continue
		}
		row := &storagepb.SubtreeProto{Prefix: st.Prefix, Depth: st.Depth, Leaves: st.Leaves, InternalNodeCount: uint32(len(st.InternalNodes))}
		if len(st.Leaves) < tileLeaves {
			row.InternalNodes = st.InternalNodes
		}
		out = append(out, row)
	}
	return out
}

// populate makes a tile read from its row whole: a full tile's inner nodes
// are computed from its leaves; a partial one's are as stored. Either way
// the leaves must be the first ones of the tile, and the inner nodes as
// many as the row says (the check Trillian's cache makes).
func populate(st *storagepb.SubtreeProto) error {
	if st.Depth != tileDepth {
		return fmt.Errorf("tile %x has depth %d, want %d", st.Prefix, st.Depth, tileDepth)
	}
	n := len(st.Leaves)
	if n > tileLeaves {
		return fmt.Errorf("tile %x has %d leaves", st.Prefix, n)
	}
	for i := range n {
		if st.Leaves[suffixes[tileLevels][i]] == nil {
			return fmt.Errorf("tile %x has %d leaves but not leaf %d", st.Prefix, n, i)
		}
	}
	if st.InternalNodes == nil {
		st.InternalNodes = make(map[string][]byte)
	}
	if st.Leaves == nil {
		st.Leaves = make(map[string][]byte)
	}
	if n == tileLeaves {
		clear(st.InternalNodes)
		if err := hashInner(st); err != nil {
			return err
		}
	}
	if got, want := len(st.InternalNodes), int(st.InternalNodeCount); got != want {
		return fmt.Errorf("tile %x has %d inner nodes, its row says %d", st.Prefix, got, want)
	}
	return nil
}

// bottomTileIDLen is the length of the ID of a bottom tile, whose leaves
// are the tree's.
const bottomTileIDLen = (treeLevels - 1) / tileLevels

// bottomTileOf returns the bottom tile id holding the leaf hashes given,
// from its first leaf on, whole.
func bottomTileOf(id []byte, hashes [][]byte) (*storagepb.SubtreeProto, error) {
	st := &storagepb.SubtreeProto{Prefix: id, Depth: tileDepth, Leaves: make(map[string][]byte, len(hashes)), InternalNodes: make(map[string][]byte, len(hashes))}
	for i, h := range hashes {
		st.Leaves[suffixes[tileLevels][i]] = h
	}
	if err := hashInner(st); err != nil {
		return nil, err
	}
	st.InternalNodeCount = uint32(len(st.InternalNodes))
	return st, nil
}

// hashInner computes tile st's inner nodes from its leaves, the first ones
// of the tile.
func hashInner(st *storagepb.SubtreeProto) error {
	rng := tileRanges.NewEmptyRange(0)
	for i := range len(st.Leaves) {
		err := rng.Append(st.Leaves[suffixes[tileLevels][i]], func(id compact.NodeID, h []byte) {
			if id.Level > 0 && id.Level < tileLevels {
				st.InternalNodes[suffixes[tileLevels-id.Level][id.Index]] = h
			}
		})
		if err != nil {
			return fmt.Errorf("tile %x: %w", st.Prefix, err)
		}
	}
	return nil
}

var tileRanges = compact.RangeFactory{Hash: checkpoint.Hasher.HashChildren}
