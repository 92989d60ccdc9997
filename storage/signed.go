package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SignedCheckpoint is a checkpoint a log signed and showed to witnesses,
// published or not: its tree (Size, Root) and the note as the log signed it
// (without cosignatures).
type SignedCheckpoint struct {
	Origin   string
	Size     uint64
	Root     [32]byte
	Note     []byte
	SignedAt time.Time
}

// AddSigned durably records that the log of origin signed the checkpoint
// note of the tree (size, root). A log calls it before any witness sees the
// note, so that it can later prove consistency from whatever a witness
// holds. Recording the same tree again is a no-op (the first note stays);
// recording a different root for an (origin, size) that is already recorded
// fails with ErrConflict and changes nothing.
func (d *DB) AddSigned(ctx context.Context, origin string, size uint64, root [32]byte, note []byte, at time.Time) error {
	if size > 1<<63-1 {
		return fmt.Errorf("signed checkpoint size %d out of range", size)
	}
	// The primary key (origin, size) keeps the first root signed at a size:
	// a log that signed two trees of one size has forked, and must stall.
	_, err := d.db.ExecContext(ctx,
		`INSERT INTO signed_checkpoints (origin, size, root, note, signed_at) VALUES (?, ?, ?, ?, ?)`,
		origin, int64(size), root[:], note, at.UnixMilli())
	if err == nil {
		return nil
	}
	if !isDuplicate(err) {
		return fmt.Errorf("recording signed checkpoint %s@%d: %w", origin, size, err)
	}
	old, gerr := d.Signed(ctx, origin, size)
	if gerr != nil {
		return fmt.Errorf("recording signed checkpoint %s@%d: %w", origin, size, gerr)
	}
	if old.Root != root {
		return fmt.Errorf("recording signed checkpoint %s@%d: %w", origin, size, ErrConflict)
	}
	return nil
}

// Signed returns the recorded signed checkpoint of origin with the given
// size, or ErrNotFound.
func (d *DB) Signed(ctx context.Context, origin string, size uint64) (*SignedCheckpoint, error) {
	if size > 1<<63-1 {
		return nil, fmt.Errorf("signed checkpoint %s@%d: %w", origin, size, ErrNotFound)
	}
	return scanSigned(d.db.QueryRowContext(ctx,
		`SELECT origin, size, root, note, signed_at FROM signed_checkpoints WHERE origin = ? AND size = ?`,
		origin, int64(size)), origin)
}

// LatestSigned returns the largest recorded signed checkpoint of origin
// whose size is at most atMost, or ErrNotFound.
func (d *DB) LatestSigned(ctx context.Context, origin string, atMost uint64) (*SignedCheckpoint, error) {
	atMost = min(atMost, 1<<63-1)
	return scanSigned(d.db.QueryRowContext(ctx,
		`SELECT origin, size, root, note, signed_at FROM signed_checkpoints WHERE origin = ? AND size <= ? ORDER BY size DESC LIMIT 1`,
		origin, int64(atMost)), origin)
}

func scanSigned(row *sql.Row, origin string) (*SignedCheckpoint, error) {
	var c SignedCheckpoint
	var size, at int64
	var root []byte
	err := row.Scan(&c.Origin, &size, &root, &c.Note, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("signed checkpoint of %s: %w", origin, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading signed checkpoint of %s: %w", origin, err)
	}
	if len(root) != 32 {
		return nil, fmt.Errorf("reading signed checkpoint of %s: root of %d bytes", origin, len(root))
	}
	c.Size, c.Root, c.SignedAt = uint64(size), [32]byte(root), time.UnixMilli(at)
	return &c, nil
}
