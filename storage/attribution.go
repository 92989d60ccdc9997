package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Attribution records that a tenant submitted an entry: the tenant, the
// entry's leaf identity in Trillian (which includes the tenant: see
// log.IdentityHash), its RFC 6962 leaf hash, when it was first queued,
// and its index once known.
type Attribution struct {
	Tenant   string
	Identity [32]byte
	LeafHash [32]byte
	QueuedAt time.Time
	// Index is the entry's index, when HasIndex.
	Index    uint64
	HasIndex bool
}

// attributionSchema returns the CREATE statements of tenant_entries
// (schema version 5) in dialect d.
func attributionSchema(d Dialect) []string {
	hash, text := "BLOB", "TEXT"
	if d == MySQL {
		hash, text = "BINARY(32)", "VARCHAR(255)"
	}
	inline, index := "", `CREATE INDEX IF NOT EXISTS tenant_entries_time ON tenant_entries (tenant, queued_at, identity_hash)`
	if d == MySQL {
		// MySQL has no CREATE INDEX IF NOT EXISTS: inline, so that the
		// CREATE TABLE stays idempotent.
		inline, index = ",\n\t\t\tINDEX tenant_entries_time (tenant, queued_at, identity_hash)", ""
	}
	// tenant_entries: which tenant submitted each entry, for listing a
	// tenant's entries by time. A row is written after its entry is
	// queued in Trillian and before the submitter is answered, so every
	// acknowledged entry has its row (a retry after a failure in between
	// is a duplicate, which writes the row then). The first submission's
	// time stays.
	stmts := []string{`CREATE TABLE IF NOT EXISTS tenant_entries (
			identity_hash ` + hash + ` NOT NULL PRIMARY KEY,
			tenant ` + text + ` NOT NULL,
			leaf_hash ` + hash + ` NOT NULL,
			queued_at BIGINT NOT NULL,
			leaf_index BIGINT NULL` + inline + `
		)`}
	if index != "" {
		stmts = append(stmts, index)
	}
	return stmts
}

// RecordEntries stores the attributions of entries just queued, in one
// statement; an entry recorded before keeps its row (and first time).
func (d *DB) RecordEntries(ctx context.Context, as []Attribution) error {
	if len(as) == 0 {
		return nil
	}
	insert := "INSERT OR IGNORE"
	if d.dialect == MySQL {
		insert = "INSERT IGNORE"
	}
	var b strings.Builder
	b.WriteString(insert + " INTO tenant_entries (identity_hash, tenant, leaf_hash, queued_at) VALUES ")
	args := make([]any, 0, 4*len(as))
	for i, a := range as {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?)")
		args = append(args, a.Identity[:], a.Tenant, a.LeafHash[:], a.QueuedAt.UnixMicro())
	}
	if _, err := d.db.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("recording %d entries' tenants: %w", len(as), err)
	}
	return nil
}

// EntryQuery selects a tenant's entries by the time they were queued.
type EntryQuery struct {
	Tenant string
	// From and To bound the time queued (From included, To excluded);
	// zero: unbounded.
	From, To time.Time
	// After continues a listing: only entries after this (time,
	// identity) cursor, as the last entry of the previous page had.
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
		where = append(where, "(queued_at > ? OR queued_at = ? AND identity_hash > ?)")
		args = append(args, at, at, q.After.Identity[:])
	}
	args = append(args, q.Limit)
	rows, err := d.db.QueryContext(ctx, `SELECT identity_hash, tenant, leaf_hash, queued_at, leaf_index FROM tenant_entries WHERE `+
		strings.Join(where, " AND ")+` ORDER BY queued_at, identity_hash LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing entries of tenant %q: %w", q.Tenant, err)
	}
	defer rows.Close()
	var out []Attribution
	for rows.Next() {
		var a Attribution
		var id, lh []byte
		var at int64
		var index sql.NullInt64
		if err := rows.Scan(&id, &a.Tenant, &lh, &at, &index); err != nil {
			return nil, fmt.Errorf("listing entries of tenant %q: %w", q.Tenant, err)
		}
		if len(id) != 32 || len(lh) != 32 {
			return nil, fmt.Errorf("listing entries of tenant %q: a stored hash is not 32 bytes", q.Tenant)
		}
		copy(a.Identity[:], id)
		copy(a.LeafHash[:], lh)
		a.QueuedAt = time.UnixMicro(at)
		if index.Valid {
			a.Index, a.HasIndex = uint64(index.Int64), true
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing entries of tenant %q: %w", q.Tenant, err)
	}
	return out, nil
}

// SetEntryIndex records the index of the entry with identity, once
// known (checked against the log by the caller).
func (d *DB) SetEntryIndex(ctx context.Context, identity [32]byte, index uint64) error {
	if _, err := d.db.ExecContext(ctx, `UPDATE tenant_entries SET leaf_index = ? WHERE identity_hash = ?`, int64(index), identity[:]); err != nil {
		return fmt.Errorf("recording an entry's index: %w", err)
	}
	return nil
}
