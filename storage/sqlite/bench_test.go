package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
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
	"github.com/google/trillian/types"
	"github.com/google/trillian/util/clock"
	"github.com/transparency-dev/merkle/rfc6962"
)

// leafSize is the size of the leaf values the benchmarks write.
const leafSize = 256

// newLeaf returns a distinct 256-byte leaf for n, with its hashes set as
// Trillian's log server sets them when the personality gives no identity
// hash: the identity hash is the Merkle leaf hash.
func newLeaf(seed uint64, n uint64) *trillian.LogLeaf {
	v := make([]byte, leafSize)
	binary.BigEndian.PutUint64(v, seed)
	binary.BigEndian.PutUint64(v[8:], n)
	h := rfc6962.DefaultHasher.HashLeaf(v)
	return &trillian.LogLeaf{LeafValue: v, LeafIdentityHash: h, MerkleLeafHash: h}
}

// newLeafWithIdentity is newLeaf with an identity hash of its own
// (SHA-256 of the value), as a personality may set.
func newLeafWithIdentity(seed uint64, n uint64) *trillian.LogLeaf {
	l := newLeaf(seed, n)
	id := sha256.Sum256(l.LeafValue)
	l.LeafIdentityHash = id[:]
	return l
}

// newInitializedTree creates a LOG tree and stores its empty root, as
// Trillian's InitLog does.
func newInitializedTree(tb testing.TB, s *Storage) *trillian.Tree {
	tb.Helper()
	return initializedTree(tb, s, stestonly.LogTree)
}

// initializedTree creates a tree like proto and stores its empty root.
func initializedTree(tb testing.TB, s *Storage, proto *trillian.Tree) *trillian.Tree {
	tb.Helper()
	ctx := context.Background()
	tree, err := storage.CreateTree(ctx, s.AdminStorage(), proto)
	if err != nil {
		tb.Fatalf("CreateTree: %v", err)
	}
	lr, err := (&types.LogRootV1{RootHash: rfc6962.DefaultHasher.EmptyRoot(), TimestampNanos: uint64(time.Now().UnixNano())}).MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.LogStorage().ReadWriteTransaction(ctx, tree, func(ctx context.Context, tx storage.LogTreeTX) error {
		return tx.StoreSignedLogRoot(ctx, &trillian.SignedLogRoot{LogRoot: lr})
	}); err != nil {
		tb.Fatalf("storing the empty root: %v", err)
	}
	return tree
}

// BenchmarkQueueLeaves measures durable QueueLeaves throughput, one 256-byte
// leaf per call, with 1, 16 and 256 concurrent callers, and the latency of a
// call (p50, p99). Every call returns only after its leaf is fsynced;
// concurrent calls share group commits.
func BenchmarkQueueLeaves(b *testing.B) {
	for _, callers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s := openTest(b, Config{})
			tree := newInitializedTree(b, s)
			ls := s.LogStorage()
			var next atomic.Uint64
			var wg sync.WaitGroup
			latencies := make([][]time.Duration, callers)
			b.ResetTimer()
			for c := 0; c < callers; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := next.Add(1)
						if n > uint64(b.N) {
							return
						}
						leaf := newLeaf(1, n)
						start := time.Now()
						if _, err := ls.QueueLeaves(context.Background(), tree, []*trillian.LogLeaf{leaf}, start); err != nil {
							b.Error(err)
							return
						}
						latencies[c] = append(latencies[c], time.Since(start))
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
			all := slices.Concat(latencies...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkIntegrate measures how fast Trillian's sequencer integrates
// queued 256-byte leaves into the tree on this storage, with batch sizes of
// 1,000 and 10,000 leaves per sequencer run (one transaction each).
func BenchmarkIntegrate(b *testing.B) {
	log.InitMetrics(nil)
	for _, batch := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openTest(b, Config{})
			tree := newInitializedTree(b, s)
			ls := s.LogStorage()
			ctx := context.Background()
			// Queue b.N leaves (not timed), in calls of 1,000 leaves.
			for i := 0; i < b.N; i += 1000 {
				leaves := make([]*trillian.LogLeaf, 0, 1000)
				for j := i; j < min(i+1000, b.N); j++ {
					leaves = append(leaves, newLeaf(2, uint64(j)))
				}
				if _, err := ls.QueueLeaves(ctx, tree, leaves, time.Now().Add(-time.Second)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			done := 0
			for done < b.N {
				n, err := log.IntegrateBatch(ctx, tree, batch, 0, 0, clock.System, ls, quota.Noop())
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					b.Fatalf("integrated %d of %d leaves, then nothing", done, b.N)
				}
				done += n
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
		})
	}
}

// BenchmarkQueueWhileIntegrating has 256 callers queue 256-byte leaves, one
// per call, while Trillian's sequencer integrates them with a batch size of
// 1,000 or 10,000 every 50 ms (as log.OperationManager with RunInterval 50
// ms would; a run that integrates a full batch is followed at once by the
// next). It reports the queueing rate ("queued/s": until the last
// QueueLeaves returned) and the end-to-end rate ("leaves/s": until the last
// leaf was integrated).
func BenchmarkQueueWhileIntegrating(b *testing.B) {
	log.InitMetrics(nil)
	for _, batch := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("callers=256/batch=%d", batch), func(b *testing.B) {
			s := openTest(b, Config{})
			tree := newInitializedTree(b, s)
			ls := s.LogStorage()
			ctx := context.Background()
			var next atomic.Uint64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 256 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := next.Add(1)
						if n > uint64(b.N) {
							return
						}
						if _, err := ls.QueueLeaves(ctx, tree, []*trillian.LogLeaf{newLeaf(3, n)}, time.Now()); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			queued := make(chan time.Duration)
			go func() { wg.Wait(); queued <- time.Since(start) }()
			var queueTime time.Duration
			done := 0
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for done < b.N {
				n, err := log.IntegrateBatch(ctx, tree, batch, 0, 0, clock.System, ls, quota.Noop())
				if err != nil {
					b.Fatal(err)
				}
				done += n
				select {
				case queueTime = <-queued:
				default:
				}
				if n < batch {
					<-tick.C
				}
			}
			if queueTime == 0 {
				queueTime = <-queued
			}
			b.ReportMetric(float64(b.N)/queueTime.Seconds(), "queued/s")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
		})
	}
}

