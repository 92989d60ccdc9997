package log

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/trillian"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// Everything served here is checked first: proofs from Trillian verify
// against roots that are signed (published checkpoints) or proven
// consistent with the latest published checkpoint.

// Checkpoint returns the latest published checkpoint, byte for byte as
// signed.
func (l *Log) Checkpoint() []byte { return l.pub.latest().note }

// PublishedCheckpoint returns the published checkpoint of the given size.
func (l *Log) PublishedCheckpoint(ctx context.Context, size uint64) ([]byte, error) {
	if size > l.pub.latest().size {
		return nil, ErrNotFound
	}
	c, err := l.cfg.State.Checkpoint(ctx, l.cfg.Origin, size)
	if err != nil {
		return nil, err
	}
	return c.Note, nil
}

// publishedAt returns the published checkpoint of the given size.
func (l *Log) publishedAt(ctx context.Context, size uint64) (*published, error) {
	cur := l.pub.latest()
	if size == cur.size {
		return cur, nil
	}
	if size > cur.size {
		return nil, badRequest(fmt.Sprintf("tree_size %d is beyond the published size %d", size, cur.size))
	}
	c, err := l.cfg.State.Checkpoint(ctx, l.cfg.Origin, size)
	if err != nil {
		return nil, err
	}
	s, err := checkpoint.Open(c.Note, l.verifier)
	if err != nil {
		return nil, fmt.Errorf("stored checkpoint of size %d: %w", size, err)
	}
	return &published{size: s.Size, root: s.Hash, note: c.Note}, nil
}

// publishedRoot returns the root of a published checkpoint.
func (l *Log) publishedRoot(ctx context.Context, size uint64) ([32]byte, error) {
	p, err := l.publishedAt(ctx, size)
	if err != nil {
		return [32]byte{}, err
	}
	return p.root, nil
}

// Receipt returns the receipt of the entry with the given leaf hash against
// the published checkpoint of size treeSize, or the latest when treeSize is
// nil.
func (l *Log) Receipt(ctx context.Context, leafHash [32]byte, treeSize *uint64) ([]byte, error) {
	cp := l.pub.latest()
	if treeSize != nil {
		var err error
		if cp, err = l.publishedAt(ctx, *treeSize); err != nil {
			return nil, err
		}
	}
	if cp.size == 0 {
		return nil, ErrNotFound
	}
	r, err := l.cfg.Trillian.GetInclusionProofByHash(ctx, &trillian.GetInclusionProofByHashRequest{
		LogId: l.cfg.TreeID, LeafHash: leafHash[:], TreeSize: int64(cp.size)})
	if err != nil {
		return nil, fmt.Errorf("inclusion proof by hash from Trillian: %w", err)
	}
	if len(r.Proof) == 0 {
		return nil, ErrNotFound
	}
	res := &AddResult{LeafHash: leafHash}
	if err := l.fillReceipt(ctx, res, found{index: uint64(r.Proof[0].LeafIndex), cp: cp, proof: nonNil(r.Proof[0].Hashes)}); err != nil {
		return nil, err
	}
	return res.Receipt, nil
}

// nonNil makes an empty proof non-nil, so that fillReceipt does not fetch it.
func nonNil(p [][]byte) [][]byte {
	if p == nil {
		return [][]byte{}
	}
	return p
}

// InclusionProof returns the index and inclusion proof of a leaf in the tree
// of size treeSize (at most the published size). The leaf is named by its
// hash, or by index when leafHash is nil.
func (l *Log) InclusionProof(ctx context.Context, leafHash *[32]byte, index, treeSize uint64) (uint64, [][]byte, error) {
	if cur := l.pub.latest(); treeSize == 0 || treeSize > cur.size {
		return 0, nil, badRequest(fmt.Sprintf("tree_size must be between 1 and the published size %d", cur.size))
	}
	var hash [32]byte
	var path [][]byte
	if leafHash != nil {
		hash = *leafHash
		r, err := l.cfg.Trillian.GetInclusionProofByHash(ctx, &trillian.GetInclusionProofByHashRequest{
			LogId: l.cfg.TreeID, LeafHash: hash[:], TreeSize: int64(treeSize)})
		if err != nil {
			return 0, nil, fmt.Errorf("inclusion proof by hash from Trillian: %w", err)
		}
		if len(r.Proof) == 0 {
			return 0, nil, ErrNotFound
		}
		index, path = uint64(r.Proof[0].LeafIndex), r.Proof[0].Hashes
	} else {
		if index >= treeSize {
			return 0, nil, badRequest(fmt.Sprintf("index %d is not below tree_size %d", index, treeSize))
		}
		r, err := l.cfg.Trillian.GetEntryAndProof(ctx, &trillian.GetEntryAndProofRequest{
			LogId: l.cfg.TreeID, LeafIndex: int64(index), TreeSize: int64(treeSize)})
		if err != nil {
			return 0, nil, fmt.Errorf("entry and proof from Trillian: %w", err)
		}
		hash = checkpoint.LeafHash(r.GetLeaf().GetLeafValue())
		path = r.GetProof().GetHashes()
	}
	root, err := l.rootAt(ctx, treeSize)
	if err != nil {
		return 0, nil, err
	}
	if err := checkpoint.VerifyInclusion(index, treeSize, hash, path, root); err != nil {
		return 0, nil, fmt.Errorf("Trillian's inclusion proof for %d at %d: %w: %w", index, treeSize, err, errBadProof)
	}
	return index, nonNil(path), nil
}

