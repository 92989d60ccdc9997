package backend

import (
	"testing"

	"github.com/google/trillian"
)

func leavesAt(start, n int) []*trillian.LogLeaf {
	var ls []*trillian.LogLeaf
	for i := start; i < start+n; i++ {
		h := make([]byte, 32)
		h[0], h[1], h[2] = byte(i), byte(i>>8), byte(i>>16)
		ls = append(ls, &trillian.LogLeaf{LeafIndex: int64(i), MerkleLeafHash: h})
	}
	return ls
}

// TestSequencerKeepsHashes: the sequencer hands out the hashes of the
// leaves it integrated, for ranges it still holds whole, and nothing for
// others.
func TestSequencerKeepsHashes(t *testing.T) {
	s := &sequencer{}
	s.keep(leavesAt(0, 10))
	s.keep(leavesAt(10, 5))
	check := func(start, end uint64, ok bool) {
		t.Helper()
		hs, got := s.leafHashes(start, end)
		if got != ok {
			t.Fatalf("leafHashes(%d, %d): ok %v, want %v", start, end, got, ok)
		}
		if !ok {
			return
		}
		if len(hs) != int(end-start) {
			t.Fatalf("leafHashes(%d, %d): %d hashes", start, end, len(hs))
		}
		for i, h := range hs {
			if want := start + uint64(i); h[0] != byte(want) || h[1] != byte(want>>8) || h[2] != byte(want>>16) {
				t.Fatalf("leafHashes(%d, %d)[%d] = %x", start, end, i, h[:3])
			}
		}
	}
	check(0, 15, true)
	check(3, 12, true)
	check(15, 15, true)
	check(0, 16, false)
	check(9, 8, false)
	// A gap (leaves integrated elsewhere) starts over.
	s.keep(leavesAt(20, 5))
	check(10, 15, false)
	check(20, 25, true)
	// Old hashes are dropped, never more than 2*keptHashes kept.
	for i := 25; i < 25+3*keptHashes; i += 1000 {
		s.keep(leavesAt(i, 1000))
		if len(s.hashes) > 2*keptHashes {
			t.Fatalf("keeps %d hashes", len(s.hashes))
		}
	}
	end := s.start + uint64(len(s.hashes))
	check(end-keptHashes, end, true)
	check(20, 25, false)
}
