package sqlite

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The identity index maps (tree, identity hash) to a leaf's row. It is how
// duplicates are found, and it is the one structure of this provider that a
// new leaf changes at a random place: a b-tree keyed by hash gets one random
// page per inserted key, and that page is written to the WAL with each
// commit and later into the file. With a group commit of 50 leaves that was
// 50 pages, most of the commit's writes.
//
// So the index is kept in two parts. leaf_identities, a table in the file,
// holds every leaf up to identity_merge.merged_rowid (leaf_data's rowids
// only grow), and may hold some above it. The others, the leaves written
// since, are held in memory, in identities; Open rebuilds that part from
// leaf_data's rows above merged_rowid that the table does not hold. Once
// identityMergeRows leaves are pending, a merge inserts them into the table
// in key order, a step of at least identityMergeChunk keys per write
// transaction (mergeStep, taken by the group commit after each of its
// transactions and by identityMerger), and moves merged_rowid past them
// with the last: a page of the table is then written once for the many
// keys that fall on it. A lookup checks memory
// first, then the table; a writer checks its own transaction's leaves too.
// Dedup stays exact: every stored leaf is in one of the parts, and merges
// and the commits that fill the memory part are serialized by the write
// lock.

// identityMergeRows is how many pending leaves start a merge by default. The
// memory they hold is about 100 bytes a leaf.
const identityMergeRows = 1 << 15

// identityMergeChunk is how many keys one merge transaction inserts at
// least, so that appends wait for one chunk rather than for the whole
// merge: in a table of 10,000,000 keys, where each key of a chunk falls on
// a page of its own, 4,096 keys a chunk gave a p99 of 710 ms at 256
// waiting submitters and 1,024 gave 439 ms (docs/performance.md).
const identityMergeChunk = 1024

// identityRowsPerInsert is how many keys one INSERT of a merge carries.
const identityRowsPerInsert = 256

const (
	selectIdentitySQL = `SELECT leaf_rowid FROM leaf_identities WHERE tree_id = ? AND leaf_identity_hash = ?`
	selectPendingSQL  = `SELECT tree_id, leaf_identity_hash, rowid FROM leaf_data AS d
		WHERE rowid > (SELECT merged_rowid FROM identity_merge WHERE id = 0)
		AND NOT EXISTS (SELECT 1 FROM leaf_identities AS i WHERE i.tree_id = d.tree_id AND i.leaf_identity_hash = d.leaf_identity_hash)`
	setMergedSQL     = `UPDATE identity_merge SET merged_rowid = ? WHERE id = 0`
	advanceMergedSQL = `UPDATE identity_merge SET merged_rowid = (SELECT MAX(merged_rowid, COALESCE(MAX(rowid), 0)) FROM leaf_data) WHERE id = 0`
	// lowerMergedSQL follows a deletion of leaves: a rowid above the
	// highest one left may be used again, and must count as pending.
	lowerMergedSQL = `UPDATE identity_merge SET merged_rowid = MIN(merged_rowid, (SELECT COALESCE(MAX(rowid), 0) FROM leaf_data)) WHERE id = 0`
)

// identityKey names a leaf by its tree and identity hash.
type identityKey struct {
	tree int64
	hash [hashSize]byte
}

func keyOf(tree int64, hash []byte) (identityKey, bool) {
	if len(hash) != hashSize {
		return identityKey{}, false
	}
	return identityKey{tree, [hashSize]byte(hash)}, true
}

// identities is the part of the identity index that is not in
// leaf_identities: leaf rowids by key. cur holds the committed leaves not
// yet merged, and prev those that the merge running or last run moved to
// the table, so that a reader whose snapshot is older than that merge
// still finds them. tx, dropped and merged belong to the open write
// transaction, and only the holder of the write lock uses them; mu guards
// cur and prev.
type identities struct {
	mu   sync.RWMutex
	cur  map[identityKey]int64
	prev map[identityKey]int64

	filter *identityFilter // of the table's keys

	pass   *mergePass  // the merge under way (write lock)
	passOn atomic.Bool // pass != nil, for a look without the lock

	tx      map[identityKey]int64
	dropped []int64       // trees whose leaves the open transaction deleted
	merged  []pendingLeaf // keys the open transaction inserted into the table
}

