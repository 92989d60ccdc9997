package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Attribution records that a tenant submitted the entry at an index:
// the tenant, the entry's RFC 6962 leaf hash, and when Trillian queued it.
type Attribution struct {
	Index    uint64
	Tenant   string
	LeafHash [32]byte
	QueuedAt time.Time
}

// attributionSchema returns the CREATE statements of tenant_entries
// (schema version 5) in dialect d.
func attributionSchema(d Dialect) []string {
	hash, text, intKey := "BLOB", "TEXT", "INTEGER"
	if d == MySQL {
		hash, text, intKey = "BINARY(32)", "VARCHAR(255)", "BIGINT"
	}
	inline, index := "", `CREATE INDEX IF NOT EXISTS tenant_entries_time ON tenant_entries (tenant, queued_at, leaf_index)`
	if d == MySQL {
		// MySQL has no CREATE INDEX IF NOT EXISTS: inline, so that the
		// CREATE TABLE stays idempotent.
		inline, index = ",\n\t\t\tINDEX tenant_entries_time (tenant, queued_at, leaf_index)", ""
	}
	// tenant_entries: which tenant submitted each published entry, for
	// listing a tenant's entries by time. The servers fill it from the
	// published tree (the tenant is Trillian's extra data of each leaf),
	// in order, with the next index to do in the setting
	// tenant_entries_next, written in the same transaction.
	stmts := []string{`CREATE TABLE IF NOT EXISTS tenant_entries (
			leaf_index ` + intKey + ` NOT NULL PRIMARY KEY,
			tenant ` + text + ` NOT NULL,
			leaf_hash ` + hash + ` NOT NULL,
			queued_at BIGINT NOT NULL` + inline + `
		)`}
	if index != "" {
		stmts = append(stmts, index)
	}
	return stmts
}

// attributionNext is the setting that holds the next index to attribute.
const attributionNext = "tenant_entries_next"

// AttributionNext returns the index of the first entry not yet in
// tenant_entries.
func (d *DB) AttributionNext(ctx context.Context) (uint64, error) {
	v, err := d.Setting(ctx, attributionNext)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return parseAttributionNext(v)
}

func parseAttributionNext(v []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(v), 10, 63)
	if err != nil {
		return 0, fmt.Errorf("setting %s: %q is not a number", attributionNext, v)
	}
	return n, nil
}

