package storage

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTiles(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if size, _, err := db.TiledSize(ctx, "o"); err != nil || size != 0 {
			t.Fatalf("TiledSize of a new log = %d, %v; want 0", size, err)
		}
		h := func(b byte) [32]byte { return [32]byte{b, 9} }
		u1 := TileUpdate{Size: 2, Root: h(1), Leaves: [][32]byte{h(10), h(11)}, Tiles: []Tile{
			{Level: 0, Index: 0, Width: 2, Data: make([]byte, 64)},
			{Level: EntriesLevel, Index: 0, Width: 2, Data: []byte{0, 1, 'a', 0, 1, 'b'}},
		}}
		if err := db.PutTiles(ctx, "o", 0, u1); err != nil {
			t.Fatal(err)
		}
		// A second extension from 0 (another server, behind) changes nothing.
		if err := db.PutTiles(ctx, "o", 0, TileUpdate{Size: 1, Root: h(7), Leaves: [][32]byte{h(70)}}); !errors.Is(err, ErrTiledElsewhere) {
			t.Errorf("PutTiles from a stale size: %v, want ErrTiledElsewhere", err)
		}
		// The partial tile grows in place; a repeated leaf hash keeps its
		// first index.
		u2 := TileUpdate{Size: 4, Root: h(2), Leaves: [][32]byte{h(12), h(10)}, Tiles: []Tile{
			{Level: 0, Index: 0, Width: 4, Data: make([]byte, 128)},
		}}
		if err := db.PutTiles(ctx, "o", 2, u2); err != nil {
			t.Fatal(err)
		}
		if err := db.PutTiles(ctx, "o", 2, u2); !errors.Is(err, ErrTiledElsewhere) {
			t.Errorf("PutTiles twice from size 2: %v, want ErrTiledElsewhere", err)
		}
		if size, root, err := db.TiledSize(ctx, "o"); err != nil || size != 4 || root != h(2) {
			t.Errorf("TiledSize = %d, %x, %v; want 4, %x", size, root, err, h(2))
		}
		got, err := db.GetTile(ctx, "o", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&Tile{Level: 0, Index: 0, Width: 4, Data: make([]byte, 128)}, got); diff != "" {
			t.Errorf("tile 0/0 (-want +got):\n%s", diff)
		}
		if got, err := db.GetTile(ctx, "o", EntriesLevel, 0); err != nil || got.Width != 2 || string(got.Data) != "\x00\x01a\x00\x01b" {
			t.Errorf("entry bundle 0 = %+v, %v", got, err)
		}
		if _, err := db.GetTile(ctx, "other", 0, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("another log's tile: %v, want ErrNotFound", err)
		}
		for leaf, want := range map[byte]uint64{10: 0, 11: 1, 12: 2} {
			if i, err := db.LeafIndex(ctx, "o", h(leaf)); err != nil || i != want {
				t.Errorf("LeafIndex(%d) = %d, %v; want %d", leaf, i, err, want)
			}
		}
		if _, err := db.LeafIndex(ctx, "o", h(70)); !errors.Is(err, ErrNotFound) {
			t.Errorf("LeafIndex of a leaf never stored: %v, want ErrNotFound", err)
		}
		// Bad updates are refused.
		if err := db.PutTiles(ctx, "o", 4, TileUpdate{Size: 6, Leaves: [][32]byte{h(1)}}); err == nil {
			t.Error("PutTiles with too few leaves succeeded")
		}
		// Checkpoint lookups by range, for partial tiles.
		if err := db.AddCheckpoint(ctx, "o", 300, []byte("n"), time.UnixMilli(1_700_000_000_000)); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			lo, hi uint64
			want   bool
		}{{0, 300, false}, {300, 301, true}, {256, 512, true}, {301, 1 << 63, false}, {1 << 63, 1<<64 - 1, false}} {
			if got, err := db.HasCheckpointIn(ctx, "o", tc.lo, tc.hi); err != nil || got != tc.want {
				t.Errorf("HasCheckpointIn(%d, %d) = %v, %v; want %v", tc.lo, tc.hi, got, err, tc.want)
			}
		}
	})
}

// TestPutTilesSynchronous: PutTiles commits without waiting for the disk,
// on connections of its own, and every other write of the state database
// still waits for the disk, also after a refused update.
func TestPutTilesSynchronous(t *testing.T) {
	db, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.db.SetMaxOpenConns(1) // the one connection of every other write
	ctx := t.Context()
	check := func(when string, pool *sql.DB, want int) {
		t.Helper()
		var mode int
		if err := pool.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&mode); err != nil || mode != want {
			t.Fatalf("%s: synchronous = %d, %v; want %d", when, mode, err, want)
		}
	}
	check("before", db.db, 2) // FULL
	u := TileUpdate{Size: 1, Leaves: [][32]byte{{1}}, Tiles: []Tile{{Level: 0, Index: 0, Width: 1, Data: make([]byte, 32)}}}
	if err := db.PutTiles(ctx, "o", 0, u); err != nil {
		t.Fatal(err)
	}
	check("after PutTiles", db.db, 2)
	check("PutTiles's own connections", db.tiles, 1) // NORMAL
	if err := db.PutTiles(ctx, "o", 0, u); !errors.Is(err, ErrTiledElsewhere) {
		t.Fatalf("PutTiles from a stale size: %v", err)
	}
	check("after a refused PutTiles", db.db, 2)
	if size, _, err := db.TiledSize(ctx, "o"); err != nil || size != 1 {
		t.Errorf("TiledSize = %d, %v; want 1", size, err)
	}
}
