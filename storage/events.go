package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of the event methods.
var (
	// ErrNotPrivate is returned by EraseEvent for a public event: its data
	// is in the log's entry, which nothing can erase.
	ErrNotPrivate = errors.New("the event is public: its data is in the log and cannot be erased")
	// ErrErased is returned by EraseEvent for an event erased before.
	ErrErased = errors.New("the event's data was erased already")
)

// eventsSchema returns the CREATE statements of the events table and its
// indexes in dialect d (schema version 3).
func eventsSchema(d Dialect) []string {
	id, hash, blob, text, id128, boolean := "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "BLOB", "TEXT", "TEXT", "INTEGER"
	if d == MySQL {
		// VARBINARY: byte-exact comparisons, whatever the server's
		// collation; 256 bytes is event.MaxTextSize.
		id, hash, blob, text, id128, boolean = "BIGINT PRIMARY KEY AUTO_INCREMENT", "BINARY(32)", "LONGBLOB", "VARBINARY(256)", "VARBINARY(128)", "BOOLEAN"
	}
	indexes := map[string]string{
		"events_subject": "subject, seq", "events_type": "type, seq",
		"events_actor": "actor, seq", "events_occurred": "occurred_at, seq",
	}
	names := []string{"events_subject", "events_type", "events_actor", "events_occurred"}
	inline := ""
	var stmts []string
	for _, n := range names {
		if d == MySQL {
			// MySQL has no CREATE INDEX IF NOT EXISTS: inline, so that
			// the CREATE TABLE stays idempotent.
			inline += ",\n\t\t\tINDEX " + n + " (" + indexes[n] + ")"
		} else {
			stmts = append(stmts, "CREATE INDEX IF NOT EXISTS "+n+" ON events ("+indexes[n]+")")
		}
	}
	// events: every typed event the log accepted (package event), with its
	// entry, the fields queries filter on, and for a private event its
	// data and salt until they are erased. seq orders events for paging.
	// A row is written before its entry is queued in the log, so an
	// acknowledged event always has its row; a row whose entry never
	// reached the log (the server stopped in between) was never
	// acknowledged, and its id submitted again queues the same entry.
	table := `CREATE TABLE IF NOT EXISTS events (
			seq ` + id + `,
			leaf_hash ` + hash + ` NOT NULL UNIQUE,
			entry ` + blob + ` NOT NULL,
			event_id ` + id128 + ` NULL UNIQUE,
			type ` + text + ` NOT NULL,
			actor ` + text + ` NOT NULL,
			subject ` + text + ` NOT NULL,
			occurred_at BIGINT NOT NULL,
			received_at BIGINT NOT NULL,
			private ` + boolean + ` NOT NULL,
			data ` + blob + ` NULL,
			salt ` + hash + ` NULL,
			erased_at BIGINT NULL,
			erased_by ` + text + ` NULL,
			erase_reason ` + blob + ` NULL` + inline + `
		)`
	return append([]string{table}, stmts...)
}

// StoredEvent is a typed event as the state database holds it.
type StoredEvent struct {
	// Seq orders events in the order they were stored (for paging).
	Seq int64
	// LeafHash is the entry's RFC 6962 leaf hash.
	LeafHash [32]byte
	// Entry is the event's entry, the canonical JSON in the log.
	Entry []byte
	// EventID is the writer's id for the event ("" when none).
	EventID string
	// Type, Actor, Subject, OccurredAt and ReceivedAt repeat the entry's
	// fields, for queries (times to the microsecond).
	Type, Actor, Subject   string
	OccurredAt, ReceivedAt time.Time
	// Private is set for an event whose entry holds a commitment.
	Private bool
	// Data and Salt open a private event's commitment; nil when the event
	// is public or erased.
	Data, Salt []byte
	// ErasedAt is when a private event's data and salt were erased (zero
	// when not), ErasedBy who erased them and EraseReason why.
	ErasedAt    time.Time
	ErasedBy    string
	EraseReason string
}

