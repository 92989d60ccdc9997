package storage

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestTenantsAndKeys adds tenants, issues, rotates and revokes keys, and
// checks what is stored, what is valid, and that every change moves the
// key generation that servers poll.
func TestTenantsAndKeys(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		gen := func() int64 {
			t.Helper()
			g, err := db.AuthGeneration(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
		moved := func(before int64, what string) int64 {
			t.Helper()
			g := gen()
			if g == before {
				t.Errorf("%s did not change the key generation (%d)", what, g)
			}
			return g
		}
		g := gen()
		if _, err := db.AddTenant(ctx, DefaultTenant); !errors.Is(err, ErrExists) {
			t.Errorf("AddTenant(default) = %v; want ErrExists (every database has it)", err)
		}
		if _, err := db.AddTenant(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AddTenant(ctx, "acme"); !errors.Is(err, ErrExists) {
			t.Errorf("AddTenant twice = %v; want ErrExists", err)
		}
		if _, err := db.AddTenant(ctx, "Bad Name"); err == nil {
			t.Error("AddTenant accepted a name with a space and capitals")
		}
		ts, err := db.Tenants(ctx)
		if err != nil || len(ts) != 2 || ts[0].Name != "acme" || ts[1].Name != DefaultTenant {
			t.Fatalf("Tenants = %v, %v; want acme, default", ts, err)
		}
		if _, _, err := db.IssueKey(ctx, "nobody", RoleSubmit); !errors.Is(err, ErrNoTenant) {
			t.Errorf("IssueKey for an unknown tenant = %v; want ErrNoTenant", err)
		}
		if _, _, err := db.IssueKey(ctx, "acme", Role("root")); err == nil {
			t.Error("IssueKey accepted the role root")
		}
		if gen() != g {
			t.Error("refused changes moved the key generation")
		}
		key, k, err := db.IssueKey(ctx, "acme", RoleSubmit)
		if err != nil {
			t.Fatal(err)
		}
		g = moved(g, "IssueKey")
		if !strings.HasPrefix(key, "evk_") || len(key) != 4+43 || k.Hash != HashToken(key) || k.ID != KeyID(k.Hash) || CheckKeyID(k.ID) != nil {
			t.Errorf("IssueKey = %q, %+v: malformed", key, k)
		}
		if err := db.AddToken(ctx, LegacyKeyID, "legacy"); err != nil {
			t.Fatal(err)
		}
		g = moved(g, "AddToken")
		valid, err := db.ValidKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(valid) != 2 || valid[0].ID != LegacyKeyID || valid[0].Role != RoleAdmin || valid[0].Tenant != DefaultTenant ||
			valid[1].ID != k.ID || valid[1].Tenant != "acme" || valid[1].Role != RoleSubmit {
			t.Errorf("ValidKeys = %+v; want the write token (default, admin) and acme's submit key", valid)
		}
		if _, err := db.RevokeKey(ctx, "", LegacyKeyID); !errors.Is(err, ErrLegacyKey) {
			t.Errorf("RevokeKey(write-token) = %v; want ErrLegacyKey", err)
		}
		if _, err := db.RevokeKey(ctx, DefaultTenant, k.ID); !errors.Is(err, ErrNoKey) {
			t.Errorf("RevokeKey of acme's key as the default tenant = %v; want ErrNoKey", err)
		}
		if _, err := db.RevokeKey(ctx, "", "0123456789abcdef"); !errors.Is(err, ErrNoKey) {
			t.Errorf("RevokeKey of an unknown ID = %v; want ErrNoKey", err)
		}
		if _, err := db.RevokeKey(ctx, "", "../x"); err == nil || errors.Is(err, ErrNoKey) {
			t.Errorf("RevokeKey of a malformed ID = %v; want a syntax error", err)
		}
		if gen() != g {
			t.Error("refused revocations moved the key generation")
		}

		key2, k2, old, err := db.RotateKey(ctx, "acme", k.ID)
		if err != nil {
			t.Fatal(err)
		}
		g = moved(g, "RotateKey")
		if key2 == key || old.ID != k.ID || old.RevokedAt.IsZero() || k2.Tenant != "acme" || k2.Role != RoleSubmit {
			t.Errorf("RotateKey = %+v, old %+v", k2, old)
		}
		if _, _, _, err := db.RotateKey(ctx, "", k.ID); !errors.Is(err, ErrKeyRevoked) {
			t.Errorf("rotating a rotated key = %v; want ErrKeyRevoked", err)
		}
		if _, err := db.RevokeKey(ctx, "", k2.ID); err != nil {
			t.Fatal(err)
		}
		moved(g, "RevokeKey")
		if _, err := db.RevokeKey(ctx, "", k2.ID); !errors.Is(err, ErrKeyRevoked) {
			t.Errorf("revoking twice = %v; want ErrKeyRevoked", err)
		}
		all, err := db.APIKeys(ctx, "acme")
		if err != nil || len(all) != 2 || all[0].RevokedAt.IsZero() || all[1].RevokedAt.IsZero() {
			t.Errorf("APIKeys(acme) = %+v, %v; want both keys, revoked", all, err)
		}
		valid, err = db.ValidKeys(ctx)
		if err != nil || len(valid) != 1 || valid[0].ID != LegacyKeyID {
			t.Errorf("ValidKeys after revoking = %+v, %v; want the write token only", valid, err)
		}
	})
}

// TestReplaceTokensGeneration checks that the write-token file's
// rotation moves the key generation, and that a restart with the same
// file does not.
func TestReplaceTokensGeneration(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		steps := []struct {
			token string
			moves bool
		}{{"a", true}, {"a", false}, {"b", true}}
		for _, s := range steps {
			before, err := db.AuthGeneration(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.ReplaceTokens(ctx, LegacyKeyID, s.token); err != nil {
				t.Fatal(err)
			}
			after, err := db.AuthGeneration(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := after != before; got != s.moves {
				t.Errorf("ReplaceTokens(%s) moved the generation: %v, want %v", s.token, got, s.moves)
			}
		}
	})
}

func TestCheckTenantName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"acme", true}, {"a", true}, {"bu-7.eu_west", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {"-acme", false}, {".acme", false},
		{"Acme", false}, {"acme corp", false}, {"acme/eu", false}, {"ac\x00me", false}, {"ácme", false},
	} {
		if err := CheckTenantName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckTenantName(%q) = %v; want ok %v", tc.name, err, tc.ok)
		}
	}
}

