package storage

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSignedCheckpoints(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if _, err := db.LatestSigned(ctx, "o", 1<<63); !errors.Is(err, ErrNotFound) {
			t.Fatalf("LatestSigned of an empty log: err = %v, want ErrNotFound", err)
		}
		at := time.UnixMilli(1_700_000_000_123)
		root := func(b byte) [32]byte { return [32]byte{b, 1, 2} }
		for _, size := range []uint64{4, 9, 6} {
			if err := db.AddSigned(ctx, "o", size, root(byte(size)), []byte{byte(size)}, at); err != nil {
				t.Fatalf("AddSigned(%d): %v", size, err)
			}
		}
		if err := db.AddSigned(ctx, "other", 7, root(70), []byte("x"), at); err != nil {
			t.Fatal(err)
		}
		// The same tree again is a no-op (even with another note); another
		// root at that size is refused and changes nothing.
		if err := db.AddSigned(ctx, "o", 6, root(6), []byte("other note"), at.Add(time.Hour)); err != nil {
			t.Errorf("re-adding the same tree: %v", err)
		}
		if err := db.AddSigned(ctx, "o", 6, root(66), []byte{6}, at); !errors.Is(err, ErrConflict) {
			t.Errorf("adding another root at size 6: err = %v, want ErrConflict", err)
		}
		got, err := db.Signed(ctx, "o", 6)
		if err != nil {
			t.Fatal(err)
		}
		want := &SignedCheckpoint{Origin: "o", Size: 6, Root: root(6), Note: []byte{6}, SignedAt: at}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Signed(6) (-want +got):\n%s", diff)
		}
		if _, err := db.Signed(ctx, "o", 5); !errors.Is(err, ErrNotFound) {
			t.Errorf("Signed(5): err = %v, want ErrNotFound", err)
		}
		if _, err := db.Signed(ctx, "o", 1<<63); !errors.Is(err, ErrNotFound) {
			t.Errorf("Signed(2^63): err = %v, want ErrNotFound", err)
		}
		for _, tc := range []struct {
			atMost uint64
			want   uint64 // 0: none
		}{{3, 0}, {4, 4}, {5, 4}, {8, 6}, {9, 9}, {1 << 63, 9}, {1<<64 - 1, 9}} {
			got, err := db.LatestSigned(ctx, "o", tc.atMost)
			switch {
			case tc.want == 0 && !errors.Is(err, ErrNotFound):
				t.Errorf("LatestSigned(%d) = %v, %v; want ErrNotFound", tc.atMost, got, err)
			case tc.want != 0 && (err != nil || got.Size != tc.want || got.Root != root(byte(tc.want))):
				t.Errorf("LatestSigned(%d) = %v, %v; want size %d", tc.atMost, got, err, tc.want)
			}
		}
	})
}

// BenchmarkAddSigned records signed checkpoints in an SQLite state database
// (one fsync'd transaction each), as a log with witnesses does once per
// publishing round.
func BenchmarkAddSigned(b *testing.B) {
	db := openTestSQLite(b)
	note := make([]byte, 200)
	var size uint64
	for b.Loop() {
		size++
		if err := db.AddSigned(b.Context(), "example.com/log", size, [32]byte{byte(size)}, note, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutTilesRound stores what most publishing rounds store: 64 new
// leaves that fill no tile, so only the tiled size and root change (a
// transaction committed without waiting for the disk). It is a round's
// fixed cost in the state database.
func BenchmarkPutTilesRound(b *testing.B) {
	db := openTestSQLite(b)
	const leaves = 64
	u := TileUpdate{Leaves: make([][32]byte, leaves), NoLeafIndex: true}
	var size uint64
	for b.Loop() {
		u.Size, u.Root = size+leaves, [32]byte{byte(size)}
		if err := db.PutTiles(b.Context(), "example.com/log", size, u); err != nil {
			b.Fatal(err)
		}
		size += leaves
	}
}