// AddEvent durably stores e (its Seq is ignored) and returns the stored
// row. When an event with the same EventID (or the same entry) is stored
// already, nothing is written and that event is returned with existing
// set, whatever it holds: the caller compares.
func (d *DB) AddEvent(ctx context.Context, e *StoredEvent) (stored *StoredEvent, existing bool, err error) {
	var eventID any
	if e.EventID != "" {
		eventID = e.EventID
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO events (leaf_hash, entry, event_id, type, actor, subject,
		occurred_at, received_at, private, data, salt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.LeafHash[:], e.Entry, eventID, e.Type, e.Actor, e.Subject,
		e.OccurredAt.UnixMicro(), e.ReceivedAt.UnixMicro(), e.Private, nilIfEmpty(e.Data), nilIfEmpty(e.Salt))
	switch {
	case err == nil:
		s, err := d.Event(ctx, e.LeafHash)
		return s, false, err
	case !isDuplicate(err):
		return nil, false, fmt.Errorf("storing event: %w", err)
	}
	if e.EventID != "" {
		if s, err := d.EventByID(ctx, e.EventID); err == nil {
			return s, true, nil
		}
	}
	s, err := d.Event(ctx, e.LeafHash)
	if err != nil {
		return nil, false, fmt.Errorf("storing event: %w", err)
	}
	return s, true, nil
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

const eventColumns = `seq, leaf_hash, entry, event_id, type, actor, subject, occurred_at, received_at,
	private, data, salt, erased_at, erased_by, erase_reason`

// Event returns the event whose entry has the given leaf hash, or
// ErrNotFound.
func (d *DB) Event(ctx context.Context, leafHash [32]byte) (*StoredEvent, error) {
	return scanEventRow(d.db.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE leaf_hash = ?`, leafHash[:]))
}

// EventByID returns the event with the writer's id, or ErrNotFound.
func (d *DB) EventByID(ctx context.Context, id string) (*StoredEvent, error) {
	return scanEventRow(d.db.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE event_id = ?`, id))
}

func scanEventRow(row *sql.Row) (*StoredEvent, error) {
	e, err := scanEvent(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("event: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading event: %w", err)
	}
	return e, nil
}

func scanEvent(r interface{ Scan(...any) error }) (*StoredEvent, error) {
	var e StoredEvent
	var hash []byte
	var eventID, erasedBy, reason sql.Null[[]byte]
	var occurred, received int64
	var erasedAt sql.NullInt64
	if err := r.Scan(&e.Seq, &hash, &e.Entry, &eventID, &e.Type, &e.Actor, &e.Subject, &occurred, &received,
		&e.Private, &e.Data, &e.Salt, &erasedAt, &erasedBy, &reason); err != nil {
		return nil, err
	}
	if len(hash) != 32 {
		return nil, fmt.Errorf("stored leaf hash of %d bytes", len(hash))
	}
	e.LeafHash = [32]byte(hash)
	e.EventID, e.ErasedBy, e.EraseReason = string(eventID.V), string(erasedBy.V), string(reason.V)
	e.OccurredAt, e.ReceivedAt = time.UnixMicro(occurred).UTC(), time.UnixMicro(received).UTC()
	if erasedAt.Valid {
		e.ErasedAt = time.UnixMicro(erasedAt.Int64).UTC()
	}
	return &e, nil
}

// EventQuery selects events. Empty fields select everything.
type EventQuery struct {
	Subject, Type, Actor string
	// From and To bound occurred_at: From <= occurred_at < To (zero: no
	// bound).
	From, To time.Time
	// After continues a listing after the event with this Seq.
	After int64
	// Limit caps the answer (at least 1).
	Limit int
}

// Events returns the events q selects, in Seq order.
func (d *DB) Events(ctx context.Context, q EventQuery) ([]StoredEvent, error) {
	where := []string{"seq > ?"}
	args := []any{q.After}
	for _, c := range []struct{ col, v string }{{"subject", q.Subject}, {"type", q.Type}, {"actor", q.Actor}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if !q.From.IsZero() {
		where = append(where, "occurred_at >= ?")
		args = append(args, q.From.UnixMicro())
	}
	if !q.To.IsZero() {
		where = append(where, "occurred_at < ?")
		args = append(args, q.To.UnixMicro())
	}
	args = append(args, max(q.Limit, 1))
	rows, err := d.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE `+
		strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	defer rows.Close()
	var out []StoredEvent
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("listing events: %w", err)
		}
		out = append(out, *e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	return out, nil
}

// EraseEvent deletes a private event's data and salt (crypto-shredding:
// its entry's commitment can no longer be opened) and records when, by
// whom and why. It returns the erased event. Errors: ErrNotFound,
// ErrNotPrivate, ErrErased.
//
// On SQLite the erasure overwrites the freed bytes (secure_delete) and
// truncates the write-ahead log, so that the data survives neither in the
// database file nor in its WAL. Backups and, on MySQL, the server's undo
// and binary logs keep it until they expire (docs/compliance.md).
func (d *DB) EraseEvent(ctx context.Context, leafHash [32]byte, at time.Time, by, reason string) (*StoredEvent, error) {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("erasing event: %w", err)
	}
	defer conn.Close()
	if d.dialect == SQLite {
		if _, err := conn.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
			return nil, fmt.Errorf("erasing event: %w", err)
		}
	}
	// Only a private event not erased yet changes: erasing is one-way and
	// the first erasure's record stands.
	res, err := conn.ExecContext(ctx, `UPDATE events SET data = NULL, salt = NULL, erased_at = ?, erased_by = ?, erase_reason = ?
		WHERE leaf_hash = ? AND private AND erased_at IS NULL`, at.UnixMicro(), by, []byte(reason), leafHash[:])
	if err != nil {
		return nil, fmt.Errorf("erasing event: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, fmt.Errorf("erasing event: %w", err)
	}
	e, err := d.Event(ctx, leafHash)
	switch {
	case err != nil:
		return nil, err
	case !e.Private:
		return nil, ErrNotPrivate
	}
	if d.dialect == SQLite {
		// The old page images are in the WAL until a checkpoint copies the
		// overwritten pages back and the WAL is truncated.
		var busy, logged, done int
		if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logged, &done); err != nil {
			return nil, fmt.Errorf("erasing event: checkpointing the WAL: %w", err)
		}
		if busy != 0 {
			return nil, fmt.Errorf("erasing event: the data is erased, but a reader kept the write-ahead log from being truncated; erase again to retry")
		}
	}
	if n == 0 {
		return nil, ErrErased
	}
	return e, nil
}
