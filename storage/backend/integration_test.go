package backend

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/integration"
	tstorage "github.com/google/trillian/storage"
	stestonly "github.com/google/trillian/storage/testonly"
	"github.com/google/trillian/types"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	inmemory "github.com/transparency-dev/merkle/testonly"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/storage/sqlite"
)

// runLogIntegration runs Trillian's end-to-end log suite (1,000 leaves,
// proofs, duplicates) against b.Log: the path evident-server runs, with
// direct calls, the tree cache and request cloning.
func runLogIntegration(t *testing.T, b *Backend) {
	t.Helper()
	params := integration.DefaultTestParameters(b.TreeID)
	params.SequencingPollWait = 100 * time.Millisecond // the default 5 s only slows the test
	if err := integration.RunLogIntegration(b.Log, params); err != nil {
		t.Fatalf("RunLogIntegration: %v", err)
	}
}

func TestLogIntegrationSQLite(t *testing.T) {
	dir := t.TempDir()
	b, err := New(t.Context(), Config{SQLitePath: filepath.Join(dir, "trillian.db"), State: openState(t, filepath.Join(dir, "state.db"))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	runLogIntegration(t, b)
}

func TestLogIntegrationMySQL(t *testing.T) {
	dsn := mysqlWithSchema(t)
	state, err := storage.OpenMySQL(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	b, err := New(t.Context(), Config{MySQLDSN: dsn, State: state})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	runLogIntegration(t, b)
}

// TestConcurrentQueueAndProve has 32 goroutines queue leaves through
// b.Log while the sequencer runs and readers ask for roots and proofs; pairs
// of goroutines send the very same request objects at once, so that -race
// sees it if the server's edits to a request reached the caller. At the
// end every distinct leaf is in the tree once, the root is the one of an
// independently built tree, and inclusion proofs verify.
func TestConcurrentQueueAndProve(t *testing.T) {
	const (
		goroutines = 32
		perG       = 25
	)
	dir := t.TempDir()
	b, err := New(t.Context(), Config{
		SQLitePath:        filepath.Join(dir, "trillian.db"),
		State:             openState(t, filepath.Join(dir, "state.db")),
		SequencerInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	// Goroutines g and g+goroutines/2 share their requests.
	reqs := make([][]*trillian.QueueLeafRequest, goroutines/2)
	for g := range reqs {
		for i := range perG {
			reqs[g] = append(reqs[g], &trillian.QueueLeafRequest{LogId: b.TreeID, Leaf: &trillian.LogLeaf{
				LeafValue: fmt.Appendf(nil, "leaf %d/%d", g, i),
			}})
		}
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := b.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: b.TreeID})
				if err != nil {
					t.Errorf("reader: GetLatestSignedLogRoot: %v", err)
					return
				}
				var root types.LogRootV1
				if err := root.UnmarshalBinary(r.SignedLogRoot.LogRoot); err != nil {
					t.Errorf("reader: %v", err)
					return
				}
				if root.TreeSize == 0 {
					continue
				}
				leaf := rfc6962.DefaultHasher.HashLeaf([]byte("leaf 0/0"))
				_, err = b.Log.GetInclusionProofByHash(ctx, &trillian.GetInclusionProofByHashRequest{LogId: b.TreeID, LeafHash: leaf, TreeSize: int64(root.TreeSize)})
				if err != nil && status.Code(err) != codes.NotFound {
					t.Errorf("reader: GetInclusionProofByHash: %v", err)
					return
				}
			}
		})
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for _, req := range reqs[g%(goroutines/2)] {
				if _, err := b.Log.QueueLeaf(ctx, req); err != nil {
					t.Errorf("goroutine %d: QueueLeaf: %v", g, err)
					return
				}
				if req.Leaf.MerkleLeafHash != nil {
					t.Errorf("goroutine %d: the server's edit of the request reached the caller", g)
					return
				}
			}
		})
	}
	wg.Wait()
	want := uint64(goroutines / 2 * perG)
	size := waitForSize(t, b, want)
	close(stop)
	readers.Wait()
	if size != want {
		t.Fatalf("tree size %d, want %d", size, want)
	}

	mt := inmemory.New(rfc6962.DefaultHasher)
	seen := make(map[string]bool)
	for start := int64(0); start < int64(want); {
		resp, err := b.Log.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: b.TreeID, StartIndex: start, Count: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range resp.Leaves {
			if l.LeafIndex != start {
				t.Fatalf("leaf index %d, want %d", l.LeafIndex, start)
			}
			if seen[string(l.LeafValue)] {
				t.Errorf("leaf %q is in the tree twice", l.LeafValue)
			}
			seen[string(l.LeafValue)] = true
			mt.AppendData(l.LeafValue)
			start++
		}
	}
	if len(seen) != int(want) {
		t.Errorf("%d distinct leaves, want %d", len(seen), want)
	}
	r, err := b.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: b.TreeID})
	if err != nil {
		t.Fatal(err)
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(r.SignedLogRoot.LogRoot); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root.RootHash, mt.Hash()) {
		t.Fatalf("root %x, want %x", root.RootHash, mt.Hash())
	}
	for _, idx := range []uint64{0, want / 3, want - 1} {
		ip, err := b.Log.GetInclusionProof(ctx, &trillian.GetInclusionProofRequest{LogId: b.TreeID, LeafIndex: int64(idx), TreeSize: int64(want)})
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, want, mt.LeafHash(idx), ip.Proof.GetHashes(), root.RootHash); err != nil {
			t.Errorf("inclusion of %d: %v", idx, err)
		}
	}
}

