package log

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/trillian"

	"github.com/evidentlog/evident/checkpoint"
)

// TestBatchProver compares the proofs built from compact ranges with
// Trillian's own, for many pairs of old and new tree sizes.
func TestBatchProver(t *testing.T) {
	tl := newTestLog(t, nil)
	const n = 40
	for i := 1; i <= n; i++ {
		if code, r := tl.add(entryBytes(i), "?wait=false"); code != 202 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	waitFor(t, "all entries published", func() bool { return tl.checkpoint().Size == n })
	ctx := t.Context()
	var leaves [][32]byte
	for i := 1; i <= n; i++ {
		leaves = append(leaves, checkpoint.LeafHash(entryBytes(i)))
	}
	root := func(size uint64) [32]byte {
		r, err := tl.log.rootAt(ctx, size)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, sizes := range [][2]uint64{{0, 1}, {0, 40}, {1, 2}, {5, 6}, {6, 9}, {7, 8}, {8, 16}, {13, 40}, {31, 33}, {32, 40}, {39, 40}} {
		old, size := sizes[0], sizes[1]
		edge, err := tl.log.rightEdge(ctx, &published{size: old, root: root(old)})
		if err != nil {
			t.Fatalf("rightEdge(%d): %v", old, err)
		}
		b, next, err := newBatchProver(edge, leaves[old:size], root(size))
		if err != nil {
			t.Fatalf("newBatchProver(%d→%d): %v", old, size, err)
		}
		if edge.End() != old || next.End() != size {
			t.Errorf("newBatchProver(%d→%d): ranges end at %d and %d", old, size, edge.End(), next.End())
		}
		if want, err := tl.log.rightEdge(ctx, &published{size: size, root: root(size)}); err != nil || !want.Equal(next) {
			t.Errorf("newBatchProver(%d→%d): new range differs from the right edge read from Trillian (%v)", old, size, err)
		}
		for i := old; i < size; i++ {
			got, err := b.inclusion(i)
			if err != nil {
				t.Fatalf("inclusion(%d) at %d: %v", i, size, err)
			}
			var want [][]byte
			if size > 1 {
				r, err := tl.be.Log.GetInclusionProof(ctx, &trillian.GetInclusionProofRequest{LogId: tl.be.TreeID, LeafIndex: int64(i), TreeSize: int64(size)})
				if err != nil {
					t.Fatal(err)
				}
				want = r.Proof.Hashes
			}
			// The publisher hands these out without verifying them
			// (found.proven): each must verify against the new root.
			if err := checkpoint.VerifyInclusion(i, size, leaves[i], got, root(size)); err != nil {
				t.Errorf("proof of %d at %d (built after %d) does not verify: %v", i, size, old, err)
			}
			if diff := cmp.Diff(nonNil(want), got); diff != "" {
				t.Errorf("proof of %d at %d (built after %d) differs from Trillian's (-want +got):\n%s", i, size, old, diff)
			}
		}
	}
	// Leaves that do not hash to the root are refused.
	edge, err := tl.log.rightEdge(ctx, &published{size: 5, root: root(5)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := newBatchProver(edge, leaves[6:9], root(8)); err == nil {
		t.Error("newBatchProver accepted the wrong leaves")
	}
}
