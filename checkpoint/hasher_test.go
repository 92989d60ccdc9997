package checkpoint

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

func TestHasherMatchesRFC6962(t *testing.T) {
	if !bytes.Equal(Hasher.EmptyRoot(), rfc6962.DefaultHasher.EmptyRoot()) {
		t.Error("EmptyRoot differs")
	}
	for _, n := range [][2]int{{32, 32}, {32, 32}, {0, 0}, {31, 33}, {32, 0}, {64, 32}} {
		l, r := make([]byte, n[0]), make([]byte, n[1])
		rand.Read(l)
		rand.Read(r)
		if got, want := Hasher.HashChildren(l, r), rfc6962.DefaultHasher.HashChildren(l, r); !bytes.Equal(got, want) {
			t.Errorf("HashChildren(%d, %d bytes) = %x, want %x", n[0], n[1], got, want)
		}
		if got, want := Hasher.HashLeaf(l), rfc6962.DefaultHasher.HashLeaf(l); !bytes.Equal(got, want) {
			t.Errorf("HashLeaf(%d bytes) = %x, want %x", n[0], got, want)
		}
	}
	if Hasher.Size() != 32 {
		t.Errorf("Size() = %d", Hasher.Size())
	}
}

func BenchmarkHashChildren(b *testing.B) {
	l, r := make([]byte, 32), make([]byte, 32)
	b.Run("rfc6962", func(b *testing.B) {
		for b.Loop() {
			l = rfc6962.DefaultHasher.HashChildren(l, r)
		}
	})
	b.Run("checkpoint", func(b *testing.B) {
		for b.Loop() {
			l = Hasher.HashChildren(l, r)
		}
	})
}

func TestSubtreeRoot(t *testing.T) {
	for _, n := range []int{1, 2, 4, 256} {
		data := make([]byte, 32*n)
		rand.Read(data)
		rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
		for i := range n {
			if err := rng.Append(data[32*i:32*i+32], nil); err != nil {
				t.Fatal(err)
			}
		}
		want, err := rng.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := SubtreeRoot(data); !bytes.Equal(got[:], want) {
			t.Errorf("SubtreeRoot of %d hashes = %x, want %x", n, got, want)
		}
	}
	for _, bad := range []int{0, 3 * 32, 33} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SubtreeRoot of %d bytes did not panic", bad)
				}
			}()
			SubtreeRoot(make([]byte, bad))
		}()
	}
}
