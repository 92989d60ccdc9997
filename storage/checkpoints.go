package storage

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrConflict is returned by AddCheckpoint when a different checkpoint of the
// same origin and size is already stored. The stored one stands; a caller
// that sees this has found a second signer or a bug, and must not publish.
var ErrConflict = errors.New("a different checkpoint of this size is already stored")

// StoredCheckpoint is a published checkpoint as stored: the signed note byte
// for byte, with its cosignatures.
type StoredCheckpoint struct {
	Origin      string
	Size        uint64
	Note        []byte
	PublishedAt time.Time
}

// AddCheckpoint durably records a published checkpoint. Storing the same
// note again is a no-op; storing a different note for an (origin, size) that
// is already stored fails with ErrConflict and changes nothing.
func (d *DB) AddCheckpoint(ctx context.Context, origin string, size uint64, note []byte, at time.Time) error {
	if size > 1<<63-1 {
		return fmt.Errorf("checkpoint size %d out of range", size)
	}
	// The primary key (origin, size) makes a second, different checkpoint of
	// one size impossible to store: the log can never publish two views.
	st, err := d.stmt(`INSERT INTO checkpoints (origin, size, note, published_at) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("storing checkpoint %s@%d: %w", origin, size, err)
	}
	_, err = st.ExecContext(ctx, origin, int64(size), note, at.UnixMilli())
	if err == nil {
		return nil
	}
	if !isDuplicate(err) {
		return fmt.Errorf("storing checkpoint %s@%d: %w", origin, size, err)
	}
	old, gerr := d.Checkpoint(ctx, origin, size)
	if gerr != nil {
		return fmt.Errorf("storing checkpoint %s@%d: %w", origin, size, gerr)
	}
	if !bytes.Equal(old.Note, note) {
		return fmt.Errorf("storing checkpoint %s@%d: %w", origin, size, ErrConflict)
	}
	return nil
}

// Checkpoint returns the stored checkpoint of origin with the given size, or
// ErrNotFound.
func (d *DB) Checkpoint(ctx context.Context, origin string, size uint64) (*StoredCheckpoint, error) {
	if size > 1<<63-1 {
		return nil, fmt.Errorf("checkpoint %s@%d: %w", origin, size, ErrNotFound)
	}
	return d.scanCheckpoint(d.db.QueryRowContext(ctx,
		`SELECT origin, size, note, published_at FROM checkpoints WHERE origin = ? AND size = ?`,
		origin, int64(size)), origin)
}

// LatestCheckpoint returns the largest stored checkpoint of origin, or
// ErrNotFound when the log has published nothing yet.
func (d *DB) LatestCheckpoint(ctx context.Context, origin string) (*StoredCheckpoint, error) {
	return d.scanCheckpoint(d.db.QueryRowContext(ctx,
		`SELECT origin, size, note, published_at FROM checkpoints WHERE origin = ? ORDER BY size DESC LIMIT 1`,
		origin), origin)
}

// Checkpoints returns up to limit stored checkpoints of origin with size at
// least from, in increasing size order.
func (d *DB) Checkpoints(ctx context.Context, origin string, from uint64, limit int) ([]StoredCheckpoint, error) {
	if from > 1<<63-1 {
		return nil, nil
	}
	rows, err := d.db.QueryContext(ctx,
		`SELECT origin, size, note, published_at FROM checkpoints WHERE origin = ? AND size >= ? ORDER BY size LIMIT ?`,
		origin, int64(from), limit)
	if err != nil {
		return nil, fmt.Errorf("listing checkpoints of %s: %w", origin, err)
	}
	defer rows.Close()
	var out []StoredCheckpoint
	for rows.Next() {
		c, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("listing checkpoints of %s: %w", origin, err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing checkpoints of %s: %w", origin, err)
	}
	return out, nil
}

func (d *DB) scanCheckpoint(row *sql.Row, origin string) (*StoredCheckpoint, error) {
	c, err := scanRow(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("checkpoint of %s: %w", origin, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint of %s: %w", origin, err)
	}
	return c, nil
}

func scanRow(r interface{ Scan(...any) error }) (*StoredCheckpoint, error) {
	var c StoredCheckpoint
	var size, at int64
	if err := r.Scan(&c.Origin, &size, &c.Note, &at); err != nil {
		return nil, err
	}
	c.Size = uint64(size)
	c.PublishedAt = time.UnixMilli(at)
	return &c, nil
}

// HasCheckpoints reports whether the database holds any published
// checkpoint, of any origin: a state database that does belongs to a log
// that exists.
func (d *DB) HasCheckpoints(ctx context.Context) (bool, error) {
	var one int
	err := d.db.QueryRowContext(ctx, `SELECT 1 FROM checkpoints LIMIT 1`).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking for checkpoints: %w", err)
	}
	return true, nil
}
