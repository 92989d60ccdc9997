package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/trillian"
	"github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/storage"
	"github.com/google/trillian/storage/storagepb"
	stestonly "github.com/google/trillian/storage/testonly"
	"github.com/google/trillian/storage/tree"
	"github.com/google/trillian/types"
	"github.com/google/trillian/util/clock"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// dequeue runs DequeueLeaves in a transaction that is rolled back.
func dequeue(t *testing.T, ls storage.LogStorage, tr *trillian.Tree, limit int, cutoff time.Time) []*trillian.LogLeaf {
	t.Helper()
	var got []*trillian.LogLeaf
	err := ls.ReadWriteTransaction(t.Context(), tr, func(ctx context.Context, tx storage.LogTreeTX) error {
		var err error
		got, err = tx.DequeueLeaves(ctx, limit, cutoff)
		if err != nil {
			return err
		}
		return errRollback
	})
	if err != errRollback {
		t.Fatalf("DequeueLeaves: %v", err)
	}
	return got
}

var errRollback = status.Error(codes.Aborted, "rollback")

// TestDequeueOrderAndCutoff checks that leaves come out in queue time order
// and that leaves queued after the cutoff (the guard window) stay queued.
func TestDequeueOrderAndCutoff(t *testing.T) {
	s := openTest(t, Config{})
	tr := newInitializedTree(t, s)
	ls := s.LogStorage()
	base := time.Unix(1_700_000_000, 0)
	// Queue in reverse time order, one second apart.
	for i := 9; i >= 0; i-- {
		queueOne(t, ls, tr, newLeaf(7, uint64(i)), base.Add(time.Duration(i)*time.Second))
	}
	got := dequeue(t, ls, tr, 100, base.Add(4*time.Second))
	if len(got) != 5 {
		t.Fatalf("dequeued %d leaves with cutoff at the 5th, want 5", len(got))
	}
	for i, l := range got {
		if want := newLeaf(7, uint64(i)).MerkleLeafHash; !bytes.Equal(l.MerkleLeafHash, want) {
			t.Errorf("dequeued[%d] is not leaf %d", i, i)
		}
		if want := base.Add(time.Duration(i) * time.Second); !l.QueueTimestamp.AsTime().Equal(want) {
			t.Errorf("dequeued[%d] queue time %v, want %v", i, l.QueueTimestamp.AsTime(), want)
		}
	}
	if got := dequeue(t, ls, tr, 3, base.Add(time.Hour)); len(got) != 3 {
		t.Errorf("dequeued %d with limit 3, want 3", len(got))
	}
	if got := dequeue(t, ls, tr, 100, base.Add(-time.Second)); len(got) != 0 {
		t.Errorf("dequeued %d before the first queue time, want 0", len(got))
	}
}

// TestQueueBigBatchWithDuplicates queues 1,000 leaves of which only 10 are
// distinct, in one call.
func TestQueueBigBatchWithDuplicates(t *testing.T) {
	s := openTest(t, Config{MaxQueueBatch: 100})
	tr := newInitializedTree(t, s)
	var leaves []*trillian.LogLeaf
	for i := range 1000 {
		leaves = append(leaves, newLeaf(8, uint64(i%10)))
	}
	res, err := s.LogStorage().QueueLeaves(t.Context(), tr, leaves, fakeTime)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for i, r := range res {
		if !bytes.Equal(r.Leaf.LeafValue, leaves[i].LeafValue) {
			t.Fatalf("result %d is for another leaf", i)
		}
		if r.Status == nil {
			ok++
		} else if status.FromProto(r.Status).Code() != codes.AlreadyExists {
			t.Errorf("result %d: %v", i, r.Status)
		}
	}
	if ok != 10 {
		t.Errorf("%d leaves queued, want 10", ok)
	}
}

