package sqlite

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
	stestonly "github.com/google/trillian/storage/testonly"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestAppendLeaves appends batches to a PREORDERED_LOG tree from many
// goroutines at once, with duplicates across calls and within one call,
// and checks that the new leaves took distinct, contiguous positions, that
// each duplicate was answered with its original position and took none,
// and that Trillian's own sequencer integrates the tree to the root of the
// leaves in the order of their positions.
func TestAppendLeaves(t *testing.T) {
	s := openTest(t, Config{})
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	ls := s.LogStorage()

	const writers, calls, per = 8, 20, 10
	var mu sync.Mutex
	byIndex := map[int64][]byte{} // position -> value
	firstIndex := map[string]int64{}
	var dups []*trillian.QueuedLogLeaf
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				var leaves []*trillian.LogLeaf
				for i := range per {
					// Writers 0 and 1 write the same leaves; each call
					// repeats its first leaf at its end.
					leaves = append(leaves, newLeaf(uint64(w/2*2), uint64(c*per+i)))
				}
				leaves = append(leaves, newLeaf(uint64(w/2*2), uint64(c*per)))
				res, err := s.AppendLeaves(t.Context(), tree, leaves, time.Now())
				if err != nil {
					t.Errorf("AppendLeaves: %v", err)
					return
				}
				mu.Lock()
				for i, r := range res {
					switch code := status.FromProto(r.Status).Code(); code {
					case codes.OK:
						if old, ok := byIndex[r.Leaf.LeafIndex]; ok {
							t.Errorf("position %d given twice (%x and %x)", r.Leaf.LeafIndex, old[:16], r.Leaf.LeafValue[:16])
						}
						byIndex[r.Leaf.LeafIndex] = leaves[i].LeafValue
						firstIndex[string(leaves[i].LeafIdentityHash)] = r.Leaf.LeafIndex
					case codes.AlreadyExists:
						if !bytes.Equal(r.Leaf.LeafIdentityHash, leaves[i].LeafIdentityHash) {
							t.Errorf("duplicate answered with another leaf")
						}
						dups = append(dups, r)
					default:
						t.Errorf("leaf %d: status %v", i, r.Status)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// Each pair of writers stores calls*per distinct leaves.
	want := writers / 2 * calls * per
	if len(byIndex) != want {
		t.Fatalf("%d leaves got positions, want %d", len(byIndex), want)
	}
	if len(dups) != writers*calls*(per+1)-want {
		t.Errorf("%d duplicates, want %d", len(dups), writers*calls*(per+1)-want)
	}
	for _, d := range dups {
		if i, ok := firstIndex[string(d.Leaf.LeafIdentityHash)]; !ok || d.Leaf.LeafIndex != i {
			t.Errorf("duplicate answered with position %d, want %d", d.Leaf.LeafIndex, i)
		}
	}

	integrateAll(t, ls, tree)
	if size := mustTreeSize(t, ls, tree); size != uint64(want) {
		t.Fatalf("integrated tree size %d, want %d (a gap?)", size, want)
	}
	checkRootOf(t, ls, tree, byIndex, int64(want))
	got := leavesByRange(t, ls, tree, 0, int64(want))
	for _, l := range got {
		if !bytes.Equal(l.LeafValue, byIndex[l.LeafIndex]) {
			t.Errorf("leaf %d holds another value", l.LeafIndex)
		}
	}

	// A duplicate after integration still gets its position, and the
	// next new leaf the next one.
	res, err := s.AppendLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(0, 3), newLeaf(99, 0)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c := status.FromProto(res[0].Status).Code(); c != codes.AlreadyExists || res[0].Leaf.LeafIndex != firstIndex[string(newLeaf(0, 3).LeafIdentityHash)] {
		t.Errorf("duplicate after integration: %v at %d", c, res[0].Leaf.LeafIndex)
	}
	if res[1].Status != nil || res[1].Leaf.LeafIndex != int64(want) {
		t.Errorf("new leaf after integration: %v at %d, want OK at %d", res[1].Status, res[1].Leaf.LeafIndex, want)
	}
}

// TestAppendLeavesErrors: appending to a LOG tree, or a leaf with a bad
// hash, is refused and stores nothing.
func TestAppendLeavesErrors(t *testing.T) {
	s := openTest(t, Config{})
	logTree := newInitializedTree(t, s)
	if _, err := s.AppendLeaves(t.Context(), logTree, []*trillian.LogLeaf{newLeaf(1, 1)}, time.Now()); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("AppendLeaves to a LOG tree: %v, want FailedPrecondition", err)
	}
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	bad := newLeaf(1, 2)
	bad.MerkleLeafHash = bad.MerkleLeafHash[:31]
	if _, err := s.AppendLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(1, 1), bad}, time.Now()); status.Code(err) != codes.InvalidArgument {
		t.Errorf("AppendLeaves with a 31-byte hash: %v, want InvalidArgument", err)
	}
	res, err := s.AppendLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(1, 1)}, time.Now())
	if err != nil || res[0].Status != nil || res[0].Leaf.LeafIndex != 0 {
		t.Errorf("the first good append got %v, %v; want position 0 (the refused call stored nothing)", res, err)
	}
}

// checkRootOf checks that the tree's stored root is that of the values
// byIndex holds at positions [0, size), each present.
func checkRootOf(t *testing.T, ls storage.LogStorage, tree *trillian.Tree, byIndex map[int64][]byte, size int64) {
	t.Helper()
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	cr := rf.NewEmptyRange(0)
	for i := range size {
		v, ok := byIndex[i]
		if !ok {
			t.Fatalf("no leaf was given position %d", i)
		}
		if err := cr.Append(rfc6962.DefaultHasher.HashLeaf(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	wantRoot, err := cr.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRoot(t, ls, tree); !bytes.Equal(got, wantRoot) {
		t.Errorf("stored root %x, want %x", got, wantRoot)
	}
}

// mustRoot returns the root hash of the tree's latest signed root.
func mustRoot(t *testing.T, ls storage.LogStorage, tree *trillian.Tree) []byte {
	t.Helper()
	lr, err := latestRoot(t.Context(), ls, tree)
	if err != nil {
		t.Fatal(err)
	}
	return lr.RootHash
}

// leavesByRange reads the sequenced leaves [start, start+count).
func leavesByRange(t *testing.T, ls storage.LogStorage, tree *trillian.Tree, start, count int64) []*trillian.LogLeaf {
	t.Helper()
	tx, err := ls.SnapshotForTree(t.Context(), tree)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	var out []*trillian.LogLeaf
	for start < count {
		got, err := tx.GetLeavesByRange(t.Context(), start, count-start)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Fatalf("no leaves from %d", start)
		}
		out = append(out, got...)
		start += int64(len(got))
	}
	return out
}
