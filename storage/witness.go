package storage

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrWitnessStateChanged is returned by [DB.SwapWitnessState] when the state
// of the origin is no longer the one the caller read: another request
// updated it first. The caller must read the state again and re-check the
// new checkpoint against it; it must not cosign on the strength of the old
// read.
var ErrWitnessStateChanged = errors.New("witness state changed concurrently")

// WitnessState is the latest checkpoint a witness cosigned for one log.
type WitnessState struct {
	// Origin is the log's origin line.
	Origin string
	// Size and Root are the tree size and root hash of the checkpoint.
	Size uint64
	Root [32]byte
	// Note is the signed checkpoint, byte for byte as received, with the
	// witness's own cosignature appended.
	Note []byte
	// UpdatedAt is when the state was last written.
	UpdatedAt time.Time
}

// WitnessEvidence is a pair of validly signed checkpoints of one log that a
// witness found in conflict, kept forever.
type WitnessEvidence struct {
	// ID numbers the evidence in the order it was found (set by the
	// database).
	ID int64
	// Origin is the log's origin line.
	Origin string
	// HeldNote is the checkpoint the witness held (and had cosigned) when the
	// conflicting one arrived.
	HeldNote []byte
	// NewNote is the conflicting checkpoint, byte for byte as received.
	NewNote []byte
	// Proof is the consistency proof that came with NewNote (32-byte
	// hashes), possibly empty.
	Proof [][]byte
	// Reason says what conflicts, e.g. "same-size-different-root".
	Reason string
	// FoundAt is when the witness found it.
	FoundAt time.Time
}

// maxSize is the largest tree size the BIGINT columns hold.
const maxSize = math.MaxInt64

// WitnessState returns the state held for origin, and false if the witness
// never cosigned a checkpoint of that origin.
func (d *DB) WitnessState(ctx context.Context, origin string) (WitnessState, bool, error) {
	var (
		st   = WitnessState{Origin: origin}
		size int64
		root []byte
		at   int64
	)
	err := d.db.QueryRowContext(ctx,
		`SELECT size, root, note, updated_at FROM witness_state WHERE origin = ?`, origin,
	).Scan(&size, &root, &st.Note, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return WitnessState{}, false, nil
	}
	if err != nil {
		return WitnessState{}, false, fmt.Errorf("reading witness state of %q: %w", origin, err)
	}
	if err := st.fill(size, root, at); err != nil {
		return WitnessState{}, false, err
	}
	return st, true, nil
}

// WitnessStates returns the state of every origin the witness has cosigned,
// ordered by origin.
func (d *DB) WitnessStates(ctx context.Context) ([]WitnessState, error) {
	rows, err := d.db.QueryContext(ctx,
		`SELECT origin, size, root, note, updated_at FROM witness_state ORDER BY origin`)
	if err != nil {
		return nil, fmt.Errorf("reading witness states: %w", err)
	}
	defer rows.Close()
	var out []WitnessState
	for rows.Next() {
		var (
			st   WitnessState
			size int64
			root []byte
			at   int64
		)
		if err := rows.Scan(&st.Origin, &size, &root, &st.Note, &at); err != nil {
			return nil, fmt.Errorf("reading witness states: %w", err)
		}
		if err := st.fill(size, root, at); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading witness states: %w", err)
	}
	return out, nil
}

func (st *WitnessState) fill(size int64, root []byte, at int64) error {
	if size < 0 || len(root) != 32 {
		return fmt.Errorf("witness state of %q is corrupt (size %d, root of %d bytes)", st.Origin, size, len(root))
	}
	st.Size = uint64(size)
	copy(st.Root[:], root)
	st.UpdatedAt = time.Unix(0, at)
	return nil
}

// SwapWitnessState replaces the state of next.Origin by next, provided the
// stored state is still prev (compared on size and root); prev nil means the
// origin must have no state yet. It returns ErrWitnessStateChanged when the
// stored state is another, and changes nothing then.
func (d *DB) SwapWitnessState(ctx context.Context, prev *WitnessState, next WitnessState) error {
	return swapWitnessState(ctx, d.db, prev, next)
}

// WitnessSwap is one compare-and-swap of SwapWitnessStates.
type WitnessSwap struct {
	// Prev is the state the caller read (nil: the origin had none).
	Prev *WitnessState
	// Next is the state to store if the stored one is still Prev.
	Next WitnessState
}

