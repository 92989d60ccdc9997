package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/trillian"
	"github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/storage"
	stestonly "github.com/google/trillian/storage/testonly"
	"github.com/google/trillian/types"
	"github.com/google/trillian/util/clock"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func queueOne(t *testing.T, ls storage.LogStorage, tree *trillian.Tree, leaf *trillian.LogLeaf, ts time.Time) *trillian.QueuedLogLeaf {
	t.Helper()
	res, err := ls.QueueLeaves(t.Context(), tree, []*trillian.LogLeaf{leaf}, ts)
	if err != nil {
		t.Fatalf("QueueLeaves: %v", err)
	}
	if len(res) != 1 {
		t.Fatalf("QueueLeaves returned %d results, want 1", len(res))
	}
	return res[0]
}

// integrateAll runs Trillian's sequencer until the queue is empty.
func integrateAll(t *testing.T, ls storage.LogStorage, tree *trillian.Tree) {
	t.Helper()
	log.InitMetrics(nil)
	for {
		n, err := log.IntegrateBatch(t.Context(), tree, 1000, 0, 0, clock.System, ls, quota.Noop())
		if err != nil {
			t.Fatalf("IntegrateBatch: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

// TestQueueLeavesDuplicates checks dedup by LeafIdentityHash: a duplicate,
// in a later call or in the same call, gets AlreadyExists and the stored
// leaf, before and after the leaf is sequenced.
func TestQueueLeavesDuplicates(t *testing.T) {
	s := openTest(t, Config{})
	tree := newInitializedTree(t, s)
	ls := s.LogStorage()
	first := newLeaf(1, 1)
	first.ExtraData = []byte("first extra")
	t1 := time.Unix(1000, 1)
	if got := queueOne(t, ls, tree, proto.Clone(first).(*trillian.LogLeaf), t1); got.Status != nil {
		t.Fatalf("first queue status = %v, want OK (nil)", got.Status)
	}

	// Same identity, different value and extra data: the stored one wins.
	dup := proto.Clone(first).(*trillian.LogLeaf)
	dup.LeafValue = []byte("other value")
	dup.ExtraData = []byte("other extra")
	want := &trillian.LogLeaf{
		MerkleLeafHash:   first.MerkleLeafHash,
		LeafIdentityHash: first.LeafIdentityHash,
		LeafValue:        first.LeafValue,
		ExtraData:        first.ExtraData,
		LeafIndex:        -1,
		QueueTimestamp:   timestamppb.New(t1),
	}
	got := queueOne(t, ls, tree, dup, time.Unix(2000, 0))
	if code := status.FromProto(got.Status).Code(); code != codes.AlreadyExists {
		t.Errorf("duplicate status = %v, want AlreadyExists", got.Status)
	}
	if diff := cmp.Diff(want, got.Leaf, protocmp.Transform()); diff != "" {
		t.Errorf("duplicate leaf (-want +got):\n%s", diff)
	}

	// Two leaves with one identity in one call (Trillian issue 3603).
	a, b := newLeaf(1, 2), newLeaf(1, 2)
	res, err := ls.QueueLeaves(t.Context(), tree, []*trillian.LogLeaf{a, b}, t1)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != nil || status.FromProto(res[1].Status).Code() != codes.AlreadyExists {
		t.Errorf("same-call duplicate statuses = %v, %v; want OK, AlreadyExists", res[0].Status, res[1].Status)
	}

	integrateAll(t, ls, tree)
	got = queueOne(t, ls, tree, proto.Clone(first).(*trillian.LogLeaf), time.Unix(3000, 0))
	if code := status.FromProto(got.Status).Code(); code != codes.AlreadyExists {
		t.Errorf("duplicate after sequencing: status %v, want AlreadyExists", got.Status)
	}
	if got.Leaf.LeafIndex < 0 || got.Leaf.LeafIndex > 1 || got.Leaf.IntegrateTimestamp == nil {
		t.Errorf("duplicate after sequencing: index %d, integrate time %v; want its index and time", got.Leaf.LeafIndex, got.Leaf.IntegrateTimestamp)
	}
	if size := mustTreeSize(t, ls, tree); size != 2 {
		t.Errorf("tree size = %d, want 2", size)
	}
}

func mustTreeSize(t *testing.T, ls storage.LogStorage, tree *trillian.Tree) uint64 {
	t.Helper()
	size, err := treeSize(t.Context(), ls, tree)
	if err != nil {
		t.Fatal(err)
	}
	return size
}

// TestGroupCommit holds the write lock while 50 callers queue leaves (some
// the same), then checks that they were written in one transaction and
// that each caller got its own results.
func TestGroupCommit(t *testing.T) {
	s := openTest(t, Config{})
	tree := newInitializedTree(t, s)
	ls := s.LogStorage()
	const callers = 50
	if err := s.lockWrite(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := s.groupCommits.Load()
	results := make([][]*trillian.QueuedLogLeaf, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Callers c and c+25 share their second leaf.
			leaves := []*trillian.LogLeaf{newLeaf(5, uint64(c)), newLeaf(6, uint64(c%25))}
			results[c], errs[c] = ls.QueueLeaves(context.Background(), tree, leaves, fakeTime)
		}()
	}
	// Wait until every caller's request is with the committer, which waits
	// for the lock.
	deadline := time.Now().Add(time.Minute) // only to fail rather than hang
	for s.pending.Load() < callers {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests reached the committer", s.pending.Load(), callers)
		}
		time.Sleep(time.Millisecond)
	}
	s.unlockWrite()
	wg.Wait()
	if got := s.groupCommits.Load() - before; got != 1 {
		t.Errorf("%d transactions for %d waiting callers, want 1", got, callers)
	}
	dups := 0
	for c := range callers {
		if errs[c] != nil {
			t.Fatalf("caller %d: %v", c, errs[c])
		}
		if got := results[c][0]; got.Status != nil || !bytes.Equal(got.Leaf.LeafValue, newLeaf(5, uint64(c)).LeafValue) {
			t.Errorf("caller %d first result: %v", c, got)
		}
		got := results[c][1]
		if !bytes.Equal(got.Leaf.LeafValue, newLeaf(6, uint64(c%25)).LeafValue) {
			t.Errorf("caller %d second result has another leaf", c)
		}
		if status.FromProto(got.Status).Code() == codes.AlreadyExists {
			dups++
		}
	}
	if dups != 25 {
		t.Errorf("%d duplicates reported, want 25", dups)
	}
	integrateAll(t, ls, tree)
	if size := mustTreeSize(t, ls, tree); size != callers+25 {
		t.Errorf("tree size = %d, want %d", size, callers+25)
	}
}

func TestQueueLeavesErrors(t *testing.T) {
	s := openTest(t, Config{})
	ls := s.LogStorage()
	tree := newInitializedTree(t, s)
	uninit, err := storage.CreateTree(t.Context(), s.AdminStorage(), stestonly.LogTree)
	if err != nil {
		t.Fatal(err)
	}
	short := newLeaf(1, 1)
	short.LeafIdentityHash = short.LeafIdentityHash[:31]
	noMerkle := newLeaf(1, 2)
	noMerkle.MerkleLeafHash = nil
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name     string
		ctx      context.Context
		tree     *trillian.Tree
		leaves   []*trillian.LogLeaf
		wantCode codes.Code
		wantErr  error
	}{
		{name: "uninitialized tree", tree: uninit, leaves: []*trillian.LogLeaf{newLeaf(1, 3)}, wantErr: storage.ErrTreeNeedsInit},
		{name: "unknown tree", tree: &trillian.Tree{TreeId: 12345, TreeType: trillian.TreeType_LOG}, leaves: []*trillian.LogLeaf{newLeaf(1, 3)}, wantErr: storage.ErrTreeNeedsInit},
		{name: "short identity hash", tree: tree, leaves: []*trillian.LogLeaf{newLeaf(1, 4), short}, wantCode: codes.InvalidArgument},
		{name: "no Merkle hash", tree: tree, leaves: []*trillian.LogLeaf{noMerkle}, wantCode: codes.InvalidArgument},
		{name: "cancelled", ctx: cancelled, tree: tree, leaves: []*trillian.LogLeaf{newLeaf(1, 5)}, wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			_, err := ls.QueueLeaves(ctx, tc.tree, tc.leaves, fakeTime)
			if err == nil {
				t.Fatal("QueueLeaves succeeded, want an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantCode != codes.OK && status.Code(err) != tc.wantCode {
				t.Errorf("error %v, want code %v", err, tc.wantCode)
			}
		})
	}
	var n int
	if err := s.rdb.QueryRow("SELECT count(*) FROM leaf_data").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d leaves stored after failed calls (%v), want 0", n, err)
	}
	// The storage still works.
	if got := queueOne(t, ls, tree, newLeaf(1, 6), fakeTime); got.Status != nil {
		t.Errorf("QueueLeaves after errors: %v", got.Status)
	}
}

// TestWriteLockTimeout checks that a write waiting behind a long one fails
// with ErrWriteTimeout (gRPC Unavailable), never "database is locked".
func TestWriteLockTimeout(t *testing.T) {
	s := openTest(t, Config{WriteLockTimeout: 50 * time.Millisecond})
	tree := newInitializedTree(t, s)
	ls := s.LogStorage()
	release := make(chan struct{})
	holding := make(chan struct{})
	go ls.ReadWriteTransaction(context.Background(), tree, func(ctx context.Context, tx storage.LogTreeTX) error {
		close(holding)
		<-release
		return nil
	})
	<-holding
	err := ls.ReadWriteTransaction(t.Context(), tree, func(context.Context, storage.LogTreeTX) error { return nil })
	if !errors.Is(err, ErrWriteTimeout) || status.Code(err) != codes.Unavailable {
		t.Errorf("ReadWriteTransaction while locked: %v, want ErrWriteTimeout (Unavailable)", err)
	}
	_, err = ls.QueueLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(1, 1)}, fakeTime)
	if !errors.Is(err, ErrWriteTimeout) {
		t.Errorf("QueueLeaves while locked: %v, want ErrWriteTimeout", err)
	}
	// Reads do not wait for the writer.
	if size := mustTreeSize(t, ls, tree); size != 0 {
		t.Errorf("size = %d, want 0", size)
	}
	close(release)
	// Once the lock is free, writes work again.
	var got *trillian.QueuedLogLeaf
	for range 100 {
		res, err := ls.QueueLeaves(t.Context(), tree, []*trillian.LogLeaf{newLeaf(1, 2)}, fakeTime)
		if err == nil {
			got = res[0]
			break
		}
	}
	if got == nil || got.Status != nil {
		t.Errorf("QueueLeaves after the lock was released: %v", got)
	}
}

