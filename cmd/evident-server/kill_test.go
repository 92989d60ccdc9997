package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
)

// clientJournal is what a client was told: entries acknowledged with an
// index (200) and entries acknowledged as queued (202).
type clientJournal struct {
	mu     sync.Mutex
	index  map[string]uint64
	queued map[string]bool
}

// TestKill9UnderLoad kills the server with SIGKILL while clients submit,
// at least ten times, and after every restart checks that every
// acknowledged entry is in the log (at the index it was given, for 200s),
// that published checkpoints stay consistent, and that the log goes on.
func TestKill9UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: kill -9 cycles take about a minute; run without -short")
	}
	const cycles = 12
	dir := filepath.Join(t.TempDir(), "data")
	j := &clientJournal{index: map[string]uint64{}, queued: map[string]bool{}}
	var last *checkpoint.Signed // the latest checkpoint a client saw
	for c := range cycles {
		s := startServer(t, dir, "--checkpoint_interval", "50ms", "--sequencer_interval", "20ms")
		last = verifyJournal(t, s, j, last)
		if seen := load(t, s, j, c, time.Duration(150+rand.IntN(350))*time.Millisecond); seen != nil && seen.Size > last.Size {
			last = seen
		}
		if t.Failed() {
			t.Fatalf("cycle %d:\n%s", c, s.Stderr())
		}
	}
	s := startServer(t, dir)
	verifyJournal(t, s, j, last)
	t.Logf("%d cycles: %d entries acknowledged with an index, %d as queued", cycles, len(j.index), len(j.queued))
	if len(j.index) < cycles {
		t.Errorf("only %d entries were acknowledged: the load did not run", len(j.index))
	}
}

// load runs 8 clients against s for d, then kills s with SIGKILL while they
// are still submitting. It returns the largest checkpoint in a receipt.
func load(t *testing.T, s *server, j *clientJournal, cycle int, d time.Duration) *checkpoint.Signed {
	v, err := checkpoint.NewVerifier(s.vkey)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var seen *checkpoint.Signed
	for w := range 8 {
		wg.Go(func() {
			client := &http.Client{Timeout: 20 * time.Second}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				e := fmt.Appendf(nil, "cycle %d worker %d entry %d", cycle, w, n)
				query := ""
				if n%4 == 3 {
					query = "?wait=false"
				}
				code, r, err := s.add(client, e, query)
				if err != nil {
					return // the server died under us: not acknowledged
				}
				switch {
				case code == 202:
					j.mu.Lock()
					j.queued[string(e)] = true
					j.mu.Unlock()
				case code == 200:
					rec, err := checkpoint.ParseReceipt([]byte(r.Receipt))
					var cp *checkpoint.Signed
					if err == nil {
						cp, err = checkpoint.VerifyReceipt(rec, e, v, nil)
					}
					if err != nil || rec.Index != r.Index {
						t.Errorf("receipt of %q: %v", e, err)
						return
					}
					mu.Lock()
					if seen == nil || cp.Size > seen.Size {
						seen = cp
					}
					mu.Unlock()
					j.mu.Lock()
					j.index[string(e)] = r.Index
					j.mu.Unlock()
				default:
					t.Errorf("add %q: %d %s", e, code, r.Error)
					return
				}
			}
		})
	}
	time.Sleep(d)
	s.Kill()
	close(stop)
	wg.Wait()
	return seen
}

// verifyJournal checks the restarted log against the journal and returns
// its checkpoint.
func verifyJournal(t *testing.T, s *server, j *clientJournal, last *checkpoint.Signed) *checkpoint.Signed {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	// Entries acknowledged as queued are integrated and published after the
	// restart, at the latest: read the log until they are all there.
	deadline := time.Now().Add(20 * time.Second)
	var cp *checkpoint.Signed
	var at map[string]uint64
	for {
		cp = s.checkpoint()
		at = readAll(t, s, cp.Size)
		missing := 0
		for e := range j.queued {
			if _, ok := at[e]; !ok {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries acknowledged as queued are not in the log of size %d", missing, cp.Size)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if last != nil {
		if cp.Size < last.Size {
			t.Fatalf("the log shrank from %d to %d", last.Size, cp.Size)
		}
		code, b := s.get(fmt.Sprintf("/v1/proof/consistency?first=%d&second=%d", last.Size, cp.Size))
		var p struct{ Hashes [][]byte }
		if code != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("consistency %d→%d: %d %s", last.Size, cp.Size, code, b)
		}
		if err := checkpoint.VerifyConsistency(last.Size, cp.Size, last.Hash, cp.Hash, p.Hashes); err != nil {
			t.Fatalf("checkpoint after restart is inconsistent with the one before: %v", err)
		}
	}
	for e, i := range j.index {
		if got, ok := at[e]; !ok || got != i {
			t.Errorf("acknowledged entry %q at %d: found at %d (present: %v)", e, i, got, ok)
		}
	}
	// A resubmitted entry gets its original index.
	for e, i := range j.index {
		client := &http.Client{Timeout: 20 * time.Second}
		code, r, err := s.add(client, []byte(e), "")
		if err != nil || code != 200 || !r.Duplicate || r.Index != i {
			t.Errorf("resubmitting %q: %d %+v %v, want a duplicate at %d", e, code, r, err, i)
		}
		if !bytes.Equal(r.LeafHash, leaf(e)) {
			t.Errorf("resubmitting %q: leaf hash %x", e, r.LeafHash)
		}
		break
	}
	return cp
}

func leaf(e string) []byte {
	h := checkpoint.LeafHash([]byte(e))
	return h[:]
}

// readAll reads the log's first size entries and maps each to its index,
// failing on an entry that appears twice.
func readAll(t *testing.T, s *server, size uint64) map[string]uint64 {
	t.Helper()
	var all [][]byte
	for uint64(len(all)) < size {
		code, b := s.get(fmt.Sprintf("/v1/entries?start=%d&count=1000", len(all)))
		var r struct{ Entries [][]byte }
		if code != 200 || json.Unmarshal(b, &r) != nil || len(r.Entries) == 0 {
			t.Fatalf("/v1/entries from %d: %d %s", len(all), code, b)
		}
		all = append(all, r.Entries...)
	}
	at := map[string]uint64{}
	for i, e := range all {
		if _, dup := at[string(e)]; dup {
			t.Errorf("entry %q is in the log twice", e)
		}
		at[string(e)] = uint64(i)
	}
	return at
}

// TestGracefulShutdown sends SIGTERM while clients wait for receipts: every
// request the server answers is a 200 with a receipt (it finishes in-flight
// writes before closing), and those entries are there after a restart.
func TestGracefulShutdown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	j := &clientJournal{index: map[string]uint64{}, queued: map[string]bool{}}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for n := 0; ; n++ {
				e := fmt.Appendf(nil, "graceful worker %d entry %d", w, n)
				code, r, err := s.add(client, e, "")
				if err != nil {
					return // the server stopped listening
				}
				if code != 200 {
					t.Errorf("add during shutdown: %d %s", code, r.Error)
					return
				}
				j.mu.Lock()
				j.index[string(e)] = r.Index
				j.mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := s.terminate(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, s.Stderr())
	}
	wg.Wait()
	s = startServer(t, dir)
	verifyJournal(t, s, j, nil)
}
