package log

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/storage"
)

// tenantKeys are the keys of the auth tests: per tenant and role.
type tenantKeys struct {
	keys map[string]string // "tenant/role" → key
	ids  map[string]string // "tenant/role" → key ID
}

// issueKeys adds the tenants acme and globex, and issues each of them (and
// the default tenant) a key of every role.
func issueKeys(t *testing.T, db *storage.DB) tenantKeys {
	t.Helper()
	tk := tenantKeys{keys: map[string]string{}, ids: map[string]string{}}
	for _, tenant := range []string{storage.DefaultTenant, "acme", "globex"} {
		if tenant != storage.DefaultTenant {
			if _, err := db.AddTenant(t.Context(), tenant); err != nil {
				t.Fatal(err)
			}
		}
		for _, role := range []storage.Role{storage.RoleSubmit, storage.RoleRead, storage.RoleAdmin} {
			key, k, err := db.IssueKey(t.Context(), tenant, role)
			if err != nil {
				t.Fatal(err)
			}
			tk.keys[tenant+"/"+string(role)], tk.ids[tenant+"/"+string(role)] = key, k.ID
		}
	}
	return tk
}

// flushOps appends the pending operations records now (rather than at
// the appender's next tick, which could fall in the middle of a test
// that counts entries) and waits until a checkpoint covers them. It
// returns how many records there are: on a log with no other entries,
// its size.
func (tl *testLog) flushOps() uint64 {
	tl.t.Helper()
	if err := tl.log.appendPendingOps(tl.t.Context()); err != nil {
		tl.t.Fatal(err)
	}
	recs, err := tl.state.OpsRecords(tl.t.Context(), 0, 1000, false)
	if err != nil {
		tl.t.Fatal(err)
	}
	n := uint64(len(recs))
	deadline := time.Now().Add(15 * time.Second)
	for tl.log.pub.latest().size < n {
		if time.Now().After(deadline) {
			tl.t.Fatalf("no checkpoint covers the %d operations records", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// authState is what a refused request must not change: the tree, the
// published checkpoints, every key (valid or revoked) and the events.
type authState struct {
	snapshot
	keys   string
	events int
}

func (tl *testLog) authState() authState {
	tl.t.Helper()
	keys, err := tl.state.APIKeys(tl.t.Context(), "")
	if err != nil {
		tl.t.Fatal(err)
	}
	events, err := tl.state.Events(tl.t.Context(), storage.EventQuery{Limit: 1000})
	if err != nil {
		tl.t.Fatal(err)
	}
	return authState{tl.snapshot(), fmt.Sprint(keys), len(events)}
}

// TestAuthTable sends every endpoint that takes a key each bad
// credential: none, a wrong key, a revoked key, another tenant's key, and
// a key whose role does not allow the request (a read key used to write).
// Each gets 401 or 403 (404 for another tenant's key ID) and changes
// nothing. Then the right keys succeed, and a tenant sees its own keys
// only. The log is private (PrivateEntries), so that reads of entries
// need keys too. "Another log's key" is TestAuthTableAcrossLogs.
func TestAuthTable(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.PrivateEntries = true })
	tk := issueKeys(t, tl.state)
	revokedKey, revoked, err := tl.state.IssueKey(t.Context(), "acme", storage.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tl.state.RevokeKey(t.Context(), "", revoked.ID); err != nil {
		t.Fatal(err)
	}
	if err := tl.log.keys.reload(t.Context(), tl.state); err != nil {
		t.Fatal(err)
	}
	tl.flushOps()
	entry := `entry-for-auth`
	ev := `{"type":"t","actor":"a","subject":"s","occurred_at":"2026-01-01T00:00:00Z","private":true,"data":{"secret":"s3"}}`
	hash := strings.Repeat("ab", 32)
	endpoints := []struct {
		method, path, body string
		need               storage.Role
		defaultOnly        bool // the default tenant's only (typed events, the operations record)
	}{
		{"GET", "/v1/tenant/entries", "", storage.RoleRead, false},
		{"GET", "/v1/operations", "", storage.RoleAdmin, true},
		// Entry 0 is an operations record: in a private log, the default
		// tenant's to read.
		{"GET", "/v1/entries/0", "", storage.RoleRead, true},
		{"GET", "/v1/entries?start=0&count=1", "", storage.RoleRead, false},
		{"POST", "/v1/add-entry?wait=false", entry, storage.RoleSubmit, false},
		{"POST", "/v1/add-entries?wait=false", "\x00\x05batch", storage.RoleSubmit, false},
		{"POST", "/v1/events?wait=false", ev, storage.RoleSubmit, true},
		{"POST", "/v1/events/" + hash + "/erase", `{"by":"x"}`, storage.RoleSubmit, true},
		{"GET", "/v1/keys", "", storage.RoleAdmin, false},
		{"POST", "/v1/keys/" + tk.ids["acme/submit"] + "/revoke", "", storage.RoleAdmin, false},
	}
	creds := []struct {
		name, key string
		want      func(need storage.Role, defaultOnly bool) int
	}{
		{"no key", "", func(storage.Role, bool) int { return 401 }},
		{"wrong key", "evk_" + strings.Repeat("A", 43), func(storage.Role, bool) int { return 401 }},
		{"not a key", "Bearer", func(storage.Role, bool) int { return 401 }},
		{"revoked key", revokedKey, func(storage.Role, bool) int { return 401 }},
		{"read key used to write", tk.keys["acme/read"], func(need storage.Role, defaultOnly bool) int {
			if need == storage.RoleRead && !defaultOnly {
				return -1 // allowed: not a bad credential here
			}
			return 403
		}},
		{"submit key used to read or administer", tk.keys["default/submit"], func(need storage.Role, _ bool) int {
			if need != storage.RoleSubmit {
				return 403
			}
			return -1
		}},
		{"another tenant's key", tk.keys["globex/admin"], func(need storage.Role, defaultOnly bool) int {
			if defaultOnly {
				return 403
			}
			return -1
		}},
	}
	before := tl.authState()
	for _, e := range endpoints {
		for _, c := range creds {
			want := c.want(e.need, e.defaultOnly)
			if want < 0 {
				continue
			}
			t.Run(e.method+" "+strings.SplitN(e.path, "?", 2)[0]+"/"+c.name, func(t *testing.T) {
				code, body := tl.call(e.method, e.path, c.key, []byte(e.body))
				if code != want {
					t.Errorf("%d %s; want %d", code, body, want)
				}
				var er struct{ Error string }
				if json.Unmarshal(body, &er) != nil || er.Error == "" {
					t.Errorf("answer %s is not a JSON error", body)
				}
				if strings.Contains(string(body), tk.ids["acme/submit"]) || strings.Contains(string(body), "globex") {
					t.Errorf("the refusal %s names another tenant's key or tenant", body)
				}
			})
		}
	}
	// Another tenant's key ID, with a valid admin key: "not found".
	if code, body := tl.call("POST", "/v1/keys/"+tk.ids["acme/submit"]+"/revoke", tk.keys["globex/admin"], nil); code != 404 {
		t.Errorf("globex revoking acme's key: %d %s; want 404", code, body)
	}
	if code, body := tl.call("POST", "/v1/keys/"+storage.LegacyKeyID+"/revoke", tk.keys["globex/admin"], nil); code != 404 && code != 409 {
		t.Errorf("globex revoking the write token: %d %s; want 404", code, body)
	}
	if after := tl.authState(); after != before {
		t.Fatalf("refused requests changed the log:\nbefore %+v\nafter  %+v", before, after)
	}

	// The right keys succeed.
	for _, k := range []string{"acme/submit", "acme/admin", "globex/submit", "default/admin"} {
		if code, r := tl.addAs(tk.keys[k], []byte("by "+k), "?wait=false"); code != 202 {
			t.Errorf("add-entry with %s: %d %s", k, code, r.Error)
		}
	}
	if code, r := tl.addAs(tl.token, []byte("by the write token"), "?wait=false"); code != 202 {
		t.Errorf("add-entry with the write token: %d %s", code, r.Error)
	}
	if code, body := tl.call("POST", "/v1/events?wait=false", tk.keys["default/submit"], []byte(ev)); code != 202 {
		t.Errorf("POST /v1/events with default/submit: %d %s", code, body)
	}
	var list struct {
		Tenant string
		Keys   []keyView
	}
	code, body := tl.call("GET", "/v1/keys", tk.keys["acme/admin"], nil)
	if code != 200 || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /v1/keys as acme: %d %s", code, body)
	}
	var ids []string
	for _, k := range list.Keys {
		ids = append(ids, k.ID)
		if k.Tenant != "acme" {
			t.Errorf("acme's key list shows %+v", k)
		}
	}
	for _, want := range []string{tk.ids["acme/submit"], tk.ids["acme/read"], tk.ids["acme/admin"], revoked.ID} {
		if !slices.Contains(ids, want) {
			t.Errorf("acme's key list %v lacks %s", ids, want)
		}
	}
	if len(ids) != 4 || strings.Contains(string(body), "hash") {
		t.Errorf("acme's key list: %s; want its 4 keys, no hashes", body)
	}

	// An admin key revokes its tenant's key: refused at once here.
	if code, body := tl.call("POST", "/v1/keys/"+tk.ids["acme/submit"]+"/revoke", tk.keys["acme/admin"], nil); code != 200 {
		t.Fatalf("acme revoking its submit key: %d %s", code, body)
	}
	if code, r := tl.addAs(tk.keys["acme/submit"], []byte("after revocation"), "?wait=false"); code != 401 {
		t.Errorf("add-entry with the revoked key: %d %s; want 401", code, r.Error)
	}
	if code, body := tl.call("POST", "/v1/keys/"+tk.ids["acme/submit"]+"/revoke", tk.keys["acme/admin"], nil); code != 409 {
		t.Errorf("revoking twice: %d %s; want 409", code, body)
	}
	if code, r := tl.addAs(tk.keys["globex/submit"], []byte("globex still"), "?wait=false"); code != 202 {
		t.Errorf("globex after acme's revocation: %d %s", code, r.Error)
	}
}

// TestPrivateEventDataByRole checks who sees a private event's data: the
// default tenant's read and admin keys (and the write token), not its
// submit key, no other tenant's key, nobody without a key.
func TestPrivateEventDataByRole(t *testing.T) {
	tl := newTestLog(t, nil)
	tk := issueKeys(t, tl.state)
	if err := tl.log.keys.reload(t.Context(), tl.state); err != nil {
		t.Fatal(err)
	}
	code, r := tl.event("POST", "/v1/events", tk.keys["default/submit"],
		`{"type":"t","actor":"a","subject":"s","occurred_at":"2026-01-01T00:00:00Z","private":true,"data":{"secret":"s3"}}`)
	if code != 200 {
		t.Fatalf("POST /v1/events: %d %+v", code, r)
	}
	for _, tc := range []struct {
		key  string
		data bool
	}{
		{"", false}, {tk.keys["default/submit"], false}, {tk.keys["default/read"], true},
		{tk.keys["default/admin"], true}, {tl.token, true},
		{tk.keys["acme/read"], false}, {tk.keys["acme/admin"], false},
	} {
		_, body := tl.call("GET", fmt.Sprintf("/v1/events/%x", r.LeafHash), tc.key, nil)
		var ev eventReply
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Fatalf("GET /v1/events/…: %s", body)
		}
		if got := string(ev.Data) == `{"secret":"s3"}` && ev.Salt != nil; got != tc.data || !got && (ev.Data != nil || ev.Salt != nil) {
			t.Errorf("key %.12s… sees the data: %v, want %v (%s)", tc.key, got, tc.data, body)
		}
	}
}

// TestRevocationReachesEveryServer runs two personalities on one state
// database, revokes a key in the database (as evident-server key revoke
// does, from a third process), and measures how long until each server
// refuses it. Config.KeyPoll (500 ms by default) bounds it by design.
func TestRevocationReachesEveryServer(t *testing.T) {
	a := newTestLog(t, nil)
	b, err := New(t.Context(), a.log.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bsrv := httptest.NewServer(b.Handler())
	defer bsrv.Close()
	bl := *a
	bl.log, bl.srv = b, bsrv
	if _, err := a.state.AddTenant(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	key, k, err := a.state.IssueKey(t.Context(), "acme", storage.RoleSubmit)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range []*testLog{a, &bl} {
		waitFor(t, "the new key to be accepted", func() bool {
			code, _ := tl.addAs(key, []byte("x"), "?wait=false")
			return code == 202
		})
	}
	start := time.Now()
	if _, err := a.state.RevokeKey(t.Context(), "", k.ID); err != nil {
		t.Fatal(err)
	}
	for i, tl := range []*testLog{a, &bl} {
		waitFor(t, "the revoked key to be refused", func() bool {
			code, _ := tl.addAs(key, []byte("y"), "?wait=false")
			return code == 401
		})
		t.Logf("server %d refuses the revoked key %v after the revocation (KeyPoll %v)", i, time.Since(start).Round(time.Millisecond), DefaultKeyPoll)
	}
	if code, r := a.add([]byte("z"), "?wait=false"); code != 202 {
		t.Errorf("the write token after the revocation: %d %s", code, r.Error)
	}
}
