package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrNotFound is returned by the lookup methods of DB (settings,
// checkpoints) when nothing is stored under the key. Callers treat it as
// "absent", not as a failure of the database.
var ErrNotFound = errors.New("not found")

// Setting returns the value stored under name, or ErrNotFound.
func (d *DB) Setting(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := d.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("setting %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading setting %q: %w", name, err)
	}
	return v, nil
}

// SetSettingOnce stores value under name unless a value is already stored
// there, and returns the value that is stored after the call: value, or the
// earlier one. Two servers racing to initialize one database therefore agree
// on the result (for example on the Trillian tree ID of the log).
func (d *DB) SetSettingOnce(ctx context.Context, name string, value []byte) ([]byte, error) {
	_, err := d.db.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)`, name, value)
	if err != nil && !isDuplicate(err) {
		return nil, fmt.Errorf("writing setting %q: %w", name, err)
	}
	return d.Setting(ctx, name)
}
