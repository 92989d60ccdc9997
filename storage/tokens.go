package storage

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

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
	return nil
}

// DeleteToken revokes token. Revoking an unknown token is a no-op.
func (d *DB) DeleteToken(ctx context.Context, token string) error {
	h := HashToken(token)
	if _, err := d.db.ExecContext(ctx, `DELETE FROM write_tokens WHERE token_hash = ?`, h[:]); err != nil {
		return fmt.Errorf("deleting write token: %w", err)
	}
	return nil
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
