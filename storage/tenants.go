package storage

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultTenant is the tenant that exists in every state database: the
// owner of the server's write-token file and of everything written before
// tenants existed (schema version 5).
const DefaultTenant = "default"

// LegacyKeyID is the key ID under which the write tokens of the
// write_tokens table (the data directory's write-token file) are listed:
// they are keys of DefaultTenant with RoleAdmin.
const LegacyKeyID = "write-token"

// Role is what an API key may do.
type Role string

// The roles of API keys. RoleAdmin may do what the other two may.
const (
	// RoleSubmit adds entries for the key's tenant.
	RoleSubmit Role = "submit"
	// RoleRead reads what only the key's tenant may read (its own entries
	// list, private contents).
	RoleRead Role = "read"
	// RoleAdmin does both, and manages the tenant's keys over HTTP.
	RoleAdmin Role = "admin"
)

// Allows reports whether a key with role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r == need || r == RoleAdmin }

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleSubmit, RoleRead, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("role must be submit, read or admin, not %q", truncate(s))
}

// Errors of the tenant and key methods.
var (
	// ErrExists is returned by AddTenant for a tenant that exists already.
	ErrExists = errors.New("exists already")
	// ErrNoTenant is returned by IssueKey for a tenant that does not exist:
	// add it first.
	ErrNoTenant = errors.New("no such tenant")
	// ErrNoKey is returned by RevokeKey and RotateKey for an unknown key ID.
	ErrNoKey = errors.New("no such key")
	// ErrKeyRevoked is returned by RevokeKey and RotateKey for a key that is
	// revoked already; a revoked key never comes back.
	ErrKeyRevoked = errors.New("the key is revoked already")
	// ErrLegacyKey is returned by RevokeKey and RotateKey for the
	// write-token file's token: it is rotated by replacing the file and
	// restarting (docs/deployment.md).
	ErrLegacyKey = errors.New("the write-token file's token is rotated by deleting the file and restarting the server, not with key commands")
)

// reservedPrefix starts the names of tenants Evident itself uses
// (OpsTenant); AddTenant refuses them.
const reservedPrefix = "evident."

// MaxTenantName is the longest tenant name.
const MaxTenantName = 64

// CheckTenantName reports whether s may name a tenant: 1 to 64 bytes of
// lowercase letters, digits, '.', '_' and '-', starting with a letter or a
// digit, so that names are safe in URLs, logs and file names.
func CheckTenantName(s string) error {
	if s == "" || len(s) > MaxTenantName {
		return fmt.Errorf("a tenant name has 1 to %d characters, not %d", MaxTenantName, len(s))
	}
	for i, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return fmt.Errorf("tenant name %q: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", truncate(s))
		}
	}
	return nil
}

// keyPrefix starts every API key, so that a leaked key is recognizable
// (secret scanners match it).
const keyPrefix = "evk_"

// KeyIDLen is the length of a key ID: hex of the first 8 bytes of the
// key's hash.
const KeyIDLen = 16

// KeyID returns the public ID of the key with hash h.
func KeyID(h TokenHash) string { return hex.EncodeToString(h[:KeyIDLen/2]) }

