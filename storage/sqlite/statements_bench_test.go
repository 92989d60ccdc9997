package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/trillian"
	stestonly "github.com/google/trillian/storage/testonly"
)

// BenchmarkInsertStatements measures what writing a queued leaf's row
// costs in SQLite itself (the schema of schema.sql, the default tenant's
// leaves, no fsync), and what multi-row statements would save: one INSERT
// per leaf, as QueueLeaves does, against one INSERT ... RETURNING of 100
// rows, in transactions of 100 leaves. The answer decides whether
// statement overhead or the B-tree work is the floor of queueing
// (docs/performance.md).
func BenchmarkInsertStatements(b *testing.B) {
	const batch = 100
	open := func(b *testing.B) *sql.Conn {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "bench.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		c, err := db.Conn(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		if _, err := c.ExecContext(b.Context(), schemaSQL); err != nil {
			b.Fatal(err)
		}
		return c
	}
	exec := func(b *testing.B, c *sql.Conn, q string) {
		if _, err := c.ExecContext(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch)/1000, "µs/leaf")
	}
	b.Run("one-per-leaf", func(b *testing.B) {
		c := open(b)
		n := uint64(0)
		for b.Loop() {
			exec(b, c, "BEGIN")
			for range batch {
				n++
				l := newLeaf(1, n)
				if _, err := c.ExecContext(b.Context(), insertLeafDataSQL, 1, l.LeafIdentityHash, l.MerkleLeafHash, l.LeafValue, nil, int64(n), nil, nil); err != nil {
					b.Fatal(err)
				}
			}
			exec(b, c, "COMMIT")
		}
		report(b)
	})
	b.Run("multi-row", func(b *testing.B) {
		c := open(b)
		rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?), ", batch), ", ")
		q := strings.Replace(insertLeafDataSQL, "(?, ?, ?, ?, ?, ?, ?, ?)", rows, 1) + " RETURNING leaf_identity_hash"
		n := uint64(0)
		for b.Loop() {
			exec(b, c, "BEGIN")
			args := make([]any, 0, 8*batch)
			for range batch {
				n++
				l := newLeaf(1, n)
				args = append(args, 1, l.LeafIdentityHash, l.MerkleLeafHash, l.LeafValue, nil, int64(n), nil, nil)
			}
			rows, err := c.QueryContext(b.Context(), q, args...)
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for rows.Next() {
				got++
			}
			if err := rows.Close(); err != nil || got != batch {
				b.Fatalf("%d rows inserted, %v", got, err)
			}
			exec(b, c, "COMMIT")
		}
		report(b)
	})
}

// BenchmarkAppendIdentityIndex measures what the identity-hash index (the
// durable dedup of every leaf) costs an append: AppendLeaves of 200-leaf
// calls, each a durable group commit, to a PREORDERED_LOG tree that
// already holds 200,000 leaves.
//   - index-in-commit: an index of leaf_data by identity hash, as schema
//     version 2 had, written by each commit. Each new leaf puts its key on
//     a random page of it, so each dirties a page of its own that the
//     commit writes to the WAL and the checkpoint writes again.
//   - merged: the index as it is (identity.go): pending keys in memory,
//     merged into leaf_identities in key order every identityMergeRows
//     leaves; the merges in the timed part are timed too.
//   - never-merged: no merge in the timed part, the floor of what the
//     lookups cost.
func BenchmarkAppendIdentityIndex(b *testing.B) {
	const fill, batch = 200_000, 200
	for _, variant := range []string{"index-in-commit", "merged", "never-merged"} {
		b.Run(variant, func(b *testing.B) {
			cfg := Config{}
			if variant != "merged" {
				cfg.identityMergeRows = fill + 1_000_000
			}
			s := openTest(b, cfg)
			if variant == "index-in-commit" {
				if _, err := s.wconn.ExecContext(b.Context(), "CREATE UNIQUE INDEX leaf_data_identity ON leaf_data (tree_id, leaf_identity_hash)"); err != nil {
					b.Fatal(err)
				}
			}
			tree := initializedTree(b, s, stestonly.PreorderedLogTree)
			n := uint64(0)
			appendN := func(k int) {
				leaves := make([]*trillian.LogLeaf, k)
				for i := range leaves {
					n++
					leaves[i] = newLeaf(7, n)
				}
				if _, err := s.AppendLeaves(b.Context(), tree, leaves, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			for range fill / 1000 {
				appendN(1000)
			}
			b.ResetTimer()
			for b.Loop() {
				appendN(batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch)/1000, "µs/leaf")
		})
	}
}
