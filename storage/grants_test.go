package storage

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGrants grants and revokes tenants' use of named logs: refused
// changes change nothing, every change moves the key generation and is
// in the operations record.
func TestGrants(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if _, err := db.AddTenant(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		gen := func() int64 {
			t.Helper()
			g, err := db.AuthGeneration(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
		ops := func() int {
			t.Helper()
			recs, err := db.OpsRecords(ctx, 0, 1000, false)
			if err != nil {
				t.Fatal(err)
			}
			return len(recs)
		}
		g, n := gen(), ops()
		for _, tc := range []struct {
			tenant, log string
			want        error
		}{
			{"nobody", "audit", ErrNoTenant},
			{"acme", "Bad/Name", nil}, // any error
			{"acme", "", nil},
		} {
			err := db.GrantLog(ctx, tc.tenant, tc.log)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("GrantLog(%q, %q) = %v; want %v", tc.tenant, tc.log, err, tc.want)
			}
		}
		if err := db.RevokeGrant(ctx, "acme", "audit"); !errors.Is(err, ErrNoGrant) {
			t.Errorf("RevokeGrant of no grant = %v; want ErrNoGrant", err)
		}
		if gen() != g || ops() != n {
			t.Fatal("refused grant changes moved the key generation or wrote operations records")
		}
		for _, l := range []string{"audit", "billing"} {
			if err := db.GrantLog(ctx, "acme", l); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.GrantLog(ctx, DefaultTenant, "audit"); err != nil {
			t.Fatal(err)
		}
		if err := db.GrantLog(ctx, "acme", "audit"); !errors.Is(err, ErrExists) {
			t.Errorf("granting twice = %v; want ErrExists", err)
		}
		if g2 := gen(); g2 == g || ops() != n+3 {
			t.Errorf("3 grants: generation %d → %d, %d operations records, want %d", g, g2, ops(), n+3)
		}
		g = gen()
		if err := db.RevokeGrant(ctx, "acme", "billing"); err != nil {
			t.Fatal(err)
		}
		if gen() == g || ops() != n+4 {
			t.Error("RevokeGrant did not move the key generation or write an operations record")
		}
		recs, err := db.OpsRecords(ctx, 0, 1000, false)
		if err != nil {
			t.Fatal(err)
		}
		if last := string(recs[len(recs)-1].Record); !strings.Contains(last, `"action":"log.revoke_grant"`) || !strings.Contains(last, `"log":"billing"`) {
			t.Errorf("the last operations record is %s", last)
		}
		got, err := db.Grants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var pairs []string
		for _, g := range got {
			pairs = append(pairs, g.Tenant+"/"+g.Log)
		}
		if diff := cmp.Diff([]string{"acme/audit", "default/audit"}, pairs); diff != "" {
			t.Errorf("Grants (-want +got):\n%s", diff)
		}
	})
}

// TestMigrateFromVersion5 opens a database as version 5 left it (tenants,
// no log_grants) and checks that migrating adds the table and keeps the
// tenants and keys.
func TestMigrateFromVersion5(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if _, err := db.AddTenant(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		_, k, err := db.IssueKey(ctx, "acme", RoleSubmit)
		if err != nil {
			t.Fatal(err)
		}
		for _, stmt := range []string{"DROP TABLE log_grants", "UPDATE schema_version SET version = 5"} {
			if _, err := db.SQL().ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Grants(ctx); err == nil {
			t.Fatal("Grants works without the log_grants table")
		}
		if err := db.migrate(ctx); err != nil {
			t.Fatalf("migrating from version 5: %v", err)
		}
		var v int
		if err := db.SQL().QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&v); err != nil || v != SchemaVersion {
			t.Errorf("schema version = %d, %v; want %d", v, err, SchemaVersion)
		}
		if gs, err := db.Grants(ctx); err != nil || len(gs) != 0 {
			t.Errorf("Grants after migrating = %v, %v; want none", gs, err)
		}
		keys, err := db.ValidKeys(ctx)
		if err != nil || len(keys) != 1 || keys[0].ID != k.ID {
			t.Errorf("keys after migrating = %+v, %v; want acme's", keys, err)
		}
		if err := db.GrantLog(ctx, "acme", "audit"); err != nil {
			t.Errorf("granting after migrating: %v", err)
		}
	})
}