// ConsistencyProof returns the consistency proof between the trees of sizes
// first and second (at most the published size).
func (l *Log) ConsistencyProof(ctx context.Context, first, second uint64) ([][]byte, error) {
	if cur := l.pub.latest(); second > cur.size {
		return nil, badRequest(fmt.Sprintf("second %d is beyond the published size %d", second, cur.size))
	}
	if first > second {
		return nil, badRequest(fmt.Sprintf("first %d is larger than second %d", first, second))
	}
	p, err := l.pub.consistencyFromTrillian(ctx, first, second)
	if err != nil {
		return nil, err
	}
	if first == 0 || first == second {
		return [][]byte{}, nil
	}
	r1, err := l.rootAt(ctx, first)
	if err != nil {
		return nil, err
	}
	r2, err := l.rootAt(ctx, second)
	if err != nil {
		return nil, err
	}
	if err := checkpoint.VerifyConsistency(first, second, r1, r2, p); err != nil {
		return nil, fmt.Errorf("Trillian's consistency proof %d→%d: %w: %w", first, second, err, errBadProof)
	}
	return nonNil(p), nil
}

// rootAt returns the verified root of the tree of the given size (at most
// the published size): a published checkpoint's, or else one computed from
// Trillian's data and proven consistent with the latest published
// checkpoint.
func (l *Log) rootAt(ctx context.Context, size uint64) ([32]byte, error) {
	cur := l.pub.latest()
	if size == 0 {
		return checkpoint.EmptyRoot, nil
	}
	root, err := l.publishedRoot(ctx, size)
	if !errors.Is(err, storage.ErrNotFound) {
		return root, err
	}
	// The root of size is determined by its last leaf and that leaf's
	// inclusion proof; a consistency proof to the signed latest root shows
	// that Trillian did not make it up.
	r, err := l.cfg.Trillian.GetEntryAndProof(ctx, &trillian.GetEntryAndProofRequest{
		LogId: l.cfg.TreeID, LeafIndex: int64(size - 1), TreeSize: int64(size)})
	if err != nil {
		return root, fmt.Errorf("entry and proof from Trillian: %w", err)
	}
	leaf := checkpoint.LeafHash(r.GetLeaf().GetLeafValue())
	computed, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, size-1, size, leaf[:], r.GetProof().GetHashes())
	if err != nil || len(computed) != 32 {
		return root, fmt.Errorf("root of size %d from Trillian's proof: %v: %w", size, err, errBadProof)
	}
	root = [32]byte(computed)
	cons, err := l.pub.consistencyFromTrillian(ctx, size, cur.size)
	if err != nil {
		return root, err
	}
	if err := checkpoint.VerifyConsistency(size, cur.size, root, cur.root, cons); err != nil {
		return root, fmt.Errorf("root of size %d is not consistent with the published checkpoint: %w: %w", size, err, errBadProof)
	}
	return root, nil
}

// Entries returns up to count entries from index start, within the
// published tree.
func (l *Log) Entries(ctx context.Context, start, count uint64) ([][]byte, error) {
	cur := l.pub.latest()
	if count == 0 || count > MaxEntriesPerRequest {
		return nil, badRequest(fmt.Sprintf("count must be between 1 and %d", MaxEntriesPerRequest))
	}
	if start >= cur.size {
		return nil, ErrNotFound
	}
	count = min(count, cur.size-start)
	r, err := l.cfg.Trillian.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{
		LogId: l.cfg.TreeID, StartIndex: int64(start), Count: int64(count)})
	if err != nil {
		return nil, fmt.Errorf("leaves from Trillian: %w", err)
	}
	out := make([][]byte, 0, len(r.Leaves))
	for i, leaf := range r.Leaves {
		if uint64(leaf.LeafIndex) != start+uint64(i) {
			return nil, fmt.Errorf("Trillian returned leaf %d at position %d of a range from %d: %w", leaf.LeafIndex, i, start, errBadProof)
		}
		out = append(out, leaf.LeafValue)
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}
