package checkpoint

import (
	"crypto/sha256"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
)

// checkProof checks the proof's length and hash sizes.
func checkProof(p [][]byte) error {
	if len(p) > MaxProofHashes {
		return fmt.Errorf("proof has %d hashes, more than %d: %w", len(p), MaxProofHashes, ErrMalformed)
	}
	for i, h := range p {
		if len(h) != sha256.Size {
			return fmt.Errorf("proof hash %d is %d bytes, want %d: %w", i, len(h), sha256.Size, ErrMalformed)
		}
	}
	return nil
}

// VerifyInclusion checks an RFC 6962 inclusion proof that the leaf with hash
// leafHash is at index in the tree of the given size and root. A proof that
// is too long or has hashes that are not 32 bytes wraps ErrMalformed; one
// that does not verify wraps ErrInclusion.
func VerifyInclusion(index, size uint64, leafHash [32]byte, proof [][]byte, root [32]byte) error {
	if err := checkProof(proof); err != nil {
		return err
	}
	if index >= size {
		return fmt.Errorf("index %d is not below tree size %d: %w", index, size, ErrInclusion)
	}
	if err := verifyInclusion(index, size, leafHash, proof, root); err != nil {
		return fmt.Errorf("leaf %d in tree of size %d: %v: %w", index, size, err, ErrInclusion)
	}
	return nil
}

func verifyInclusion(index, size uint64, leafHash [32]byte, p [][]byte, root [32]byte) error {
	return proof.VerifyInclusion(Hasher, index, size, leafHash[:], p, root[:])
}

// VerifyConsistency checks an RFC 6962 consistency proof between the tree of
// size oldSize with root oldRoot and the tree of size newSize with root
// newRoot. Beyond the Merkle check it requires that oldSize <= newSize; that
// a size-0 tree has EmptyRoot and an empty proof; and that equal sizes have
// equal roots and an empty proof. A proof that is too long or has hashes that
// are not 32 bytes wraps ErrMalformed; any other failure wraps
// ErrConsistency.
func VerifyConsistency(oldSize, newSize uint64, oldRoot, newRoot [32]byte, proof [][]byte) error {
	if err := checkProof(proof); err != nil {
		return err
	}
	if oldSize > newSize {
		return fmt.Errorf("old size %d is larger than new size %d: %w", oldSize, newSize, ErrConsistency)
	}
	if newSize == 0 && newRoot != EmptyRoot {
		return fmt.Errorf("tree of size 0 does not have the empty root: %w", ErrConsistency)
	}
	if oldSize == 0 {
		// transparency-dev/merkle accepts any old root at size 0.
		if oldRoot != EmptyRoot {
			return fmt.Errorf("tree of size 0 does not have the empty root: %w", ErrConsistency)
		}
		if len(proof) != 0 {
			return fmt.Errorf("non-empty proof from size 0: %w", ErrConsistency)
		}
		return nil
	}
	if oldSize == newSize {
		if len(proof) != 0 {
			return fmt.Errorf("non-empty proof between equal sizes: %w", ErrConsistency)
		}
		if oldRoot != newRoot {
			return fmt.Errorf("two different roots for tree size %d: %w", oldSize, ErrConsistency)
		}
		return nil
	}
	if err := verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof); err != nil {
		return fmt.Errorf("from size %d to %d: %v: %w", oldSize, newSize, err, ErrConsistency)
	}
	return nil
}

func verifyConsistency(oldSize, newSize uint64, oldRoot, newRoot [32]byte, p [][]byte) error {
	return proof.VerifyConsistency(Hasher, oldSize, newSize, p, oldRoot[:], newRoot[:])
}
