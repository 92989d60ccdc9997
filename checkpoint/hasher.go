package checkpoint

import (
	"crypto/sha256"
	"fmt"

	"github.com/transparency-dev/merkle"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Hasher is the RFC 6962 SHA-256 Merkle tree hasher of
// rfc6962.DefaultHasher, computing an interior node of two 32-byte children
// with one sha256.Sum256 over a buffer on the stack instead of a digest
// allocated per node. Proofs are ~20 such nodes, and a hash tile 255, so on
// the read path this halves the cost of hashing. Inputs of any other size
// are passed to rfc6962.DefaultHasher, which gives the same results.
var Hasher merkle.LogHasher = hasher{}

type hasher struct{}

func (hasher) EmptyRoot() []byte        { return rfc6962.DefaultHasher.EmptyRoot() }
func (hasher) HashLeaf(b []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(b) }
func (hasher) Size() int                { return sha256.Size }

func (hasher) HashChildren(l, r []byte) []byte {
	h := HashChildren(l, r)
	return h[:]
}

// HashChildren returns the RFC 6962 hash of the interior node whose children
// have the hashes l and r: SHA-256(0x01 || l || r).
func HashChildren(l, r []byte) [32]byte {
	if len(l) != sha256.Size || len(r) != sha256.Size {
		return [32]byte(rfc6962.DefaultHasher.HashChildren(l, r))
	}
	var b [1 + 2*sha256.Size]byte
	b[0] = rfc6962.RFC6962NodeHashPrefix
	copy(b[1:], l)
	copy(b[1+sha256.Size:], r)
	return sha256.Sum256(b[:])
}

// SubtreeRoot returns the root of the perfect subtree whose leaves (or
// nodes of one level) have the concatenated 32-byte hashes data: a run
// of a power of two of them, as in a tlog-tiles hash tile. An empty or
// odd run is not a perfect subtree: SubtreeRoot panics on it.
func SubtreeRoot(data []byte) [32]byte {
	n := len(data) / 32
	if n == 0 || n&(n-1) != 0 || len(data)%32 != 0 {
		panic(fmt.Sprintf("checkpoint: SubtreeRoot of %d bytes, not a power of two of hashes", len(data)))
	}
	row := make([][32]byte, n)
	for i := range row {
		row[i] = [32]byte(data[32*i:])
	}
	for ; n > 1; n /= 2 {
		for i := range n / 2 {
			row[i] = HashChildren(row[2*i][:], row[2*i+1][:])
		}
	}
	return row[0]
}