// FuzzAdminInputs feeds the parsers of the admin commands' inputs (tenant
// names, roles, key IDs): none panics, and what they accept is canonical.
func FuzzAdminInputs(f *testing.F) {
	for _, s := range []string{"acme", "default", "admin", "submit", "read", "write-token", "0123456789abcdef", "-x", "A", "é", strings.Repeat("z", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckTenantName(s) == nil {
			if strings.ToLower(s) != s || strings.ContainsAny(s, " /\\\x00\n") || len(s) > MaxTenantName {
				t.Errorf("CheckTenantName accepted %q", s)
			}
		}
		if r, err := ParseRole(s); err == nil && string(r) != s {
			t.Errorf("ParseRole(%q) = %q", s, r)
		}
		if CheckKeyID(s) == nil && s != LegacyKeyID && len(s) != KeyIDLen {
			t.Errorf("CheckKeyID accepted %q", s)
		}
	})
}

// TestSetQuota stores a tenant's quota, moves the key generation (servers
// reload quotas with keys), and refuses unknown tenants and shares over
// 1000‰.
func TestSetQuota(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if _, err := db.AddTenant(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		before, err := db.AuthGeneration(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := Quota{Rate: 100, Burst: -1, BacklogPermille: 250}
		for range 2 { // the second time changes nothing, and succeeds
			if err := db.SetQuota(ctx, "acme", want); err != nil {
				t.Fatal(err)
			}
		}
		if after, err := db.AuthGeneration(ctx); err != nil || after == before {
			t.Errorf("SetQuota did not move the key generation: %d, %v", after, err)
		}
		ts, err := db.Tenants(ctx)
		if err != nil || ts[0].Name != "acme" || ts[0].Quota != want || ts[1].Quota != (Quota{}) {
			t.Errorf("Tenants = %+v, %v; want acme with %+v", ts, err, want)
		}
		if err := db.SetQuota(ctx, "nobody", want); !errors.Is(err, ErrNoTenant) {
			t.Errorf("SetQuota(nobody) = %v; want ErrNoTenant", err)
		}
		if err := db.SetQuota(ctx, "acme", Quota{BacklogPermille: 1001}); err == nil {
			t.Error("SetQuota accepted a share of 1001‰")
		}
		if got := want.String(); got != "rate 100/s, burst unlimited, backlog share 250‰" {
			t.Errorf("Quota.String() = %q", got)
		}
	})
}

