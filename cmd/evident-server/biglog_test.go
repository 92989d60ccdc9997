package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"

	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/storage/backend"
)

// TestBigLog is the large-log benchmark behind scripts/bench.sh. It runs
// only when EVIDENT_BIG_LOG is set to a number of entries (e.g. 10000000):
// it creates a log with the real binary, fills its Trillian tree with that
// many 256-byte entries through the in-process backend (10,000 a commit,
// integrated as they come), starts the real binary on it, and measures
// submit-to-receipt latency with 16 and 256 waiting submitters for
// EVIDENT_LOAD (default 10s), then the same on a log of 10,000 entries, and
// prints the ratios. EVIDENT_BIG_LOG_DIR keeps the big log's data directory
// there (and reuses it when it already holds the entries).
func TestBigLog(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("EVIDENT_BIG_LOG"))
	if err != nil || n <= 0 {
		t.Skip("SKIP: set EVIDENT_BIG_LOG to a number of entries to run the large-log benchmark")
	}
	d, err := time.ParseDuration(os.Getenv("EVIDENT_LOAD"))
	if err != nil {
		d = 10 * time.Second
	}
	dir := os.Getenv("EVIDENT_BIG_LOG_DIR")
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "big")
	}
	small := measureLogOf(t, filepath.Join(t.TempDir(), "small"), 10000, d)
	big := measureLogOf(t, dir, n, d)
	for i, c := range []int{16, 256} {
		fmt.Printf("evident-server big log: %d submitters: %d entries p50 %.1f ms p99 %.1f ms (%.0f/s); 10,000 entries p50 %.1f ms p99 %.1f ms (%.0f/s); p50 ratio %.2f\n",
			c, n, ms(big[i].p50), ms(big[i].p99), big[i].rate, ms(small[i].p50), ms(small[i].p99), small[i].rate, float64(big[i].p50)/float64(small[i].p50))
	}
}

// measureLogOf makes (or reuses) a log of n entries in dir and measures
// receipt latency with 16 and 256 submitters.
func measureLogOf(t *testing.T, dir string, n int, d time.Duration) []loadResult {
	if size := treeSize(t, dir); size < uint64(n) {
		s := startServer(t, dir) // creates the key, token and tree
		s.terminate()
		start := time.Now()
		fill(t, dir, uint64(n))
		fmt.Printf("evident-server big log: filled %s with %d entries in %v\n", dir, n, time.Since(start).Round(time.Second))
	}
	s := startServer(t, dir, "--skip_integrity_check")
	defer s.terminate()
	start := time.Now()
	for s.checkpoint().Size < uint64(n) {
		time.Sleep(100 * time.Millisecond) // the first round publishes the filled tree
	}
	published := time.Since(start)
	// The fill bypassed the personality, so the tenants of its entries are
	// recorded in the background now; measure once that is done, as a log
	// that took its entries through the API would be.
	for size := s.checkpoint().Size; metric(s, "evident_attributed_entries") < float64(size); {
		time.Sleep(500 * time.Millisecond)
	}
	fmt.Printf("evident-server big log: %s: first checkpoint after %v, tenants of all %d entries recorded after %v\n",
		dir, published.Round(100*time.Millisecond), n, time.Since(start).Round(100*time.Millisecond))
	return []loadResult{runLoad(t, s, 16, "", 0, d), runLoad(t, s, 256, "", 0, d)}
}

// treeSize is the size of the Trillian tree in dir, 0 if there is none.
func treeSize(t *testing.T, dir string) uint64 {
	if _, err := os.Stat(filepath.Join(dir, "trillian.db")); err != nil {
		return 0
	}
	be, state := openBackend(t, dir)
	defer state.Close()
	defer be.Close()
	return rootSize(t, be)
}

func openBackend(t *testing.T, dir string) (*backend.Backend, *storage.DB) {
	ctx := context.Background()
	state, err := storage.OpenSQLite(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.New(ctx, backend.Config{SQLitePath: filepath.Join(dir, "trillian.db"), State: state, SkipIntegrityCheck: true, BatchSize: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return be, state
}

func rootSize(t *testing.T, be *backend.Backend) uint64 {
	r, err := be.Log.GetLatestSignedLogRoot(context.Background(), &trillian.GetLatestSignedLogRootRequest{LogId: be.TreeID})
	if err != nil {
		t.Fatal(err)
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(r.SignedLogRoot.LogRoot); err != nil {
		t.Fatal(err)
	}
	return root.TreeSize
}

// fill queues entries in dir's tree until it holds n, and waits until they
// are integrated.
func fill(t *testing.T, dir string, n uint64) {
	be, state := openBackend(t, dir)
	defer state.Close()
	defer be.Close()
	ctx := context.Background()
	for next := rootSize(t, be); next < n; {
		batch := make([]*trillian.LogLeaf, 0, 10000)
		for ; len(batch) < cap(batch) && next < n; next++ {
			e := make([]byte, 256)
			copy(e, fmt.Appendf(nil, "big log entry %d", next))
			batch = append(batch, &trillian.LogLeaf{LeafValue: e})
		}
		if _, err := be.QueueBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		// Keep the queue short: wait while integration is far behind.
		for rootSize(t, be)+100000 < next {
			time.Sleep(50 * time.Millisecond)
		}
	}
	for rootSize(t, be) < n {
		time.Sleep(100 * time.Millisecond)
	}
}

// metric returns the value of the unlabelled metric name on s's /metrics
// (-1 when it is missing).
func metric(s *server, name string) float64 {
	_, b := s.get("/metrics")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}