// TestSQLiteIntegrityCheck damages the index pages of the leaves of a
// closed SQLite file (Open reads the leaf table itself, for the leaves not
// yet in the identity index's table):
// New refuses it, and with SkipIntegrityCheck opens it, and queueing then
// fails with sqlite.ErrCorrupt (gRPC DataLoss).
func TestSQLiteIntegrityCheck(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SQLitePath: filepath.Join(dir, "trillian.db"), State: openState(t, filepath.Join(dir, "state.db"))}
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, b, true)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	testdb.DamageSQLiteIndexes(t, cfg.SQLitePath, "leaf_data")
	if b, err := New(t.Context(), cfg); !errors.Is(err, sqlite.ErrCorrupt) {
		if err == nil {
			b.Close()
		}
		t.Fatalf("New on a damaged file: %v, want sqlite.ErrCorrupt", err)
	}
	cfg.SkipIntegrityCheck = true
	b, err = New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New with SkipIntegrityCheck: %v", err)
	}
	defer b.Close()
	_, err = b.Log.QueueLeaf(t.Context(), &trillian.QueueLeafRequest{LogId: b.TreeID, Leaf: &trillian.LogLeaf{LeafValue: []byte("gamma")}})
	if status.Code(err) != codes.DataLoss {
		t.Errorf("QueueLeaf on a damaged file: %v, want code DataLoss", err)
	}
}

// treeType returns the type of b's tree.
func treeType(t *testing.T, b *Backend) trillian.TreeType {
	t.Helper()
	tree, err := b.Admin.GetTree(t.Context(), &trillian.GetTreeRequest{TreeId: b.TreeID})
	if err != nil {
		t.Fatal(err)
	}
	return tree.TreeType
}

// TestSQLiteTreeTypes: a new SQLite log gets a PREORDERED_LOG tree that
// the backend appends to, while a LOG tree (what earlier versions created)
// keeps being written through Trillian's queue and sequencer. Both pass
// Trillian's end-to-end log suite and keep their tree across a restart.
func TestSQLiteTreeTypes(t *testing.T) {
	t.Run("new", func(t *testing.T) {
		dir := t.TempDir()
		b, err := New(t.Context(), Config{SQLitePath: filepath.Join(dir, "trillian.db"), State: openState(t, filepath.Join(dir, "state.db"))})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if got := treeType(t, b); got != trillian.TreeType_PREORDERED_LOG {
			t.Fatalf("a new SQLite log's tree is a %v", got)
		}
		runLogIntegration(t, b)
	})
	t.Run("old", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "trillian.db")
		st, err := sqlite.Open(t.Context(), path, sqlite.Config{})
		if err != nil {
			t.Fatal(err)
		}
		tree, err := tstorage.CreateTree(t.Context(), st.AdminStorage(), stestonly.LogTree)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		state := openState(t, filepath.Join(dir, "state.db"))
		if _, err := state.SetSettingOnce(t.Context(), TreeIDSetting, []byte(fmt.Sprint(tree.TreeId))); err != nil {
			t.Fatal(err)
		}
		b, err := New(t.Context(), Config{SQLitePath: path, State: state})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.Log.InitLog(t.Context(), &trillian.InitLogRequest{LogId: b.TreeID}); err != nil {
			t.Fatal(err)
		}
		if got := treeType(t, b); got != trillian.TreeType_LOG {
			t.Fatalf("the old log's tree became a %v", got)
		}
		runLogIntegration(t, b)
	})
}

