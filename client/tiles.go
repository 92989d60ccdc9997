package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/evidentlog/evident/checkpoint"
)

// A client with Config.Tiles reads the log through the C2SP tlog-tiles API
// alone (https://c2sp.org/tlog-tiles): /checkpoint, /tile/<L>/<N>[.p/<W>]
// and /tile/entries/<N>[.p/<W>]. That is what a static copy of the log
// (`evident export-tiles`) on a web server or object store serves, and
// what any tile-based log serves. Proofs are computed here from the hash
// tiles; entries come from the entry bundles. Nothing is trusted: callers
// verify proofs and entries against signed checkpoints as always.

// ErrNotInTiles is returned, with Config.Tiles, by the calls that need the
// log's own API (receipts and proofs by leaf hash, archived checkpoints
// other than the latest, Info): tiles cannot look an entry up by hash.
var ErrNotInTiles = errors.New("not available from a tile-only (static) log")

const tileWidth = 256

// Tile fetches the tile (level, index) of the tree of size treeSize: full,
// or the partial tile that tree needs. Level -1 is an entry bundle. It
// checks the size of a hash tile (32 bytes per hash), not its contents.
func (c *Client) Tile(ctx context.Context, level int, index, treeSize uint64) ([]byte, error) {
	n := treeSize
	if level > 0 {
		n = treeSize >> (8 * level)
	}
	if index*tileWidth >= n {
		return nil, fmt.Errorf("tile %d/%d is not in the tree of size %d", level, index, treeSize)
	}
	w := int(min(tileWidth, n-index*tileWidth))
	limit := int64(32 * w)
	if level < 0 {
		limit = int64(w) * (2 + MaxEntrySize)
	}
	_, b, err := c.do(ctx, request{method: http.MethodGet, path: "/tile/" + checkpoint.TilePath(level, index, w%tileWidth), limit: limit})
	if err != nil {
		return nil, err
	}
	if level >= 0 && len(b) != 32*w {
		return nil, fmt.Errorf("tile %d/%d of width %d has %d bytes: %w", level, index, w, len(b), ErrBadResponse)
	}
	return b, nil
}

// tileNodes fetches tree nodes from the hash tiles of one tree size.
type tileNodes struct {
	c     *Client
	size  uint64
	tiles map[[2]uint64][]byte
}

// node returns the hash of the perfect subtree id of the tree.
func (t *tileNodes) node(ctx context.Context, id compact.NodeID) ([]byte, error) {
	level, j := id.Level/8, id.Level%8
	perTile := uint64(tileWidth >> j)
	index, i := id.Index/perTile, id.Index%perTile
	k := [2]uint64{uint64(level), index}
	data, ok := t.tiles[k]
	if !ok {
		var err error
		if data, err = t.c.Tile(ctx, int(level), index, t.size); err != nil {
			return nil, err
		}
		t.tiles[k] = data
	}
	lo, hi := (i<<j)*32, ((i+1)<<j)*32
	if hi > uint64(len(data)) {
		return nil, fmt.Errorf("node %d/%d is not in its tile: %w", id.Level, id.Index, ErrBadResponse)
	}
	root := checkpoint.SubtreeRoot(data[lo:hi])
	return root[:], nil
}

func (t *tileNodes) proof(ctx context.Context, n proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(n.IDs))
	for i, id := range n.IDs {
		h, err := t.node(ctx, id)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return n.Rehash(hashes, checkpoint.Hasher.HashChildren)
}

func (c *Client) tileNodes(size uint64) *tileNodes {
	return &tileNodes{c: c, size: size, tiles: map[[2]uint64][]byte{}}
}

func (c *Client) tileConsistency(ctx context.Context, first, second uint64) ([][]byte, error) {
	if first == 0 || first == second {
		return [][]byte{}, nil
	}
	n, err := proof.Consistency(first, second)
	if err != nil {
		return nil, err
	}
	return c.tileNodes(second).proof(ctx, n)
}

func (c *Client) tileInclusion(ctx context.Context, index, treeSize uint64) (*InclusionProof, error) {
	n, err := proof.Inclusion(index, treeSize)
	if err != nil {
		return nil, err
	}
	p, err := c.tileNodes(treeSize).proof(ctx, n)
	if err != nil {
		return nil, err
	}
	return &InclusionProof{Index: index, TreeSize: treeSize, Hashes: p}, nil
}

// tileEntries returns up to count entries from start, from the entry
// bundles of the latest checkpoint's tree.
func (c *Client) tileEntries(ctx context.Context, start uint64, count int) ([][]byte, error) {
	raw, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	body, _, _ := strings.Cut(string(raw), "\n\n")
	cp, err := checkpoint.Parse([]byte(body + "\n"))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %v: %w", err, ErrBadResponse)
	}
	out := [][]byte{}
	for next := start; next < cp.Size && len(out) < count; {
		b, err := c.Tile(ctx, -1, next/tileWidth, cp.Size)
		if err != nil {
			return nil, err
		}
		entries, err := SplitBundle(b)
		if err != nil {
			return nil, err
		}
		want := int(min(tileWidth, cp.Size-next/tileWidth*tileWidth))
		if len(entries) != want {
			return nil, fmt.Errorf("entry bundle %d has %d entries, want %d: %w", next/tileWidth, len(entries), want, ErrBadResponse)
		}
		for _, e := range entries[next%tileWidth:] {
			if len(out) == count {
				break
			}
			out = append(out, e)
			next++
		}
	}
	return out, nil
}

// SplitBundle parses a tlog-tiles entry bundle: each entry a big-endian
// uint16 length and its bytes.
func SplitBundle(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("entry bundle: dangling byte: %w", ErrBadResponse)
		}
		n := int(b[0])<<8 | int(b[1])
		if n == 0 || len(b) < 2+n {
			return nil, fmt.Errorf("entry bundle: entry of %d bytes with %d left: %w", n, len(b)-2, ErrBadResponse)
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out, nil
}
