package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Grants: which tenants may use which of a server's named logs. A server
// may run several logs (docs/deployment.md, "Several logs on one
// server"); tenants and their keys live in the default log's state
// database only, and so do the grants. The default log itself needs no
// grant: every tenant may use it, as before logs had names. Of the named
// logs, a tenant may use those it is granted (DefaultTenant, the
// operator's, may use all).

// ErrNoGrant is returned by RevokeGrant for a tenant that is not granted
// the log.
var ErrNoGrant = errors.New("the tenant is not granted that log")

// Grant is one tenant's right to use one named log.
type Grant struct {
	Tenant    string
	Log       string
	CreatedAt time.Time
}

// grantsSchema returns the CREATE statement of log_grants (schema
// version 6).
func grantsSchema(d Dialect) []string {
	text := "TEXT"
	if d == MySQL {
		text = "VARCHAR(255)"
	}
	// log_grants: a row per tenant and named log the tenant may use.
	return []string{`CREATE TABLE IF NOT EXISTS log_grants (
			tenant ` + text + ` NOT NULL,
			log_name ` + text + ` NOT NULL,
			created_at BIGINT NOT NULL,
			PRIMARY KEY (tenant, log_name)
		)`}
}

// GrantLog lets tenant use the named log logName (see CheckTenantName for
// the syntax, which log names share). It returns ErrNoTenant for an
// unknown tenant and ErrExists for a grant that exists. Every server
// applies it within its key poll: it moves the key generation, and it is
// recorded in the operations record, in the same transaction.
func (d *DB) GrantLog(ctx context.Context, tenant, logName string) error {
	if err := CheckTenantName(logName); err != nil {
		return fmt.Errorf("log name: %w", err)
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("granting log %q: %w", logName, err)
	}
	defer tx.Rollback()
	if err := checkTenant(ctx, tx, tenant); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO log_grants (tenant, log_name, created_at) VALUES (?, ?, ?)`,
		tenant, logName, time.Now().UnixMilli())
	if isDuplicate(err) {
		return fmt.Errorf("tenant %q on log %q: grant %w", tenant, logName, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("granting log %q: %w", logName, err)
	}
	return commitAuthChange(ctx, tx, "log.grant", map[string]any{"tenant": tenant, "log": logName}, fmt.Sprintf("granting log %q", logName))
}

// RevokeGrant takes back tenant's grant of logName (ErrNoGrant if there
// is none). Every server refuses the tenant's keys on that log within its
// key poll.
func (d *DB) RevokeGrant(ctx context.Context, tenant, logName string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("revoking the grant of log %q: %w", logName, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM log_grants WHERE tenant = ? AND log_name = ?`, tenant, logName)
	if err != nil {
		return fmt.Errorf("revoking the grant of log %q: %w", logName, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("tenant %q, log %q: %w", truncate(tenant), truncate(logName), ErrNoGrant)
	}
	return commitAuthChange(ctx, tx, "log.revoke_grant", map[string]any{"tenant": tenant, "log": logName}, fmt.Sprintf("revoking the grant of log %q", logName))
}

// Grants returns every grant, by tenant and log name.
func (d *DB) Grants(ctx context.Context) ([]Grant, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT tenant, log_name, created_at FROM log_grants ORDER BY tenant, log_name`)
	if err != nil {
		return nil, fmt.Errorf("listing grants: %w", err)
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		var g Grant
		var at int64
		if err := rows.Scan(&g.Tenant, &g.Log, &at); err != nil {
			return nil, fmt.Errorf("listing grants: %w", err)
		}
		g.CreatedAt = time.UnixMilli(at)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing grants: %w", err)
	}
	return out, nil
}
