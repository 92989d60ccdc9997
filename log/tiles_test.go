package log

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/logbuf"
	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/storage"
)

// reference is an independent model of a log's tiles: golang.org/x/mod's
// sumdb/tlog (height-8 tiles, RFC 6962 hashing) over the same entries.
type reference struct {
	entries [][]byte
	hashes  []tlog.Hash // stored hashes, in tlog's storage order
}

func (r *reference) add(t *testing.T, entries ...[]byte) {
	for _, e := range entries {
		n := int64(len(r.entries))
		hs, err := tlog.StoredHashes(n, e, tlog.HashReaderFunc(r.read))
		if err != nil {
			t.Fatal(err)
		}
		r.entries = append(r.entries, e)
		r.hashes = append(r.hashes, hs...)
	}
}

func (r *reference) read(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = r.hashes[x]
	}
	return out, nil
}

// bundle is the entry bundle of entries [256n, 256n+w).
func (r *reference) bundle(n int64, w int) []byte {
	var b []byte
	for _, e := range r.entries[256*n : 256*n+int64(w)] {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

// checkTiles fetches every tile of the tree of size from tl and compares
// it with the reference, and checks that the next tiles are 404.
func checkTiles(t *testing.T, tl *testLog, ref *reference, size int64) {
	t.Helper()
	for _, tile := range tlog.NewTiles(tileHeight, 0, size) {
		want, err := tlog.ReadTileData(tile, tlog.HashReaderFunc(ref.read))
		if err != nil {
			t.Fatal(err)
		}
		w := tile.W
		if w == tileWidth {
			w = 0
		}
		path := "/tile/" + checkpoint.TilePath(tile.L, uint64(tile.N), w)
		code, h := tl.getHeader(path)
		if code != http.StatusOK || h.Get("Cache-Control") != immutable {
			t.Errorf("GET %s: %d, Cache-Control %q", path, code, h.Get("Cache-Control"))
			continue
		}
		if _, got := tl.get(path); !bytes.Equal(got, want) {
			t.Errorf("GET %s: got %d bytes that differ from sumdb/tlog's %d", path, len(got), len(want))
		}
		if tile.L == 0 {
			path := "/tile/" + checkpoint.TilePath(storage.EntriesLevel, uint64(tile.N), w)
			if code, got := tl.get(path); code != http.StatusOK || !bytes.Equal(got, ref.bundle(tile.N, tile.W)) {
				t.Errorf("GET %s: %d, %d bytes, want the bundle of %d entries", path, code, len(got), tile.W)
			}
		}
	}
	// Beyond the published tree: 404.
	n := size / tileWidth
	for _, p := range []string{checkpoint.TilePath(0, uint64(n), 0), checkpoint.TilePath(0, uint64(n), int(size%tileWidth)+1),
		checkpoint.TilePath(storage.EntriesLevel, uint64(n), 0), checkpoint.TilePath(1, uint64(size/tileWidth/tileWidth+1), 0)} {
		if size%tileWidth == tileWidth-1 && p == checkpoint.TilePath(0, uint64(n), tileWidth) {
			continue
		}
		if code, b := tl.get("/tile/" + p); code != http.StatusNotFound {
			t.Errorf("GET /tile/%s beyond size %d: %d %.100q, want 404", p, size, code, b)
		}
	}
}

// TestTiles grows a log in steps that end inside tiles and at tile
// boundaries, and after each step checks every tile of the published tree
// against sumdb/tlog's, every receipt and consistency proof (now built from
// the tiles) and the 404s past the tree; then it restarts the log (the
// tiler resumes from the stored tiles) and goes on.
func TestTiles(t *testing.T) {
	tl := newTestLog(t, nil)
	runTiles(t, tl)
}

// TestTilesMySQL is TestTiles with the state (and tiles) and Trillian on
// MariaDB.
func TestTilesMySQL(t *testing.T) {
	dsn := testdb.MySQL(t)
	loadTrillianSchema(t, dsn)
	runTiles(t, newTestLogWith(t, func(tl *testLog) { tl.mysqlDSN = dsn }, nil))
}

func runTiles(t *testing.T, tl *testLog) {
	ref := &reference{}
	var sizes []uint64
	next := 0
	for step, n := range []int{1, 254, 1, 1, 300, 255, 256 + 3} {
		if step == 4 {
			tl.stop()
			tl.start()
		}
		var batch [][]byte
		for range n {
			batch = append(batch, fmt.Appendf(nil, "tile test entry %d %s", next, bytes.Repeat([]byte{'x'}, next%50)))
			next++
		}
		code, _, a := tl.addBatch(encodeBatch(batch), "")
		if code != http.StatusOK || len(a.Results) != len(batch) {
			t.Fatalf("add-entries: %d %s", code, a.Error)
		}
		// Trillian orders a batch as it likes: the reference follows.
		ordered := make([][]byte, len(batch))
		for i, r := range a.Results {
			if r.Index < uint64(len(ref.entries)) || r.Index-uint64(len(ref.entries)) >= uint64(len(batch)) {
				t.Fatalf("entry %d of the batch at index %d", i, r.Index)
			}
			ordered[r.Index-uint64(len(ref.entries))] = batch[i]
		}
		ref.add(t, ordered...)
		cp := tl.checkpoint()
		if cp.Size != uint64(next) {
			t.Fatalf("checkpoint size %d after %d entries", cp.Size, next)
		}
		if want, _ := tlog.TreeHash(int64(next), tlog.HashReaderFunc(ref.read)); cp.Hash != [32]byte(want) {
			t.Fatalf("size %d: checkpoint root %x, sumdb/tlog's %x", next, cp.Hash, want[:])
		}
		checkTiles(t, tl, ref, int64(next))
		checkPartialBundle(t, tl, ref, int64(next))
		for i := range ref.entries {
			if i%37 != 0 && i != next-1 {
				continue
			}
			h := checkpoint.LeafHash(ref.entries[i])
			code, b := tl.get(fmt.Sprintf("/v1/receipt?leaf_hash=%x", h))
			if code != http.StatusOK {
				t.Fatalf("receipt of %d: %d %s", i, code, b)
			}
			rc, err := checkpoint.ParseReceipt(b)
			if err != nil {
				t.Fatalf("receipt of %d: %v", i, err)
			}
			if rc.Index != uint64(i) {
				t.Errorf("receipt of %d has index %d", i, rc.Index)
			}
			if _, err := checkpoint.VerifyReceipt(rc, ref.entries[i], tl.verifier, nil); err != nil {
				t.Errorf("receipt of %d: %v", i, err)
			}
		}
		for _, old := range sizes {
			var p struct{ Hashes [][]byte }
			tl.getJSON(fmt.Sprintf("/v1/proof/consistency?first=%d&second=%d", old, next), &p)
			oldRoot, _ := tlog.TreeHash(int64(old), tlog.HashReaderFunc(ref.read))
			if err := checkpoint.VerifyConsistency(old, uint64(next), [32]byte(oldRoot), cp.Hash, p.Hashes); err != nil {
				t.Errorf("consistency %d→%d: %v", old, next, err)
			}
		}
		sizes = append(sizes, uint64(next))
	}
	// An older checkpoint's partial tile is still served; a width no
	// checkpoint had is not.
	if code, _ := tl.get("/tile/0/000.p/1"); code != http.StatusOK {
		t.Errorf("GET /tile/0/000.p/1 (size 1 was published): %d", code)
	}
	if code, _ := tl.get("/tile/0/000.p/2"); code != http.StatusNotFound {
		t.Errorf("GET /tile/0/000.p/2 (no checkpoint of size 2): %d, want 404", code)
	}
}

// checkPartialBundle checks that no partial level-0 tile (hash tile or
// entry bundle) is stored, and that those of the published tree of size
// are served the same when made from the entries as from the tiler's
// memory.
func checkPartialBundle(t *testing.T, tl *testLog, ref *reference, size int64) {
	t.Helper()
	var n int
	if err := tl.state.SQL().QueryRow(`SELECT COUNT(*) FROM tiles WHERE level <= 0 AND width < ?`, tileWidth).Scan(&n); err != nil || n != 0 {
		t.Errorf("size %d: %d partial level-0 tiles stored (%v), want none", size, n, err)
	}
	w := int(size % tileWidth)
	if w == 0 {
		return
	}
	tile := tlog.Tile{H: tileHeight, L: 0, N: size / tileWidth, W: w}
	want, err := tlog.ReadTileData(tile, tlog.HashReaderFunc(ref.read))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		level int
		want  []byte
	}{{0, want}, {storage.EntriesLevel, ref.bundle(size/tileWidth, w)}} {
		tl.log.tiles.edge.Store(nil)
		path := "/tile/" + checkpoint.TilePath(c.level, uint64(size/tileWidth), w)
		if code, got := tl.get(path); code != http.StatusOK || !bytes.Equal(got, c.want) {
			t.Errorf("GET %s made from the entries: %d, %d bytes, want %d", path, code, len(got), len(c.want))
		}
	}
}

// TestPartialBundleFromEntries: a partial level-0 tile that the tiler
// does not hold (another server's, or before its first round) is made
// from Trillian's entries and checked against the tiled root: a forged
// entry is never served.
func TestPartialBundleFromEntries(t *testing.T) {
	var lt *lyingTrillian
	tl := newTestLog(t, func(c *Config) {
		lt = &lyingTrillian{TrillianLogClient: c.Trillian}
		c.Trillian = lt
		c.Leaves = nil // read from Trillian, as a remote one
	})
	ref := &reference{}
	for i := range 3 {
		if code, r := tl.add(entryBytes(i), ""); code != http.StatusOK {
			t.Fatalf("add: %d %s", code, r.Error)
		}
		ref.add(t, entryBytes(i))
	}
	// Readers of a new width wait for one to make it.
	var made atomic.Int32
	rebuild := tl.log.tiles.rebuild
	tl.log.tiles.rebuild = func(ctx context.Context, index uint64) (*edgeTile, error) {
		made.Add(1)
		time.Sleep(20 * time.Millisecond) // so that readers overlap
		return rebuild(ctx, index)
	}
	tl.log.tiles.edge.Store(nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if code, got := tl.get("/tile/entries/000.p/3"); code != http.StatusOK || !bytes.Equal(got, ref.bundle(0, 3)) {
				t.Errorf("GET /tile/entries/000.p/3 from Trillian's entries: %d %.100q", code, got)
			}
		})
	}
	wg.Wait()
	if n := made.Load(); n != 1 {
		t.Errorf("8 concurrent readers made the partial tile %d times, want once", n)
	}
	lt.lie.Store(func(l *trillian.LogLeaf) { l.LeafValue = []byte("forged") })
	tl.log.tiles.edge.Store(nil)
	if code, got := tl.get("/tile/entries/000.p/3"); code != http.StatusInternalServerError {
		t.Errorf("GET /tile/entries/000.p/3 with entry 2 forged in Trillian: %d %.100q, want 500", code, got)
	}
	// An older checkpoint's width too: the partial tile is made whole
	// and checked against the tiled root, which entry 2 breaks.
	if code, got := tl.get("/tile/0/000.p/2"); code != http.StatusInternalServerError {
		t.Errorf("GET /tile/0/000.p/2 with entry 2 forged in Trillian: %d %.100q, want 500", code, got)
	}
}

