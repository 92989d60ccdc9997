package log

import (
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// Proofs and receipts from the log's tiles: each is built from the nodes
// of the stored tiles (through the tile cache) with no call to Trillian,
// and verified, like everything served, before it is served. When a tile
// is not stored (a log from before tiles, still being backfilled), or a
// leaf hash is not in the tiler's index, these return errors matching
// errNoTile and the caller asks Trillian instead.

// tileInclusion returns the inclusion proof of leaf index in the tree of
// size size from the tiles.
func (l *Log) tileInclusion(ctx context.Context, index, size uint64) ([][]byte, error) {
	n, err := proof.Inclusion(index, size)
	return l.tileProof(ctx, n, err)
}

// tileProof reads the nodes of a proof from the tiles and hashes its
// ephemeral ones; err is the error of computing n (a bad request).
func (l *Log) tileProof(ctx context.Context, n proof.Nodes, err error) ([][]byte, error) {
	if err != nil {
		return nil, badRequest(err.Error())
	}
	hashes, err := l.tiles.nodes(ctx, n.IDs)
	if err != nil {
		return nil, err
	}
	return n.Rehash(hashes, checkpoint.Hasher.HashChildren)
}

// tileConsistency returns the consistency proof between the trees of sizes
// first and second from the tiles.
func (l *Log) tileConsistency(ctx context.Context, first, second uint64) ([][]byte, error) {
	if first == 0 || first == second {
		return [][]byte{}, nil
	}
	n, err := proof.Consistency(first, second)
	return l.tileProof(ctx, n, err)
}

// tileLeafIndex returns the index of the leaf with this hash: from the
// recent leaves in memory, else from Trillian's own index in-process
// (Config.LeafIndex), else from the tiler's index; an error matching
// errNoTile when it is not found.
func (l *Log) tileLeafIndex(ctx context.Context, leafHash [32]byte) (uint64, error) {
	if i, ok := l.leaves.get(leafHash); ok {
		return i, nil
	}
	if l.cfg.LeafIndex != nil {
		i, ok, err := l.cfg.LeafIndex(ctx, leafHash)
		if err == nil && !ok {
			err = fmt.Errorf("leaf %x: %w", leafHash, errNoTile)
		}
		return i, err
	}
	i, err := l.cfg.State.LeafIndex(ctx, l.cfg.Origin, leafHash)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("leaf %x: %w", leafHash, errNoTile)
	}
	return i, err
}

// tileReceipt returns the receipt of the leaf with this hash under cp,
// from the tiles.
func (l *Log) tileReceipt(ctx context.Context, leafHash [32]byte, cp *published) ([]byte, error) {
	index, err := l.tileLeafIndex(ctx, leafHash)
	if err != nil {
		return nil, err
	}
	if index >= cp.size {
		return nil, ErrNotFound
	}
	path, err := l.tileInclusion(ctx, index, cp.size)
	if err != nil {
		return nil, err
	}
	res := &AddResult{LeafHash: leafHash}
	if err := l.fillReceipt(ctx, res, found{index: index, cp: cp, proof: nonNil(path)}); err != nil {
		return nil, err
	}
	return res.Receipt, nil
}

// tileRootAt returns the root of the tree of the given size from the
// tiles, verified by a consistency proof (also from the tiles) to the
// latest published checkpoint cur.
func (l *Log) tileRootAt(ctx context.Context, size uint64, cur *published) ([32]byte, error) {
	r, err := l.tiles.root(ctx, size)
	if err != nil {
		return [32]byte{}, err
	}
	cons, err := l.tileConsistency(ctx, size, cur.size)
	if err != nil {
		return [32]byte{}, err
	}
	if err := checkpoint.VerifyConsistency(size, cur.size, r, cur.root, cons); err != nil {
		return [32]byte{}, fmt.Errorf("root of size %d from the tiles is not consistent with the published checkpoint: %w: %w", size, err, errBadProof)
	}
	return r, nil
}

// tileInclusionOf returns the index, leaf hash and inclusion proof (not yet
// verified) of a leaf in the tree of size treeSize, from the tiles: the
// leaf named by its hash, or by index when leafHash is nil.
func (l *Log) tileInclusionOf(ctx context.Context, leafHash *[32]byte, index, treeSize uint64) (uint64, [32]byte, [][]byte, error) {
	var hash [32]byte
	if leafHash != nil {
		hash = *leafHash
		i, err := l.tileLeafIndex(ctx, hash)
		if err != nil {
			return 0, hash, nil, err
		}
		if i >= treeSize {
			return 0, hash, nil, ErrNotFound
		}
		index = i
	} else {
		if index >= treeSize {
			return 0, hash, nil, badRequest(fmt.Sprintf("index %d is not below tree_size %d", index, treeSize))
		}
		h, err := l.tiles.node(ctx, compact.NewNodeID(0, index))
		if err != nil {
			return 0, hash, nil, err
		}
		hash = h
	}
	path, err := l.tileInclusion(ctx, index, treeSize)
	return index, hash, path, err
}
