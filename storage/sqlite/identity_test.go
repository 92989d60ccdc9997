package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/storage"
	stestonly "github.com/google/trillian/storage/testonly"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// identityState reads how many identities the table part of the index
// holds and how far it reaches.
func identityState(t *testing.T, s *Storage) (rows, merged int64) {
	t.Helper()
	if err := s.rdb.QueryRow(`SELECT (SELECT count(*) FROM leaf_identities), merged_rowid FROM identity_merge`).Scan(&rows, &merged); err != nil {
		t.Fatal(err)
	}
	return rows, merged
}

// checkMergedMark checks that the table holds every leaf up to
// merged_rowid.
func checkMergedMark(t *testing.T, s *Storage) {
	t.Helper()
	var missing int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM leaf_data AS d WHERE rowid <= (SELECT merged_rowid FROM identity_merge)
		AND NOT EXISTS (SELECT 1 FROM leaf_identities AS i WHERE i.tree_id = d.tree_id AND i.leaf_identity_hash = d.leaf_identity_hash AND i.leaf_rowid = d.rowid)`).Scan(&missing); err != nil {
		t.Fatal(err)
	}
	if missing > 0 {
		t.Errorf("%d leaves at or below merged_rowid are not in leaf_identities", missing)
	}
}

// waitFilter waits until the identity filter answers.
func waitFilter(t *testing.T, s *Storage) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s.filter.cur.Load() != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the identity filter was not built")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitMerged waits until fewer than limit identities are pending.
func waitMerged(t *testing.T, s *Storage, limit int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.ids.pending() >= limit {
		if time.Now().After(deadline) {
			t.Fatalf("%d identities still pending, want fewer than %d", s.ids.pending(), limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// someLeaves returns n leaves of seed.
func someLeaves(seed uint64, n int) []*trillian.LogLeaf {
	var leaves []*trillian.LogLeaf
	for i := range n {
		leaves = append(leaves, newLeaf(seed, uint64(i)))
	}
	return leaves
}

// appendAll appends leaves and returns each one's status code and index.
func appendAll(t *testing.T, s *Storage, tree *trillian.Tree, leaves []*trillian.LogLeaf) ([]codes.Code, []int64) {
	t.Helper()
	res, err := s.AppendLeaves(t.Context(), tree, leaves, time.Now())
	if err != nil {
		t.Fatalf("AppendLeaves: %v", err)
	}
	var got []codes.Code
	var idx []int64
	for _, r := range res {
		got = append(got, status.FromProto(r.GetStatus()).Code())
		idx = append(idx, r.Leaf.LeafIndex)
	}
	return got, idx
}

// again returns copies of leaves with new values and the same identity
// hashes: duplicates, by Trillian's rule.
func again(leaves []*trillian.LogLeaf) []*trillian.LogLeaf {
	var out []*trillian.LogLeaf
	for i, l := range leaves {
		c := newLeaf(1<<62, uint64(i))
		c.LeafIdentityHash = l.LeafIdentityHash
		out = append(out, c)
	}
	return out
}

// checkDuplicates writes leaves again and requires each to be answered as
// a duplicate at its first index.
func checkDuplicates(t *testing.T, s *Storage, tree *trillian.Tree, leaves []*trillian.LogLeaf, first []int64, when string) {
	t.Helper()
	codes_, idx := appendAll(t, s, tree, again(leaves))
	bad := 0
	for i := range leaves {
		if codes_[i] != codes.AlreadyExists || idx[i] != first[i] {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d leaves written again were not duplicates at their first index", when, bad, len(leaves))
	}
}

// TestIdentityIndexParts writes leaves across several merges of the
// identity index and checks that duplicates and lookups by hash find every
// leaf, whether its identity is in the table or still in memory, also
// after the file is closed and opened again (which rebuilds the memory
// part from the rows above merged_rowid).
func TestIdentityIndexParts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trillian.db")
	cfg := Config{identityMergeRows: 100}
	s, err := Open(t.Context(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFilter(t, s) // so that the merges below must feed it
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	var leaves []*trillian.LogLeaf
	var first []int64
	for c := range 7 {
		var call []*trillian.LogLeaf
		for i := range 50 {
			call = append(call, newLeaf(1, uint64(c*50+i)))
		}
		got, idx := appendAll(t, s, tree, call)
		for i, code := range got {
			if code != codes.OK {
				t.Fatalf("leaf %d: %v", c*50+i, code)
			}
		}
		leaves, first = append(leaves, call...), append(first, idx...)
	}
	waitMerged(t, s, 100)
	rows, merged := identityState(t, s)
	pending := s.ids.pending()
	if rows < 300 || int(rows)+pending != 350 || merged != rows {
		t.Fatalf("table holds %d identities up to row %d with %d pending; want at least 300, 350 in all", rows, merged, pending)
	}
	checkMergedMark(t, s)
	checkDuplicates(t, s, tree, leaves, first, "before reopening")
	checkByHash(t, s, tree, leaves, first)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(t.Context(), path, Config{identityMergeRows: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFilter(t, s) // built from the table
	if got := s.ids.pending(); got != pending {
		t.Errorf("reopened with %d identities pending, want %d", got, pending)
	}
	checkDuplicates(t, s, tree, leaves, first, "after reopening")
	checkByHash(t, s, tree, leaves, first)
	if got, _ := appendAll(t, s, tree, []*trillian.LogLeaf{newLeaf(2, 0)}); got[0] != codes.OK {
		t.Errorf("a new leaf after reopening: %v", got[0])
	}
}

// checkByHash requires GetLeavesByHash to find each leaf at its index.
func checkByHash(t *testing.T, s *Storage, tree *trillian.Tree, leaves []*trillian.LogLeaf, first []int64) {
	t.Helper()
	tx, err := s.LogStorage().SnapshotForTree(t.Context(), tree)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	missing := 0
	for i, l := range leaves {
		got, err := tx.GetLeavesByHash(t.Context(), [][]byte{l.MerkleLeafHash}, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].LeafIndex != first[i] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("GetLeavesByHash missed %d of %d leaves", missing, len(leaves))
	}
}

// TestIdentityIndexOldSnapshot reads by hash in a snapshot taken before a
// merge moved the leaves' identities into the table: the snapshot cannot
// see the table's new rows, so the lookup must still find them in memory.
func TestIdentityIndexOldSnapshot(t *testing.T) {
	s := openTest(t, Config{identityMergeRows: 1 << 20})
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	leaves := someLeaves(3, 10)
	_, first := appendAll(t, s, tree, leaves)
	tx, err := s.LogStorage().SnapshotForTree(t.Context(), tree)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := s.mergeIdentities(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rows, _ := identityState(t, s); rows != 10 || s.ids.pending() != 0 {
		t.Fatalf("after the merge the table holds %d identities and %d are pending; want 10 and 0", rows, s.ids.pending())
	}
	for i, l := range leaves {
		got, err := tx.GetLeavesByHash(t.Context(), [][]byte{l.MerkleLeafHash}, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].LeafIndex != first[i] {
			t.Errorf("leaf %d in the older snapshot: got %v", i, got)
		}
	}
}

// TestIdentityIndexHardDelete deletes the tree holding the highest rows, so
// that SQLite gives the next leaves rowids below the merged mark again, and
// checks that those leaves still count as pending after a reopen.
func TestIdentityIndexHardDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trillian.db")
	cfg := Config{identityMergeRows: 1 << 20}
	s, err := Open(t.Context(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	keep := initializedTree(t, s, stestonly.PreorderedLogTree)
	drop := initializedTree(t, s, stestonly.PreorderedLogTree)
	kept := someLeaves(4, 30)
	_, keptIdx := appendAll(t, s, keep, kept)
	dropped := someLeaves(5, 50)
	appendAll(t, s, drop, dropped)
	if err := s.mergeIdentities(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.SoftDeleteTree(t.Context(), s.AdminStorage(), drop.TreeId); err != nil {
		t.Fatal(err)
	}
	if err := storage.HardDeleteTree(t.Context(), s.AdminStorage(), drop.TreeId); err != nil {
		t.Fatal(err)
	}
	if rows, merged := identityState(t, s); rows != 30 || merged != 30 {
		t.Errorf("after the delete the table holds %d identities up to row %d, want 30 and 30", rows, merged)
	}
	later := someLeaves(6, 5)
	_, laterIdx := appendAll(t, s, keep, later)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(t.Context(), path, cfg); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkDuplicates(t, s, keep, append(kept, later...), append(keptIdx, laterIdx...), "after reopening")
	// The deleted tree's leaves are gone from both parts.
	tree2 := initializedTree(t, s, stestonly.PreorderedLogTree)
	if got, _ := appendAll(t, s, tree2, dropped[:1]); got[0] != codes.OK {
		t.Errorf("a leaf of the deleted tree in a new tree: %v", got[0])
	}
}

// TestMigrateSchema2 opens a file of schema version 2, whose identity index
// is an index of leaf_data, and checks that Open moves it into
// leaf_identities: every stored leaf is still found as a duplicate.
func TestMigrateSchema2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trillian.db")
	s, err := Open(t.Context(), path, Config{identityMergeRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	leaves := someLeaves(7, 250)
	_, first := appendAll(t, s, tree, leaves)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it a version 2 file, as the previous release wrote it.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE UNIQUE INDEX leaf_data_identity ON leaf_data (tree_id, leaf_identity_hash)`,
		`DROP TABLE leaf_identities`,
		`DROP TABLE identity_merge`,
		`PRAGMA user_version = 2`,
	} {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err = Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatalf("opening a version 2 file: %v", err)
	}
	defer s.Close()
	var version, oldIndex int64
	if err := s.rdb.QueryRow(`SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_schema WHERE name = 'leaf_data_identity')`).Scan(&version, &oldIndex); err != nil {
		t.Fatal(err)
	}
	if version != schemaVersion || oldIndex != 0 {
		t.Errorf("after the migration: version %d, old index present %d; want %d and 0", version, oldIndex, schemaVersion)
	}
	if rows, merged := identityState(t, s); rows != 250 || merged != 250 || s.ids.pending() != 0 {
		t.Errorf("after the migration the table holds %d identities up to row %d with %d pending; want 250, 250, 0", rows, merged, s.ids.pending())
	}
	checkDuplicates(t, s, tree, leaves, first, "after the migration")
	checkByHash(t, s, tree, leaves, first)
}

