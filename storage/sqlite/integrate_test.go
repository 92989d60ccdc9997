package sqlite

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/storage"
	stestonly "github.com/google/trillian/storage/testonly"
	stree "github.com/google/trillian/storage/tree"
	"github.com/google/trillian/util/clock"
	"github.com/transparency-dev/merkle/compact"
)

// integrateWith returns an IntegrateFunc that runs Trillian's
// IntegrateBatch (limit leaves) on the commit's transaction, counts what
// it integrated into *integrated once the commit is durable, and fails
// after its writes while *fail is set.
func integrateWith(limit int, integrated *atomic.Int64, fail *atomic.Bool) IntegrateFunc {
	log.InitMetrics(nil)
	return func(ctx context.Context, tree *trillian.Tree, ls storage.LogStorage) (func(), error) {
		n, err := log.IntegrateBatch(ctx, tree, limit, 0, 0, clock.System, ls, quota.Noop())
		if err != nil {
			return nil, err
		}
		if fail.Load() {
			// After IntegrateBatch wrote the tree's new root and tiles:
			// the committer must undo them with the leaves' first write.
			return nil, errors.New("integration refused by the test")
		}
		return func() { integrated.Add(int64(n)) }, nil
	}
}

// TestIntegrator: with an Integrator set, every AppendLeaves call returns
// with its leaves in the tree's stored root, from concurrent callers, and
// the tree's root is that of the leaves at their positions. When the
// integrator fails, the callers still succeed, their leaves are stored
// once and not integrated (the failed integration's writes are undone),
// Appended is called instead, and the committer leaves integration alone
// for integratePause.
func TestIntegrator(t *testing.T) {
	s := openTest(t, Config{})
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	ls := s.LogStorage()
	var integrated, appended atomic.Int64
	var fail atomic.Bool
	s.SetIntegrator(tree.TreeId, Integrator{
		Integrate: integrateWith(1000, &integrated, &fail),
		Appended:  func() { appended.Add(1) },
	})

	const writers, calls = 8, 10
	var mu sync.Mutex
	byIndex := map[int64][]byte{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				leaves := []*trillian.LogLeaf{newLeaf(uint64(w), uint64(2*c)), newLeaf(uint64(w), uint64(2*c+1))}
				res, err := s.AppendLeaves(t.Context(), tree, leaves, time.Now())
				if err != nil {
					t.Errorf("AppendLeaves: %v", err)
					return
				}
				// The commit that stored the leaves also integrated them.
				size, err := treeSize(t.Context(), ls, tree)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, r := range res {
					if r.Status != nil {
						t.Errorf("leaf %d: %v", i, r.Status)
						continue
					}
					if uint64(r.Leaf.LeafIndex) >= size {
						t.Errorf("leaf at %d returned while the stored root has size %d", r.Leaf.LeafIndex, size)
					}
					byIndex[r.Leaf.LeafIndex] = leaves[i].LeafValue
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	const want = writers * calls * 2
	if got := integrated.Load(); got != want {
		t.Errorf("committed integrations report %d leaves, want %d", got, want)
	}
	if got := appended.Load(); got != 0 {
		t.Errorf("Appended called %d times while integration worked", got)
	}
	checkRootOf(t, ls, tree, byIndex, want)

	// A failing integrator: the leaves are stored at the next position
	// and answered, nothing is integrated, and Appended is called.
	fail.Store(true)
	res, err := s.AppendLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(100, 0), newLeaf(100, 1)}, time.Now())
	if err != nil {
		t.Fatalf("AppendLeaves with a failing integrator: %v", err)
	}
	if res[0].Status != nil || res[0].Leaf.LeafIndex != want || res[1].Leaf.LeafIndex != want+1 {
		t.Fatalf("leaves stored at %d and %d (%v), want %d and %d", res[0].Leaf.LeafIndex, res[1].Leaf.LeafIndex, res[0].Status, want, want+1)
	}
	if size := mustTreeSize(t, ls, tree); size != want {
		t.Errorf("tree size %d after a failed integration, want %d (its writes kept?)", size, want)
	}
	if got := appended.Load(); got != 1 {
		t.Errorf("Appended called %d times after a failed integration, want 1", got)
	}
	if got := leavesByRange(t, ls, tree, want, want+2); len(got) != 2 || !bytes.Equal(got[1].LeafValue, newLeaf(100, 1).LeafValue) {
		t.Errorf("after a failed integration, positions %d.. hold %d leaves", want, len(got))
	}

	// Paused: the integrator is not asked, even now that it would work.
	fail.Store(false)
	before := integrated.Load()
	if _, err := s.AppendLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(100, 2)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if integrated.Load() != before || appended.Load() != 2 {
		t.Errorf("while paused: %d integrated, Appended called %d times; want none and 2", integrated.Load()-before, appended.Load())
	}
	// After the pause, the next commit integrates everything appended.
	s.integ.mu.Lock()
	s.integ.paused = time.Time{}
	s.integ.mu.Unlock()
	if _, err := s.AppendLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(100, 3)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if size := mustTreeSize(t, ls, tree); size != want+4 {
		t.Errorf("tree size %d after the pause, want %d", size, want+4)
	}
	// The root is right: nothing of the integration rolled back (its
	// changed tiles) was kept.
	for i := range int64(4) {
		byIndex[want+i] = newLeaf(100, uint64(i)).LeafValue
	}
	checkRootOf(t, ls, tree, byIndex, want+4)

	// A duplicate-only append integrates nothing and calls nothing.
	calls0, app0 := integrated.Load(), appended.Load()
	if _, err := s.AppendLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(100, 3)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if integrated.Load() != calls0 || appended.Load() != app0 {
		t.Errorf("a duplicate-only append ran the integrator or Appended")
	}
}

