package log

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/trillian"
	"google.golang.org/protobuf/proto"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testdb"
)

// entryBytes is the i-th test entry; some are large.
func entryBytes(i int) []byte {
	e := fmt.Appendf(nil, "evidence #%d: invoice approved", i)
	if i%97 == 0 {
		e = append(e, bytes.Repeat([]byte{byte(i)}, 60000)...)
	}
	return e
}

// submitAll adds entries from `clients` concurrent clients, waiting for
// receipts, and records the answers.
// It returns how many answers said "duplicate": true.
func submitAll(t *testing.T, tl *testLog, j *journal, receipts *sync.Map, entries [][]byte, clients int) int {
	var dups atomic.Int64
	work := make(chan []byte)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for e := range work {
				code, r := tl.add(e, "")
				if code != http.StatusOK {
					t.Errorf("add-entry(%.30q): %d %s", e, code, r.Error)
					continue
				}
				if !bytes.Equal(r.LeafHash, leafHash(e)) {
					t.Errorf("add-entry(%.30q): leaf_hash %x, want %x", e, r.LeafHash, leafHash(e))
				}
				j.record(t, e, r)
				if r.Duplicate {
					dups.Add(1)
				}
				receipts.Store(string(e), r)
			}
		})
	}
	for _, e := range entries {
		work <- e
	}
	close(work)
	wg.Wait()
	return int(dups.Load())
}

// duplicates is how many of entries the log must answer as duplicates:
// those in the journal, and repeats within entries.
func duplicates(j *journal, entries [][]byte) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	seen := map[string]bool{}
	for _, e := range entries {
		if _, ok := j.index[string(e)]; ok || seen[string(e)] {
			n++
		}
		seen[string(e)] = true
	}
	return n
}

func leafHash(e []byte) []byte {
	h := checkpoint.LeafHash(e)
	return h[:]
}

// checkWholeLog checks every invariant of the log against what the clients
// were told: every receipt verifies offline with the checkpoint package
// alone; every published checkpoint verifies and is consistent with the one
// before; /v1/entries holds exactly the acknowledged entries at their
// indexes.
func checkWholeLog(t *testing.T, tl *testLog, j *journal, receipts *sync.Map) {
	t.Helper()
	cp := tl.checkpoint()
	j.mu.Lock()
	defer j.mu.Unlock()
	if cp.Size != uint64(len(j.index)) {
		t.Errorf("checkpoint size %d, but %d distinct entries were acknowledged", cp.Size, len(j.index))
	}
	all := tl.entries(cp.Size)
	if uint64(len(all)) != cp.Size {
		t.Fatalf("/v1/entries returned %d entries, want %d", len(all), cp.Size)
	}
	for e, i := range j.index {
		if i >= uint64(len(all)) || !bytes.Equal(all[i], []byte(e)) {
			t.Errorf("entry %.30q acknowledged at %d is not there", e, i)
		}
	}
	receipts.Range(func(k, v any) bool {
		e, r := []byte(k.(string)), v.(addResult)
		rec, err := checkpoint.ParseReceipt([]byte(r.Receipt))
		if err != nil {
			t.Errorf("receipt of %.30q: %v", e, err)
			return true
		}
		if _, err := checkpoint.VerifyReceipt(rec, e, tl.verifier, tl.policy); err != nil {
			t.Errorf("receipt of %.30q does not verify: %v", e, err)
		}
		if rec.Index != j.index[string(e)] {
			t.Errorf("receipt of %.30q has index %d, acknowledged %d", e, rec.Index, j.index[string(e)])
		}
		return true
	})
	checkChain(t, tl)
}

// checkChain checks that every stored checkpoint verifies, is served
// verbatim by /v1/checkpoints/{size}, and is consistent with the one before
// (consistency proofs from the log's API, verified here).
func checkChain(t *testing.T, tl *testLog) {
	t.Helper()
	stored, err := tl.state.Checkpoints(t.Context(), tl.log.Origin(), 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) == 0 || stored[0].Size != 0 {
		t.Fatalf("the size-0 checkpoint is not stored")
	}
	var prev *checkpoint.Signed
	for _, c := range stored {
		s, err := checkpoint.Open(c.Note, tl.verifier)
		if err != nil {
			t.Fatalf("stored checkpoint %d: %v", c.Size, err)
		}
		if code, b := tl.get(fmt.Sprintf("/v1/checkpoints/%d", c.Size)); code != http.StatusOK || !bytes.Equal(b, c.Note) {
			t.Errorf("/v1/checkpoints/%d: %d %q, want the stored note", c.Size, code, b)
		}
		if prev != nil {
			var p struct{ Hashes [][]byte }
			tl.getJSON(fmt.Sprintf("/v1/proof/consistency?first=%d&second=%d", prev.Size, s.Size), &p)
			if err := checkpoint.VerifyConsistency(prev.Size, s.Size, prev.Hash, s.Hash, p.Hashes); err != nil {
				t.Errorf("checkpoints %d and %d: %v", prev.Size, s.Size, err)
			}
		}
		prev = s
	}
	if latest := tl.checkpoint(); latest.Size != prev.Size || !bytes.Equal(latest.Note, prev.Note) {
		t.Errorf("/checkpoint is size %d, the latest stored is %d", latest.Size, prev.Size)
	}
}