// TestIdentityIndexPartialMerge stops a merge after its first step, as a
// crash would, and checks that the file reopens with the keys of the other
// steps pending and every leaf found; then that a tree deleted during a
// merge ends it, so that none of its keys reach the table.
func TestIdentityIndexPartialMerge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trillian.db")
	cfg := Config{identityMergeRows: 1 << 20}
	s, err := Open(t.Context(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	leaves := someLeaves(8, 100)
	_, first := appendAll(t, s, tree, leaves)
	if more, err := s.mergeStep(t.Context(), 40, 1); err != nil || !more {
		t.Fatalf("first step: %v, %v; want a merge under way", more, err)
	}
	if rows, merged := identityState(t, s); rows != 40 || merged != 0 || s.ids.pending() != 60 {
		t.Fatalf("after one step the table holds %d identities up to row %d with %d pending; want 40, 0, 60", rows, merged, s.ids.pending())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(t.Context(), path, cfg); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.ids.pending(); got != 60 {
		t.Errorf("reopened with %d identities pending, want 60", got)
	}
	checkDuplicates(t, s, tree, leaves, first, "after reopening")
	checkByHash(t, s, tree, leaves, first)

	// A tree deleted in the middle of a merge ends it.
	other := initializedTree(t, s, stestonly.PreorderedLogTree)
	others := someLeaves(9, 60)
	appendAll(t, s, other, others)
	if more, err := s.mergeStep(t.Context(), 40, 1); err != nil || !more {
		t.Fatalf("first step of the second merge: %v, %v; want a merge under way", more, err)
	}
	if _, err := storage.SoftDeleteTree(t.Context(), s.AdminStorage(), other.TreeId); err != nil {
		t.Fatal(err)
	}
	if err := storage.HardDeleteTree(t.Context(), s.AdminStorage(), other.TreeId); err != nil {
		t.Fatal(err)
	}
	if err := s.mergeIdentities(t.Context()); err != nil {
		t.Fatal(err)
	}
	var stale int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM leaf_identities WHERE tree_id = ?`, other.TreeId).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if rows, _ := identityState(t, s); rows != 100 || stale != 0 || s.ids.pending() != 0 {
		t.Errorf("after the merges the table holds %d identities, %d of the deleted tree, with %d pending; want 100, 0, 0", rows, stale, s.ids.pending())
	}
	checkMergedMark(t, s)
	checkDuplicates(t, s, tree, leaves, first, "after the merges")
}

// TestIdentityIndexConcurrent appends from several goroutines, half of the
// leaves duplicates of another writer's, while merges run every few
// hundred leaves and readers look up leaves already acknowledged: every
// lookup finds its leaf, every leaf is stored once, and the table holds
// every leaf up to merged_rowid.
func TestIdentityIndexConcurrent(t *testing.T) {
	// A filter this small fills up and is built again, larger, while the
	// merges feed it.
	s := openTest(t, Config{identityMergeRows: 200, identityMergeChunk: 50, identityFilterKeys: 64})
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	const writers, calls, per = 4, 40, 10
	acked := make(chan *trillian.LogLeaf, writers*calls*per)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				var leaves []*trillian.LogLeaf
				for i := range per {
					leaves = append(leaves, newLeaf(uint64(w/2), uint64(c*per+i))) // writers 2k and 2k+1 write the same leaves
				}
				res, err := s.AppendLeaves(t.Context(), tree, leaves, time.Now())
				if err != nil {
					t.Errorf("AppendLeaves: %v", err)
					return
				}
				for i, r := range res {
					if code := status.FromProto(r.GetStatus()).Code(); code != codes.OK && code != codes.AlreadyExists {
						t.Errorf("leaf %d: %v", i, code)
					}
					acked <- leaves[i]
				}
			}
		})
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				case l := <-acked:
					tx, err := s.LogStorage().SnapshotForTree(t.Context(), tree)
					if err != nil {
						t.Error(err)
						return
					}
					got, err := tx.GetLeavesByHash(t.Context(), [][]byte{l.MerkleLeafHash}, false)
					tx.Close()
					if err != nil || len(got) != 1 {
						t.Errorf("GetLeavesByHash of an acknowledged leaf: %d leaves, %v", len(got), err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM leaf_data WHERE tree_id = ?`, tree.TreeId).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := writers / 2 * calls * per; n != want {
		t.Errorf("%d leaves stored, want %d", n, want)
	}
	if rows, _ := identityState(t, s); rows == 0 {
		t.Error("no merge ran")
	}
	checkMergedMark(t, s)
	f := s.filter.cur.Load()
	if f == nil || f.capacity <= 64 {
		t.Errorf("the identity filter was not built again larger (%v)", f)
	}
	// Every key in the table passes the filter.
	rows, err := s.rdb.Query(`SELECT tree_id, leaf_identity_hash FROM leaf_identities`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var tree int64
		var h []byte
		if err := rows.Scan(&tree, &h); err != nil {
			t.Fatal(err)
		}
		if k, _ := keyOf(tree, h); s.filter.absent(k) {
			t.Fatalf("the filter says the table lacks key %x, which it holds", h)
		}
	}
}

// TestIdentityFilterMergeDuringBuild merges keys after a build of the
// filter has read the table and before it answers: they must pass the new
// filter, or their duplicates would go unnoticed.
func TestIdentityFilterMergeDuringBuild(t *testing.T) {
	s := openTest(t, Config{identityMergeRows: 1 << 20})
	waitFilter(t, s)
	tree := initializedTree(t, s, stestonly.PreorderedLogTree)
	leaves := someLeaves(10, 20)
	_, first := appendAll(t, s, tree, leaves)
	filterScanned = func() {
		if err := s.mergeIdentities(t.Context()); err != nil {
			t.Error(err)
		}
	}
	defer func() { filterScanned = nil }()
	if err := s.buildFilter(64); err != nil {
		t.Fatal(err)
	}
	if rows, _ := identityState(t, s); rows != 20 || s.ids.pending() != 0 {
		t.Fatalf("the table holds %d identities with %d pending, want 20 and 0", rows, s.ids.pending())
	}
	checkDuplicates(t, s, tree, leaves, first, "after the build")
}

// TestBloom checks the filter's two promises: no key added is ever
// absent, and at capacity few keys not added pass.
func TestBloom(t *testing.T) {
	const n = 1 << 16
	b := newBloom(n)
	key := func(i int) identityKey {
		h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		return identityKey{tree: 7, hash: h}
	}
	for i := range n {
		b.add(key(i))
	}
	for i := range n {
		if !b.test(key(i)) {
			t.Fatalf("key %d was added but is absent", i)
		}
	}
	passed := 0
	for i := n; i < 2*n; i++ {
		if b.test(key(i)) {
			passed++
		}
	}
	rate := float64(passed) / n
	t.Logf("%.2f%% false positives at capacity", 100*rate)
	if rate > 0.02 {
		t.Errorf("%.2f%% false positives at capacity, want at most 2%%", 100*rate)
	}
}