// TestIntegratorBeyondBatch: a group commit that appends more leaves than
// one integration takes integrates the first batch and leaves the rest
// for the sequencer, whose integration of them passes Trillian's checks.
func TestIntegratorBeyondBatch(t *testing.T) {
	s := openTest(t, Config{})
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	ls := s.LogStorage()
	var integrated atomic.Int64
	var fail atomic.Bool
	s.SetIntegrator(tree.TreeId, Integrator{Integrate: integrateWith(5, &integrated, &fail)})
	var leaves []*trillian.LogLeaf
	for i := range 12 {
		leaves = append(leaves, newLeaf(7, uint64(i)))
	}
	if _, err := s.AppendLeaves(t.Context(), tree, leaves, time.Now()); err != nil {
		t.Fatal(err)
	}
	if size := mustTreeSize(t, ls, tree); size != 5 {
		t.Errorf("tree size %d, want one batch of 5", size)
	}
	integrateAll(t, ls, tree)
	if size := mustTreeSize(t, ls, tree); size != 12 {
		t.Errorf("tree size %d after the sequencer, want 12", size)
	}
	// Removed: the committer no longer integrates.
	s.SetIntegrator(tree.TreeId, Integrator{})
	if _, err := s.AppendLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(7, 12)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if size := mustTreeSize(t, ls, tree); size != 12 {
		t.Errorf("tree size %d with the integrator removed, want 12", size)
	}
}