// BenchmarkOpenIntegrityCheck measures Open with Config.CheckIntegrity
// (SQLite's PRAGMA quick_check, which reads the whole file) on files of
// 100,000 and 1,000,000 integrated 256-byte leaves, and without it. The
// files are built once per run (not timed), in EVIDENT_BENCH_DIR when that
// is set so that later runs reuse them (for example to time a cold page
// cache after `dd if=FILE iflag=nocache count=0`).
func BenchmarkOpenIntegrityCheck(b *testing.B) {
	log.InitMetrics(nil)
	dir := os.Getenv("EVIDENT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	for _, leaves := range []int{100_000, 1_000_000} {
		path := filepath.Join(dir, fmt.Sprintf("leaves-%d.db", leaves))
		if _, err := os.Stat(path); err != nil {
			buildStore(b, path, leaves)
		}
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		for _, check := range []bool{true, false} {
			b.Run(fmt.Sprintf("leaves=%d/check=%v", leaves, check), func(b *testing.B) {
				for b.Loop() {
					s, err := Open(context.Background(), path, Config{CheckIntegrity: check})
					if err != nil {
						b.Fatal(err)
					}
					if err := s.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(fi.Size())/1e6, "file-MB")
			})
		}
	}
}

// buildStore writes a storage file at path holding one tree of n
// integrated 256-byte leaves.
func buildStore(b *testing.B, path string, n int) {
	ctx := context.Background()
	s, err := Open(ctx, path, Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tree := newInitializedTree(b, s)
	ls := s.LogStorage()
	for i := 0; i < n; i += 1000 {
		leaves := make([]*trillian.LogLeaf, 0, 1000)
		for j := i; j < min(i+1000, n); j++ {
			leaves = append(leaves, newLeaf(4, uint64(j)))
		}
		if _, err := ls.QueueLeaves(ctx, tree, leaves, time.Now().Add(-time.Second)); err != nil {
			b.Fatal(err)
		}
		for {
			k, err := log.IntegrateBatch(ctx, tree, 10000, 0, 0, clock.System, ls, quota.Noop())
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
		}
	}
}

// BenchmarkAppendIntegrate measures the writer's cost of a durable append
// of 50 and 500 256-byte leaves to a pre-ordered tree plus their
// integration by Trillian's sequencer, one call after the other (the
// server's writer under load does the same, 50 being its group commit at
// 256 waiting submitters): "separate" integrates in a transaction of its
// own after the append's, "in-commit" in the append's (SetIntegrator).
// It reports µs per leaf of both together.
func BenchmarkAppendIntegrate(b *testing.B) {
	log.InitMetrics(nil)
	for _, per := range []int{50, 500} {
		for _, inCommit := range []bool{false, true} {
			name := "separate"
			if inCommit {
				name = "in-commit"
			}
			b.Run(fmt.Sprintf("leaves=%d/%s", per, name), func(b *testing.B) {
				s := openTest(b, Config{})
				tree := initializedTree(b, s, stestonly.PreorderedLogTree)
				ls := s.LogStorage()
				ctx := context.Background()
				integrate := func(ctx context.Context, tree *trillian.Tree, ls storage.LogStorage) error {
					n, err := log.IntegrateBatch(ctx, tree, per, 0, 0, clock.System, ls, quota.Noop())
					if err == nil && n != per {
						err = fmt.Errorf("integrated %d leaves, want %d", n, per)
					}
					return err
				}
				if inCommit {
					s.SetIntegrator(tree.TreeId, Integrator{Integrate: func(ctx context.Context, tree *trillian.Tree, ls storage.LogStorage) (func(), error) {
						return nil, integrate(ctx, tree, ls)
					}, Appended: func() { b.Error("integration in the commit failed") }})
				}
				next := uint64(0)
				batch := func() []*trillian.LogLeaf {
					leaves := make([]*trillian.LogLeaf, per)
					for i := range leaves {
						leaves[i] = newLeaf(5, next)
						next++
					}
					return leaves
				}
				b.ResetTimer()
				for range b.N {
					leaves := batch()
					if _, err := s.AppendLeaves(ctx, tree, leaves, time.Now()); err != nil {
						b.Fatal(err)
					}
					if !inCommit {
						if err := integrate(ctx, tree, ls); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				if size := mustTreeSizeTB(b, ls, tree); size != next {
					b.Fatalf("tree size %d, want %d", size, next)
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*per), "µs/leaf")
			})
		}
	}
}

func mustTreeSizeTB(tb testing.TB, ls storage.LogStorage, tree *trillian.Tree) uint64 {
	tb.Helper()
	size, err := treeSize(context.Background(), ls, tree)
	if err != nil {
		tb.Fatal(err)
	}
	return size
}
