package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/evidentlog/evident/checkpoint"
)

// OpsTenant is the reserved tenant under which a log's operations record
// is appended: every admin action (tenants and keys added, rotated,
// revoked, quotas changed, the log created, its witness policy changed)
// becomes an entry of the log itself. No key is ever issued to it.
const OpsTenant = "evident.ops"

// OpsRecord is one admin action, as the state database keeps it.
type OpsRecord struct {
	// Seq numbers the records in the order they were made.
	Seq int64
	// Record is the action as canonical JSON: {"seq", "at", "action",
	// "by" and the action's fields}; it stays in the state database.
	Record []byte
	// Entry is what the log appends for it: a commitment to Record
	// (OpsEntry), so that the public log shows that an admin action
	// happened, not which tenants and keys it named.
	Entry []byte
	// LeafHash is the RFC 6962 leaf hash of Entry.
	LeafHash [32]byte
	// Queued is set once Entry is durably queued in the log.
	Queued bool
}

// opsEntryPrefix starts every operations record entry.
const opsEntryPrefix = "evident operations record v1\n"

// OpsEntry returns the log entry of an operations record: the prefix, the
// sequence number, and the SHA-256 of the record, one per line.
func OpsEntry(seq int64, record []byte) []byte {
	h := sha256.Sum256(record)
	return fmt.Appendf(nil, "%sseq %d\nsha256 %s\n", opsEntryPrefix, seq, hex.EncodeToString(h[:]))
}

// opsSchema returns the CREATE statement of ops_records (schema version 5).
func opsSchema(d Dialect) []string {
	id, blob, hash, boolean := "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "BLOB", "INTEGER"
	if d == MySQL {
		id, blob, hash, boolean = "BIGINT PRIMARY KEY AUTO_INCREMENT", "LONGBLOB", "BINARY(32)", "BOOLEAN"
	}
	// ops_records: every admin action, written in the transaction of the
	// change itself, then appended to the log by the servers (queued is
	// set once its entry is durably queued; appending again is a
	// duplicate, so servers racing to append are harmless).
	return []string{`CREATE TABLE IF NOT EXISTS ops_records (
			seq ` + id + `,
			record ` + blob + ` NULL,
			entry ` + blob + ` NULL,
			leaf_hash ` + hash + ` NULL,
			queued ` + boolean + ` NOT NULL DEFAULT 0
		)`}
}

// opsActor says who made a change: the operating system user and host of
// the process, for the record.
func opsActor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// recordOp writes an operations record of action with fields in the
// caller's transaction. The record's sequence number is the row's ID,
// so the row is inserted first and completed after.
func recordOp(ctx context.Context, tx *sql.Tx, action string, fields map[string]any) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO ops_records (queued) VALUES (0)`)
	if err != nil {
		return fmt.Errorf("recording the operation: %w", err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("recording the operation: %w", err)
	}
	rec := map[string]any{"seq": seq, "at": time.Now().UTC().Format(time.RFC3339Nano), "action": action, "by": opsActor()}
	for k, v := range fields {
		rec[k] = v
	}
	// encoding/json sorts map keys: the same record always has the same
	// bytes.
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("recording the operation: %w", err)
	}
	entry := OpsEntry(seq, b)
	h := checkpoint.LeafHash(entry)
	if _, err := tx.ExecContext(ctx, `UPDATE ops_records SET record = ?, entry = ?, leaf_hash = ? WHERE seq = ?`, b, entry, h[:], seq); err != nil {
		return fmt.Errorf("recording the operation: %w", err)
	}
	return nil
}

// RecordOp writes an operations record of action with fields in a
// transaction of its own (for actions that are not changes of this
// database: the log created, its witness policy changed).
func (d *DB) RecordOp(ctx context.Context, action string, fields map[string]any) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("recording the operation: %w", err)
	}
	defer tx.Rollback()
	if err := recordOp(ctx, tx, action, fields); err != nil {
		return err
	}
	return tx.Commit()
}

// OpsRecords returns up to limit records after seq after, oldest first;
// with pending, only those not yet queued in the log.
func (d *DB) OpsRecords(ctx context.Context, after int64, limit int, pending bool) ([]OpsRecord, error) {
	q := `SELECT seq, record, entry, leaf_hash, queued FROM ops_records WHERE seq > ? AND record IS NOT NULL`
	if pending {
		q += ` AND queued = 0`
	}
	rows, err := d.db.QueryContext(ctx, q+` ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading operations records: %w", err)
	}
	defer rows.Close()
	var out []OpsRecord
	for rows.Next() {
		var r OpsRecord
		var h []byte
		if err := rows.Scan(&r.Seq, &r.Record, &r.Entry, &h, &r.Queued); err != nil {
			return nil, fmt.Errorf("reading operations records: %w", err)
		}
		if len(h) != 32 {
			return nil, errors.New("reading operations records: a stored leaf hash is not 32 bytes")
		}
		copy(r.LeafHash[:], h)
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkOpQueued records that the entry of record seq is durably queued.
func (d *DB) MarkOpQueued(ctx context.Context, seq int64) error {
	if _, err := d.db.ExecContext(ctx, `UPDATE ops_records SET queued = 1 WHERE seq = ?`, seq); err != nil {
		return fmt.Errorf("marking operations record %d queued: %w", seq, err)
	}
	return nil
}

// NotePolicy records that the server now runs with the policy of kind
// (for example "witness_policy") whose text hashes to digest ("" for
// none). The first policy a log runs with is its initial configuration,
// only remembered; a later call with another digest (another policy, or
// none) writes an operations record of the change, in the same
// transaction. It reports whether a change was recorded.
func (d *DB) NotePolicy(ctx context.Context, kind, digest string) (changed bool, err error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("noting the %s: %w", kind, err)
	}
	defer tx.Rollback()
	name := kind + "_sha256"
	var prev []byte
	err = tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&prev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)`, name, []byte(digest))
	case err == nil && string(prev) != digest:
		changed = len(prev) > 0
		if _, err = tx.ExecContext(ctx, `UPDATE settings SET value = ? WHERE name = ?`, []byte(digest), name); err == nil && changed {
			err = recordOp(ctx, tx, kind+".change", map[string]any{"sha256": digest, "previous_sha256": string(prev)})
		}
	}
	if err != nil {
		return false, fmt.Errorf("noting the %s: %w", kind, err)
	}
	return changed, tx.Commit()
}
