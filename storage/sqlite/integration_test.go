package sqlite

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/client"
	"github.com/google/trillian/extension"
	"github.com/google/trillian/integration"
	"github.com/google/trillian/quota"
	stestonly "github.com/google/trillian/storage/testonly"
	tintegration "github.com/google/trillian/testonly/integration"
	"github.com/google/trillian/types"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	inmemory "github.com/transparency-dev/merkle/testonly"
)

// newLogEnv runs Trillian's log server, admin server and sequencer
// in-process on s, through Trillian's own test environment, and creates and
// initializes one LOG tree.
func newLogEnv(t *testing.T, s *Storage, interval time.Duration) (*tintegration.LogEnv, int64) {
	t.Helper()
	ctx := t.Context()
	old := tintegration.SequencerInterval
	tintegration.SequencerInterval = interval
	env, err := tintegration.NewLogEnvWithRegistry(ctx, 2, extension.Registry{
		AdminStorage: s.AdminStorage(),
		LogStorage:   s.LogStorage(),
		QuotaManager: quota.Noop(),
	})
	tintegration.SequencerInterval = old
	if err != nil {
		t.Fatalf("NewLogEnvWithRegistry: %v", err)
	}
	t.Cleanup(env.Close)
	tree, err := client.CreateAndInitTree(ctx, &trillian.CreateTreeRequest{Tree: stestonly.LogTree}, env.Admin, env.Log)
	if err != nil {
		t.Fatalf("CreateAndInitTree: %v", err)
	}
	return env, tree.TreeId
}

// TestLogIntegrationDefault runs Trillian's end-to-end log suite with its
// default parameters (1,000 leaves) against Trillian on this storage.
func TestLogIntegrationDefault(t *testing.T) {
	s := openTest(t, Config{})
	env, treeID := newLogEnv(t, s, 100*time.Millisecond)
	if err := integration.RunLogIntegration(env.Log, integration.DefaultTestParameters(treeID)); err != nil {
		t.Fatalf("RunLogIntegration: %v", err)
	}
}

// TestLogIntegrationLarge runs Trillian's end-to-end suite on 20,000 leaves,
// then checks consistency proofs between many pairs of sizes and inclusion
// proofs of many leaves against a tree built independently.
func TestLogIntegrationLarge(t *testing.T) {
	const leaves = 20000
	s := openTest(t, Config{})
	env, treeID := newLogEnv(t, s, 5*time.Millisecond)
	params := integration.DefaultTestParameters(treeID)
	params.LeafCount = leaves
	params.UniqueLeaves = leaves
	params.SequencingPollWait = 100 * time.Millisecond
	params.SequencingWaitTotal = 3 * time.Minute
	params.ReadBatchSize = 500
	start := time.Now()
	if err := integration.RunLogIntegration(env.Log, params); err != nil {
		t.Fatalf("RunLogIntegration: %v", err)
	}
	t.Logf("RunLogIntegration with %d leaves took %v", leaves, time.Since(start))
	checkProofs(t, env.Log, treeID, leaves, 300)
}

// checkProofs reads the whole log, rebuilds its tree in memory and verifies
// n random consistency proofs and n random inclusion proofs.
func checkProofs(t *testing.T, lc trillian.TrillianLogClient, treeID int64, size int64, n int) {
	t.Helper()
	ctx := t.Context()
	mt := inmemory.New(rfc6962.DefaultHasher)
	for i := int64(0); i < size; {
		resp, err := lc.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: treeID, StartIndex: i, Count: 1000})
		if err != nil {
			t.Fatalf("GetLeavesByRange(%d): %v", i, err)
		}
		if len(resp.Leaves) == 0 {
			t.Fatalf("GetLeavesByRange(%d): no leaves", i)
		}
		for _, l := range resp.Leaves {
			if l.LeafIndex != i {
				t.Fatalf("leaf index %d, want %d", l.LeafIndex, i)
			}
			mt.AppendData(l.LeafValue)
			i++
		}
	}
	root, err := lc.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: treeID})
	if err != nil {
		t.Fatal(err)
	}
	var lr types.LogRootV1
	if err := lr.UnmarshalBinary(root.SignedLogRoot.LogRoot); err != nil {
		t.Fatal(err)
	}
	if lr.TreeSize != uint64(size) || !bytes.Equal(lr.RootHash, mt.Hash()) {
		t.Fatalf("root = %d %x, want %d %x", lr.TreeSize, lr.RootHash, size, mt.Hash())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < n; k++ {
		b := 1 + rng.Int64N(size)
		a := 1 + rng.Int64N(b)
		resp, err := lc.GetConsistencyProof(ctx, &trillian.GetConsistencyProofRequest{LogId: treeID, FirstTreeSize: a, SecondTreeSize: b})
		if err != nil {
			t.Fatalf("GetConsistencyProof(%d, %d): %v", a, b, err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(a), uint64(b), resp.Proof.GetHashes(), mt.HashAt(uint64(a)), mt.HashAt(uint64(b))); err != nil {
			t.Fatalf("consistency %d -> %d: %v", a, b, err)
		}
		idx := rng.Int64N(b)
		ip, err := lc.GetInclusionProof(ctx, &trillian.GetInclusionProofRequest{LogId: treeID, LeafIndex: idx, TreeSize: b})
		if err != nil {
			t.Fatalf("GetInclusionProof(%d, %d): %v", idx, b, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(idx), uint64(b), mt.LeafHash(uint64(idx)), ip.Proof.GetHashes(), mt.HashAt(uint64(b))); err != nil {
			t.Fatalf("inclusion %d in %d: %v", idx, b, err)
		}
	}
	t.Logf("verified %d consistency and %d inclusion proofs", n, n)
}