// mergePass is a merge under way: the keys it moves, in key order, how
// many are moved, and the highest rowid among them.
type mergePass struct {
	keys []pendingLeaf
	next int
	end  int64
}

// pendingLeaf is a key of the memory part and its leaf's rowid.
type pendingLeaf struct {
	identityKey
	rowid int64
}

// find returns the rowid of a committed leaf that is not (or only just)
// in leaf_identities.
func (ids *identities) find(k identityKey) (int64, bool) {
	ids.mu.RLock()
	defer ids.mu.RUnlock()
	if r, ok := ids.cur[k]; ok {
		return r, true
	}
	r, ok := ids.prev[k]
	return r, ok
}

// findWrite is find for the holder of the write lock: it also sees the
// open transaction's leaves, and needs no prev (the table is current).
func (ids *identities) findWrite(k identityKey) (int64, bool) {
	if r, ok := ids.tx[k]; ok {
		return r, true
	}
	ids.mu.RLock()
	defer ids.mu.RUnlock()
	r, ok := ids.cur[k]
	return r, ok
}

// add records a leaf written by the open transaction.
func (ids *identities) add(k identityKey, rowid int64) {
	if ids.tx == nil {
		ids.tx = make(map[identityKey]int64)
	}
	ids.tx[k] = rowid
}

// committed applies the open transaction once its commit is durable, and
// returns how many leaves are pending.
func (ids *identities) committed() int {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if ids.cur == nil {
		ids.cur = make(map[identityKey]int64, len(ids.tx))
	}
	if len(ids.merged) > 0 {
		ids.filter.add(ids.merged)
		if p := ids.pass; p != nil {
			if p.next += len(ids.merged); p.next == len(p.keys) {
				ids.setPass(nil)
			}
		}
	}
	for _, p := range ids.merged {
		delete(ids.cur, p.identityKey)
		if ids.prev == nil {
			ids.prev = make(map[identityKey]int64)
		}
		ids.prev[p.identityKey] = p.rowid
	}
	for k, r := range ids.tx {
		ids.cur[k] = r
	}
	if len(ids.dropped) > 0 {
		// The merge under way may hold keys of the deleted leaves: end
		// it, and leave the keys not moved to the next.
		ids.setPass(nil)
	}
	for _, tree := range ids.dropped {
		for _, m := range []map[identityKey]int64{ids.cur, ids.prev} {
			for k := range m {
				if k.tree == tree {
					delete(m, k)
				}
			}
		}
	}
	ids.tx, ids.dropped, ids.merged = nil, nil, nil
	return len(ids.cur)
}

// rolledBack forgets the open transaction, and the merge under way if the
// transaction was one of its steps.
func (ids *identities) rolledBack() {
	if len(ids.merged) > 0 {
		ids.setPass(nil)
	}
	ids.tx, ids.dropped, ids.merged = nil, nil, nil
}

func (ids *identities) setPass(p *mergePass) {
	ids.pass = p
	ids.passOn.Store(p != nil)
}

// startMerge returns the pending keys in key order, and forgets the keys
// the last merge moved. The caller holds the write lock.
func (ids *identities) startMerge() []pendingLeaf {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	ids.prev = nil
	keys := make([]pendingLeaf, 0, len(ids.cur))
	for k, r := range ids.cur {
		keys = append(keys, pendingLeaf{k, r})
	}
	slices.SortFunc(keys, func(a, b pendingLeaf) int {
		if c := cmp.Compare(a.tree, b.tree); c != 0 {
			return c
		}
		return bytes.Compare(a.hash[:], b.hash[:])
	})
	return keys
}

// pending is how many committed leaves are not yet in leaf_identities.
func (ids *identities) pending() int {
	ids.mu.RLock()
	defer ids.mu.RUnlock()
	return len(ids.cur)
}

