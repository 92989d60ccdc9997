package backend

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/extension"
	tlog "github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/server"
	"github.com/google/trillian/storage"
	"github.com/google/trillian/storage/mysql"
	"github.com/google/trillian/types"
	"github.com/google/trillian/util/clock"
	"github.com/transparency-dev/merkle/rfc6962"
	inmemory "github.com/transparency-dev/merkle/testonly"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/evidentlog/evident/internal/testdb"
)

// appendTree is a PREORDERED_LOG tree in a fresh MariaDB database with
// Trillian's schema, created and initialized by Trillian itself.
type appendTree struct {
	dsn  string
	db   *sql.DB
	tree *trillian.Tree
	ls   storage.LogStorage
	srv  *server.TrillianLogRPCServer
}

func newAppendTree(tb testing.TB) *appendTree {
	tb.Helper()
	ctx := tb.Context()
	dsn := testdb.MySQL(tb)
	if err := LoadMySQLSchema(ctx, dsn, testdb.TrillianSchema(tb)); err != nil {
		tb.Fatal(err)
	}
	db := openAppendDB(tb, dsn)
	as := mysql.NewAdminStorage(db)
	ls := mysql.NewLogStorage(db, nil)
	tree := createTree(tb, as, trillian.TreeType_PREORDERED_LOG)
	tlog.InitMetrics(nil) // once per process; IntegrateBatch needs it
	srv := server.NewTrillianLogRPCServer(extension.Registry{AdminStorage: as, LogStorage: ls, QuotaManager: quota.Noop()}, clock.System)
	if _, err := srv.InitLog(ctx, &trillian.InitLogRequest{LogId: tree.TreeId}); err != nil {
		tb.Fatalf("InitLog: %v", err)
	}
	return &appendTree{dsn: dsn, db: db, tree: tree, ls: ls, srv: srv}
}