// TestSignedLogRoots checks storing and reading tree heads.
func TestSignedLogRoots(t *testing.T) {
	s := openTest(t, Config{})
	ls := s.LogStorage()
	tr, err := storage.CreateTree(t.Context(), s.AdminStorage(), stestonly.LogTree)
	if err != nil {
		t.Fatal(err)
	}
	root := func(size uint64, ts uint64) *trillian.SignedLogRoot {
		b, err := (&types.LogRootV1{TreeSize: size, TimestampNanos: ts, RootHash: bytes.Repeat([]byte{byte(size)}, 32)}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return &trillian.SignedLogRoot{LogRoot: b}
	}
	store := func(r *trillian.SignedLogRoot) error {
		return ls.ReadWriteTransaction(t.Context(), tr, func(ctx context.Context, tx storage.LogTreeTX) error {
			return tx.StoreSignedLogRoot(ctx, r)
		})
	}
	latest := func() *trillian.SignedLogRoot {
		tx, err := ls.SnapshotForTree(t.Context(), tr)
		if err == storage.ErrTreeNeedsInit {
			tx.Close()
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		r, err := tx.LatestSignedLogRoot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if got := latest(); got != nil {
		t.Fatalf("root of a new tree = %v, want none", got)
	}
	for _, r := range []*trillian.SignedLogRoot{root(0, 10), root(5, 20), root(5, 30), root(9, 40)} {
		if err := store(r); err != nil {
			t.Fatal(err)
		}
		if got := latest(); !proto.Equal(got, r) {
			t.Errorf("latest root = %x, want %x", got.GetLogRoot(), r.LogRoot)
		}
	}
	// Two roots in one transaction: the second is refused.
	err = ls.ReadWriteTransaction(t.Context(), tr, func(ctx context.Context, tx storage.LogTreeTX) error {
		if err := tx.StoreSignedLogRoot(ctx, root(10, 50)); err != nil {
			return err
		}
		return tx.StoreSignedLogRoot(ctx, root(11, 60))
	})
	if err == nil {
		t.Error("storing two roots in one transaction succeeded")
	}
	if got, want := latest(), root(9, 40); !proto.Equal(got, want) {
		t.Errorf("after the failed transaction, latest root = %x, want %x", got.GetLogRoot(), want.LogRoot)
	}
	// Metadata and garbage are refused.
	meta, _ := (&types.LogRootV1{TreeSize: 12, RootHash: make([]byte, 32), Metadata: []byte("x")}).MarshalBinary()
	for _, r := range []*trillian.SignedLogRoot{{LogRoot: meta}, {LogRoot: []byte("garbage")}} {
		if err := store(r); err == nil {
			t.Errorf("storing %x succeeded", r.LogRoot)
		}
	}
}

// TestMerkleNodesRoundTrip grows a pre-ordered tree through Trillian's
// sequencer in steps that end inside bottom tiles, and reads nodes back
// in later transactions and snapshots: from the edge a commit hands to the
// next, from rows, and (for a partial bottom tile, which is never stored)
// from the leaves' Merkle hashes, after a rollback empties the edge and
// with a stale partial row written by an older version in the way. Every
// root Trillian computes from the nodes read back must be the one computed
// here from the leaves.
func TestMerkleNodesRoundTrip(t *testing.T) {
	log.InitMetrics(nil)
	s := openTest(t, Config{})
	tr := initializedTree(t, s, stestonly.PreorderedLogTree)
	ls := s.LogStorage()
	leaves := someLeaves(3, 700)
	var hashes [][]byte
	for _, l := range leaves {
		hashes = append(hashes, l.MerkleLeafHash)
	}
	// node is the hash of node (level, index), computed from the leaves.
	var node func(level uint, index uint64) []byte
	node = func(level uint, index uint64) []byte {
		if level == 0 {
			return hashes[index]
		}
		return rfc6962.DefaultHasher.HashChildren(node(level-1, 2*index), node(level-1, 2*index+1))
	}
	rootOf := func(size uint64) []byte {
		rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
		for _, h := range hashes[:size] {
			if err := rng.Append(h, nil); err != nil {
				t.Fatal(err)
			}
		}
		r, err := rng.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	check := func(when string, tx storage.ReadOnlyLogTreeTX, size uint64) {
		t.Helper()
		var want []tree.Node
		for _, id := range []compact.NodeID{compact.NewNodeID(0, 0), compact.NewNodeID(0, 255), compact.NewNodeID(0, 256),
			compact.NewNodeID(0, size-1), compact.NewNodeID(3, 5), compact.NewNodeID(5, 8), compact.NewNodeID(8, 0),
			compact.NewNodeID(2, (size-4)/4), compact.NewNodeID(1, (size-2)/2)} {
			if (id.Index+1)<<id.Level <= size {
				want = append(want, tree.Node{ID: id, Hash: node(id.Level, id.Index)})
			}
		}
		var ids []compact.NodeID
		for _, n := range want {
			ids = append(ids, n.ID)
		}
		got, err := tx.GetMerkleNodes(t.Context(), ids)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: nodes of the tree of %d (-want +got):\n%s", when, size, diff)
		}
	}
	snapshot := func(when string, size uint64) {
		t.Helper()
		tx, err := ls.SnapshotForTree(t.Context(), tr)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		check(when+", in a snapshot", tx, size)
	}
	size := uint64(0)
	grow := func(n int) {
		t.Helper()
		appendAll(t, s, tr, leaves[size:size+uint64(n)])
		got, err := log.IntegrateBatch(t.Context(), tr, n, 0, 0, clock.System, ls, quota.Noop())
		if err != nil || got != n {
			t.Fatalf("IntegrateBatch: %d, %v", got, err)
		}
		size += uint64(n)
		var root types.LogRootV1
		if err := ls.ReadWriteTransaction(t.Context(), tr, func(ctx context.Context, tx storage.LogTreeTX) error {
			slr, err := tx.LatestSignedLogRoot(ctx)
			if err != nil {
				return err
			}
			if err := root.UnmarshalBinary(slr.LogRoot); err != nil {
				return err
			}
			check(fmt.Sprintf("size %d, in a write transaction", size), tx, size)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if root.TreeSize != size || !bytes.Equal(root.RootHash, rootOf(size)) {
			t.Fatalf("Trillian's root at size %d: %d %x, want %x", size, root.TreeSize, root.RootHash, rootOf(size))
		}
		snapshot(fmt.Sprintf("size %d", size), size)
	}
	grow(100)
	grow(200) // a full bottom tile and a partial one
	// A rollback empties the edge: the next reads come from rows and
	// leaves.
	if err := ls.ReadWriteTransaction(t.Context(), tr, func(ctx context.Context, tx storage.LogTreeTX) error {
		check("size 300, before a rollback", tx, 300)
		return errRollback
	}); err != errRollback {
		t.Fatal(err)
	}
	// A partial bottom row as an older version left it, behind the tree.
	var stale []byte
	if err := s.wconn.QueryRowContext(t.Context(), "SELECT nodes FROM subtrees WHERE tree_id = ? AND length(subtree_id) = 7 ORDER BY subtree_id LIMIT 1", tr.TreeId).Scan(&stale); err != nil {
		t.Fatal(err) // the full bottom tile 0
	}
	var st storagepb.SubtreeProto
	if err := proto.Unmarshal(stale, &st); err != nil {
		t.Fatal(err)
	}
	st.Prefix[6] = 1 // now "tile 1", holding tile 0's leaves: wrong
	if stale, err := proto.Marshal(&st); err != nil {
		t.Fatal(err)
	} else if _, err := s.wconn.ExecContext(t.Context(), upsertSubtreeSQL, tr.TreeId, st.Prefix, stale); err != nil {
		t.Fatal(err)
	}
	snapshot("size 300, with a stale row", 300)
	grow(1)
	grow(299) // 600: two full bottom tiles and a partial one
	grow(100)
	// No partial bottom tile was written.
	var n int
	if err := s.wconn.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM subtrees WHERE tree_id = ? AND length(subtree_id) = 7", tr.TreeId).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d bottom tiles stored (%v), want the 2 full ones", n, err)
	}
}

// TestGetActiveLogIDs checks which trees the sequencer is given.
func TestGetActiveLogIDs(t *testing.T) {
	s := openTest(t, Config{})
	ctx := t.Context()
	as := s.AdminStorage()
	mk := func(base *trillian.Tree, mod func(*trillian.Tree)) int64 {
		tr, err := storage.CreateTree(ctx, as, base)
		if err != nil {
			t.Fatal(err)
		}
		if mod != nil {
			if tr, err = storage.UpdateTree(ctx, as, tr.TreeId, mod); err != nil {
				t.Fatal(err)
			}
		}
		return tr.TreeId
	}
	active := mk(stestonly.LogTree, nil)
	preordered := mk(stestonly.PreorderedLogTree, nil)
	draining := mk(stestonly.LogTree, func(tr *trillian.Tree) { tr.TreeState = trillian.TreeState_DRAINING })
	mk(stestonly.LogTree, func(tr *trillian.Tree) { tr.TreeState = trillian.TreeState_FROZEN })
	deleted := mk(stestonly.LogTree, nil)
	if _, err := storage.SoftDeleteTree(ctx, as, deleted); err != nil {
		t.Fatal(err)
	}
	got, err := s.LogStorage().GetActiveLogIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{active, preordered, draining}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("GetActiveLogIDs = %v, want %v", got, want)
	}
	// Other tree types and storage settings are refused at creation.
	withSettings := proto.Clone(stestonly.LogTree).(*trillian.Tree)
	withSettings.StorageSettings = &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Empty"}
	for _, bad := range []*trillian.Tree{
		{TreeState: trillian.TreeState_ACTIVE, TreeType: trillian.TreeType_UNKNOWN_TREE_TYPE, MaxRootDuration: stestonly.LogTree.MaxRootDuration},
		withSettings,
	} {
		if _, err := storage.CreateTree(ctx, as, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("CreateTree(%v) = %v, want code InvalidArgument", bad, err)
		}
	}
	if got, err := s.LogStorage().GetActiveLogIDs(ctx); err != nil || len(got) != len(want) {
		t.Errorf("after refused creations, GetActiveLogIDs = %v, %v; want %d trees", got, err, len(want))
	}
}
