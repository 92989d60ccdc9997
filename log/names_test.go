package log

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/evidentlog/evident/storage"
)

// TestRoutePrefixes: every first path segment of the API is found, and
// refused as a log name, so that a named log at /<name>/ never hides a
// path of the default log.
func TestRoutePrefixes(t *testing.T) {
	got := RoutePrefixes()
	for _, want := range []string{"v1", "checkpoint", "tile", "ui", "healthz", "metrics"} {
		if !slices.Contains(got, want) {
			t.Errorf("RoutePrefixes() = %v; lacks %q", got, want)
		}
	}
	tl := newTestLog(t, nil)
	for _, p := range append(got, reservedNames...) {
		if err := CheckLogName(p); err == nil {
			t.Errorf("CheckLogName(%q) accepted a reserved name", p)
		}
	}
	// A path under every name CheckLogName accepts is unmatched by the
	// default log's API (404 "not found" from the catch-all).
	for _, name := range []string{"audit", "billing-2026", "a", "x.y_z"} {
		if err := CheckLogName(name); err != nil {
			t.Fatalf("CheckLogName(%q) = %v", name, err)
		}
		code, body := tl.get("/" + name + "/checkpoint")
		if code != 404 || !strings.Contains(string(body), `"not found"`) {
			t.Errorf("GET /%s/checkpoint on the default log: %d %s; want the unmatched 404", name, code, body)
		}
	}
}

func TestCheckLogName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"audit", true}, {"a", true}, {"0", true}, {"eu-west.billing_2", true},
		{strings.Repeat("a", 64), true}, {strings.Repeat("a", 65), false},
		{"", false}, {"Audit", false}, {"a/b", false}, {"..", false}, {".hidden", false},
		{"-x", false}, {"a b", false}, {"é", false}, {"a%2f", false},
		{"v1", false}, {"tile", false}, {"checkpoint", false}, {"ui", false}, {"logs", false},
		{"metrics", false}, {"healthz", false}, {"evident.ops", false},
	} {
		err := CheckLogName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckLogName(%q) = %v; want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "log name") {
			t.Errorf("CheckLogName(%q) = %q: the error does not say it is about the log name", tc.name, err)
		}
	}
}

// FuzzCheckLogName: a name CheckLogName accepts is one path segment that
// needs no escaping, one plain file name, no API path and no reserved
// name.
func FuzzCheckLogName(f *testing.F) {
	for _, s := range []string{"audit", "v1", "../x", "a/b", "A", "", "logs", "evident.ops", "x.y", "ü", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckLogName(s) != nil {
			return
		}
		if len(s) == 0 || len(s) > storage.MaxTenantName || url.PathEscape(s) != s || filepath.Base(s) != s ||
			s == "." || s == ".." || strings.ContainsAny(s, "/\\%?#") {
			t.Errorf("CheckLogName accepted %q", s)
		}
		if slices.Contains(RoutePrefixes(), s) || slices.Contains(reservedNames, s) {
			t.Errorf("CheckLogName accepted the reserved %q", s)
		}
	})
}