// SwapWitnessStates applies each swap, in order, as SwapWitnessState does,
// all in one transaction: one commit (one fsync on SQLite) for the batch.
// errs[i] is nil or the error of swaps[i] (ErrWitnessStateChanged when it
// lost the compare-and-swap; then it changed nothing, and the others still
// apply). When err is not nil the transaction failed and nothing was
// stored.
func (d *DB) SwapWitnessStates(ctx context.Context, swaps []WitnessSwap) (errs []error, err error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("storing witness states: %w", err)
	}
	defer tx.Rollback()
	errs = make([]error, len(swaps))
	for i, s := range swaps {
		errs[i] = swapWitnessState(ctx, tx, s.Prev, s.Next)
		if errs[i] != nil && !errors.Is(errs[i], ErrWitnessStateChanged) && !errors.Is(errs[i], errBadState) {
			return nil, errs[i]
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("storing witness states: %w", err)
	}
	return errs, nil
}

// errBadState marks a swap refused before touching the database.
var errBadState = errors.New("invalid witness state")

// querier is what swapWitnessState needs: a *sql.DB or a *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func swapWitnessState(ctx context.Context, q querier, prev *WitnessState, next WitnessState) error {
	if next.Size > maxSize {
		return fmt.Errorf("tree size %d does not fit the witness state table: %w", next.Size, errBadState)
	}
	at := next.UpdatedAt.UnixNano()
	if prev == nil {
		_, err := q.ExecContext(ctx,
			`INSERT INTO witness_state (origin, size, root, note, updated_at) VALUES (?, ?, ?, ?, ?)`,
			next.Origin, int64(next.Size), next.Root[:], next.Note, at)
		if isDuplicate(err) {
			// Another request stored a first checkpoint for this origin.
			return ErrWitnessStateChanged
		}
		if err != nil {
			return fmt.Errorf("storing witness state of %q: %w", next.Origin, err)
		}
		return nil
	}
	if prev.Origin != next.Origin {
		return fmt.Errorf("swapping witness state of %q with one of %q: %w", prev.Origin, next.Origin, errBadState)
	}
	// SECURITY: compare-and-swap on (size, root). Checking the new checkpoint
	// against prev and storing it must be one atomic step, or a request that
	// was checked against an older state could roll the size back after a
	// concurrent request advanced it (tlog-witness, add-checkpoint).
	res, err := q.ExecContext(ctx,
		`UPDATE witness_state SET size = ?, root = ?, note = ?, updated_at = ?
		 WHERE origin = ? AND size = ? AND root = ?`,
		int64(next.Size), next.Root[:], next.Note, at,
		next.Origin, int64(prev.Size), prev.Root[:])
	if err != nil {
		return fmt.Errorf("storing witness state of %q: %w", next.Origin, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("storing witness state of %q: %w", next.Origin, err)
	}
	if n == 1 {
		return nil
	}
	// MySQL counts a matched row whose values did not change as 0 rows
	// affected. If the row already holds exactly next, the outcome is the one
	// we wanted, whoever wrote it.
	var (
		size int64
		root []byte
		note []byte
	)
	err = q.QueryRowContext(ctx, `SELECT size, root, note FROM witness_state WHERE origin = ?`, next.Origin).Scan(&size, &root, &note)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrWitnessStateChanged
	}
	if err != nil {
		return fmt.Errorf("reading witness state of %q: %w", next.Origin, err)
	}
	if size == int64(next.Size) && bytes.Equal(root, next.Root[:]) && bytes.Equal(note, next.Note) {
		return nil
	}
	return ErrWitnessStateChanged
}

