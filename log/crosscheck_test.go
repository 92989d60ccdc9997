package log

import (
	"crypto/sha256"
	"fmt"
	"testing"

	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestCrossCheck checks the log's checkpoints and proofs with independent
// code: golang.org/x/mod/sumdb/note verifies the checkpoints,
// transparency-dev/formats/log parses them, and golang.org/x/mod/sumdb/tlog
// checks the inclusion and consistency proofs (its hashing is RFC 6962's).
func TestCrossCheck(t *testing.T) {
	tl := newTestLog(t, nil)
	v, err := note.NewVerifier(tl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		size int64
		root tlog.Hash
	}
	var checkpoints []seen
	const n = 23
	for i := 1; i <= n; i++ {
		if code, r := tl.add(entryBytes(i), ""); code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
		raw := tl.checkpoint().Note
		if _, err := note.Open(raw, note.VerifierList(v)); err != nil {
			t.Fatalf("sumdb/note does not verify the checkpoint: %v\n%s", err, raw)
		}
		cp, _, _, err := flog.ParseCheckpoint(raw, tl.log.Origin(), v)
		if err != nil {
			t.Fatalf("formats/log does not parse the checkpoint: %v\n%s", err, raw)
		}
		checkpoints = append(checkpoints, seen{int64(cp.Size), tlog.Hash(cp.Hash)})
	}
	last := checkpoints[len(checkpoints)-1]
	if last.size != n {
		t.Fatalf("size %d, want %d", last.size, n)
	}
	for i := 1; i <= n; i++ {
		var p struct {
			Index  int64
			Hashes [][]byte
		}
		tl.getJSON(fmt.Sprintf("/v1/proof/inclusion?leaf_hash=%x&tree_size=%d", leafHash(entryBytes(i)), n), &p)
		if p.Index != int64(i-1) {
			t.Errorf("entry %d at index %d", i, p.Index)
		}
		if err := tlog.CheckRecord(hashes(p.Hashes), n, last.root, p.Index, tlog.RecordHash(entryBytes(i))); err != nil {
			t.Errorf("sumdb/tlog rejects the inclusion proof of entry %d: %v", i, err)
		}
	}
	for _, old := range checkpoints[:len(checkpoints)-1] {
		var p struct{ Hashes [][]byte }
		tl.getJSON(fmt.Sprintf("/v1/proof/consistency?first=%d&second=%d", old.size, n), &p)
		if err := tlog.CheckTree(hashes(p.Hashes), n, last.root, old.size, old.root); err != nil {
			t.Errorf("sumdb/tlog rejects the consistency proof %d→%d: %v", old.size, n, err)
		}
	}
	// Sizes that were never published: their roots are derived by the log
	// and proven consistent with the latest checkpoint. Check the proofs
	// against roots computed here from the entries.
	var all [][]byte
	for i := 1; i <= n+6; i++ {
		all = append(all, entryBytes(i))
		if i > n && i < n+6 {
			if code, r := tl.add(entryBytes(i), "?wait=false"); code != 202 {
				t.Fatalf("add: %d %s", code, r.Error)
			}
		}
	}
	if code, r := tl.add(entryBytes(n+6), ""); code != 200 {
		t.Fatalf("add: %d %s", code, r.Error)
	}
	for size := int64(n + 1); size <= n+6; size++ {
		root := mth(all[:size])
		var p struct {
			Index  int64
			Hashes [][]byte
		}
		tl.getJSON(fmt.Sprintf("/v1/proof/inclusion?index=%d&tree_size=%d", size-1, size), &p)
		if err := tlog.CheckRecord(hashes(p.Hashes), size, root, size-1, tlog.RecordHash(all[size-1])); err != nil {
			t.Errorf("inclusion of the last entry at size %d: %v", size, err)
		}
		var c struct{ Hashes [][]byte }
		tl.getJSON(fmt.Sprintf("/v1/proof/consistency?first=%d&second=%d", n, size), &c)
		if err := tlog.CheckTree(hashes(c.Hashes), size, root, n, last.root); err != nil {
			t.Errorf("consistency %d→%d: %v", n, size, err)
		}
	}
}

// mth is the RFC 6962 Merkle tree hash of entries, computed independently
// of the log.
func mth(entries [][]byte) tlog.Hash {
	switch len(entries) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return tlog.RecordHash(entries[0])
	}
	k := 1
	for k*2 < len(entries) {
		k *= 2
	}
	return tlog.NodeHash(mth(entries[:k]), mth(entries[k:]))
}

func hashes(b [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(b))
	for i, h := range b {
		out[i] = tlog.Hash(h)
	}
	return out
}
