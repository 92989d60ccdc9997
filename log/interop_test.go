package log

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
)

// fill adds n entries with ?wait=false in batches of MaxBatchEntries and
// waits until a checkpoint covers them all.
func fill(t *testing.T, tl *testLog, n int, prefix string) {
	t.Helper()
	for start := 0; start < n; start += MaxBatchEntries {
		var batch [][]byte
		for i := start; i < min(n, start+MaxBatchEntries); i++ {
			batch = append(batch, fmt.Appendf(nil, "%s entry %d", prefix, i))
		}
		if code, _, a := tl.addBatch(encodeBatch(batch), "?wait=false"); code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("add-entries: %d %s", code, a.Error)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for tl.checkpoint().Size < uint64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %d entries after 2 minutes", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTesseraClient reads the log with the tile-based ecosystem's own Go
// client (transparency-dev/tessera's client package, a test-only
// dependency): it fetches and verifies our checkpoint, proves inclusion of
// sampled entries and consistency between checkpoints from our tiles, and
// audits the whole log from the tiles alone: every entry bundle, hashed,
// gives the checkpoint's root. EVIDENT_INTEROP_SIZE sets the log's size
// (default 100,000).
func TestTesseraClient(t *testing.T) {
	size := 100_000
	if s := os.Getenv("EVIDENT_INTEROP_SIZE"); s != "" {
		var err error
		if size, err = strconv.Atoi(s); err != nil || size < 2 {
			t.Fatalf("EVIDENT_INTEROP_SIZE=%q", s)
		}
	}
	tl := newTestLog(t, nil)
	ctx := t.Context()
	u, _ := url.Parse(tl.srv.URL + "/")
	f, err := tclient.NewHTTPFetcher(u, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(tl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	origin := tl.log.Origin()

	fill(t, tl, size/3, "interop")
	first, _, _, err := tclient.FetchCheckpoint(ctx, f.ReadCheckpoint, v, origin)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, tl, size, "interop")
	cp, _, _, err := tclient.FetchCheckpoint(ctx, f.ReadCheckpoint, v, origin)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != uint64(size) {
		t.Fatalf("tessera's client read a checkpoint of size %d, want %d", cp.Size, size)
	}

	// The full audit: the entry bundles alone give the root.
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	entries := make([][]byte, 0, size)
	for i := uint64(0); i*256 < cp.Size; i++ {
		b, err := tclient.GetEntryBundle(ctx, f.ReadEntryBundle, i, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entries {
			if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil || rng.End() != cp.Size || [32]byte(root) != [32]byte(cp.Hash) {
		t.Fatalf("the entry bundles hold %d entries hashing to %x; the checkpoint has %d, %x (%v)", rng.End(), root, cp.Size, cp.Hash, err)
	}

	// Inclusion of sampled entries, and consistency, from the hash tiles.
	pb, err := tclient.NewProofBuilder(ctx, cp.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	samples := []uint64{0, cp.Size - 1, first.Size - 1, first.Size}
	for range 200 {
		samples = append(samples, r.Uint64N(cp.Size))
	}
	for _, i := range samples {
		p, err := pb.InclusionProof(ctx, i)
		if err != nil {
			t.Fatalf("inclusion proof of %d from tessera's client: %v", i, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, rfc6962.DefaultHasher.HashLeaf(entries[i]), p, cp.Hash); err != nil {
			t.Errorf("inclusion of %d: %v", i, err)
		}
		lh := checkpoint.LeafHash(entries[i])
		if code, b := tl.get(fmt.Sprintf("/v1/receipt?leaf_hash=%x", lh)); code != http.StatusOK {
			t.Errorf("receipt of %d: %d %s", i, code, b)
		}
	}
	p, err := pb.ConsistencyProof(ctx, first.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, first.Size, cp.Size, p, first.Hash, cp.Hash); err != nil {
		t.Errorf("consistency %d→%d from tessera's client: %v", first.Size, cp.Size, err)
	}
	// And the older tree through its own (partial) tiles.
	opb, err := tclient.NewProofBuilder(ctx, first.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	p, err = opb.InclusionProof(ctx, first.Size-1)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, first.Size-1, first.Size, rfc6962.DefaultHasher.HashLeaf(entries[first.Size-1]), p, first.Hash); err != nil {
		t.Errorf("inclusion of %d at the older size %d: %v", first.Size-1, first.Size, err)
	}
}