// CheckKeyID reports whether s is a well-formed key ID (or LegacyKeyID).
func CheckKeyID(s string) error {
	if s == LegacyKeyID {
		return nil
	}
	if len(s) != KeyIDLen {
		return fmt.Errorf("a key ID is %d lowercase hex digits, not %q", KeyIDLen, truncate(s))
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("a key ID is %d lowercase hex digits, not %q", KeyIDLen, truncate(s))
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 70 {
		return s[:70] + "..."
	}
	return s
}

// newKey returns a new API key: the prefix and 256 random bits.
func newKey() string {
	var b [32]byte
	rand.Read(b[:])
	return keyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Tenant is an organization that submits to the log.
type Tenant struct {
	Name      string
	CreatedAt time.Time
	Quota     Quota
}

// Quota is a tenant's own limits. In each field 0 means the server's
// default (its flags) and a negative value means no limit.
type Quota struct {
	// Rate is the entries a second the tenant may add, on average.
	Rate int64
	// Burst is the entries the tenant may add at once, above Rate.
	Burst int64
	// BacklogPermille is the share of the server's backlog
	// (--max_backlog) the tenant's entries may take, in thousandths.
	BacklogPermille int64
}

// String is the quota as the tenant commands show it.
func (q Quota) String() string {
	f := func(v int64, unit string) string {
		switch {
		case v == 0:
			return "default"
		case v < 0:
			return "unlimited"
		}
		return fmt.Sprintf("%d%s", v, unit)
	}
	return fmt.Sprintf("rate %s, burst %s, backlog share %s", f(q.Rate, "/s"), f(q.Burst, ""), f(q.BacklogPermille, "‰"))
}

// SetQuota sets tenant's quota; every server applies it within its key
// poll.
func (d *DB) SetQuota(ctx context.Context, tenant string, q Quota) error {
	if q.BacklogPermille > 1000 {
		return fmt.Errorf("a backlog share is at most 1000‰, not %d", q.BacklogPermille)
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("setting the quota of %q: %w", tenant, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE tenants SET rate = ?, burst = ?, backlog_permille = ? WHERE name = ?`,
		q.Rate, q.Burst, q.BacklogPermille, tenant)
	if err != nil {
		return fmt.Errorf("setting the quota of %q: %w", tenant, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		// MySQL counts changed rows: an unchanged quota is 0 too.
		if err := checkTenant(ctx, tx, tenant); err != nil {
			return err
		}
	}
	return commitAuthChange(ctx, tx, "tenant.quota", map[string]any{"tenant": tenant, "rate": q.Rate, "burst": q.Burst, "backlog_permille": q.BacklogPermille},
		fmt.Sprintf("setting the quota of %q", tenant))
}

// APIKey is a stored API key: never the key, only its hash.
type APIKey struct {
	// ID is the key's public name (KeyID of Hash, or LegacyKeyID).
	ID     string
	Hash   TokenHash
	Tenant string
	Role   Role
	// CreatedAt is when the key was issued; RevokedAt when it was revoked
	// (zero while it is valid).
	CreatedAt, RevokedAt time.Time
}

// tenantsSchema returns the CREATE statements of the tenant tables
// (schema version 5) in dialect d: tenants with their quotas, keys, and
// which tenant submitted each entry.
func tenantsSchema(d Dialect) []string {
	hash, text := "BLOB", "TEXT"
	if d == MySQL {
		hash, text = "BINARY(32)", "VARCHAR(255)"
	}
	return append([]string{
		// tenants: the organizations that submit to the log.
		`CREATE TABLE IF NOT EXISTS tenants (
			name ` + text + ` NOT NULL PRIMARY KEY,
			created_at BIGINT NOT NULL,
			rate BIGINT NOT NULL DEFAULT 0,
			burst BIGINT NOT NULL DEFAULT 0,
			backlog_permille BIGINT NOT NULL DEFAULT 0
		)`,
		// api_keys: SHA-256 hashes of the tenants' API keys (the keys
		// themselves are never stored), with their role. A revoked key
		// keeps its row, with revoked_at set, for the record.
		`CREATE TABLE IF NOT EXISTS api_keys (
			key_hash ` + hash + ` NOT NULL PRIMARY KEY,
			key_id ` + text + ` NOT NULL UNIQUE,
			tenant ` + text + ` NOT NULL,
			role ` + text + ` NOT NULL,
			created_at BIGINT NOT NULL,
			revoked_at BIGINT NULL
		)`,
		// auth_generation: one row, a counter that every change to keys
		// or tokens increases in its transaction. Servers poll it, and
		// reload keys when it moved, so that a revocation reaches every
		// server sharing the database within the poll interval.
		`CREATE TABLE IF NOT EXISTS auth_generation (
			id INTEGER NOT NULL PRIMARY KEY,
			generation BIGINT NOT NULL
		)`,
	}, append(append(attributionSchema(d), opsSchema(d)...), grantsSchema(d)...)...)
}

// seedTenants inserts the rows every database holds: the default tenant
// and the generation counter. It is idempotent.
func (d *DB) seedTenants(ctx context.Context) error {
	if _, err := d.db.ExecContext(ctx, `INSERT INTO tenants (name, created_at) VALUES (?, ?)`,
		DefaultTenant, time.Now().UnixMilli()); err != nil && !isDuplicate(err) {
		return fmt.Errorf("adding the default tenant: %w", err)
	}
	if _, err := d.db.ExecContext(ctx, `INSERT INTO auth_generation (id, generation) VALUES (1, 1)`); err != nil && !isDuplicate(err) {
		return fmt.Errorf("adding the key generation: %w", err)
	}
	return nil
}

// execer is what bumpGeneration needs: a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// bumpGeneration increases the key generation, in the caller's
// transaction, so that every server reloads the keys.
// commitAuthChange ends tx, which changed who may do what: it bumps the
// key generation (every server reloads its keys within its poll), records
// action with fields in the operations record, and commits; what names
// the change in a failed commit's error.
func commitAuthChange(ctx context.Context, tx *sql.Tx, action string, fields map[string]any, what string) error {
	if err := bumpGeneration(ctx, tx); err != nil {
		return err
	}
	if err := recordOp(ctx, tx, action, fields); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func bumpGeneration(ctx context.Context, e execer) error {
	if _, err := e.ExecContext(ctx, `UPDATE auth_generation SET generation = generation + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("increasing the key generation: %w", err)
	}
	return nil
}

// AuthGeneration returns the key generation: it changes whenever keys or
// write tokens change. It is one indexed read, cheap enough to poll often.
func (d *DB) AuthGeneration(ctx context.Context) (int64, error) {
	var g int64
	if err := d.db.QueryRowContext(ctx, `SELECT generation FROM auth_generation WHERE id = 1`).Scan(&g); err != nil {
		return 0, fmt.Errorf("reading the key generation: %w", err)
	}
	return g, nil
}

// AddTenant adds a tenant named name (see CheckTenantName), or returns
// ErrExists.
func (d *DB) AddTenant(ctx context.Context, name string) (Tenant, error) {
	if err := CheckTenantName(name); err != nil {
		return Tenant{}, err
	}
	if strings.HasPrefix(name, reservedPrefix) {
		return Tenant{}, fmt.Errorf("tenant names starting with %q are reserved for Evident", reservedPrefix)
	}
	t := Tenant{Name: name, CreatedAt: time.UnixMilli(time.Now().UnixMilli())}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Tenant{}, fmt.Errorf("adding tenant %q: %w", name, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO tenants (name, created_at) VALUES (?, ?)`, name, t.CreatedAt.UnixMilli())
	if isDuplicate(err) {
		return Tenant{}, fmt.Errorf("tenant %q: %w", name, ErrExists)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("adding tenant %q: %w", name, err)
	}
	if err := recordOp(ctx, tx, "tenant.add", map[string]any{"tenant": name}); err != nil {
		return Tenant{}, err
	}
	if err := tx.Commit(); err != nil {
		return Tenant{}, fmt.Errorf("adding tenant %q: %w", name, err)
	}
	return t, nil
}

// Tenants returns every tenant, by name.
func (d *DB) Tenants(ctx context.Context) ([]Tenant, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, created_at, rate, burst, backlog_permille FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	defer rows.Close()
	var out []Tenant
	for rows.Next() {
		var t Tenant
		var at int64
		if err := rows.Scan(&t.Name, &at, &t.Quota.Rate, &t.Quota.Burst, &t.Quota.BacklogPermille); err != nil {
			return nil, fmt.Errorf("listing tenants: %w", err)
		}
		t.CreatedAt = time.UnixMilli(at)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	return out, nil
}

// IssueKey issues a new API key for tenant with role, and returns the key
// (the only time it exists outside its holder: only its hash is stored)
// and its record.
func (d *DB) IssueKey(ctx context.Context, tenant string, role Role) (string, APIKey, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", APIKey{}, err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return "", APIKey{}, fmt.Errorf("issuing a key: %w", err)
	}
	defer tx.Rollback()
	key, k, err := issueKey(ctx, tx, tenant, role)
	if err != nil {
		return "", APIKey{}, err
	}
	if err := recordOp(ctx, tx, "key.issue", map[string]any{"tenant": tenant, "key_id": k.ID, "role": string(role)}); err != nil {
		return "", APIKey{}, err
	}
	if err := tx.Commit(); err != nil {
		return "", APIKey{}, fmt.Errorf("issuing a key: %w", err)
	}
	return key, k, nil
}

// checkTenant returns an error wrapping ErrNoTenant unless tenant exists.
func checkTenant(ctx context.Context, tx *sql.Tx, tenant string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants WHERE name = ?`, tenant).Scan(&n); err != nil {
		return fmt.Errorf("reading tenant %q: %w", truncate(tenant), err)
	}
	if n == 0 {
		return fmt.Errorf("tenant %q: %w", truncate(tenant), ErrNoTenant)
	}
	return nil
}

func issueKey(ctx context.Context, tx *sql.Tx, tenant string, role Role) (string, APIKey, error) {
	if err := checkTenant(ctx, tx, tenant); err != nil {
		return "", APIKey{}, err
	}
	key := newKey()
	h := HashToken(key)
	k := APIKey{ID: KeyID(h), Hash: h, Tenant: tenant, Role: role, CreatedAt: time.UnixMilli(time.Now().UnixMilli())}
	if _, err := tx.ExecContext(ctx, `INSERT INTO api_keys (key_hash, key_id, tenant, role, created_at) VALUES (?, ?, ?, ?, ?)`,
		h[:], k.ID, tenant, string(role), k.CreatedAt.UnixMilli()); err != nil {
		return "", APIKey{}, fmt.Errorf("issuing a key: %w", err)
	}
	if err := bumpGeneration(ctx, tx); err != nil {
		return "", APIKey{}, err
	}
	return key, k, nil
}

// APIKeys returns the API keys of tenant ("": of every tenant), revoked
// ones included, in the order they were issued; the write tokens of the
// write_tokens table come first, as DefaultTenant's admin keys under
// LegacyKeyID.
func (d *DB) APIKeys(ctx context.Context, tenant string) ([]APIKey, error) {
	var out []APIKey
	if tenant == "" || tenant == DefaultTenant {
		tokens, err := d.Tokens(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range tokens {
			out = append(out, APIKey{ID: LegacyKeyID, Hash: t.Hash, Tenant: DefaultTenant, Role: RoleAdmin, CreatedAt: t.CreatedAt})
		}
	}
	q := `SELECT key_hash, key_id, tenant, role, created_at, revoked_at FROM api_keys`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant = ?`
		args = append(args, tenant)
	}
	rows, err := d.db.QueryContext(ctx, q+` ORDER BY created_at, key_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k APIKey
		var h []byte
		var role string
		var at int64
		var revoked sql.NullInt64
		if err := rows.Scan(&h, &k.ID, &k.Tenant, &role, &at, &revoked); err != nil {
			return nil, fmt.Errorf("listing keys: %w", err)
		}
		if len(h) != len(k.Hash) {
			return nil, fmt.Errorf("listing keys: stored hash of key %s has %d bytes", k.ID, len(h))
		}
		copy(k.Hash[:], h)
		k.Role, k.CreatedAt = Role(role), time.UnixMilli(at)
		if revoked.Valid {
			k.RevokedAt = time.UnixMilli(revoked.Int64)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	return out, nil
}

// RevokeKey revokes the key with ID id for good. When tenant is not "",
// the key must be tenant's (else ErrNoKey: a tenant cannot learn of, nor
// revoke, another tenant's keys).
func (d *DB) RevokeKey(ctx context.Context, tenant, id string) (APIKey, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return APIKey{}, fmt.Errorf("revoking key %s: %w", id, err)
	}
	defer tx.Rollback()
	k, err := revokeKey(ctx, tx, tenant, id)
	if err != nil {
		return APIKey{}, err
	}
	fields := map[string]any{"tenant": k.Tenant, "key_id": k.ID, "role": string(k.Role)}
	if tenant != "" {
		fields["via"] = "the tenant's admin key"
	}
	if err := recordOp(ctx, tx, "key.revoke", fields); err != nil {
		return APIKey{}, err
	}
	if err := tx.Commit(); err != nil {
		return APIKey{}, fmt.Errorf("revoking key %s: %w", id, err)
	}
	return k, nil
}

func revokeKey(ctx context.Context, tx *sql.Tx, tenant, id string) (APIKey, error) {
	if err := CheckKeyID(id); err != nil {
		return APIKey{}, err
	}
	if id == LegacyKeyID {
		return APIKey{}, ErrLegacyKey
	}
	var k APIKey
	var h []byte
	var role string
	var at int64
	var revoked sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT key_hash, tenant, role, created_at, revoked_at FROM api_keys WHERE key_id = ?`, id).
		Scan(&h, &k.Tenant, &role, &at, &revoked)
	if errors.Is(err, sql.ErrNoRows) || err == nil && tenant != "" && k.Tenant != tenant {
		return APIKey{}, fmt.Errorf("key %s: %w", id, ErrNoKey)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("revoking key %s: %w", id, err)
	}
	if revoked.Valid {
		return APIKey{}, fmt.Errorf("key %s: %w", id, ErrKeyRevoked)
	}
	copy(k.Hash[:], h)
	k.ID, k.Role, k.CreatedAt = id, Role(role), time.UnixMilli(at)
	k.RevokedAt = time.UnixMilli(time.Now().UnixMilli())
	// The revoked_at IS NULL condition makes two concurrent revocations
	// (or a rotation racing a revocation) change the row once.
	res, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL`, k.RevokedAt.UnixMilli(), id)
	if err != nil {
		return APIKey{}, fmt.Errorf("revoking key %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return APIKey{}, fmt.Errorf("key %s: %w", id, ErrKeyRevoked)
	}
	if err := bumpGeneration(ctx, tx); err != nil {
		return APIKey{}, err
	}
	return k, nil
}

// RotateKey replaces the key with ID id: in one transaction it issues a
// new key for the same tenant and role, and revokes the old one. tenant
// restricts it as for RevokeKey. It returns the new key and both records.
func (d *DB) RotateKey(ctx context.Context, tenant, id string) (key string, newKey, old APIKey, err error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return "", APIKey{}, APIKey{}, fmt.Errorf("rotating key %s: %w", id, err)
	}
	defer tx.Rollback()
	if old, err = revokeKey(ctx, tx, tenant, id); err != nil {
		return "", APIKey{}, APIKey{}, err
	}
	if key, newKey, err = issueKey(ctx, tx, old.Tenant, old.Role); err != nil {
		return "", APIKey{}, APIKey{}, err
	}
	if err := recordOp(ctx, tx, "key.rotate", map[string]any{"tenant": old.Tenant, "role": string(old.Role), "key_id": newKey.ID, "old_key_id": old.ID}); err != nil {
		return "", APIKey{}, APIKey{}, err
	}
	if err := tx.Commit(); err != nil {
		return "", APIKey{}, APIKey{}, fmt.Errorf("rotating key %s: %w", id, err)
	}
	return key, newKey, old, nil
}

// ValidKeys returns the keys that are not revoked (the write tokens
// included), for authenticating requests.
func (d *DB) ValidKeys(ctx context.Context) ([]APIKey, error) {
	all, err := d.APIKeys(ctx, "")
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, k := range all {
		if k.RevokedAt.IsZero() {
			out = append(out, k)
		}
	}
	return out, nil
}