// loadIdentities fills the memory part of the index from the leaves above
// merged_rowid, at Open.
func (s *Storage) loadIdentities(ctx context.Context) error {
	rows, err := s.wconn.QueryContext(ctx, selectPendingSQL)
	if err != nil {
		return s.openErr(err)
	}
	defer rows.Close()
	cur := make(map[identityKey]int64)
	for rows.Next() {
		var (
			tree, rowid int64
			hash        []byte
		)
		if err := rows.Scan(&tree, &hash, &rowid); err != nil {
			return s.openErr(err)
		}
		k, ok := keyOf(tree, hash)
		if !ok {
			return fmt.Errorf("%w: leaf row %d has a %d-byte identity hash", ErrCorrupt, rowid, len(hash))
		}
		if _, dup := cur[k]; dup {
			return fmt.Errorf("%w: tree %d holds identity hash %x twice", ErrCorrupt, tree, hash)
		}
		cur[k] = rowid
	}
	if err := rows.Err(); err != nil {
		return s.openErr(err)
	}
	s.ids.cur = cur
	var merged int64
	if err := s.wconn.QueryRowContext(ctx, `SELECT merged_rowid FROM identity_merge WHERE id = 0`).Scan(&merged); err != nil {
		return s.openErr(err)
	}
	s.filter.want(2 * merged) // leaf rowids bound the table's keys
	return nil
}

// storedLeaf returns the rowid of the leaf of tree whose identity hash is
// id, if one is stored: in memory, else in leaf_identities read with q.
// write says that q is the write connection of the open write transaction.
func (s *Storage) storedLeaf(ctx context.Context, q *stmtConn, write bool, tree int64, id []byte) (int64, bool, error) {
	k, ok := keyOf(tree, id)
	if !ok {
		return 0, false, nil
	}
	var rowid int64
	if write {
		rowid, ok = s.ids.findWrite(k)
	} else {
		rowid, ok = s.ids.find(k)
	}
	if ok {
		return rowid, true, nil
	}
	err := q.queryRow(ctx, selectIdentitySQL, []any{tree, id}, &rowid)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	return rowid, true, nil
}

// lookupStored reads from leaf_identities the rowids of the leaves whose
// identity hashes the requests carry and the table holds: one query for
// many keys, in the open write transaction (which does not change the
// table), and none for the keys the filter knows the table lacks. The
// memory part is not consulted.
func (s *Storage) lookupStored(ctx context.Context, reqs []*queueReq) (map[identityKey]int64, error) {
	byTree := make(map[int64][]any)
	for _, r := range reqs {
		for _, l := range r.leaves {
			if k, ok := keyOf(r.treeID(), l.LeafIdentityHash); ok {
				if !s.filter.absent(k) {
					byTree[k.tree] = append(byTree[k.tree], l.LeafIdentityHash)
				}
			}
		}
	}
	stored := make(map[identityKey]int64)
	for tree, hashes := range byTree {
		for len(hashes) > 0 {
			n := min(len(hashes), identityRowsPerInsert)
			q := selectIdentitiesSQL(n)
			var rows *sql.Rows
			var err error
			args := append([]any{tree}, hashes[:n]...)
			if n == identityRowsPerInsert {
				rows, err = s.w.query(ctx, q, args...)
			} else {
				rows, err = s.wconn.QueryContext(ctx, q, args...) // not kept prepared: its size varies
			}
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var h []byte
				var rowid int64
				if err := rows.Scan(&h, &rowid); err != nil {
					rows.Close()
					return nil, err
				}
				if k, ok := keyOf(tree, h); ok {
					stored[k] = rowid
				}
			}
			if err := rows.Close(); err != nil {
				return nil, err
			}
			hashes = hashes[n:]
		}
	}
	return stored, nil
}

// selectIdentitiesSQL looks up n identity hashes of one tree.
func selectIdentitiesSQL(n int) string {
	return `SELECT leaf_identity_hash, leaf_rowid FROM leaf_identities WHERE tree_id = ? AND leaf_identity_hash IN (` + repeatJoin("?", n) + `)`
}

