package backend

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/storage"
)

// mysqlWithSchema returns the DSN of a fresh MariaDB database holding
// Trillian's schema, read from the Trillian module in the module cache.
func mysqlWithSchema(t *testing.T) string {
	t.Helper()
	dsn := testdb.MySQL(t)
	if err := LoadMySQLSchema(t.Context(), dsn, testdb.TrillianSchema(t)); err != nil {
		t.Fatal(err)
	}
	return dsn
}

func openState(t *testing.T, path string) *storage.DB {
	t.Helper()
	db, err := storage.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// exercise queues two leaves (one twice) and checks that the sequencer
// integrates them and that proofs and errors come back as from gRPC.
// Trillian's memory storage does not detect duplicates; dedup says whether
// the storage under b does.
func exercise(t *testing.T, b *Backend, dedup bool) {
	ctx := t.Context()
	for _, v := range []string{"alpha", "beta", "alpha"} {
		if _, err := b.Log.QueueLeaf(ctx, &trillian.QueueLeafRequest{LogId: b.TreeID, Leaf: &trillian.LogLeaf{LeafValue: []byte(v)}}); err != nil {
			t.Fatalf("QueueLeaf(%s): %v", v, err)
		}
	}
	size := waitForSize(t, b, 2)
	if !dedup {
		size = waitForSize(t, b, 3) - 1
	}
	if size != 2 {
		t.Fatalf("tree size = %d, want 2 (the duplicate is not added)", size)
	}
	got, err := b.Log.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: b.TreeID, StartIndex: 0, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, l := range got.Leaves {
		vals = append(vals, string(l.LeafValue))
	}
	if len(vals) != 2 || vals[0] == vals[1] || vals[0] != "alpha" && vals[0] != "beta" {
		t.Errorf("leaves = %q, want alpha and beta", vals)
	}
	// In-process, the sequencer keeps the values it integrated (read by
	// a pre-ordered tree's integration, remembered for a LOG tree's).
	if b.Leaves != nil {
		deadline := time.Now().Add(10 * time.Second)
		for {
			kept, ok := b.Leaves(0, 2)
			if ok && len(kept) == 2 && string(kept[0].LeafValue) == vals[0] && string(kept[1].LeafValue) == vals[1] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Leaves(0, 2) = %v, %v; want the values %q", kept, ok, vals)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// In-process, Root is the root Trillian stored, as its API gives it
	// (once the sequencer has taken note of it, just after its commit).
	if b.Root != nil {
		r, err := b.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: b.TreeID})
		if err != nil {
			t.Fatal(err)
		}
		var stored types.LogRootV1
		if err := stored.UnmarshalBinary(r.SignedLogRoot.LogRoot); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			size, hash, ok := b.Root()
			if ok && size == stored.TreeSize && bytes.Equal(hash[:], stored.RootHash) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Root() = %d, %x, %v; Trillian's latest root is %d, %x", size, hash, ok, stored.TreeSize, stored.RootHash)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	_, err = b.Log.GetInclusionProofByHash(ctx, &trillian.GetInclusionProofByHashRequest{LogId: b.TreeID, LeafHash: make([]byte, 32), TreeSize: 2})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetInclusionProofByHash(unknown): %v, want code NotFound", err)
	}
	_, err = b.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: b.TreeID + 1})
	if status.Code(err) == codes.OK || status.Code(err) == codes.Unknown && !strings.Contains(err.Error(), "tree") {
		t.Errorf("GetLatestSignedLogRoot(unknown tree): %v, want a gRPC status", err)
	}
}