// TestAppendedRange: an integration in the group commit takes the leaves
// it appended from memory only where they cover the range from its start,
// at consecutive positions; otherwise it reads storage.
func TestAppendedRange(t *testing.T) {
	at := func(idx ...int64) []*trillian.LogLeaf {
		var ls []*trillian.LogLeaf
		for _, i := range idx {
			ls = append(ls, &trillian.LogLeaf{LeafIndex: i})
		}
		return ls
	}
	for _, tc := range []struct {
		appended     []*trillian.LogLeaf
		start, count int64
		want         []int64 // nil: read storage
	}{
		{at(10, 11, 12), 10, 100, []int64{10, 11, 12}},
		{at(10, 11, 12), 11, 1, []int64{11}},
		{at(10, 11, 12), 9, 100, nil},  // leaf 9 was appended earlier
		{at(10, 11, 12), 13, 100, nil}, // beyond them
		{at(10, 12, 13), 10, 100, nil}, // not consecutive
		{nil, 0, 10, nil},
	} {
		var tx logTX
		tx.appended = tc.appended
		got, ok := tx.appendedRange(tc.start, tc.count)
		if ok != (tc.want != nil) {
			t.Errorf("appendedRange(%d, %d) of %d leaves: ok %v", tc.start, tc.count, len(tc.appended), ok)
			continue
		}
		var idx []int64
		for _, l := range got {
			idx = append(idx, l.LeafIndex)
		}
		if ok && !slices.Equal(idx, tc.want) {
			t.Errorf("appendedRange(%d, %d) = %v, want %v", tc.start, tc.count, idx, tc.want)
		}
	}
}

// TestEdgeTilesRollback: a tile that an integration changed and stored in
// a group commit that was then rolled back is not what the next write
// transaction reads; nor is a tile changed by a transaction that failed.
func TestEdgeTilesRollback(t *testing.T) {
	s := openTest(t, Config{})
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	ls := s.LogStorage()
	ctx := t.Context()
	first := newLeaf(9, 0)
	if _, err := s.AppendLeaves(ctx, tree, []*trillian.LogLeaf{first, newLeaf(9, 1), newLeaf(9, 2)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	integrateAll(t, ls, tree)
	leaf0 := compact.NewNodeID(0, 0)
	bogus := stree.Node{ID: leaf0, Hash: bytes.Repeat([]byte{0xee}, 32)}
	readLeaf0 := func() []byte {
		t.Helper()
		var got []byte
		if err := ls.ReadWriteTransaction(ctx, tree, func(ctx context.Context, tx storage.LogTreeTX) error {
			nodes, err := tx.GetMerkleNodes(ctx, []compact.NodeID{leaf0})
			if err == nil && len(nodes) == 1 {
				got = nodes[0].Hash
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := readLeaf0(); !bytes.Equal(got, first.MerkleLeafHash) {
		t.Fatalf("leaf 0 reads %x, want %x", got, first.MerkleLeafHash)
	}
	// An integrator that stores a changed tile, then fails: the group
	// commit is rolled back, and its leaves written again without it.
	s.SetIntegrator(tree.TreeId, Integrator{Integrate: func(ctx context.Context, tr *trillian.Tree, ls storage.LogStorage) (func(), error) {
		if err := ls.ReadWriteTransaction(ctx, tr, func(ctx context.Context, tx storage.LogTreeTX) error {
			if _, err := tx.GetMerkleNodes(ctx, []compact.NodeID{leaf0}); err != nil {
				return err
			}
			return tx.SetMerkleNodes(ctx, []stree.Node{bogus})
		}); err != nil {
			return nil, err
		}
		return nil, errors.New("refused after storing a tile")
	}})
	if _, err := s.AppendLeaves(ctx, tree, []*trillian.LogLeaf{newLeaf(9, 3)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	s.SetIntegrator(tree.TreeId, Integrator{})
	if got := readLeaf0(); !bytes.Equal(got, first.MerkleLeafHash) {
		t.Errorf("after a rolled-back group commit, leaf 0 reads %x, want %x", got, first.MerkleLeafHash)
	}
	// A write transaction that changes the tile and fails.
	err := ls.ReadWriteTransaction(ctx, tree, func(ctx context.Context, tx storage.LogTreeTX) error {
		if err := tx.SetMerkleNodes(ctx, []stree.Node{bogus}); err != nil {
			return err
		}
		return errors.New("refused")
	})
	if err == nil {
		t.Fatal("the failing transaction succeeded")
	}
	if got := readLeaf0(); !bytes.Equal(got, first.MerkleLeafHash) {
		t.Errorf("after a failed transaction, leaf 0 reads %x, want %x", got, first.MerkleLeafHash)
	}
}
