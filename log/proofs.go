package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/google/trillian"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

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
	if b, err := l.tileReceipt(ctx, leafHash, cp); !errors.Is(err, errNoTile) {
		return b, err
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
	if i, h, p, err := l.tileInclusionOf(ctx, leafHash, index, treeSize); !errors.Is(err, errNoTile) {
		if err != nil {
			return 0, nil, err
		}
		index, hash, path = i, h, p
	} else if leafHash != nil {
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
	p, err := l.pub.consistency(ctx, first, second)
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
	if root, err := l.tileRootAt(ctx, size, cur); !errors.Is(err, errNoTile) {
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
	computed, err := proof.RootFromInclusionProof(checkpoint.Hasher, size-1, size, leaf[:], r.GetProof().GetHashes())
	if err != nil || len(computed) != 32 {
		return root, fmt.Errorf("root of size %d from Trillian's proof: %v: %w", size, err, errBadProof)
	}
	root = [32]byte(computed)
	cons, err := l.pub.consistency(ctx, size, cur.size)
	if err != nil {
		return root, err
	}
	if err := checkpoint.VerifyConsistency(size, cur.size, root, cur.root, cons); err != nil {
		return root, fmt.Errorf("root of size %d is not consistent with the published checkpoint: %w: %w", size, err, errBadProof)
	}
	return root, nil
}

// Entries returns up to count entries from index start, within the
// published tree. Each entry is checked before it is served: Trillian's
// leaf hash is the entry's, its index the one asked for, and the leaves are
// in the tree of the latest published checkpoint (one entry by its
// inclusion proof; a range by hashing it, with the tree left of it, to a
// root that the checkpoint commits to). Verifying costs Trillian one proof
// for one entry, two for a range (docs/performance.md).
func (l *Log) Entries(ctx context.Context, start, count uint64) ([][]byte, error) {
	es, err := l.AttributedEntries(ctx, start, count)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = e.Value
	}
	return out, nil
}

// Entry is an entry of the log and the tenant that submitted it.
type Entry struct {
	Value []byte
	// Tenant is the tenant that submitted the entry first: the log's word
	// (Trillian's extra data of the leaf), which the Merkle tree does not
	// commit to.
	Tenant string
	// QueuedAt is when Trillian queued the entry (its word too).
	QueuedAt time.Time
}

// AttributedEntries is Entries with the tenant of each entry.
func (l *Log) AttributedEntries(ctx context.Context, start, count uint64) ([]Entry, error) {
	cur := l.pub.latest()
	if count == 0 || count > MaxEntriesPerRequest {
		return nil, badRequest(fmt.Sprintf("count must be between 1 and %d", MaxEntriesPerRequest))
	}
	if start >= cur.size {
		return nil, ErrNotFound
	}
	count = min(count, cur.size-start)
	if count == 1 {
		e, err := l.entry(ctx, start, cur)
		if err != nil {
			return nil, err
		}
		return []Entry{e}, nil
	}
	r, err := l.cfg.Trillian.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{
		LogId: l.cfg.TreeID, StartIndex: int64(start), Count: int64(count)})
	if err != nil {
		return nil, fmt.Errorf("leaves from Trillian: %w", err)
	}
	if uint64(len(r.Leaves)) > count {
		return nil, fmt.Errorf("Trillian returned %d leaves for a range of %d: %w", len(r.Leaves), count, errBadProof)
	}
	out := make([]Entry, 0, len(r.Leaves))
	hashes := make([][32]byte, 0, len(r.Leaves))
	for i, leaf := range r.Leaves {
		if uint64(leaf.LeafIndex) != start+uint64(i) {
			return nil, fmt.Errorf("Trillian returned leaf %d at position %d of a range from %d: %w", leaf.LeafIndex, i, start, errBadProof)
		}
		h := checkpoint.LeafHash(leaf.LeafValue)
		if !bytes.Equal(leaf.MerkleLeafHash, h[:]) {
			return nil, fmt.Errorf("Trillian's leaf %d: its hash is not the hash of its value: %w", leaf.LeafIndex, errBadProof)
		}
		out = append(out, Entry{leaf.LeafValue, leafTenant(leaf.ExtraData), leaf.GetQueueTimestamp().AsTime()})
		hashes = append(hashes, h)
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	if err := l.verifyRange(ctx, start, hashes, cur); err != nil {
		return nil, err
	}
	return out, nil
}

// entry returns the entry at index, checked with its inclusion proof
// under the published checkpoint cur (one call to Trillian).
func (l *Log) entry(ctx context.Context, index uint64, cur *published) (Entry, error) {
	r, err := l.cfg.Trillian.GetEntryAndProof(ctx, &trillian.GetEntryAndProofRequest{
		LogId: l.cfg.TreeID, LeafIndex: int64(index), TreeSize: int64(cur.size)})
	if err != nil {
		return Entry{}, fmt.Errorf("entry and proof from Trillian: %w", err)
	}
	leaf := r.GetLeaf()
	if leaf == nil {
		return Entry{}, ErrNotFound
	}
	h := checkpoint.LeafHash(leaf.LeafValue)
	if uint64(leaf.LeafIndex) != index || !bytes.Equal(leaf.MerkleLeafHash, h[:]) {
		return Entry{}, fmt.Errorf("Trillian returned leaf %d for %d, or a leaf hash that is not its value's: %w", leaf.LeafIndex, index, errBadProof)
	}
	if err := checkpoint.VerifyInclusion(index, cur.size, h, r.GetProof().GetHashes(), cur.root); err != nil {
		return Entry{}, fmt.Errorf("Trillian's inclusion proof for entry %d at %d: %w: %w", index, cur.size, err, errBadProof)
	}
	return Entry{leaf.LeafValue, leafTenant(leaf.ExtraData), leaf.GetQueueTimestamp().AsTime()}, nil
}

// verifyRange checks that the leaves with these hashes are the tree's
// leaves from index start, under the published checkpoint cur: with the
// compact range of the leaves left of start (from Trillian's inclusion
// proof of leaf start in the tree of size start+1, which consists of
// exactly those nodes), they must hash to a root of the tree of size
// end that is cur's, or consistent with cur's.
func (l *Log) verifyRange(ctx context.Context, start uint64, hashes [][32]byte, cur *published) error {
	end := start + uint64(len(hashes))
	var left [][]byte
	if start > 0 {
		r, err := l.cfg.Trillian.GetInclusionProof(ctx, &trillian.GetInclusionProofRequest{
			LogId: l.cfg.TreeID, LeafIndex: int64(start), TreeSize: int64(start + 1)})
		if err != nil {
			return fmt.Errorf("inclusion proof from Trillian: %w", err)
		}
		left = slices.Clone(r.GetProof().GetHashes())
		if len(left) != bits.OnesCount64(start) {
			return fmt.Errorf("Trillian's proof for leaf %d at size %d has %d hashes: %w", start, start+1, len(left), errBadProof)
		}
		slices.Reverse(left) // bottom-up in the proof, left to right in a range
	}
	rf := &compact.RangeFactory{Hash: checkpoint.Hasher.HashChildren}
	rng, err := rf.NewRange(0, start, left)
	if err != nil {
		return fmt.Errorf("the tree left of leaf %d from Trillian: %v: %w", start, err, errBadProof)
	}
	for _, h := range hashes {
		if err := rng.Append(h[:], nil); err != nil {
			return fmt.Errorf("hashing leaves from %d: %w", start, err)
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil || len(root) != 32 {
		return fmt.Errorf("root of size %d from Trillian's leaves: %v: %w", end, err, errBadProof)
	}
	if end == cur.size {
		if [32]byte(root) != cur.root {
			return fmt.Errorf("leaves %d..%d from Trillian do not hash to the published root: %w", start, end, errBadProof)
		}
		return nil
	}
	cons, err := l.pub.consistency(ctx, end, cur.size)
	if err != nil {
		return err
	}
	if err := checkpoint.VerifyConsistency(end, cur.size, [32]byte(root), cur.root, cons); err != nil {
		return fmt.Errorf("leaves %d..%d from Trillian are not in the published tree: %w: %w", start, end, err, errBadProof)
	}
	return nil
}