// runEndToEnd submits n entries in batches from `clients` concurrent
// clients, with duplicates, and checks the whole log after every batch.
func runEndToEnd(t *testing.T, tl *testLog, n, batches, clients int) {
	j := &journal{index: map[string]uint64{}}
	var receipts sync.Map
	checkWholeLog(t, tl, j, &receipts) // the empty log
	per := n / batches
	for b := range batches {
		var batch [][]byte
		for i := b * per; i < (b+1)*per; i++ {
			batch = append(batch, entryBytes(i))
		}
		// Duplicates: earlier entries again, and one entry twice at once.
		for k := 0; b > 0 && k < 4; k++ {
			batch = append(batch, entryBytes((b*per*k)/5))
		}
		batch = append(batch, batch[0])
		before := map[string]uint64{}
		j.mu.Lock()
		for k, v := range j.index {
			before[k] = v
		}
		j.mu.Unlock()
		want := duplicates(j, batch)
		if got := submitAll(t, tl, j, &receipts, batch, clients); got != want {
			t.Errorf("batch %d: %d answers with \"duplicate\": true, want %d", b, got, want)
		}
		for e, i := range before {
			if j.index[e] != i {
				t.Errorf("entry %.30q moved from %d to %d", e, i, j.index[e])
			}
		}
		checkWholeLog(t, tl, j, &receipts)
		if t.Failed() {
			t.Fatalf("after batch %d", b)
		}
	}
}

func TestEndToEnd(t *testing.T) {
	tl := newTestLog(t, nil)
	runEndToEnd(t, tl, 1000, 10, 16)
}

// TestEndToEndPolling runs the log as it runs on a remote Trillian: the
// publisher polls for growth every CheckpointInterval and reads the new
// leaves back from Trillian.
func TestEndToEndPolling(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.Grown, c.LeafHashes = nil, nil })
	runEndToEnd(t, tl, 300, 3, 16)
}

// TestEndToEndWrongLeafHashes gives the publisher wrong leaf hashes for
// the new leaves: it must notice (they do not hash to Trillian's root),
// fall back to a consistency proof, and still give every writer a good
// receipt.
func TestEndToEndWrongLeafHashes(t *testing.T) {
	tl := newTestLog(t, func(c *Config) {
		c.LeafHashes = func(start, end uint64) ([][32]byte, bool) {
			h := make([][32]byte, end-start)
			for i := range h {
				h[i][0] = byte(i + 1)
			}
			return h, true
		}
	})
	runEndToEnd(t, tl, 200, 2, 16)
}

// TestEndToEndMySQL runs the log with Trillian in-process on MariaDB
// (Trillian's own storage/mysql) and the state in MariaDB.
func TestEndToEndMySQL(t *testing.T) {
	dsn := testdb.MySQL(t)
	loadTrillianSchema(t, dsn)
	tl := newTestLogWith(t, func(tl *testLog) { tl.mysqlDSN = dsn }, nil)
	runEndToEnd(t, tl, 300, 3, 16)
}

