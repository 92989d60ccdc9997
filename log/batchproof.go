package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/trillian"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/evidentlog/evident/checkpoint"
)

// batchProver builds the inclusion proofs of every leaf that one new
// checkpoint covers beyond the previous one, from the compact range of the
// previous tree and the new leaves, with no call to Trillian per leaf. (One
// call per publication fetches the previous tree's right edge.)
//
// Every node the proofs of leaves in [old, new) need is either a node of the
// compact range of [0, old) or a perfect subtree that ends in [old, new), and
// appending the new leaves to the compact range visits each of the latter.
type batchProver struct {
	size  uint64
	nodes map[compact.NodeID][]byte
}

var rangeFactory = compact.RangeFactory{Hash: checkpoint.Hasher.HashChildren}

// newBatchProver returns a prover for the tree made of edge, the compact
// range [0, old) of a verified tree, and the hashes of the leaves that
// follow it, and the new tree's compact range. It fails unless they hash to
// exactly root. edge is not changed.
func newBatchProver(edge *compact.Range, leaves [][32]byte, root [32]byte) (*batchProver, *compact.Range, error) {
	old := edge.End()
	b := &batchProver{size: old + uint64(len(leaves)), nodes: make(map[compact.NodeID][]byte, 2*len(leaves)+64)}
	hashes := edge.Hashes()
	for i, id := range compact.RangeNodes(0, old, nil) {
		b.nodes[id] = hashes[i]
	}
	r, err := rangeFactory.NewRange(0, old, slices.Clone(hashes))
	if err != nil {
		return nil, nil, err
	}
	visit := func(id compact.NodeID, h []byte) { b.nodes[id] = h }
	for _, h := range leaves {
		if err := r.Append(h[:], visit); err != nil {
			return nil, nil, err
		}
	}
	got, err := r.GetRootHash(nil)
	if err != nil {
		return nil, nil, err
	}
	if b.size == 0 {
		got = checkpoint.EmptyRoot[:]
	}
	if !bytes.Equal(got, root[:]) {
		return nil, nil, fmt.Errorf("new leaves %d..%d do not hash to the checkpoint's root: %w", old, b.size, errBadProof)
	}
	return b, r, nil
}

// inclusion returns the inclusion proof of leaf index in the new tree.
func (b *batchProver) inclusion(index uint64) ([][]byte, error) {
	n, err := proof.Inclusion(index, b.size)
	if err != nil {
		return nil, err
	}
	hashes := make([][]byte, len(n.IDs))
	for i, id := range n.IDs {
		if hashes[i] = b.nodes[id]; hashes[i] == nil {
			return nil, fmt.Errorf("no hash for node %+v of the proof of %d at %d", id, index, b.size)
		}
	}
	p, err := n.Rehash(hashes, checkpoint.Hasher.HashChildren)
	return nonNil(p), err
}

// rightEdge returns the compact range of the published tree old (the
// hashes of the perfect subtrees that make up [0, old.size), left to right).
// It derives them from the last leaf and its inclusion proof, and checks
// that they hash to old's root.
func (l *Log) rightEdge(ctx context.Context, old *published) (*compact.Range, error) {
	if old.size == 0 {
		return rangeFactory.NewEmptyRange(0), nil
	}
	r, err := l.cfg.Trillian.GetEntryAndProof(ctx, &trillian.GetEntryAndProofRequest{
		LogId: l.cfg.TreeID, LeafIndex: int64(old.size - 1), TreeSize: int64(old.size)})
	if err != nil {
		return nil, fmt.Errorf("entry and proof from Trillian: %w", err)
	}
	path := r.GetProof().GetHashes()
	n, err := proof.Inclusion(old.size-1, old.size)
	if err != nil {
		return nil, err
	}
	if _, begin, end := n.Ephem(); len(n.IDs) != len(path) || begin != end {
		return nil, fmt.Errorf("proof of the last leaf at %d has %d hashes: %w", old.size, len(path), errBadProof)
	}
	known := map[compact.NodeID][]byte{}
	for i, id := range n.IDs {
		known[id] = path[i]
	}
	// The last leaf and its left siblings make the lowest perfect subtree
	// of the range: hash up while the node is a right child.
	leaf := checkpoint.LeafHash(r.GetLeaf().GetLeafValue())
	id, h := compact.NewNodeID(0, old.size-1), leaf[:]
	known[id] = h
	for id.Index%2 == 1 {
		sib := known[id.Sibling()]
		if sib == nil {
			return nil, errors.New("right edge: missing sibling")
		}
		h = checkpoint.Hasher.HashChildren(sib, h)
		id = id.Parent()
		known[id] = h
	}
	ids := compact.RangeNodes(0, old.size, nil)
	edge := make([][]byte, len(ids))
	for i, id := range ids {
		if edge[i] = known[id]; edge[i] == nil {
			return nil, fmt.Errorf("right edge: no hash for node %+v", id)
		}
	}
	cr, err := rangeFactory.NewRange(0, old.size, edge)
	if err != nil {
		return nil, err
	}
	if root, err := cr.GetRootHash(nil); err != nil || !bytes.Equal(root, old.root[:]) {
		return nil, fmt.Errorf("right edge of size %d does not hash to its root: %w", old.size, errBadProof)
	}
	return cr, nil
}