func openAppendDB(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	db, err := mysql.OpenDB(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func createTree(tb testing.TB, as storage.AdminStorage, typ trillian.TreeType) *trillian.Tree {
	tb.Helper()
	tree, err := storage.CreateTree(tb.Context(), as, &trillian.Tree{
		TreeState:       trillian.TreeState_ACTIVE,
		TreeType:        typ,
		DisplayName:     "append test",
		MaxRootDuration: durationpb.New(0),
	})
	if err != nil {
		tb.Fatalf("creating a %s tree: %v", typ, err)
	}
	return tree
}

// integrate runs Trillian's sequencer (log.IntegrateBatch, preordered
// task) until it finds nothing more, and returns the tree's root.
func (a *appendTree) integrate(tb testing.TB) types.LogRootV1 {
	tb.Helper()
	for range 1000 {
		n, err := tlog.IntegrateBatch(tb.Context(), a.tree, 500, 0, 0, clock.System, a.ls, quota.Noop())
		if err != nil {
			tb.Fatalf("IntegrateBatch: %v", err)
		}
		if n == 0 {
			return a.root(tb)
		}
	}
	tb.Fatal("IntegrateBatch still finds leaves after 1000 rounds")
	return types.LogRootV1{}
}

func (a *appendTree) root(tb testing.TB) types.LogRootV1 {
	tb.Helper()
	r, err := a.srv.GetLatestSignedLogRoot(tb.Context(), &trillian.GetLatestSignedLogRootRequest{LogId: a.tree.TreeId})
	if err != nil {
		tb.Fatal(err)
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(r.SignedLogRoot.LogRoot); err != nil {
		tb.Fatal(err)
	}
	return root
}

// check integrates the tree and checks that it holds exactly want (leaf
// values by position): its size, its RFC 6962 root computed here, and the
// leaves GetLeavesByRange returns through Trillian's storage.
func (a *appendTree) check(t *testing.T, want [][]byte) {
	t.Helper()
	root := a.integrate(t)
	if root.TreeSize != uint64(len(want)) {
		t.Fatalf("tree size %d, want %d", root.TreeSize, len(want))
	}
	mt := inmemory.New(rfc6962.DefaultHasher)
	for _, v := range want {
		mt.AppendData(v)
	}
	if !bytes.Equal(root.RootHash, mt.Hash()) {
		t.Fatalf("root %x, want %x (RFC 6962 over the %d values)", root.RootHash, mt.Hash(), len(want))
	}
	for start := 0; start < len(want); {
		resp, err := a.srv.GetLeavesByRange(t.Context(), &trillian.GetLeavesByRangeRequest{LogId: a.tree.TreeId, StartIndex: int64(start), Count: int64(min(100, len(want)-start))})
		if err != nil {
			t.Fatalf("GetLeavesByRange(%d): %v", start, err)
		}
		if len(resp.Leaves) == 0 {
			t.Fatalf("GetLeavesByRange(%d): no leaves", start)
		}
		for _, l := range resp.Leaves {
			if l.LeafIndex != int64(start) || !bytes.Equal(l.LeafValue, want[start]) {
				t.Fatalf("leaf at %d: index %d, value %.20q..., want %.20q...", start, l.LeafIndex, l.LeafValue, want[start])
			}
			start++
		}
	}
}

// rows counts the rows of a table for the tree.
func (a *appendTree) rows(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := a.db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table+" WHERE TreeId = ?", a.tree.TreeId).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// testLeaf is a leaf as the personality builds it: the Merkle leaf hash of
// its value and an identity hash that differs from it.
func testLeaf(value, extra []byte) *trillian.LogLeaf {
	id := sha256.Sum256(append([]byte("identity:"), value...))
	return &trillian.LogLeaf{
		LeafValue:        value,
		ExtraData:        extra,
		MerkleLeafHash:   rfc6962.DefaultHasher.HashLeaf(value),
		LeafIdentityHash: id[:],
	}
}

func testLeaves(prefix string, n int) []*trillian.LogLeaf {
	ls := make([]*trillian.LogLeaf, n)
	for i := range ls {
		ls[i] = testLeaf(fmt.Appendf(nil, "%s %d", prefix, i), nil)
	}
	return ls
}

func values(ls []*trillian.LogLeaf) [][]byte {
	vs := make([][]byte, len(ls))
	for i, l := range ls {
		vs[i] = l.LeafValue
	}
	return vs
}

// checkNew checks that res gives the leaves new positions from start on,
// with the queue timestamp ts.
func checkNew(t *testing.T, res []*trillian.QueuedLogLeaf, leaves []*trillian.LogLeaf, start int64, ts time.Time) {
	t.Helper()
	if len(res) != len(leaves) {
		t.Fatalf("%d results for %d leaves", len(res), len(leaves))
	}
	for i, r := range res {
		if c := codes.Code(r.GetStatus().GetCode()); c != codes.OK {
			t.Fatalf("result %d: status %v, want OK", i, c)
		}
		l := r.GetLeaf()
		if l.LeafIndex != start+int64(i) || !bytes.Equal(l.LeafIdentityHash, leaves[i].LeafIdentityHash) || !bytes.Equal(l.MerkleLeafHash, leaves[i].MerkleLeafHash) {
			t.Fatalf("result %d: index %d, identity %x, want index %d, identity %x", i, l.LeafIndex, l.LeafIdentityHash, start+int64(i), leaves[i].LeafIdentityHash)
		}
		if !l.GetQueueTimestamp().AsTime().Equal(ts) {
			t.Fatalf("result %d: queue timestamp %v, want %v", i, l.GetQueueTimestamp().AsTime(), ts)
		}
	}
}

// TestAppendMySQLIntegrates appends batches before and after integrations
// and checks the tree Trillian's own sequencer builds from them.
func TestAppendMySQLIntegrates(t *testing.T) {
	a := newAppendTree(t)
	ctx := t.Context()
	var all []*trillian.LogLeaf
	for i, n := range []int{1, 300, 0, 700, 5} {
		leaves := testLeaves(fmt.Sprintf("batch %d", i), n)
		if n > 2 {
			leaves[1].ExtraData = []byte("tenant-b")
		}
		ts := time.Now()
		res, err := appendMySQL(ctx, a.db, a.tree.TreeId, leaves, ts)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		checkNew(t, res, leaves, int64(len(all)), ts)
		if n > 2 && leaves[1].LeafIndex != 0 {
			t.Fatalf("batch %d: appendMySQL changed the caller's leaf", i)
		}
		all = append(all, leaves...)
		if i%2 == 1 {
			a.check(t, values(all))
		}
	}
	a.check(t, values(all))
	// Extra data is stored with its leaf.
	resp, err := a.srv.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: a.tree.TreeId, StartIndex: 2, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(resp.Leaves[0].ExtraData); got != "tenant-b" {
		t.Errorf("extra data of leaf 2: %q, want %q", got, "tenant-b")
	}
}

// TestAppendMySQLDuplicates: a leaf whose identity the tree holds, or that
// an earlier leaf of the same call carries, is AlreadyExists with the
// first leaf's position; nothing is written twice and no position is
// skipped.
func TestAppendMySQLDuplicates(t *testing.T) {
	a := newAppendTree(t)
	ctx := t.Context()
	A, B, C, D := testLeaf([]byte("a"), nil), testLeaf([]byte("b"), []byte("x")), testLeaf([]byte("c"), nil), testLeaf([]byte("d"), nil)
	type want struct {
		leaf  *trillian.LogLeaf
		index int64
		dup   bool
	}
	steps := [][]want{
		{{A, 0, false}, {B, 1, false}, {A, 0, true}, {A, 0, true}},
		{{C, 2, false}, {B, 1, true}, {D, 3, false}, {C, 2, true}},
		{{D, 3, true}, {A, 0, true}},
	}
	for s, step := range steps {
		var leaves []*trillian.LogLeaf
		for _, w := range step {
			leaves = append(leaves, w.leaf)
		}
		res, err := appendMySQL(ctx, a.db, a.tree.TreeId, leaves, time.Now())
		if err != nil {
			t.Fatalf("step %d: %v", s, err)
		}
		for i, w := range step {
			got := res[i].GetLeaf()
			code := codes.Code(res[i].GetStatus().GetCode())
			if wantCode := map[bool]codes.Code{false: codes.OK, true: codes.AlreadyExists}[w.dup]; code != wantCode {
				t.Errorf("step %d leaf %d (%s): status %v, want %v", s, i, w.leaf.LeafValue, code, wantCode)
			}
			if got.LeafIndex != w.index || !bytes.Equal(got.LeafIdentityHash, w.leaf.LeafIdentityHash) ||
				!bytes.Equal(got.MerkleLeafHash, w.leaf.MerkleLeafHash) || !bytes.Equal(got.LeafValue, w.leaf.LeafValue) ||
				!bytes.Equal(got.ExtraData, w.leaf.ExtraData) {
				t.Errorf("step %d leaf %d (%s): got index %d value %q extra %q, want index %d value %q extra %q",
					s, i, w.leaf.LeafValue, got.LeafIndex, got.LeafValue, got.ExtraData, w.index, w.leaf.LeafValue, w.leaf.ExtraData)
			}
		}
	}
	if n, m := a.rows(t, "LeafData"), a.rows(t, "SequencedLeafData"); n != 4 || m != 4 {
		t.Errorf("%d LeafData and %d SequencedLeafData rows, want 4 and 4", n, m)
	}
	a.check(t, [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")})
}

// TestAppendMySQLConcurrent has goroutines on two connection pools append
// many small batches to one tree, every one also trying leaves all the
// others try, while Trillian's sequencer integrates: every leaf gets one
// position, the positions are 0..n-1, and the tree holds them in order.
func TestAppendMySQLConcurrent(t *testing.T) {
	const (
		goroutines = 4
		calls      = 20
	)
	a := newAppendTree(t)
	ctx := t.Context()
	dbs := []*sql.DB{a.db, openAppendDB(t, a.dsn)}
	shared := testLeaves("shared", calls)

	var (
		mu      sync.Mutex
		byIndex = map[int64][]byte{}   // position → value, of new leaves
		byValue = map[string][]int64{} // value → every position reported
	)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			db := dbs[g%len(dbs)]
			for c := range calls {
				leaves := append(testLeaves(fmt.Sprintf("g%d c%d", g, c), 1+(g+c)%5), shared[c])
				res, err := appendMySQL(ctx, db, a.tree.TreeId, leaves, time.Now())
				if err != nil {
					t.Errorf("goroutine %d call %d: %v", g, c, err)
					return
				}
				mu.Lock()
				for i, r := range res {
					l := r.GetLeaf()
					if !bytes.Equal(l.LeafIdentityHash, leaves[i].LeafIdentityHash) {
						t.Errorf("goroutine %d call %d result %d: identity %x, want %x", g, c, i, l.LeafIdentityHash, leaves[i].LeafIdentityHash)
					}
					byValue[string(leaves[i].LeafValue)] = append(byValue[string(leaves[i].LeafValue)], l.LeafIndex)
					if r.GetStatus().GetCode() == int32(codes.OK) {
						if prev, ok := byIndex[l.LeafIndex]; ok {
							t.Errorf("position %d given to %q and %q", l.LeafIndex, prev, leaves[i].LeafValue)
						}
						byIndex[l.LeafIndex] = leaves[i].LeafValue
					}
				}
				mu.Unlock()
			}
		})
	}
	// Trillian's sequencer runs while they append.
	stop := make(chan struct{})
	var seq sync.WaitGroup
	seq.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := tlog.IntegrateBatch(ctx, a.tree, 50, 0, 0, clock.System, a.ls, quota.Noop()); err != nil {
				t.Errorf("IntegrateBatch during appends: %v", err)
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	seq.Wait()
	if t.Failed() {
		return
	}

	want := make([][]byte, len(byIndex))
	for i := range want {
		v, ok := byIndex[int64(i)]
		if !ok {
			t.Fatalf("%d leaves were given positions, but none was given %d", len(byIndex), i)
		}
		want[i] = v
	}
	for v, idx := range byValue {
		for _, i := range idx {
			if i != idx[0] {
				t.Errorf("%q reported at positions %v", v, idx)
				break
			}
		}
	}
	if len(byValue) != len(byIndex) {
		t.Errorf("%d distinct leaves, %d positions", len(byValue), len(byIndex))
	}
	if n := a.rows(t, "SequencedLeafData"); n != len(want) {
		t.Errorf("%d SequencedLeafData rows, want %d", n, len(want))
	}
	a.check(t, want)
}

// TestAppendMySQLBadInput: bad leaves, a bad timestamp and the wrong tree
// are refused with a status error naming the tree, and nothing is written.
func TestAppendMySQLBadInput(t *testing.T) {
	a := newAppendTree(t)
	ctx := t.Context()
	good := testLeaf([]byte("good"), nil)
	short := testLeaf([]byte("short"), nil)
	short.MerkleLeafHash = short.MerkleLeafHash[:31]
	shortID := testLeaf([]byte("short id"), nil)
	shortID.LeafIdentityHash = shortID.LeafIdentityHash[:31]
	empty := testLeaf([]byte("empty"), nil)
	empty.LeafValue = nil
	huge := testLeaf(make([]byte, appendChunkBytes), []byte("x"))
	logTree := createTree(t, mysql.NewAdminStorage(a.db), trillian.TreeType_LOG)
	for _, tc := range []struct {
		name   string
		tree   int64
		leaves []*trillian.LogLeaf
		ts     time.Time
		code   codes.Code
	}{
		{"31-byte Merkle leaf hash", a.tree.TreeId, []*trillian.LogLeaf{good, short}, time.Now(), codes.InvalidArgument},
		{"31-byte identity hash", a.tree.TreeId, []*trillian.LogLeaf{good, shortID}, time.Now(), codes.InvalidArgument},
		{"nil leaf", a.tree.TreeId, []*trillian.LogLeaf{good, nil}, time.Now(), codes.InvalidArgument},
		{"empty value", a.tree.TreeId, []*trillian.LogLeaf{good, empty}, time.Now(), codes.InvalidArgument},
		{"leaf over the statement size", a.tree.TreeId, []*trillian.LogLeaf{good, huge}, time.Now(), codes.InvalidArgument},
		{"zero timestamp", a.tree.TreeId, []*trillian.LogLeaf{good}, time.Time{}, codes.InvalidArgument},
		{"LOG tree", logTree.TreeId, []*trillian.LogLeaf{good}, time.Now(), codes.FailedPrecondition},
		{"no such tree", a.tree.TreeId + 12345, []*trillian.LogLeaf{good}, time.Now(), codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := appendMySQL(ctx, a.db, tc.tree, tc.leaves, tc.ts)
			if status.Code(err) != tc.code || res != nil {
				t.Fatalf("appendMySQL: %d results, error %v; want code %v", len(res), err, tc.code)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tc.tree)) {
				t.Errorf("error %q does not name tree %d", err, tc.tree)
			}
		})
	}
	var n int
	if err := a.db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM LeafData) + (SELECT COUNT(*) FROM SequencedLeafData)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d leaf rows written by refused calls", n)
	}
}