// RecordAttributions stores the attributions of the entries from index
// from on, which must be the next to attribute, and advances the next
// index past them, in one transaction. If another server recorded them
// first (the next index moved), it changes nothing and returns the next
// index it found.
func (d *DB) RecordAttributions(ctx context.Context, from uint64, as []Attribution) (next uint64, err error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("recording attributions: %w", err)
	}
	defer tx.Rollback()
	var v []byte
	cur := uint64(0)
	switch err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, attributionNext).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)`, attributionNext, []byte("0")); err != nil {
			return 0, fmt.Errorf("recording attributions: %w", err)
		}
	case err != nil:
		return 0, fmt.Errorf("recording attributions: %w", err)
	default:
		if cur, err = parseAttributionNext(v); err != nil {
			return 0, err
		}
	}
	if cur != from || len(as) == 0 {
		return cur, nil
	}
	for i, a := range as {
		if a.Index != from+uint64(i) {
			return 0, fmt.Errorf("recording attributions: entry %d where %d was expected", a.Index, from+uint64(i))
		}
	}
	if err := d.insertAttributions(ctx, tx, as); err != nil {
		return 0, fmt.Errorf("recording attributions: %w", err)
	}
	next = from + uint64(len(as))
	// The compare-and-swap on the old value makes two servers that read
	// the same next index record the range once (MySQL; SQLite
	// transactions are serial).
	st, err := d.stmt(`UPDATE settings SET value = ? WHERE name = ? AND value = ?`)
	if err != nil {
		return 0, fmt.Errorf("recording attributions: %w", err)
	}
	res, err := tx.StmtContext(ctx, st).ExecContext(ctx,
		[]byte(strconv.FormatUint(next, 10)), attributionNext, []byte(strconv.FormatUint(from, 10)))
	if err != nil {
		return 0, fmt.Errorf("recording attributions: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		// Another server moved it: roll back, and go on from where it
		// is now. If it is still at from, the value cannot be swapped
		// (not as this code writes it): say so, rather than have the
		// caller record the same range again and again.
		tx.Rollback()
		now, err := d.AttributionNext(ctx)
		if err != nil {
			return 0, fmt.Errorf("recording attributions: %w", err)
		}
		if now == from {
			return 0, fmt.Errorf("recording attributions: setting %s reads %d but could not be moved on from it; it must hold the index as written here, in decimal", attributionNext, from)
		}
		return now, nil
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("recording attributions: %w", err)
	}
	return next, nil
}

// attributionRows is the rows of one INSERT into tenant_entries. The
// statement for a full chunk is prepared once and reused, and the rest of
// a range goes row by row through a prepared one-row statement, so that
// no INSERT is parsed again for each range's size.
const attributionRows = 64

// insertAttributions inserts the rows of as in tx.

func (d *DB) insertAttributions(ctx context.Context, tx *sql.Tx, as []Attribution) error {
	const q = "INSERT INTO tenant_entries (leaf_index, tenant, leaf_hash, queued_at) VALUES "
	chunk, err := d.stmt(q + placeholders(attributionRows, 4))
	if err != nil {
		return err
	}
	row, err := d.stmt(q + placeholders(1, 4))
	if err != nil {
		return err
	}
	chunk, row = tx.StmtContext(ctx, chunk), tx.StmtContext(ctx, row)
	args := make([]any, 0, 4*attributionRows)
	for len(as) > 0 {
		st, n := chunk, attributionRows
		if len(as) < n {
			st, n = row, 1
		}
		args = args[:0]
		for _, a := range as[:n] {
			args = append(args, int64(a.Index), a.Tenant, a.LeafHash[:], a.QueuedAt.UnixMicro())
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return err
		}
		as = as[n:]
	}
	return nil
}

// EntryQuery selects a tenant's entries by the time they were queued.
type EntryQuery struct {
	Tenant string
	// From and To bound the time queued (From included, To excluded);
	// zero: unbounded.
	From, To time.Time
	// After continues a listing: only entries after this (time, index)
	// cursor, as the last entry of the previous page had.
	After *Attribution
	// Limit is the most entries returned.
	Limit int
}

// TenantEntries returns the entries q selects, oldest first.
func (d *DB) TenantEntries(ctx context.Context, q EntryQuery) ([]Attribution, error) {
	where := []string{"tenant = ?"}
	args := []any{q.Tenant}
	if !q.From.IsZero() {
		where, args = append(where, "queued_at >= ?"), append(args, q.From.UnixMicro())
	}
	if !q.To.IsZero() {
		where, args = append(where, "queued_at < ?"), append(args, q.To.UnixMicro())
	}
	if q.After != nil {
		at := q.After.QueuedAt.UnixMicro()
		where = append(where, "(queued_at > ? OR queued_at = ? AND leaf_index > ?)")
		args = append(args, at, at, int64(q.After.Index))
	}
	args = append(args, q.Limit)
	rows, err := d.db.QueryContext(ctx, `SELECT leaf_index, tenant, leaf_hash, queued_at FROM tenant_entries WHERE `+
		strings.Join(where, " AND ")+` ORDER BY queued_at, leaf_index LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing entries of tenant %q: %w", q.Tenant, err)
	}
	defer rows.Close()
	var out []Attribution
	for rows.Next() {
		var a Attribution
		var index, at int64
		var lh []byte
		if err := rows.Scan(&index, &a.Tenant, &lh, &at); err != nil {
			return nil, fmt.Errorf("listing entries of tenant %q: %w", q.Tenant, err)
		}
		if len(lh) != 32 {
			return nil, fmt.Errorf("listing entries of tenant %q: a stored hash is not 32 bytes", q.Tenant)
		}
		copy(a.LeafHash[:], lh)
		a.Index, a.QueuedAt = uint64(index), time.UnixMicro(at)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing entries of tenant %q: %w", q.Tenant, err)
	}
	return out, nil
}