// TestAuthTableAcrossLogs runs a default log and a named log ("audit")
// that reads its keys from the default log's state database, as a server
// with several logs does. The tenant acme is granted audit, globex is
// not. Every endpoint of audit that takes a key refuses globex's keys
// with 403 naming the log ("another log's key"), refuses the bad
// credentials with 401 or 403, and none of it changes either log. A
// grant lets globex in within the key poll; revoking it shuts it out.
func TestAuthTableAcrossLogs(t *testing.T) {
	def := newTestLog(t, func(c *Config) { c.PrivateEntries = true })
	tk := issueKeys(t, def.state)
	revokedKey, revoked, err := def.state.IssueKey(t.Context(), "globex", storage.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := def.state.RevokeKey(t.Context(), "", revoked.ID); err != nil {
		t.Fatal(err)
	}
	if err := def.state.GrantLog(t.Context(), "acme", "audit"); err != nil {
		t.Fatal(err)
	}
	audit := newTestLogWith(t, func(tl *testLog) { tl.token = "audit-own-token-0123456789" }, func(c *Config) {
		c.PrivateEntries, c.Auth, c.LogName = true, def.state, "audit"
	})
	if err := def.log.keys.reload(t.Context(), def.state); err != nil {
		t.Fatal(err)
	}
	def.flushOps()
	// The named log's own state database holds a write token (newTestLog
	// adds one): it is not where this log's keys come from.
	ownToken := audit.token

	entry := "entry-for-auth"
	ev := `{"type":"t","actor":"a","subject":"s","occurred_at":"2026-01-01T00:00:00Z","private":true,"data":{"secret":"s3"}}`
	hash := strings.Repeat("ab", 32)
	endpoints := []struct {
		method, path, body string
		need               storage.Role
	}{
		{"GET", "/v1/tenant/entries", "", storage.RoleRead},
		{"GET", "/v1/operations", "", storage.RoleAdmin},
		{"GET", "/v1/entries?start=0&count=1", "", storage.RoleRead},
		{"POST", "/v1/add-entry?wait=false", entry, storage.RoleSubmit},
		{"POST", "/v1/add-entries?wait=false", "\x00\x05batch", storage.RoleSubmit},
		{"POST", "/v1/events?wait=false", ev, storage.RoleSubmit},
		{"POST", "/v1/events/" + hash + "/erase", `{"by":"x"}`, storage.RoleSubmit},
		{"GET", "/v1/keys", "", storage.RoleAdmin},
		{"POST", "/v1/keys/" + tk.ids["globex/submit"] + "/revoke", "", storage.RoleAdmin},
		{"POST", "/v1/keys/" + tk.ids["acme/submit"] + "/revoke", "", storage.RoleAdmin},
	}
	creds := []struct {
		name, key string
		want      func(need storage.Role) int
		msg       string // in the refusal
	}{
		{"no key", "", func(storage.Role) int { return 401 }, ""},
		{"wrong key", "evk_" + strings.Repeat("A", 43), func(storage.Role) int { return 401 }, ""},
		{"revoked key", revokedKey, func(storage.Role) int { return 401 }, ""},
		{"the named log's own state's token", ownToken, func(storage.Role) int { return 401 }, ""},
		{"another log's submit key", tk.keys["globex/submit"], func(storage.Role) int { return 403 }, "not granted the log audit"},
		{"another log's admin key", tk.keys["globex/admin"], func(storage.Role) int { return 403 }, "not granted the log audit"},
		{"read key used to write", tk.keys["acme/read"], func(need storage.Role) int {
			if need == storage.RoleRead {
				return -1
			}
			return 403
		}, "role"},
	}
	beforeDef, beforeAudit := def.authState(), audit.authState()
	n := 0
	for _, e := range endpoints {
		for _, c := range creds {
			want := c.want(e.need)
			if want < 0 {
				continue
			}
			n++
			t.Run(e.method+" "+strings.SplitN(e.path, "?", 2)[0]+"/"+c.name, func(t *testing.T) {
				code, body := audit.call(e.method, e.path, c.key, []byte(e.body))
				if code != want {
					t.Errorf("%d %s; want %d", code, body, want)
				}
				var er struct{ Error string }
				if json.Unmarshal(body, &er) != nil || !strings.Contains(er.Error, c.msg) {
					t.Errorf("answer %s: want a JSON error with %q", body, c.msg)
				}
			})
		}
	}
	if n < 60 {
		t.Fatalf("only %d cases ran", n)
	}
	if a, d := audit.authState(), def.authState(); a != beforeAudit || d != beforeDef {
		t.Fatalf("refused requests changed a log:\naudit before %+v\naudit after  %+v\ndefault before %+v\ndefault after  %+v", beforeAudit, a, beforeDef, d)
	}

	// The right keys: acme (granted) and the default tenant (the
	// operator's, granted every log) write to audit; globex writes to
	// the default log only. Nothing crosses over.
	for _, k := range []string{"acme/submit", "default/admin"} {
		if code, r := audit.addAs(tk.keys[k], []byte("audit by "+k), "?wait=false"); code != 202 {
			t.Errorf("audit add-entry with %s: %d %s", k, code, r.Error)
		}
	}
	if code, r := def.addAs(tk.keys["globex/submit"], []byte("default by globex"), "?wait=false"); code != 202 {
		t.Errorf("default add-entry with globex: %d %s", code, r.Error)
	}
	waitFor(t, "audit to publish 2 entries", func() bool { return audit.log.pub.latest().size == 2 })
	defSize := beforeDef.trillian + 1
	waitFor(t, "the default log to publish globex's entry", func() bool { return def.log.pub.latest().size == defSize })
	// A private log: each tenant reads its own entries only.
	for _, k := range []string{"acme", "default"} {
		got := audit.entriesAs(tk.keys[k+"/read"], 2)
		want := "audit by " + k + "/"
		if n := slices.IndexFunc(got, func(e []byte) bool { return strings.HasPrefix(string(e), want) }); n < 0 {
			t.Errorf("audit's entries as %s: %q; want one %q...", k, got, want)
		}
	}
	if s := def.snapshot().trillian; s != defSize {
		t.Errorf("the default log has %d entries, want %d: audit's entries crossed over", s, defSize)
	}

	// Granting globex lets its key in; revoking the grant shuts it out.
	if err := def.state.GrantLog(t.Context(), "globex", "audit"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "globex's key to be accepted on audit", func() bool {
		code, _ := audit.addAs(tk.keys["globex/submit"], []byte("audit by globex"), "?wait=false")
		return code == 202
	})
	if err := def.state.RevokeGrant(t.Context(), "globex", "audit"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "globex's key to be refused on audit", func() bool {
		code, _ := audit.addAs(tk.keys["globex/submit"], []byte("audit by globex again"), "?wait=false")
		return code == 403
	})
}

// entriesAs reads count entries from 0 with key.
func (tl *testLog) entriesAs(key string, count int) [][]byte {
	tl.t.Helper()
	code, body := tl.call("GET", "/v1/entries?start=0&count="+strconv.Itoa(count), key, nil)
	var r struct{ Entries [][]byte }
	if code != 200 || json.Unmarshal(body, &r) != nil || len(r.Entries) != count {
		tl.t.Fatalf("GET /v1/entries: %d %s", code, body)
	}
	return r.Entries
}