// mergeDue reports whether a merge is under way or should start.
func (s *Storage) mergeDue() bool {
	return s.ids.passOn.Load() || s.ids.pending() >= s.cfg.identityMergeRows
}

// identityMerger takes merges forward while they are due, a step of
// identityMergeChunk keys at a time, when a commit wakes it. The group
// commit also takes a step after each of its transactions, so that a
// stream of appends cannot outrun the merges.
func (s *Storage) identityMerger() {
	defer s.wg.Done()
	for {
		select {
		case <-s.closing:
			return
		case <-s.mergeWake:
		}
		for s.mergeDue() {
			if _, err := s.mergeStep(context.Background(), s.cfg.identityMergeChunk, s.cfg.identityMergeRows); err != nil {
				if s.closed.Load() {
					return
				}
				s.log.Error("sqlite storage: merging the identity index failed; duplicates are still found, from memory", "path", s.path, "err", err)
				select {
				case <-s.closing:
					return
				case <-time.After(time.Second):
				}
			}
		}
	}
}

// wakeMerger asks identityMerger to look at the pending identities.
func (s *Storage) wakeMerger() {
	select {
	case s.mergeWake <- struct{}{}:
	default:
	}
}

// mergeIdentities moves every pending identity into leaf_identities (the
// merge under way first, if any), a step of identityMergeChunk keys at a
// time.
func (s *Storage) mergeIdentities(ctx context.Context) error {
	for {
		more, err := s.mergeStep(ctx, s.cfg.identityMergeChunk, 1)
		if err != nil || (!more && s.ids.pending() == 0) {
			return err
		}
	}
}

// mergeStep moves the next n keys of the merge under way into
// leaf_identities, in one write transaction, and with the last of them
// sets merged_rowid past them all; with no merge under way it starts one
// if at least threshold keys are pending. A tree deleted since the merge
// began has ended it (committed): its keys not moved stay pending, for the
// next. It reports whether a merge is under way after the step.
func (s *Storage) mergeStep(ctx context.Context, n, threshold int) (_ bool, err error) {
	defer s.markCorrupt(&err)
	if err := s.beginWrite(ctx); err != nil {
		return false, err
	}
	ids := &s.ids
	if ids.pass == nil {
		if ids.pending() < threshold {
			s.rollbackWrite()
			return false, nil
		}
		p := &mergePass{keys: ids.startMerge()}
		for _, k := range p.keys {
			p.end = max(p.end, k.rowid)
		}
		ids.setPass(p)
	}
	p := ids.pass
	keys := p.keys[p.next:min(p.next+n, len(p.keys))]
	last := p.next+len(keys) == len(p.keys)
	fail := func(err error) (bool, error) {
		s.rollbackWrite()
		return false, fmt.Errorf("sqlite storage: merging identities: %w", err)
	}
	for len(keys) > 0 {
		k := min(len(keys), identityRowsPerInsert)
		args := make([]any, 0, 3*k)
		for _, key := range keys[:k] {
			args = append(args, key.tree, key.hash[:], key.rowid)
		}
		q := `INSERT INTO leaf_identities (tree_id, leaf_identity_hash, leaf_rowid) VALUES ` + repeatJoin("(?, ?, ?)", k)
		var err error
		if k == identityRowsPerInsert {
			_, err = s.w.exec(ctx, q, args...)
		} else {
			_, err = s.wconn.ExecContext(ctx, q, args...) // not kept prepared: its size varies
		}
		if err != nil {
			return fail(err)
		}
		ids.merged = append(ids.merged, keys[:k]...)
		keys = keys[k:]
	}
	if last {
		if _, err := s.w.exec(ctx, setMergedSQL, p.end); err != nil {
			return fail(err)
		}
	}
	err = s.commitWrite() // moves the merge on, or ends it
	return ids.passOn.Load(), err
}

// repeatJoin returns n copies of s joined by ", ": the placeholders of
// multi-row statements.
func repeatJoin(s string, n int) string {
	return strings.TrimSuffix(strings.Repeat(s+", ", n), ", ")
}