// TestNotePolicy remembers the first policy silently (also after none)
// and records each later change, removal included.
func TestNotePolicy(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		for i, s := range []struct {
			digest  string
			changed bool
		}{{"", false}, {"aa", false}, {"aa", false}, {"bb", true}, {"", true}, {"", false}, {"cc", false}} {
			changed, err := db.NotePolicy(ctx, "witness_policy", s.digest)
			if err != nil || changed != s.changed {
				t.Errorf("step %d: NotePolicy(%q) = %v, %v; want %v", i, s.digest, changed, err, s.changed)
			}
		}
		recs, err := db.OpsRecords(ctx, 0, 10, true)
		if err != nil || len(recs) != 2 || !strings.Contains(string(recs[0].Record), `"action":"witness_policy.change"`) ||
			!strings.Contains(string(recs[0].Record), `"previous_sha256":"aa"`) || string(recs[0].Entry) != string(OpsEntry(recs[0].Seq, recs[0].Record)) {
			t.Errorf("records %+v, %v; want the two changes", recs, err)
		}
	})
}

// TestRecordAttributions records the tenants of entries range by range:
// a range that is not the next is refused without change (another server
// recorded it), and a tenant's entries list by time, with paging.
func TestRecordAttributions(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		t0 := time.Unix(1_700_000_000, 0)
		mk := func(from uint64, tenants ...string) []Attribution {
			var out []Attribution
			for i, tn := range tenants {
				out = append(out, Attribution{Index: from + uint64(i), Tenant: tn, LeafHash: [32]byte{byte(from) + byte(i)}, QueuedAt: t0.Add(time.Duration(from+uint64(i)) * time.Second)})
			}
			return out
		}
		if n, err := db.AttributionNext(ctx); err != nil || n != 0 {
			t.Fatalf("AttributionNext of a new database = %d, %v", n, err)
		}
		if n, err := db.RecordAttributions(ctx, 0, mk(0, "acme", "default", "acme")); err != nil || n != 3 {
			t.Fatalf("RecordAttributions(0) = %d, %v; want 3", n, err)
		}
		// A server that read the old next index changes nothing.
		if n, err := db.RecordAttributions(ctx, 0, mk(0, "globex", "globex", "globex")); err != nil || n != 3 {
			t.Errorf("RecordAttributions(0) again = %d, %v; want 3 and no change", n, err)
		}
		if _, err := db.RecordAttributions(ctx, 3, mk(4, "acme")); err == nil {
			t.Error("RecordAttributions with a gap succeeded")
		}
		if n, err := db.RecordAttributions(ctx, 3, mk(3, "acme", "globex")); err != nil || n != 5 {
			t.Fatalf("RecordAttributions(3) = %d, %v; want 5", n, err)
		}
		if n, err := db.AttributionNext(ctx); err != nil || n != 5 {
			t.Errorf("AttributionNext = %d, %v; want 5", n, err)
		}
		// A next index that reads right but is not stored as written here
		// (typed in by hand, with a leading zero) is an error, not a range
		// that is recorded again and again.
		if _, err := db.db.ExecContext(ctx, `UPDATE settings SET value = ? WHERE name = ?`, []byte("05"), attributionNext); err != nil {
			t.Fatal(err)
		}
		if n, err := db.RecordAttributions(ctx, 5, mk(5, "acme")); err == nil || !strings.Contains(err.Error(), attributionNext) {
			t.Errorf("RecordAttributions(5) with the next index stored as \"05\" = %d, %v; want an error naming the setting", n, err)
		}
		if _, err := db.db.ExecContext(ctx, `UPDATE settings SET value = ? WHERE name = ?`, []byte("5"), attributionNext); err != nil {
			t.Fatal(err)
		}
		list, err := db.TenantEntries(ctx, EntryQuery{Tenant: "acme", Limit: 10})
		if err != nil || len(list) != 3 || list[0].Index != 0 || list[1].Index != 2 || list[2].Index != 3 || !list[1].QueuedAt.Equal(t0.Add(2*time.Second)) {
			t.Fatalf("acme's entries = %+v, %v; want 0, 2, 3", list, err)
		}
		page, err := db.TenantEntries(ctx, EntryQuery{Tenant: "acme", After: &list[0], To: t0.Add(3 * time.Second), Limit: 10})
		if err != nil || len(page) != 1 || page[0].Index != 2 {
			t.Errorf("acme's entries after the first, before 3 s = %+v, %v; want index 2", page, err)
		}
		if g, err := db.TenantEntries(ctx, EntryQuery{Tenant: "globex", From: t0.Add(4 * time.Second), Limit: 10}); err != nil || len(g) != 1 || g[0].Index != 4 {
			t.Errorf("globex's entries from 4 s = %+v, %v", g, err)
		}
		// A long range goes in statements of attributionRows rows and
		// single rows: every row lands, in order, with its own values.
		long := make([]string, 2*attributionRows+3)
		for i := range long {
			long[i] = "initech"
		}
		if n, err := db.RecordAttributions(ctx, 5, mk(5, long...)); err != nil || n != 5+uint64(len(long)) {
			t.Fatalf("RecordAttributions(5) of %d = %d, %v", len(long), n, err)
		}
		got, err := db.TenantEntries(ctx, EntryQuery{Tenant: "initech", Limit: 1000})
		if err != nil || len(got) != len(long) {
			t.Fatalf("initech's entries: %d, %v; want %d", len(got), err, len(long))
		}
		for i, a := range got {
			if want := mk(5+uint64(i), "initech")[0]; a.Index != want.Index || a.LeafHash != want.LeafHash || !a.QueuedAt.Equal(want.QueuedAt) {
				t.Fatalf("initech's entry %d = %+v; want %+v", i, a, want)
			}
		}
	})
}

// BenchmarkRecordAttributions records the tenants of published entries as
// the attributer does under load: ranges of 1,000 entries of one tenant,
// each entry a random leaf hash. It reports the cost per entry.
func BenchmarkRecordAttributions(b *testing.B) {
	db := openTestSQLite(b)
	const batch = 1000
	as := make([]Attribution, batch)
	var next uint64
	now := time.Now()
	for b.Loop() {
		for i := range as {
			as[i] = Attribution{Index: next + uint64(i), Tenant: "default", QueuedAt: now.Add(time.Duration(next+uint64(i)) * time.Microsecond)}
			rand.Read(as[i].LeafHash[:])
		}
		n, err := db.RecordAttributions(b.Context(), next, as)
		if err != nil || n != next+batch {
			b.Fatalf("RecordAttributions(%d) = %d, %v", next, n, err)
		}
		next = n
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(next), "ns/entry")
}