// TestAppendMySQLLarge appends 300 entries of 60 KiB in one call (18 MiB,
// more than MariaDB's default max_allowed_packet of 16 MiB) and reads them
// back through Trillian.
func TestAppendMySQLLarge(t *testing.T) {
	a := newAppendTree(t)
	leaves := make([]*trillian.LogLeaf, 300)
	for i := range leaves {
		v := bytes.Repeat([]byte{byte(i)}, 60<<10)
		copy(v, fmt.Sprintf("large %d", i))
		leaves[i] = testLeaf(v, nil)
	}
	ts := time.Now()
	res, err := appendMySQL(t.Context(), a.db, a.tree.TreeId, leaves, ts)
	if err != nil {
		t.Fatal(err)
	}
	checkNew(t, res, leaves, 0, ts)
	a.check(t, values(leaves))
}

// TestAppendChunks: the INSERTs of a call cover every leaf once, in order,
// and none carries more than appendChunkBytes or appendMaxParams.
func TestAppendChunks(t *testing.T) {
	size := func(l *trillian.LogLeaf) int { return len(l.LeafValue) }
	for _, tc := range []struct {
		name           string
		n, bytes, cols int
	}{
		{"large", 300, 60 << 10, 5},
		{"small", 30000, 1, 5},
		{"exactly full", 6, appendChunkBytes / 3, 5},
		{"one per chunk", 3, appendChunkBytes, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaves := make([]*trillian.LogLeaf, tc.n)
			for i := range leaves {
				leaves[i] = &trillian.LogLeaf{LeafValue: make([]byte, tc.bytes)}
			}
			covered := 0
			for rest := leaves; len(rest) > 0; {
				n := chunkEnd(rest, tc.cols, size)
				total := 0
				for _, l := range rest[:n] {
					total += size(l)
				}
				if n == 0 || n*tc.cols > appendMaxParams || n > 1 && total > appendChunkBytes {
					t.Fatalf("chunk of %d rows, %d bytes", n, total)
				}
				covered += n
				rest = rest[n:]
			}
			if covered != tc.n {
				t.Fatalf("chunks cover %d leaves, want %d", covered, tc.n)
			}
		})
	}
}

// BenchmarkAppendMySQL appends batches of new 256-byte leaves to one tree
// and reports leaves per second (without integration).
func BenchmarkAppendMySQL(b *testing.B) {
	for _, batch := range []int{256, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			a := newAppendTree(b)
			ctx := b.Context()
			value := bytes.Repeat([]byte("v"), 256)
			n := 0
			next := func() []*trillian.LogLeaf {
				ls := make([]*trillian.LogLeaf, batch)
				for i := range ls {
					v := append([]byte(nil), value...)
					copy(v, fmt.Sprint(n))
					n++
					ls[i] = testLeaf(v, nil)
				}
				return ls
			}
			calls := 0
			for b.Loop() {
				b.StopTimer()
				leaves := next()
				b.StartTimer()
				if _, err := appendMySQL(ctx, a.db, a.tree.TreeId, leaves, time.Now()); err != nil {
					b.Fatal(err)
				}
				calls++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(calls*batch), "ns/leaf")
			b.ReportMetric(float64(calls*batch)/b.Elapsed().Seconds(), "leaves/s")
		})
	}
}