func TestDuplicatesAnswerOriginalIndex(t *testing.T) {
	tl := newTestLog(t, nil)
	code, first := tl.add([]byte("one"), "")
	if code != 200 || first.Duplicate {
		t.Fatalf("first add: %d %+v", code, first)
	}
	code, r := tl.add([]byte("two"), "?wait=false")
	if code != http.StatusAccepted || !bytes.Equal(r.LeafHash, leafHash([]byte("two"))) || r.Receipt != "" {
		t.Fatalf("add ?wait=false: %d %+v", code, r)
	}
	for _, e := range []string{"one", "two"} {
		code, r := tl.add([]byte(e), "")
		if code != 200 || !r.Duplicate {
			t.Errorf("adding %q again: %d %+v, want a duplicate", e, code, r)
		}
		if e == "one" && r.Index != first.Index {
			t.Errorf("duplicate of %q: index %d, want %d", e, r.Index, first.Index)
		}
	}
	if cp := tl.checkpoint(); cp.Size != 2 {
		t.Errorf("size %d after adding two distinct entries", cp.Size)
	}
	// The receipt endpoint agrees with add-entry.
	h := leafHash([]byte("one"))
	code, b := tl.get(fmt.Sprintf("/v1/receipt?leaf_hash=%x", h))
	if code != 200 {
		t.Fatalf("/v1/receipt: %d %s", code, b)
	}
	rec, err := checkpoint.ParseReceipt(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.VerifyReceipt(rec, []byte("one"), tl.verifier, nil); err != nil || rec.Index != first.Index {
		t.Errorf("/v1/receipt: index %d, %v", rec.Index, err)
	}
	// And against the checkpoint of size 1, published before "two".
	code, b = tl.get(fmt.Sprintf("/v1/receipt?leaf_hash=%x&tree_size=1", h))
	if code != 200 || !strings.Contains(string(b), "\n1\n") {
		t.Errorf("/v1/receipt at size 1: %d %s", code, b)
	}
}

func TestRestart(t *testing.T) {
	tl := newTestLog(t, nil)
	j := &journal{index: map[string]uint64{}}
	var receipts sync.Map
	var first [][]byte
	for i := range 50 {
		first = append(first, entryBytes(i))
	}
	submitAll(t, tl, j, &receipts, first, 4)
	before := tl.checkpoint()
	tree := tl.be.TreeID

	tl.stop()
	tl.start()
	if tl.be.TreeID != tree {
		t.Errorf("after restart: tree %d, want %d", tl.be.TreeID, tree)
	}
	after := tl.checkpoint()
	if !bytes.Equal(after.Note, before.Note) {
		t.Errorf("after restart /checkpoint is\n%s\nwant\n%s", after.Note, before.Note)
	}
	checkWholeLog(t, tl, j, &receipts)
	var more [][]byte
	for i := 50; i < 80; i++ {
		more = append(more, entryBytes(i))
	}
	more = append(more, first[0])
	if got := submitAll(t, tl, j, &receipts, more, 4); got != 1 {
		t.Errorf("after restart: %d answers with \"duplicate\": true, want 1", got)
	}
	checkWholeLog(t, tl, j, &receipts)
	if cp := tl.checkpoint(); cp.Size != 80 {
		t.Errorf("after restart and 30 more entries: size %d, want 80", cp.Size)
	}
}

// TestWakeByHash runs the write path with the per-hash wake-up that a log
// uses when a checkpoint covers a very large growth.
func TestWakeByHash(t *testing.T) {
	defer func(m uint64) { maxScan = m }(maxScan)
	maxScan = 0
	tl := newTestLog(t, func(c *Config) { c.LeafHashes = nil })
	runEndToEnd(t, tl, 60, 2, 8)
}

// TestEndToEndWrongLeaves gives the tiler and attribution wrong values
// for every third new leaf from the sequencer's memory (Config.Leaves):
// they must notice (the value does not hash to the leaf hash Trillian
// integrated, or to the tiles'), read the leaves from Trillian instead, and
// every writer still gets a good receipt and every entry its own value.
func TestEndToEndWrongLeaves(t *testing.T) {
	var wrong atomic.Int64
	tl := newTestLog(t, nil)
	tl.stop()
	tl.mod = func(c *Config) {
		leaves := c.Leaves
		c.Leaves = func(start, end uint64) ([]*trillian.LogLeaf, bool) {
			ls, ok := leaves(start, end)
			for i, l := range ls {
				if (start+uint64(i))%3 == 1 {
					l = proto.Clone(l).(*trillian.LogLeaf)
					l.LeafValue = append([]byte("wrong "), l.LeafValue...)
					ls[i] = l
					wrong.Add(1)
				}
			}
			return ls, ok
		}
	}
	tl.start()
	runEndToEnd(t, tl, 200, 2, 16)
	if wrong.Load() == 0 {
		t.Fatal("the log never asked for the sequencer's leaves: the test tested nothing")
	}
	// Attribution, from the same memory, records each entry's own hash.
	size := tl.checkpoint().Size
	values := tl.entries(size)
	listed := 0
	for query := "?limit=100"; ; {
		code, got := tl.tenantEntries(tl.token, query)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/tenant/entries%s: %d %s", query, code, got.Error)
		}
		for _, e := range got.Entries {
			if e.Index == nil || *e.Index >= size || !bytes.Equal(e.LeafHash, leafHash(values[*e.Index])) {
				t.Errorf("listed entry %v has leaf hash %x, not its value's", e.Index, e.LeafHash)
			}
		}
		listed += len(got.Entries)
		if got.Next == "" || len(got.Entries) == 0 {
			break
		}
		query = "?limit=100&after=" + url.QueryEscape(got.Next)
	}
	if uint64(listed) != size {
		t.Errorf("the default tenant lists %d entries, want %d", listed, size)
	}
}
