package checkpoint

import (
	"bytes"
	"errors"
	"testing"
)

func TestVerifyInclusionAllLeaves(t *testing.T) {
	tree := newTestTree(70)
	for size := uint64(1); size <= 70; size++ {
		root := tree.root(0, size)
		for i := range size {
			p := tree.inclusion(i, 0, size)
			if err := VerifyInclusion(i, size, tree.leaves[i], p, root); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d): %v", i, size, err)
			}
			// Any single-bit change in any input must fail.
			if size > 1 {
				bad := cloneProof(p)
				bad[len(bad)/2][3] ^= 0x10
				if err := VerifyInclusion(i, size, tree.leaves[i], bad, root); !errors.Is(err, ErrInclusion) {
					t.Fatalf("VerifyInclusion(%d, %d, flipped proof) = %v, want ErrInclusion", i, size, err)
				}
				if err := VerifyInclusion((i+1)%size, size, tree.leaves[i], p, root); !errors.Is(err, ErrInclusion) {
					t.Fatalf("VerifyInclusion(%d, %d, wrong index) = %v, want ErrInclusion", i, size, err)
				}
			}
			other := tree.leaves[i]
			other[0] ^= 1
			if err := VerifyInclusion(i, size, other, p, root); !errors.Is(err, ErrInclusion) {
				t.Fatalf("VerifyInclusion(%d, %d, wrong leaf) = %v, want ErrInclusion", i, size, err)
			}
		}
	}
}

func cloneProof(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = bytes.Clone(h)
	}
	return out
}

func TestVerifyInclusionRejects(t *testing.T) {
	tree := newTestTree(8)
	root := tree.root(0, 8)
	p := tree.inclusion(2, 0, 8)
	tests := []struct {
		name  string
		index uint64
		size  uint64
		proof [][]byte
		want  error
	}{
		{"index equals size", 8, 8, p, ErrInclusion},
		{"index beyond size", 9, 8, p, ErrInclusion},
		{"size 0", 0, 0, nil, ErrInclusion},
		{"short proof", 2, 8, p[:2], ErrInclusion},
		{"long proof", 2, 8, append(cloneProof(p), p[0]), ErrInclusion},
		{"hash of 31 bytes", 2, 8, [][]byte{p[0], p[1][:31], p[2]}, ErrMalformed},
		{"hash of 33 bytes", 2, 8, [][]byte{p[0], append(bytes.Clone(p[1]), 0), p[2]}, ErrMalformed},
		{"more than MaxProofHashes", 2, 8, make([][]byte, MaxProofHashes+1), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyInclusion(tt.index, tt.size, tree.leaves[2], tt.proof, root); !errors.Is(err, tt.want) {
				t.Errorf("VerifyInclusion = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyConsistencyAllPairs(t *testing.T) {
	tree := newTestTree(40)
	for n := uint64(0); n <= 40; n++ {
		for m := uint64(0); m <= n; m++ {
			p := tree.consistency(m, n)
			if err := VerifyConsistency(m, n, tree.root(0, m), tree.root(0, n), p); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d): %v", m, n, err)
			}
			if m > 0 && m < n {
				bad := cloneProof(p)
				bad[0][0] ^= 1
				if err := VerifyConsistency(m, n, tree.root(0, m), tree.root(0, n), bad); !errors.Is(err, ErrConsistency) {
					t.Fatalf("VerifyConsistency(%d, %d, flipped) = %v, want ErrConsistency", m, n, err)
				}
				wrong := tree.root(0, m-1)
				if err := VerifyConsistency(m, n, wrong, tree.root(0, n), p); !errors.Is(err, ErrConsistency) {
					t.Fatalf("VerifyConsistency(%d, %d, wrong old root) = %v, want ErrConsistency", m, n, err)
				}
			}
		}
	}
}

func TestVerifyConsistencyRejects(t *testing.T) {
	tree := newTestTree(8)
	r3, r5, r8 := tree.root(0, 3), tree.root(0, 5), tree.root(0, 8)
	p := tree.consistency(3, 8)
	tests := []struct {
		name             string
		oldSize, newSize uint64
		oldRoot, newRoot [32]byte
		proof            [][]byte
		want             error
	}{
		{"old larger than new", 8, 3, r8, r3, p, ErrConsistency},
		{"size 0 with other root", 0, 8, r3, r8, nil, ErrConsistency},
		{"size 0 with a proof", 0, 8, EmptyRoot, r8, p[:1], ErrConsistency},
		{"both 0 with other root", 0, 0, EmptyRoot, r3, nil, ErrConsistency},
		{"same size other root", 5, 5, r5, r8, nil, ErrConsistency},
		{"same size with a proof", 5, 5, r5, r5, p[:1], ErrConsistency},
		{"empty proof", 3, 8, r3, r8, nil, ErrConsistency},
		{"swapped roots", 3, 8, r8, r3, p, ErrConsistency},
		{"wrong new size", 3, 9, r3, r8, p, ErrConsistency},
		{"hash of 31 bytes", 3, 8, r3, r8, [][]byte{p[0][:31]}, ErrMalformed},
		{"more than MaxProofHashes", 3, 8, r3, r8, make([][]byte, MaxProofHashes+1), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyConsistency(tt.oldSize, tt.newSize, tt.oldRoot, tt.newRoot, tt.proof); !errors.Is(err, tt.want) {
				t.Errorf("VerifyConsistency = %v, want %v", err, tt.want)
			}
		})
	}
}
