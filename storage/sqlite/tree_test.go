package sqlite

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/trillian"
	"github.com/google/trillian/storage"
	stestonly "github.com/google/trillian/storage/testonly"
	"github.com/google/trillian/storage/tree"
	"github.com/google/trillian/types"
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

// TestMerkleNodesRoundTrip writes nodes in several tiles and reads them
// back in later transactions and snapshots.
func TestMerkleNodesRoundTrip(t *testing.T) {
	s := openTest(t, Config{})
	tr := newInitializedTree(t, s)
	ls := s.LogStorage()
	// Leaves 0..299 (a full bottom tile and a partial one) and the nodes
	// above them, as the sequencer writes them.
	var nodes []tree.Node
	var leafHashes [][]byte
	for i := range uint64(300) {
		h := rfc6962.DefaultHasher.HashLeaf([]byte{byte(i), byte(i >> 8)})
		leafHashes = append(leafHashes, h)
		nodes = append(nodes, tree.Node{ID: compact.NewNodeID(0, i), Hash: h})
	}
	var subtreeRoot func(level uint, index uint64) []byte
	subtreeRoot = func(level uint, index uint64) []byte {
		if level == 0 {
			return leafHashes[index]
		}
		return rfc6962.DefaultHasher.HashChildren(subtreeRoot(level-1, 2*index), subtreeRoot(level-1, 2*index+1))
	}
	// Every perfect subtree's root, as the sequencer's compact range emits.
	for level := uint(1); level <= 8; level++ {
		for index := uint64(0); (index+1)<<level <= 300; index++ {
			nodes = append(nodes, tree.Node{ID: compact.NewNodeID(level, index), Hash: subtreeRoot(level, index)})
		}
	}
	want := []tree.Node{
		{ID: compact.NewNodeID(0, 0), Hash: leafHashes[0]},
		{ID: compact.NewNodeID(0, 255), Hash: leafHashes[255]},
		{ID: compact.NewNodeID(0, 256), Hash: leafHashes[256]},
		{ID: compact.NewNodeID(0, 299), Hash: leafHashes[299]},
		{ID: compact.NewNodeID(3, 5), Hash: subtreeRoot(3, 5)}, // recomputed inside a tile
		{ID: compact.NewNodeID(5, 8), Hash: subtreeRoot(5, 8)}, // in the second tile
		{ID: compact.NewNodeID(8, 0), Hash: subtreeRoot(8, 0)}, // a tile's root
	}
	var ids []compact.NodeID
	for _, n := range want {
		ids = append(ids, n.ID)
	}
	if err := ls.ReadWriteTransaction(t.Context(), tr, func(ctx context.Context, tx storage.LogTreeTX) error {
		return tx.SetMerkleNodes(ctx, nodes)
	}); err != nil {
		t.Fatal(err)
	}
	sortNodes := func(n []tree.Node) []tree.Node {
		n = slices.Clone(n)
		slices.SortFunc(n, func(a, b tree.Node) int {
			if a.ID.Level != b.ID.Level {
				return int(a.ID.Level) - int(b.ID.Level)
			}
			return int(a.ID.Index) - int(b.ID.Index)
		})
		return n
	}
	check := func(tx storage.ReadOnlyLogTreeTX) {
		got, err := tx.GetMerkleNodes(t.Context(), ids)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(sortNodes(want), sortNodes(got)); diff != "" {
			t.Errorf("nodes read back (-want +got):\n%s", diff)
		}
	}
	if err := ls.ReadWriteTransaction(t.Context(), tr, func(ctx context.Context, tx storage.LogTreeTX) error {
		check(tx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tx, err := ls.SnapshotForTree(t.Context(), tr)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	check(tx)
	if w, ok := tx.(storage.LogTreeTX); ok {
		if err := w.SetMerkleNodes(t.Context(), nodes); err == nil {
			t.Error("SetMerkleNodes in a snapshot succeeded")
		}
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
