package backend

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/trillian"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// TestSequencerKeepsLeaves: the sequencer hands out the values and extra
// data of leaves this process queued (not of duplicates, nor of leaves
// queued elsewhere), once integrated, for ranges it holds whole.
func TestSequencerKeepsLeaves(t *testing.T) {
	s := &sequencer{}
	queued := func(i int, code codes.Code) *trillian.QueuedLogLeaf {
		id := make([]byte, 32)
		id[0], id[1] = byte(i), 0xee
		q := &trillian.QueuedLogLeaf{Leaf: &trillian.LogLeaf{LeafIdentityHash: id, LeafValue: fmt.Appendf(nil, "value %d", i), ExtraData: []byte{byte(i)}}}
		if code != codes.OK {
			q.Status = status.New(code, "exists").Proto()
		}
		return q
	}
	integrated := func(start, n int) []*trillian.LogLeaf {
		ls := leavesAt(start, n)
		for i, l := range ls {
			l.LeafIdentityHash = make([]byte, 32)
			l.LeafIdentityHash[0], l.LeafIdentityHash[1] = byte(start+i), 0xee
		}
		return ls
	}
	// 0..4 queued here, 5 a duplicate (queued earlier, elsewhere), 6..9 here.
	var res []*trillian.QueuedLogLeaf
	for i := range 10 {
		code := codes.OK
		if i == 5 {
			code = codes.AlreadyExists
		}
		res = append(res, queued(i, code))
	}
	s.remember(res)
	s.keep(integrated(0, 10))
	for _, tc := range []struct {
		start, end uint64
		ok         bool
	}{{0, 5, true}, {6, 10, true}, {2, 4, true}, {0, 6, false}, {5, 6, false}, {9, 11, false}, {4, 3, false}} {
		ls, ok := s.leafRange(tc.start, tc.end)
		if ok != tc.ok {
			t.Errorf("leafRange(%d, %d): ok %v, want %v", tc.start, tc.end, ok, tc.ok)
			continue
		}
		for i, l := range ls {
			want := int(tc.start) + i
			if l.LeafIndex != int64(want) || string(l.LeafValue) != fmt.Sprintf("value %d", want) || !bytes.Equal(l.ExtraData, []byte{byte(want)}) {
				t.Errorf("leafRange(%d, %d)[%d] = index %d, %q, %x", tc.start, tc.end, i, l.LeafIndex, l.LeafValue, l.ExtraData)
			}
		}
	}
	if len(s.pending) != 0 {
		t.Errorf("%d leaves still pending after their integration", len(s.pending))
	}
	// Large entries: the values kept are bounded in bytes, the oldest
	// dropped first (one 8 MiB value shared by 20 leaves: 160 MiB).
	big := make([]byte, 8<<20)
	s2 := &sequencer{}
	var bigRes []*trillian.QueuedLogLeaf
	for i := range 20 {
		q := queued(i, codes.OK)
		q.Leaf.LeafValue = big
		bigRes = append(bigRes, q)
	}
	s2.remember(bigRes[:10])
	s2.keep(integrated(0, 10))
	s2.remember(bigRes[10:])
	if s2.pendingBytes > maxPendingBytes {
		t.Errorf("%d bytes pending, more than %d", s2.pendingBytes, maxPendingBytes)
	}
	s2.keep(integrated(10, 10))
	if s2.leafBytes > maxKeptBytes {
		t.Errorf("%d bytes of values kept, more than %d", s2.leafBytes, maxKeptBytes)
	}
	if _, ok := s2.leafRange(0, 1); ok {
		t.Error("the oldest large value is still kept")
	}
	if ls, ok := s2.leafRange(10, 11); !ok || len(ls[0].LeafValue) != len(big) { // of the second batch, those that fit the pending bound
		t.Error("the newer large values are not kept")
	}
	if hs, ok := s2.leafHashes(0, 20); !ok || len(hs) != 20 {
		t.Error("the hashes of leaves whose values were dropped are gone too")
	}
	// Too many pending leaves (queued here, integrated by another
	// process) are forgotten, not kept without bound.
	for i := 0; i < maxPending/1000+2; i++ {
		batch := make([]*trillian.QueuedLogLeaf, 1000)
		for j := range batch {
			id := make([]byte, 32)
			id[0], id[1], id[2], id[3] = byte(j), byte(j>>8), byte(i), byte(i>>8)
			batch[j] = &trillian.QueuedLogLeaf{Leaf: &trillian.LogLeaf{LeafIdentityHash: id}}
		}
		s.remember(batch)
		if len(s.pending) > maxPending {
			t.Fatalf("%d leaves pending, more than %d", len(s.pending), maxPending)
		}
	}
}

// TestSequencerKeepsOutOfOrder: two integrations (the group commit's and
// the sequencer loop's) may report in either order; a batch reported
// after a later one leaves the kept window as it is. A pre-ordered tree's
// integrated leaves come with their values, which are kept without having
// been queued here.
func TestSequencerKeepsOutOfOrder(t *testing.T) {
	s := &sequencer{}
	withValues := func(start, n int) []*trillian.LogLeaf {
		ls := leavesAt(start, n)
		for _, l := range ls {
			l.LeafValue = fmt.Appendf(nil, "value %d", l.LeafIndex)
		}
		return ls
	}
	s.keep(withValues(0, 10))
	s.keep(withValues(20, 10)) // 10..19 not yet reported: starts a new window
	s.keep(withValues(30, 5))
	s.keep(withValues(25, 5)) // late, and kept already
	if _, ok := s.leafHashes(20, 35); !ok {
		t.Fatalf("the window 20..35 was lost to a late report")
	}
	ls, ok := s.leafRange(20, 35)
	if !ok {
		t.Fatal("no values for 20..35")
	}
	for i, l := range ls {
		if want := fmt.Sprintf("value %d", 20+i); string(l.LeafValue) != want {
			t.Errorf("leaf %d: %q, want %q", 20+i, l.LeafValue, want)
		}
	}
}
