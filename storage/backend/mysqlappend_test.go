package backend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	tlog "github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	tstorage "github.com/google/trillian/storage"
	"github.com/google/trillian/storage/mysql"
	stestonly "github.com/google/trillian/storage/testonly"
	"github.com/google/trillian/types"
	"github.com/google/trillian/util/clock"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// appendLeaf is leaf n of writer w, of size bytes.
func appendLeaf(w, n, size int) *trillian.LogLeaf {
	v := make([]byte, size)
	binary.BigEndian.PutUint64(v, uint64(w))
	binary.BigEndian.PutUint64(v[8:], uint64(n))
	h := rfc6962.DefaultHasher.HashLeaf(v)
	id := sha256.Sum256(v)
	return &trillian.LogLeaf{LeafValue: v, MerkleLeafHash: h, LeafIdentityHash: id[:], ExtraData: []byte(fmt.Sprint("w", w))}
}

// preorderedMySQLTree creates and initializes a PREORDERED_LOG tree in a
// fresh database with Trillian's schema.
func preorderedMySQLTree(t *testing.T) (string, *trillian.Tree) {
	t.Helper()
	dsn := mysqlWithSchema(t)
	db, err := mysql.OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tree, err := tstorage.CreateTree(t.Context(), mysql.NewAdminStorage(db), stestonly.PreorderedLogTree)
	if err != nil {
		t.Fatal(err)
	}
	root, err := (&types.LogRootV1{RootHash: rfc6962.DefaultHasher.EmptyRoot(), TimestampNanos: uint64(time.Now().UnixNano())}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := mysql.NewLogStorage(db, nil).ReadWriteTransaction(t.Context(), tree, func(ctx context.Context, tx tstorage.LogTreeTX) error {
		return tx.StoreSignedLogRoot(ctx, &trillian.SignedLogRoot{LogRoot: root})
	}); err != nil {
		t.Fatal(err)
	}
	return dsn, tree
}

// TestAppendMySQL appends from two processes' worth of connections at
// once, with duplicates within calls, across calls and across writers,
// and large entries that need several statements; then Trillian's own
// sequencer integrates the tree on Trillian's MySQL storage, and the
// root must be the one of the leaves at the positions they were given.
func TestAppendMySQL(t *testing.T) {
	dsn, tree := preorderedMySQLTree(t)
	const writers, calls, per = 4, 15, 20
	var mu sync.Mutex
	byIndex := map[int64][]byte{}
	firstIndex := map[string]int64{}
	type dup struct {
		id    string
		index int64
	}
	var dups []dup
	var wg sync.WaitGroup
	for w := range writers {
		db, err := mysql.OpenDB(dsn) // a pool of its own, as another process would have
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		wg.Go(func() {
			for c := range calls {
				var leaves []*trillian.LogLeaf
				for i := range per {
					size := 256
					if c == 3 && i < 10 {
						size = 60 << 10 // ten 60 KiB entries: more than one statement
					}
					// Writers 0 and 1 write the same leaves.
					leaves = append(leaves, appendLeaf(w/2, c*per+i, size))
				}
				leaves = append(leaves, leaves[0]) // repeats the call's first
				res, err := appendMySQL(t.Context(), db, tree.TreeId, leaves, time.Now())
				if err != nil {
					t.Errorf("appendMySQL: %v", err)
					return
				}
				mu.Lock()
				for i, r := range res {
					switch code := status.FromProto(r.Status).Code(); code {
					case codes.OK:
						if _, ok := byIndex[r.Leaf.LeafIndex]; ok {
							t.Errorf("position %d given twice", r.Leaf.LeafIndex)
						}
						byIndex[r.Leaf.LeafIndex] = leaves[i].LeafValue
						firstIndex[string(leaves[i].LeafIdentityHash)] = r.Leaf.LeafIndex
					case codes.AlreadyExists:
						dups = append(dups, dup{string(leaves[i].LeafIdentityHash), r.Leaf.LeafIndex})
					default:
						t.Errorf("leaf %d: status %v", i, r.Status)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	want := writers / 2 * calls * per
	if len(byIndex) != want {
		t.Fatalf("%d leaves got positions, want %d", len(byIndex), want)
	}
	if len(dups) != writers*calls*(per+1)-want {
		t.Errorf("%d duplicates, want %d", len(dups), writers*calls*(per+1)-want)
	}
	for _, d := range dups {
		if i, ok := firstIndex[d.id]; !ok || i != d.index {
			t.Errorf("duplicate answered with position %d, want %d", d.index, i)
		}
	}

	// Trillian's sequencer integrates everything: no gap stops it.
	db, err := mysql.OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ls := mysql.NewLogStorage(db, nil)
	tlog.InitMetrics(nil)
	for {
		n, err := tlog.IntegrateBatch(t.Context(), tree, 1000, 0, 0, clock.System, ls, quota.Noop())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	cr := rf.NewEmptyRange(0)
	for i := range int64(want) {
		v, ok := byIndex[i]
		if !ok {
			t.Fatalf("no leaf was given position %d", i)
		}
		if err := cr.Append(rfc6962.DefaultHasher.HashLeaf(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	wantRoot, _ := cr.GetRootHash(nil)
	tx, err := ls.SnapshotForTree(t.Context(), tree)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	slr, err := tx.LatestSignedLogRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(slr.LogRoot); err != nil {
		t.Fatal(err)
	}
	if root.TreeSize != uint64(want) || !bytes.Equal(root.RootHash, wantRoot) {
		t.Errorf("integrated to size %d root %x, want %d and %x", root.TreeSize, root.RootHash, want, wantRoot)
	}
	got, err := tx.GetLeavesByRange(t.Context(), 0, int64(want))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range got {
		if !bytes.Equal(l.LeafValue, byIndex[l.LeafIndex]) {
			t.Errorf("leaf %d holds another value", l.LeafIndex)
		}
	}
}

// TestAppendMySQLBadInput: a bad hash fails the whole call, and nothing of
// it is written.
func TestAppendMySQLBadInput(t *testing.T) {
	dsn, tree := preorderedMySQLTree(t)
	db, err := mysql.OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bad := appendLeaf(1, 1, 16)
	bad.LeafIdentityHash = bad.LeafIdentityHash[:31]
	if _, err := appendMySQL(t.Context(), db, tree.TreeId, []*trillian.LogLeaf{appendLeaf(1, 0, 16), bad}, time.Now()); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a 31-byte identity hash: %v, want InvalidArgument", err)
	}
	if _, err := appendMySQL(t.Context(), db, tree.TreeId+1, []*trillian.LogLeaf{appendLeaf(1, 0, 16)}, time.Now()); err == nil {
		t.Errorf("appending to a tree that does not exist succeeded")
	}
	res, err := appendMySQL(t.Context(), db, tree.TreeId, []*trillian.LogLeaf{appendLeaf(1, 0, 16)}, time.Now())
	if err != nil || res[0].Status != nil || res[0].Leaf.LeafIndex != 0 {
		t.Errorf("the first good append: %v, %v; want position 0 (nothing was written before)", res, err)
	}
}
