package sqlite

import (
	"github.com/google/trillian/storage/storagepb"
)

// edgeTiles keeps, per tree, the tiles (Trillian's subtrees, whole: see
// tileCache) that the last committed write transaction read or wrote: the
// right edge of the tree, which the next integration reads again. A write
// transaction takes a tile from here instead of reading, decoding and
// rehashing its row (or, for the partial bottom tile, which is not stored,
// its leaves), and owns it from then on (it changes tiles in place); when
// its commit is durable, the tiles it used become the edge. Any rollback
// empties it, as tiles taken may have been changed by the work undone.
// Only the holder of the write lock uses it.
type edgeTiles struct {
	byTree  map[int64]map[string]*storagepb.SubtreeProto
	pending map[int64]map[string]*storagepb.SubtreeProto // of the open transaction
}

// take returns the tile id of treeID, and forgets it; nil when not kept.
func (e *edgeTiles) take(treeID int64, id []byte) *storagepb.SubtreeProto {
	m := e.byTree[treeID]
	st := m[string(id)]
	if st != nil {
		delete(m, string(id))
	}
	return st
}

// used records the tiles a finished logTX of the open transaction used;
// they become the tree's edge if the transaction commits.
func (e *edgeTiles) used(treeID int64, tiles map[string]*storagepb.SubtreeProto) {
	if e.pending == nil {
		e.pending = make(map[int64]map[string]*storagepb.SubtreeProto)
	}
	e.pending[treeID] = tiles
}

// committed makes the tiles of the committed transaction the edge.
func (e *edgeTiles) committed() {
	if len(e.pending) == 0 {
		return
	}
	if e.byTree == nil {
		e.byTree = make(map[int64]map[string]*storagepb.SubtreeProto)
	}
	for tree, tiles := range e.pending {
		e.byTree[tree] = tiles
	}
	e.pending = nil
}

// rolledBack forgets every tile kept.
func (e *edgeTiles) rolledBack() { e.byTree, e.pending = nil, nil }
