package sqlite

import (
	"testing"

	"github.com/google/trillian/storage/cache"
	"github.com/google/trillian/storage/storagepb"
	"github.com/google/trillian/storage/tree"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/protobuf/proto"
)

// sequencerNodes returns the nodes Trillian's sequencer writes for a tree
// of size leaves: every leaf hash and every perfect subtree's root.
func sequencerNodes(t *testing.T, size uint64) []tree.Node {
	t.Helper()
	var nodes []tree.Node
	rng := tileRanges.NewEmptyRange(0)
	for i := range size {
		h := rfc6962.DefaultHasher.HashLeaf([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		if err := rng.Append(h, func(id compact.NodeID, h []byte) {
			nodes = append(nodes, tree.Node{ID: id, Hash: h})
		}); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// checkSameNodes checks that got holds the nodes of want, in any order.
func checkSameNodes(t *testing.T, what string, want, got []tree.Node) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d nodes, want %d", what, len(got), len(want))
		return
	}
	m := make(map[compact.NodeID]string, len(want))
	for _, n := range want {
		m[n.ID] = string(n.Hash)
	}
	for _, n := range got {
		if h, ok := m[n.ID]; !ok || h != string(n.Hash) {
			t.Errorf("%s: node %d/%d is %x, want %x", what, n.ID.Level, n.ID.Index, n.Hash, h)
			return
		}
	}
}

// TestTileRowsMatchTrillian: the tile rows this package writes are the
// rows Trillian's storage/cache writes, byte for byte once decoded, and
// each reads the other's: databases written before this cache, and by
// it, hold the same tree. The tree has full tiles at two levels and
// partial ones above and beside them.
func TestTileRowsMatchTrillian(t *testing.T) {
	const size = 256*256 + 3*256 + 5
	nodes := sequencerNodes(t, size)
	var ids []compact.NodeID
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}

	theirs := cache.NewLogSubtreeCache(rfc6962.DefaultHasher)
	none := func([][]byte) ([]*storagepb.SubtreeProto, error) { return nil, nil }
	if err := theirs.SetNodes(nodes, none); err != nil {
		t.Fatal(err)
	}
	theirRows, err := theirs.UpdatedTiles()
	if err != nil {
		t.Fatal(err)
	}
	var ours tileCache
	noTile := func([]byte) (*storagepb.SubtreeProto, error) { return nil, nil }
	if err := ours.setNodes(nodes, noTile); err != nil {
		t.Fatal(err)
	}
	ourRows := ours.updated()
	byID := func(rows []*storagepb.SubtreeProto) map[string][]byte {
		m := map[string][]byte{}
		for _, r := range rows {
			b, err := proto.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			m[string(r.Prefix)] = b
		}
		return m
	}
	theirBytes, ourBytes := byID(theirRows), byID(ourRows)
	if len(ourBytes) != len(theirBytes) || len(ourBytes) < 5 {
		t.Fatalf("%d tiles written, Trillian's cache writes %d", len(ourBytes), len(theirBytes))
	}
	for id, tb := range theirBytes {
		var a, b storagepb.SubtreeProto
		if err := proto.Unmarshal(tb, &a); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(ourBytes[id], &b); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&a, &b) {
			t.Errorf("tile %x: our row differs from Trillian's: %d/%d leaves, %d/%d inner nodes, count %d/%d",
				id, len(b.Leaves), len(a.Leaves), len(b.InternalNodes), len(a.InternalNodes), b.InternalNodeCount, a.InternalNodeCount)
		}
	}

	// Ours reads Trillian's rows, and Trillian's reads ours.
	load := func(rows map[string][]byte) loadFunc {
		return func(id []byte) (*storagepb.SubtreeProto, error) {
			b, ok := rows[string(id)]
			if !ok {
				return nil, nil
			}
			st := new(storagepb.SubtreeProto)
			if err := proto.Unmarshal(b, st); err != nil {
				return nil, err
			}
			return st, populate(st)
		}
	}
	var fresh tileCache
	got, err := fresh.getNodes(ids, load(theirBytes))
	if err != nil {
		t.Fatal(err)
	}
	checkSameNodes(t, "nodes read from Trillian's rows", nodes, got)
	trillian := cache.NewLogSubtreeCache(rfc6962.DefaultHasher)
	got, err = trillian.GetNodes(ids, func(want [][]byte) ([]*storagepb.SubtreeProto, error) {
		var out []*storagepb.SubtreeProto
		for _, id := range want {
			st := new(storagepb.SubtreeProto)
			if err := proto.Unmarshal(ourBytes[string(id)], st); err != nil {
				return nil, err
			}
			out = append(out, st)
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkSameNodes(t, "nodes Trillian's cache read from our rows", nodes, got)
}

// TestPopulateRefusesBadRows: a row whose leaves are not the tile's first
// ones, or whose inner nodes are not as many as it says, is refused.
func TestPopulateRefusesBadRows(t *testing.T) {
	var c tileCache
	noTile := func([]byte) (*storagepb.SubtreeProto, error) { return nil, nil }
	if err := c.setNodes(sequencerNodes(t, 300), noTile); err != nil {
		t.Fatal(err)
	}
	for _, row := range c.updated() {
		b, err := proto.Marshal(row)
		if err != nil {
			t.Fatal(err)
		}
		for name, damage := range map[string]func(*storagepb.SubtreeProto){
			"a gap in its leaves": func(st *storagepb.SubtreeProto) {
				if n := len(st.Leaves); n < tileLeaves {
					st.Leaves[suffixes[tileLevels][n]] = st.Leaves[suffixes[tileLevels][0]]
				}
				delete(st.Leaves, suffixes[tileLevels][0])
			},
			"a count off":   func(st *storagepb.SubtreeProto) { st.InternalNodeCount++ },
			"another depth": func(st *storagepb.SubtreeProto) { st.Depth = 16 },
		} {
			st := new(storagepb.SubtreeProto)
			if err := proto.Unmarshal(b, st); err != nil {
				t.Fatal(err)
			}
			if err := populate(st); err != nil {
				t.Fatalf("tile %x as written: %v", st.Prefix, err)
			}
			if err := proto.Unmarshal(b, st); err != nil {
				t.Fatal(err)
			}
			damage(st)
			if err := populate(st); err == nil {
				t.Errorf("tile %x with %s: populated", st.Prefix, name)
			}
		}
	}
}
