package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// ErrTokenRevoked is returned by ReplaceTokens when the token was replaced
// by an earlier ReplaceTokens: it is a stale copy of a rotated token. Use
// the current token (or replace it with a new one); a rotated token never
// comes back.
var ErrTokenRevoked = errors.New("write token was revoked when it was replaced")

// TokenHash is the SHA-256 hash of a write token. Only hashes are stored, so
// a copy of the database does not let anyone write to the log.
type TokenHash [32]byte

// HashToken returns the hash under which token is stored.
func HashToken(token string) TokenHash { return sha256.Sum256([]byte(token)) }

// WriteToken is a stored write token: its hash and a name for people.
type WriteToken struct {
	Hash      TokenHash
	Name      string
	CreatedAt time.Time
}

// AddToken allows token to add entries, under a descriptive name. Adding a
// token that is already stored is a no-op.
func (d *DB) AddToken(ctx context.Context, name, token string) error {
	if token == "" {
		return fmt.Errorf("adding write token %q: empty token", name)
	}
	h := HashToken(token)
	_, err := d.db.ExecContext(ctx,
		`INSERT INTO write_tokens (token_hash, name, created_at) VALUES (?, ?, ?)`,
		h[:], name, time.Now().UnixMilli())
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("adding write token %q: %w", name, err)
	}
	return bumpGeneration(ctx, d.db)
}

// DeleteToken revokes token. Revoking an unknown token is a no-op.
func (d *DB) DeleteToken(ctx context.Context, token string) error {
	h := HashToken(token)
	if _, err := d.db.ExecContext(ctx, `DELETE FROM write_tokens WHERE token_hash = ?`, h[:]); err != nil {
		return fmt.Errorf("deleting write token: %w", err)
	}
	return bumpGeneration(ctx, d.db)
}

// Tokens returns every stored write token. Callers compare a presented
// token's hash against each of them in constant time (crypto/subtle), rather
// than looking the hash up with an index whose timing depends on the value.
func (d *DB) Tokens(ctx context.Context) ([]WriteToken, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT token_hash, name, created_at FROM write_tokens`)
	if err != nil {
		return nil, fmt.Errorf("listing write tokens: %w", err)
	}
	defer rows.Close()
	var out []WriteToken
	for rows.Next() {
		var t WriteToken
		var h []byte
		var at int64
		if err := rows.Scan(&h, &t.Name, &at); err != nil {
			return nil, fmt.Errorf("listing write tokens: %w", err)
		}
		if len(h) != len(t.Hash) {
			return nil, fmt.Errorf("listing write tokens: stored hash of %q has %d bytes", t.Name, len(h))
		}
		copy(t.Hash[:], h)
		t.CreatedAt = time.UnixMilli(at)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing write tokens: %w", err)
	}
	return out, nil
}

// ReplaceTokens makes token the only write token stored under name, in one
// transaction: tokens stored under name with other hashes are deleted and
// revoked, token is added unless it is stored already, and other names'
// tokens are untouched. It returns how many tokens it revoked (zero when
// token already was the one stored under name, so calling it again with the
// same token, as every server sharing one state database does on start,
// changes nothing).
//
// A revoked token's hash is remembered (in settings) and ReplaceTokens
// refuses it from then on with ErrTokenRevoked, changing nothing: a stale
// copy of a rotated token, on one of several servers that share this
// database, cannot bring it back and revoke its successor.
func (d *DB) ReplaceTokens(ctx context.Context, name, token string) (revoked int, err error) {
	if token == "" {
		return 0, fmt.Errorf("replacing write tokens %q: empty token", name)
	}
	h := HashToken(token)
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("replacing write tokens %q: %w", name, err)
	}
	defer tx.Rollback()
	var when []byte
	err = tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, revokedSetting(h)).Scan(&when)
	switch {
	case err == nil:
		return 0, fmt.Errorf("write token %q: %w (%s)", name, ErrTokenRevoked, when)
	case !errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("replacing write tokens %q: %w", name, err)
	}
	old, err := tokenHashes(ctx, tx, name)
	if err != nil {
		return 0, fmt.Errorf("replacing write tokens %q: %w", name, err)
	}
	now := time.Now()
	for _, o := range old {
		if o == h {
			continue
		}
		note := fmt.Sprintf("replaced under the name %q at %s", name, now.UTC().Format(time.RFC3339))
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)`, revokedSetting(o), []byte(note)); err != nil && !isDuplicate(err) {
			return 0, fmt.Errorf("revoking a write token %q: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM write_tokens WHERE token_hash = ?`, o[:]); err != nil {
			return 0, fmt.Errorf("revoking a write token %q: %w", name, err)
		}
		revoked++
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM write_tokens WHERE token_hash = ?`, h[:]).Scan(&n); err != nil {
		return 0, fmt.Errorf("replacing write tokens %q: %w", name, err)
	}
	if n == 0 {
		// A duplicate is a server sharing the database that stored the same
		// token since the count (MySQL; SQLite transactions are serial).
		if _, err := tx.ExecContext(ctx, `INSERT INTO write_tokens (token_hash, name, created_at) VALUES (?, ?, ?)`,
			h[:], name, now.UnixMilli()); err != nil && !isDuplicate(err) {
			return 0, fmt.Errorf("adding write token %q: %w", name, err)
		}
	}
	if n == 0 || revoked > 0 {
		if err := bumpGeneration(ctx, tx); err != nil {
			return 0, err
		}
	}
	if revoked > 0 {
		// A rotation is an admin action; the first start's token is not.
		if err := recordOp(ctx, tx, "write_token.rotate", map[string]any{"tenant": DefaultTenant, "key_id": LegacyKeyID, "name": name, "revoked": revoked}); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("replacing write tokens %q: %w", name, err)
	}
	return revoked, nil
}

// revokedSetting is the name of the setting that records that the token
// with hash h was revoked by ReplaceTokens.
func revokedSetting(h TokenHash) string { return "revoked_write_token:" + hex.EncodeToString(h[:]) }

// tokenHashes returns the hashes of the tokens stored under name.
func tokenHashes(ctx context.Context, tx *sql.Tx, name string) ([]TokenHash, error) {
	rows, err := tx.QueryContext(ctx, `SELECT token_hash FROM write_tokens WHERE name = ?`, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TokenHash
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var h TokenHash
		if len(b) != len(h) {
			return nil, fmt.Errorf("stored hash has %d bytes", len(b))
		}
		copy(h[:], b)
		out = append(out, h)
	}
	return out, rows.Err()
}