// TestSQLiteAppendsIntegrated: on the embedded storage, an append returns
// with its leaves already integrated (the group commit that stored them
// ran Trillian's integration too): Root covers them at once, and their
// values are kept for the publisher, from concurrent writers.
func TestSQLiteAppendsIntegrated(t *testing.T) {
	dir := t.TempDir()
	b, err := New(t.Context(), Config{SQLitePath: filepath.Join(dir, "trillian.db"), State: openState(t, filepath.Join(dir, "state.db"))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for c := range 25 {
				leaves := []*trillian.LogLeaf{{LeafValue: fmt.Appendf(nil, "w%d c%d a", w, c)}, {LeafValue: fmt.Appendf(nil, "w%d c%d b", w, c)}}
				res, err := b.QueueBatch(t.Context(), leaves)
				if err != nil {
					t.Errorf("QueueBatch: %v", err)
					return
				}
				size, _, ok := b.Root()
				for i, r := range res {
					idx := uint64(r.Leaf.LeafIndex)
					if !ok || idx >= size {
						t.Errorf("leaf %d returned before integration (Root size %d, %v)", idx, size, ok)
						return
					}
					got, ok := b.Leaves(idx, idx+1)
					if !ok || !bytes.Equal(got[0].LeafValue, leaves[i].LeafValue) {
						t.Errorf("Leaves(%d) = %v, %v; want the value just appended", idx, got, ok)
					}
				}
			}
		})
	}
	wg.Wait()
	if size := waitForSize(t, b, 200); size != 200 {
		t.Errorf("tree size %d, want 200", size)
	}
}

// TestSQLiteAppendIntegratedBeyondBatch: a group commit that appends more
// leaves than one sequencer batch integrates them all, in batches, in the
// same transaction.
func TestSQLiteAppendIntegratedBeyondBatch(t *testing.T) {
	dir := t.TempDir()
	b, err := New(t.Context(), Config{SQLitePath: filepath.Join(dir, "trillian.db"), State: openState(t, filepath.Join(dir, "state.db")), BatchSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var leaves []*trillian.LogLeaf
	for i := range 17 {
		leaves = append(leaves, &trillian.LogLeaf{LeafValue: fmt.Appendf(nil, "leaf %d", i)})
	}
	if _, err := b.QueueBatch(t.Context(), leaves); err != nil {
		t.Fatal(err)
	}
	if size, _, ok := b.Root(); !ok || size != 17 {
		t.Errorf("Root() size %d (%v) once 17 leaves were appended in batches of 5, want 17", size, ok)
	}
	got, ok := b.Leaves(0, 17)
	if !ok || len(got) != 17 || string(got[16].LeafValue) != "leaf 16" {
		t.Errorf("Leaves(0, 17): %d leaves, %v", len(got), ok)
	}
	// Beyond batchesInCommit batches, the sequencer's loop takes the rest.
	leaves = leaves[:0]
	for i := range 5*batchesInCommit + 3 {
		leaves = append(leaves, &trillian.LogLeaf{LeafValue: fmt.Appendf(nil, "more %d", i)})
	}
	if _, err := b.QueueBatch(t.Context(), leaves); err != nil {
		t.Fatal(err)
	}
	if size := waitForSize(t, b, uint64(17+len(leaves))); size != uint64(17+len(leaves)) {
		t.Errorf("tree size %d, want %d", size, 17+len(leaves))
	}
}