// TestTilerDistrustsTrillian: Trillian serves a forged entry 2 (its leaf
// hashes and root are right, its entry is not). The tiler hashes the
// entries it reads to another root, so the log stalls at the last
// checkpoint rather than sign a tree whose entries it cannot vouch for.
// The tiler reads the entries from Trillian as it does from a remote one:
// in-process, it takes those it queued itself from memory
// (TestEndToEndWrongLeaves).
func TestTilerDistrustsTrillian(t *testing.T) {
	logs := &logbuf.Buffer{}
	var lt *lyingTrillian
	tl := newTestLog(t, func(c *Config) {
		lt = &lyingTrillian{TrillianLogClient: c.Trillian}
		c.Trillian = lt
		c.Leaves = nil
		c.Logger = logs.Logger()
	})
	for i := range 2 {
		if code, r := tl.add(entryBytes(i), ""); code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	lt.lie.Store(func(l *trillian.LogLeaf) { l.LeafValue = []byte("forged") })
	if code, r := tl.add(entryBytes(2), ""); code != http.StatusServiceUnavailable {
		t.Errorf("add with a forged entry in Trillian: %d %s, want 503", code, r.Error)
	}
	if cp := tl.checkpoint(); cp.Size != 2 {
		t.Errorf("checkpoint of size %d published over a forged entry", cp.Size)
	}
	// The publisher wakes the waiting writers before it logs the stall's
	// evidence: wait for the line.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "STALLED"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(logs.String(), "STALLED") || !strings.Contains(logs.String(), "tiler hashed") {
		t.Errorf("no stall logged:\n%s", logs.String())
	}
	if code, _ := tl.get("/tile/entries/000.p/3"); code != http.StatusNotFound {
		t.Errorf("GET the unpublished bundle: %d, want 404", code)
	}
}