// TestTransactions checks rollback on error, snapshot isolation and the
// refusal to store a smaller tree.
func TestTransactions(t *testing.T) {
	s := openTest(t, Config{})
	tree := newInitializedTree(t, s)
	ls := s.LogStorage()
	for i := range 10 {
		leaf := newLeaf(3, uint64(i))
		if i%2 == 1 {
			leaf = newLeafWithIdentity(3, uint64(i))
		}
		queueOne(t, ls, tree, leaf, time.Now().Add(-time.Second))
	}

	// A transaction whose function fails leaves no trace.
	boom := errors.New("boom")
	err := ls.ReadWriteTransaction(t.Context(), tree, func(ctx context.Context, tx storage.LogTreeTX) error {
		leaves, err := tx.DequeueLeaves(ctx, 5, time.Now())
		if err != nil || len(leaves) != 5 {
			t.Fatalf("DequeueLeaves = %d leaves, %v", len(leaves), err)
		}
		for i, l := range leaves {
			l.LeafIndex = int64(i)
			l.IntegrateTimestamp = timestamppb.Now()
		}
		if err := tx.UpdateSequencedLeaves(ctx, leaves); err != nil {
			t.Fatal(err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("ReadWriteTransaction = %v, want boom", err)
	}
	var queued, sequenced int
	s.rdb.QueryRow("SELECT count(*) FROM leaf_data WHERE sequence_number IS NULL").Scan(&queued)
	s.rdb.QueryRow("SELECT count(*) FROM leaf_data WHERE sequence_number IS NOT NULL").Scan(&sequenced)
	if queued != 10 || sequenced != 0 {
		t.Errorf("after rollback: %d queued, %d sequenced; want 10, 0", queued, sequenced)
	}

	// A snapshot keeps its view while the tree grows.
	snap, err := ls.SnapshotForTree(t.Context(), tree)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if _, err := snap.LatestSignedLogRoot(t.Context()); err != nil {
		t.Fatal(err)
	}
	integrateAll(t, ls, tree)
	if size := mustTreeSize(t, ls, tree); size != 10 {
		t.Errorf("new snapshot size = %d, want 10", size)
	}
	if _, err := snap.GetLeavesByRange(t.Context(), 0, 1); status.Code(err) != codes.OutOfRange {
		t.Errorf("old snapshot GetLeavesByRange = %v, want OutOfRange (it sees the empty tree)", err)
	}
	if err := snap.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Leaves by hash, in sequence order.
	err = ls.ReadWriteTransaction(t.Context(), tree, func(ctx context.Context, tx storage.LogTreeTX) error {
		all, err := tx.GetLeavesByRange(ctx, 0, 100)
		if err != nil || len(all) != 10 {
			t.Fatalf("GetLeavesByRange = %d leaves, %v; want 10", len(all), err)
		}
		// By Merkle hash, leaves with and without an identity hash of
		// their own; an unknown hash finds nothing.
		hashes := [][]byte{make([]byte, 32)}
		for i := len(all) - 1; i >= 0; i-- {
			hashes = append(hashes, all[i].MerkleLeafHash)
		}
		got, err := tx.GetLeavesByHash(ctx, hashes, true)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(all, got, protocmp.Transform()); diff != "" {
			t.Errorf("GetLeavesByHash(all, ordered) (-want +got):\n%s", diff)
		}
		for _, l := range got {
			if !bytes.Equal(l.MerkleLeafHash, rfc6962.DefaultHasher.HashLeaf(l.LeafValue)) {
				t.Errorf("leaf %d: Merkle hash does not match value", l.LeafIndex)
			}
		}
		// The tree never shrinks.
		small, _ := (&types.LogRootV1{TreeSize: 3, RootHash: make([]byte, 32)}).MarshalBinary()
		if err := tx.StoreSignedLogRoot(ctx, &trillian.SignedLogRoot{LogRoot: small}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("StoreSignedLogRoot(smaller) = %v, want FailedPrecondition", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHardDeleteRemovesLeaves checks that a hard-deleted tree leaves no rows.
func TestHardDeleteRemovesLeaves(t *testing.T) {
	s := openTest(t, Config{})
	tree := newInitializedTree(t, s)
	ls := s.LogStorage()
	for i := range 5 {
		queueOne(t, ls, tree, newLeaf(4, uint64(i)), time.Now().Add(-time.Second))
	}
	integrateAll(t, ls, tree)
	queueOne(t, ls, tree, newLeaf(4, 99), time.Now())
	ctx := t.Context()
	if _, err := storage.SoftDeleteTree(ctx, s.AdminStorage(), tree.TreeId); err != nil {
		t.Fatal(err)
	}
	if ids, err := ls.GetActiveLogIDs(ctx); err != nil || len(ids) != 0 {
		t.Errorf("GetActiveLogIDs after soft delete = %v, %v; want none", ids, err)
	}
	if err := storage.HardDeleteTree(ctx, s.AdminStorage(), tree.TreeId); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"trees", "tree_heads", "subtrees", "leaf_data"} {
		var n int
		if err := s.rdb.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s has %d rows (%v) after hard delete, want 0", table, n, err)
		}
	}
	if _, err := ls.QueueLeaves(ctx, tree, []*trillian.LogLeaf{newLeaf(4, 100)}, fakeTime); !errors.Is(err, storage.ErrTreeNeedsInit) {
		t.Errorf("QueueLeaves on a deleted tree = %v, want ErrTreeNeedsInit", err)
	}
}

// TestGroupCommitFailure makes a group commit fail in two ways. When one
// statement fails (RAISE(ABORT) in a trigger), only the caller whose leaf
// it was gets an error and the other callers' leaves are stored. When the
// transaction is lost (RAISE(ROLLBACK), as SQLite does itself after some
// I/O errors), the same: the others are written again, and no caller gets
// a success whose leaf was rolled back (the stored count says so).
func TestGroupCommitFailure(t *testing.T) {
	for _, tc := range []struct {
		name      string
		raise     string
		wantFails int // callers that get an error, of 10
		wantLeafs int // leaves stored
	}{
		{name: "statement fails", raise: "ABORT", wantFails: 1, wantLeafs: 9},
		// SQLite ends the whole transaction: the others are written
		// again, in a transaction of their own.
		{name: "transaction lost", raise: "ROLLBACK", wantFails: 1, wantLeafs: 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, Config{})
			tree := newInitializedTree(t, s)
			ls := s.LogStorage()
			bad := newLeaf(10, 0)
			// A trigger on the write connection only (TEMP) makes
			// inserting bad fail.
			if err := s.lockWrite(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := s.wconn.ExecContext(t.Context(), fmt.Sprintf(`CREATE TEMP TRIGGER fail_bad BEFORE INSERT ON leaf_data
				WHEN NEW.leaf_identity_hash = X'%x' BEGIN SELECT RAISE(%s, 'injected failure'); END`, bad.LeafIdentityHash, tc.raise)); err != nil {
				t.Fatal(err)
			}
			const callers = 10
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for c := range callers {
				wg.Go(func() {
					leaf := newLeaf(10, uint64(c+1))
					if c == callers/2 {
						leaf = bad
					}
					_, errs[c] = ls.QueueLeaves(context.Background(), tree, []*trillian.LogLeaf{leaf}, fakeTime)
				})
			}
			deadline := time.Now().Add(time.Minute)
			for s.pending.Load() < callers {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d requests reached the committer", s.pending.Load(), callers)
				}
				time.Sleep(time.Millisecond)
			}
			before := s.groupCommits.Load()
			s.unlockWrite()
			wg.Wait()
			fails := 0
			for c, err := range errs {
				if err != nil {
					fails++
					t.Logf("caller %d: %v", c, err)
					if !strings.Contains(err.Error(), "injected failure") {
						t.Errorf("caller %d: %v, want the injected failure", c, err)
					}
				}
			}
			if errs[callers/2] == nil {
				t.Errorf("the caller of the failing leaf succeeded")
			}
			if fails != tc.wantFails {
				t.Errorf("%d callers failed, want %d", fails, tc.wantFails)
			}
			if tc.wantFails < callers {
				if got := s.groupCommits.Load() - before; got != 1 {
					t.Errorf("%d transactions, want 1 (the failure must not split the batch)", got)
				}
			}
			var n int
			if err := s.rdb.QueryRow("SELECT count(*) FROM leaf_data").Scan(&n); err != nil || n != tc.wantLeafs {
				t.Errorf("%d leaves stored (%v), want %d", n, err, tc.wantLeafs)
			}
			// Later commits work.
			if got := queueOne(t, ls, tree, newLeaf(10, 100), fakeTime); got.Status != nil {
				t.Errorf("QueueLeaves after the failure: %v", got.Status)
			}
		})
	}
}

// TestWALTruncatedWhenIdle writes a few MB, then checks that the
// write-ahead log goes back to zero bytes once nothing is written, and that
// the write connection has the journal size limit.
func TestWALTruncatedWhenIdle(t *testing.T) {
	s := openTest(t, Config{})
	tree := newInitializedTree(t, s)
	ls := s.LogStorage()
	for i := range 10 {
		var leaves []*trillian.LogLeaf
		for j := range 1000 {
			leaves = append(leaves, newLeaf(12, uint64(i*1000+j)))
		}
		if _, err := ls.QueueLeaves(t.Context(), tree, leaves, fakeTime); err != nil {
			t.Fatal(err)
		}
	}
	integrateAll(t, ls, tree)
	var limit int64
	if err := s.wconn.QueryRowContext(t.Context(), "PRAGMA journal_size_limit").Scan(&limit); err != nil || limit != walSizeLimit {
		t.Errorf("journal_size_limit = %d, %v; want %d", limit, err, walSizeLimit)
	}
	deadline := time.Now().Add(time.Minute) // only to fail rather than hang
	for {
		fi, err := os.Stat(s.path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("-wal is still %d bytes after a minute without writes", fi.Size())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The storage works on after the truncation.
	if got := queueOne(t, ls, tree, newLeaf(12, 99999), fakeTime); got.Status != nil {
		t.Errorf("QueueLeaves after truncation: %v", got.Status)
	}
}

// TestQueueLeavesOwnDeadline checks that a QueueLeaves that arrives while
// the group committer waits for the write lock joins the waiting batch, and
// that each request fails on its own deadline (arrival plus
// WriteLockTimeout), with an error that says truly how long it waited.
func TestQueueLeavesOwnDeadline(t *testing.T) {
	// queueAB sends A, waits until the committer has it, then sends B; it
	// returns their errors and how long each call took.
	queueAB := func(t *testing.T, s *Storage, tree *trillian.Tree) func() ([2]error, [2]time.Duration) {
		var errs [2]error
		var took [2]time.Duration
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				start := time.Now()
				_, errs[i] = s.LogStorage().QueueLeaves(context.Background(), tree, []*trillian.LogLeaf{newLeaf(13, uint64(i))}, fakeTime)
				took[i] = time.Since(start)
			})
			waitFor(t, fmt.Sprintf("request %d with the committer", i), func() bool {
				return s.pending.Load() == int64(i+1) && len(s.queue) == 0
			})
		}
		return func() ([2]error, [2]time.Duration) { wg.Wait(); return errs, took }
	}

	t.Run("arrivals join the waiting batch", func(t *testing.T) {
		s := openTest(t, Config{WriteLockTimeout: time.Hour})
		tree := newInitializedTree(t, s)
		release := holdWriteLock(t, s)
		before := s.groupCommits.Load()
		wait := queueAB(t, s, tree) // B is taken from the queue while A waits
		release()
		errs, _ := wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("QueueLeaves: %v", errs)
		}
		if got := s.groupCommits.Load() - before; got != 1 {
			t.Errorf("%d transactions, want 1", got)
		}
	})

	t.Run("each request waits its own timeout", func(t *testing.T) {
		const timeout = time.Second
		s := openTest(t, Config{WriteLockTimeout: timeout})
		tree := newInitializedTree(t, s)
		holdWriteLock(t, s)
		errs, took := queueAB(t, s, tree)()
		for i, err := range errs {
			if !errors.Is(err, ErrWriteTimeout) {
				t.Fatalf("request %d: %v, want ErrWriteTimeout", i, err)
			}
			var waited time.Duration
			if m := regexp.MustCompile(`waited ([0-9.]+m?s)`).FindStringSubmatch(err.Error()); m != nil {
				waited, _ = time.ParseDuration(m[1])
			}
			t.Logf("request %d: took %v: %v", i, took[i], err)
			// The claim is at least the timeout and at most the time the
			// call took. (That B waited only its own timeout, not the rest
			// of A's and then one more, is what "with the committer" above
			// checks: it joined A's batch, which fails each on its own
			// deadline. No bound on the time taken is asserted.)
			if waited < timeout || waited > took[i] {
				t.Errorf("request %d took %v and says it waited %v (timeout %v)", i, took[i], waited, timeout)
			}
		}
	})
}

// holdWriteLock takes s's write lock, as a long write would, until release
// is called or the test ends (before s is closed).
func holdWriteLock(t *testing.T, s *Storage) (release func()) {
	t.Helper()
	if err := s.lockWrite(t.Context()); err != nil {
		t.Fatal(err)
	}
	release = sync.OnceFunc(s.unlockWrite)
	t.Cleanup(release)
	return release
}

// waitFor polls cond until it holds, failing the test after a minute (only
// to fail rather than hang).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
