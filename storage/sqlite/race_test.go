package sqlite

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
	"github.com/transparency-dev/merkle/rfc6962"
	inmemory "github.com/transparency-dev/merkle/testonly"
)

// TestConcurrentQueueWhileSequencing has 64 goroutines queue leaves (every
// fourth one a duplicate of another goroutine's leaf) while Trillian's
// sequencer (log.OperationManager, in Trillian's in-process environment)
// integrates them and readers take snapshots. Run it with -race. It checks
// that no call fails, nothing deadlocks, and every distinct leaf ends up in
// the tree exactly once under the right root.
func TestConcurrentQueueWhileSequencing(t *testing.T) {
	const (
		goroutines = 64
		perG       = 40
	)
	s := openTest(t, Config{})
	env, treeID := newLogEnv(t, s, 10*time.Millisecond)
	ctx := t.Context()
	tree, err := storage.GetTree(ctx, s.AdminStorage(), treeID)
	if err != nil {
		t.Fatal(err)
	}
	ls := s.LogStorage()
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := treeSize(ctx, ls, tree); err != nil {
					t.Errorf("reader: %v", err)
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				leaf := newLeaf(uint64(g), uint64(i))
				if i%4 == 3 {
					leaf = newLeaf(uint64((g+1)%goroutines), uint64(i-1))
				}
				res, err := ls.QueueLeaves(ctx, tree, []*trillian.LogLeaf{leaf}, time.Now())
				if err != nil {
					t.Errorf("goroutine %d: QueueLeaves: %v", g, err)
					return
				}
				if !bytes.Equal(res[0].Leaf.LeafIdentityHash, leaf.LeafIdentityHash) {
					t.Errorf("goroutine %d: result for another leaf", g)
				}
			}
		}()
	}
	wg.Wait()
	want := uint64(goroutines * perG * 3 / 4)
	deadline := time.Now().Add(2 * time.Minute) // only to turn a deadlock into a failure
	for {
		size, err := treeSize(ctx, ls, tree)
		if err != nil {
			t.Fatal(err)
		}
		if size >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree size %d after 2 minutes, want %d", size, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	readers.Wait()

	// Every distinct leaf is in the tree once, and the root matches.
	resp, err := env.Log.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: treeID, StartIndex: 0, Count: int64(want) + 10})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(resp.Leaves)) != want {
		t.Fatalf("got %d leaves, want %d", len(resp.Leaves), want)
	}
	seen := make(map[string]bool)
	mt := inmemory.New(rfc6962.DefaultHasher)
	for _, l := range resp.Leaves {
		if seen[string(l.LeafValue)] {
			t.Errorf("leaf %d is a duplicate", l.LeafIndex)
		}
		seen[string(l.LeafValue)] = true
		mt.AppendData(l.LeafValue)
	}
	for g := range goroutines {
		for i := range perG {
			if i%4 != 3 && !seen[string(newLeaf(uint64(g), uint64(i)).LeafValue)] {
				t.Errorf("leaf %d/%d missing", g, i)
			}
		}
	}
	if got := mustTreeSize(t, ls, tree); got != want {
		t.Errorf("tree size = %d, want %d", got, want)
	}
	checkProofs(t, env.Log, treeID, int64(want), 20)
}