// TestTilesBackfill upgrades a log from before tiles in place: its tile
// tables are emptied (as a version-3 database has none), and on restart
// the tiler rebuilds every tile from Trillian's entries before the log
// publishes again.
func TestTilesBackfill(t *testing.T) {
	tl := newTestLog(t, nil)
	ref := &reference{}
	add := func(n int) {
		var batch [][]byte
		for i := range n {
			batch = append(batch, fmt.Appendf(nil, "backfill entry %d", len(ref.entries)+i))
		}
		code, _, a := tl.addBatch(encodeBatch(batch), "")
		if code != http.StatusOK || len(a.Results) != n {
			t.Fatalf("add-entries: %d %s", code, a.Error)
		}
		ordered := make([][]byte, n)
		for i, r := range a.Results {
			ordered[r.Index-uint64(len(ref.entries))] = batch[i]
		}
		ref.add(t, ordered...)
	}
	add(600)
	tl.stop()
	db, err := storage.OpenSQLite(t.Context(), filepath.Join(tl.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"tiles", "tiled", "tile_leaves"} {
		if _, err := db.SQL().Exec("DELETE FROM " + table); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	defer func(c uint64) { tileChunk = c }(tileChunk)
	tileChunk = 100 // several transactions
	tl.start()
	deadline := time.Now().Add(10 * time.Second)
	for code, _ := tl.get("/tile/0/002.p/88"); code != http.StatusOK; code, _ = tl.get("/tile/0/002.p/88") {
		if time.Now().After(deadline) {
			t.Fatalf("tiles not backfilled: GET /tile/0/002.p/88: %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkTiles(t, tl, ref, 600)
	add(100)
	checkTiles(t, tl, ref, 700)
	tl.stop() // before tileChunk is restored
}