func waitForSize(t *testing.T, b *Backend, want uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := b.Log.GetLatestSignedLogRoot(t.Context(), &trillian.GetLatestSignedLogRootRequest{LogId: b.TreeID})
		if err != nil {
			t.Fatal(err)
		}
		var root types.LogRootV1
		if err := root.UnmarshalBinary(r.SignedLogRoot.LogRoot); err != nil {
			t.Fatal(err)
		}
		if root.TreeSize >= want || time.Now().After(deadline) {
			return root.TreeSize
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSQLite(t *testing.T) {
	dir := t.TempDir()
	state := openState(t, filepath.Join(dir, "state.db"))
	cfg := Config{SQLitePath: filepath.Join(dir, "trillian.db"), State: state}
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, b, true)
	checkRestart(t, b, cfg)
}

func TestMemory(t *testing.T) {
	state := openState(t, filepath.Join(t.TempDir(), "state.db"))
	b, err := New(t.Context(), Config{memory: true, State: state})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exercise(t, b, false)
}

func TestMySQL(t *testing.T) {
	dsn := mysqlWithSchema(t)
	state, err := storage.OpenMySQL(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	cfg := Config{MySQLDSN: dsn, State: state}
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, b, true)
	checkRestart(t, b, cfg)
}

// checkRestart closes b (which holds two leaves) and opens cfg again: the
// restarted backend must find the same tree, with its leaves, and be healthy.
func checkRestart(t *testing.T, b *Backend, cfg Config) {
	t.Helper()
	tree := b.TreeID
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.TreeID != tree {
		t.Errorf("after restart: tree %d, want %d", b.TreeID, tree)
	}
	if size := waitForSize(t, b, 2); size != 2 {
		t.Errorf("after restart: size %d, want 2", size)
	}
	if err := b.Healthy(t.Context()); err != nil {
		t.Errorf("after restart: Healthy: %v", err)
	}
}

func TestMySQLWithoutSchema(t *testing.T) {
	dsn := testdb.MySQL(t)
	state := openState(t, filepath.Join(t.TempDir(), "state.db"))
	_, err := New(t.Context(), Config{MySQLDSN: dsn, State: state})
	if err == nil || !strings.Contains(err.Error(), ErrNoTrillianSchema.Error()) {
		t.Errorf("New on a database without Trillian's schema: %v, want ErrNoTrillianSchema", err)
	}
	if n, err := MySQLTrees(t.Context(), dsn); !errors.Is(err, ErrNoTrillianSchema) {
		t.Errorf("MySQLTrees on a database without Trillian's schema: %d, %v; want ErrNoTrillianSchema", n, err)
	}
}

// TestMySQLTrees counts the trees of a database: none once the schema is
// loaded, one once a log has created its tree.
func TestMySQLTrees(t *testing.T) {
	dsn := mysqlWithSchema(t)
	if n, err := MySQLTrees(t.Context(), dsn); err != nil || n != 0 {
		t.Fatalf("MySQLTrees of a new database: %d, %v; want 0", n, err)
	}
	state, err := storage.OpenMySQL(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	b, err := New(t.Context(), Config{MySQLDSN: dsn, State: state, NoSequencer: true})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if n, err := MySQLTrees(t.Context(), dsn); err != nil || n != 1 {
		t.Errorf("MySQLTrees after a log created its tree: %d, %v; want 1", n, err)
	}
}

// TestRemote serves an in-process Trillian over gRPC on loopback and opens
// it as a remote one.
func TestRemote(t *testing.T) {
	state := openState(t, filepath.Join(t.TempDir(), "state.db"))
	// Leaves queued over gRPC bypass the in-process client, so the local
	// sequencer finds them only by polling.
	local, err := New(t.Context(), Config{memory: true, State: state, SequencerInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	srv := grpc.NewServer()
	trillian.RegisterTrillianLogServer(srv, local.Log.(logClient).s)
	trillian.RegisterTrillianAdminServer(srv, local.Admin.(adminClient).s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	if _, err := New(t.Context(), Config{Addr: lis.Addr().String()}); err == nil {
		t.Error("New(remote) without a tree ID succeeded")
	}
	if _, err := New(t.Context(), Config{Addr: lis.Addr().String(), TreeID: local.TreeID + 1}); err == nil {
		t.Error("New(remote) with an unknown tree ID succeeded")
	}
	b, err := New(t.Context(), Config{Addr: lis.Addr().String(), TreeID: local.TreeID})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exercise(t, b, false)
	if err := b.Healthy(t.Context()); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	state := openState(t, filepath.Join(t.TempDir(), "state.db"))
	for _, cfg := range []Config{
		{},
		{SQLitePath: "x", MySQLDSN: "y", State: state},
		{memory: true},
	} {
		if b, err := New(context.Background(), cfg); err == nil {
			b.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// TestPreorderedTreeNeedsAppends: a Trillian that only queues (here the
// memory storage; remotely, any) refuses a PREORDERED_LOG tree, which only
// the storage that appends to it can write, and says so.
func TestPreorderedTreeNeedsAppends(t *testing.T) {
	state := openState(t, filepath.Join(t.TempDir(), "state.db"))
	b, err := New(t.Context(), Config{memory: true, State: state})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.checkTree(t.Context()); err != nil {
		t.Fatalf("the memory storage's own LOG tree: %v", err)
	}
	tree, err := b.Admin.CreateTree(t.Context(), &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeState: trillian.TreeState_ACTIVE, TreeType: trillian.TreeType_PREORDERED_LOG, MaxRootDuration: durationpb.New(0)}})
	if err != nil {
		t.Fatal(err)
	}
	b.TreeID = tree.TreeId
	if err := b.checkTree(t.Context()); err == nil || !strings.Contains(err.Error(), "PREORDERED_LOG") {
		t.Errorf("checkTree of a PREORDERED_LOG tree without appends: %v, want a refusal naming the type", err)
	}
}