// AddWitnessEvidence stores e (its ID and, when zero, FoundAt are set by
// the database and the clock) unless the same conflict is already stored: a
// record of e.Origin whose held and new notes have the same signed bodies
// (the note text before the signature lines) as e's, whatever their
// signature lines. It returns the ID of the stored record, new or old, and
// whether it stored e. The check and the insert are one transaction (on
// MySQL it also locks the origin's witness_state row), so that a conflict
// submitted again and again, concurrently or across restarts, is kept once.
func (d *DB) AddWitnessEvidence(ctx context.Context, e WitnessEvidence) (id int64, added bool, err error) {
	if e.FoundAt.IsZero() {
		e.FoundAt = time.Now()
	}
	var proof []byte
	for _, h := range e.Proof {
		if len(h) != 32 {
			return 0, false, fmt.Errorf("evidence proof hash of %d bytes", len(h))
		}
		proof = append(proof, h...)
	}
	if proof == nil {
		proof = []byte{}
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("storing witness evidence for %q: %w", e.Origin, err)
	}
	defer tx.Rollback()
	if d.dialect == MySQL {
		// Serialise evidence of one origin: without it two transactions
		// could both find no record and both insert one. (SQLite
		// transactions here take the write lock when they begin.)
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM witness_state WHERE origin = ? FOR UPDATE`, e.Origin).Scan(&one)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, false, fmt.Errorf("storing witness evidence for %q: %w", e.Origin, err)
		}
	}
	id, err = findEvidence(ctx, tx, e)
	if err != nil || id != 0 {
		return id, false, err
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO witness_evidence (origin, held_note, new_note, proof, reason, found_at) VALUES (?, ?, ?, ?, ?, ?)`,
		e.Origin, e.HeldNote, e.NewNote, proof, []byte(e.Reason), e.FoundAt.UnixNano())
	if err != nil {
		return 0, false, fmt.Errorf("storing witness evidence for %q: %w", e.Origin, err)
	}
	id, err = res.LastInsertId()
	if err != nil {
		return 0, false, fmt.Errorf("storing witness evidence for %q: %w", e.Origin, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("storing witness evidence for %q: %w", e.Origin, err)
	}
	return id, true, nil
}

// findEvidence returns the ID of a stored record of the same conflict as e
// (see AddWitnessEvidence), or 0. SQL narrows the candidates to records
// whose notes start with the same bytes; the exact comparison is here.
func findEvidence(ctx context.Context, tx *sql.Tx, e WitnessEvidence) (int64, error) {
	held, nw := noteText(e.HeldNote), noteText(e.NewNote)
	rows, err := tx.QueryContext(ctx,
		`SELECT id, held_note, new_note FROM witness_evidence
		 WHERE origin = ? AND SUBSTR(held_note, 1, ?) = ? AND SUBSTR(new_note, 1, ?) = ? ORDER BY id`,
		e.Origin, len(held), held, len(nw), nw)
	if err != nil {
		return 0, fmt.Errorf("reading witness evidence for %q: %w", e.Origin, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id     int64
			hn, nn []byte
		)
		if err := rows.Scan(&id, &hn, &nn); err != nil {
			return 0, fmt.Errorf("reading witness evidence for %q: %w", e.Origin, err)
		}
		if bytes.Equal(noteText(hn), held) && bytes.Equal(noteText(nn), nw) {
			return id, nil
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reading witness evidence for %q: %w", e.Origin, err)
	}
	return 0, nil
}

// noteText returns the signed text of a note: everything up to the last
// blank line (signed-note), or the whole of b if it has none.
func noteText(b []byte) []byte {
	if i := bytes.LastIndex(b, []byte("\n\n")); i >= 0 {
		return b[:i+1]
	}
	return b
}

// ListWitnessEvidence returns up to limit pieces of evidence with an ID
// greater than after, oldest first.
func (d *DB) ListWitnessEvidence(ctx context.Context, after int64, limit int) ([]WitnessEvidence, error) {
	rows, err := d.db.QueryContext(ctx,
		`SELECT id, origin, held_note, new_note, proof, reason, found_at FROM witness_evidence
		 WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading witness evidence: %w", err)
	}
	defer rows.Close()
	var out []WitnessEvidence
	for rows.Next() {
		var (
			e      WitnessEvidence
			proof  []byte
			reason []byte
			at     int64
		)
		if err := rows.Scan(&e.ID, &e.Origin, &e.HeldNote, &e.NewNote, &proof, &reason, &at); err != nil {
			return nil, fmt.Errorf("reading witness evidence: %w", err)
		}
		if len(proof)%32 != 0 {
			return nil, fmt.Errorf("witness evidence %d is corrupt (proof of %d bytes)", e.ID, len(proof))
		}
		for i := 0; i < len(proof); i += 32 {
			e.Proof = append(e.Proof, proof[i:i+32:i+32])
		}
		e.Reason = string(reason)
		e.FoundAt = time.Unix(0, at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading witness evidence: %w", err)
	}
	return out, nil
}
