package storage

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckpoints(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if _, err := db.LatestCheckpoint(ctx, "o"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("LatestCheckpoint of an empty log: err = %v, want ErrNotFound", err)
		}
		if has, err := db.HasCheckpoints(ctx); err != nil || has {
			t.Fatalf("HasCheckpoints of an empty database = %v, %v; want false", has, err)
		}
		at := time.UnixMilli(1_700_000_000_123)
		for _, size := range []uint64{0, 5, 3} {
			if err := db.AddCheckpoint(ctx, "o", size, []byte{byte(size), 0xff}, at); err != nil {
				t.Fatalf("AddCheckpoint(%d): %v", size, err)
			}
		}
		if err := db.AddCheckpoint(ctx, "other", 9, []byte("x"), at); err != nil {
			t.Fatal(err)
		}
		if has, err := db.HasCheckpoints(ctx); err != nil || !has {
			t.Errorf("HasCheckpoints after adding = %v, %v; want true", has, err)
		}
		// The same note again is fine; a different one of that size is not,
		// and changes nothing.
		if err := db.AddCheckpoint(ctx, "o", 5, []byte{5, 0xff}, at); err != nil {
			t.Errorf("re-adding the same checkpoint: %v", err)
		}
		if err := db.AddCheckpoint(ctx, "o", 5, []byte("forged"), at); !errors.Is(err, ErrConflict) {
			t.Errorf("adding a different checkpoint of size 5: err = %v, want ErrConflict", err)
		}
		got, err := db.LatestCheckpoint(ctx, "o")
		if err != nil {
			t.Fatal(err)
		}
		want := &StoredCheckpoint{Origin: "o", Size: 5, Note: []byte{5, 0xff}, PublishedAt: at}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("LatestCheckpoint (-want +got):\n%s", diff)
		}
		c, err := db.Checkpoint(ctx, "o", 3)
		if err != nil || string(c.Note) != "\x03\xff" {
			t.Errorf("Checkpoint(3) = %v, %v", c, err)
		}
		if _, err := db.Checkpoint(ctx, "o", 4); !errors.Is(err, ErrNotFound) {
			t.Errorf("Checkpoint(4): err = %v, want ErrNotFound", err)
		}
		if _, err := db.Checkpoint(ctx, "o", 1<<63); !errors.Is(err, ErrNotFound) {
			t.Errorf("Checkpoint(2^63): err = %v, want ErrNotFound", err)
		}
		list, err := db.Checkpoints(ctx, "o", 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		var sizes []uint64
		for _, c := range list {
			sizes = append(sizes, c.Size)
		}
		if diff := cmp.Diff([]uint64{3, 5}, sizes); diff != "" {
			t.Errorf("Checkpoints(from 1) sizes (-want +got):\n%s", diff)
		}
	})
}

func TestSettings(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if _, err := db.Setting(ctx, "tree_id"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Setting of a new database: err = %v, want ErrNotFound", err)
		}
		got, err := db.SetSettingOnce(ctx, "tree_id", []byte("42"))
		if err != nil || string(got) != "42" {
			t.Fatalf("SetSettingOnce = %q, %v; want 42", got, err)
		}
		got, err = db.SetSettingOnce(ctx, "tree_id", []byte("43"))
		if err != nil || string(got) != "42" {
			t.Errorf("second SetSettingOnce = %q, %v; want the first value 42", got, err)
		}
		got, err = db.Setting(ctx, "tree_id")
		if err != nil || string(got) != "42" {
			t.Errorf("Setting = %q, %v; want 42", got, err)
		}
	})
}
