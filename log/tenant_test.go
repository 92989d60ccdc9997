package log

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/storage"
)

// tenantEntriesReply is GET /v1/tenant/entries's answer.
type tenantEntriesReply struct {
	Tenant  string
	Entries []struct {
		LeafHash []byte `json:"leaf_hash"`
		QueuedAt string `json:"queued_at"`
		Index    *uint64
	}
	Next  string
	Error string
}

func (tl *testLog) tenantEntries(key, query string) (int, tenantEntriesReply) {
	tl.t.Helper()
	code, body := tl.call("GET", "/v1/tenant/entries"+query, key, nil)
	var r tenantEntriesReply
	if err := json.Unmarshal(body, &r); err != nil {
		tl.t.Fatalf("GET /v1/tenant/entries%s: %d %s", query, code, body)
	}
	return code, r
}

// getResp fetches path and returns the header and body of a 200.
func (tl *testLog) getResp(path string) (http.Header, []byte) {
	tl.t.Helper()
	resp, err := http.Get(tl.srv.URL + path)
	if err != nil {
		tl.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		tl.t.Fatalf("GET %s: %d %s %v", path, resp.StatusCode, b, err)
	}
	return resp.Header, b
}

func TestTenantDedupAndAttribution(t *testing.T) { runTenantDedup(t, newTestLog(t, nil)) }

// TestTenantDedupAndAttributionMySQL runs the same on MariaDB.
func TestTenantDedupAndAttributionMySQL(t *testing.T) {
	dsn := testdb.MySQL(t)
	loadTrillianSchema(t, dsn)
	runTenantDedup(t, newTestLogWith(t, func(tl *testLog) { tl.mysqlDSN = dsn }, nil))
}

// runTenantDedup submits the same bytes from three tenants, at once and
// again: one entry per tenant, each answered with its own index and a
// receipt that verifies, each attributed to its tenant by index and listed
// by time for its tenant only.
func runTenantDedup(t *testing.T, tl *testLog) {
	tk := issueKeys(t, tl.state)
	if err := tl.log.keys.reload(t.Context(), tl.state); err != nil {
		t.Fatal(err)
	}
	ops := tl.flushOps()
	submitters := map[string]string{"default": tl.token, "acme": tk.keys["acme/submit"], "globex": tk.keys["globex/admin"]}
	shared := []byte("the same bytes from every tenant")
	indexes := map[string]uint64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for tenant, key := range submitters {
		wg.Go(func() {
			code, r := tl.addAs(key, shared, "")
			if code != 200 || r.Duplicate {
				t.Errorf("%s: add: %d %+v", tenant, code, r)
				return
			}
			tl.checkReceipt(shared, r.Receipt)
			mu.Lock()
			indexes[tenant] = r.Index
			mu.Unlock()
		})
	}
	wg.Wait()
	seen := map[uint64]string{}
	for tenant, i := range indexes {
		if other, ok := seen[i]; ok {
			t.Errorf("%s and %s were both given index %d", tenant, other, i)
		}
		seen[i] = tenant
	}
	if len(seen) != 3 {
		t.Fatalf("indexes %v; want three distinct", indexes)
	}
	// Again, from each tenant: a duplicate at its own index.
	for tenant, key := range submitters {
		code, r := tl.addAs(key, shared, "")
		if code != 200 || !r.Duplicate || r.Index != indexes[tenant] {
			t.Errorf("%s again: %d %+v; want a duplicate at %d", tenant, code, r, indexes[tenant])
		}
		tl.checkReceipt(shared, r.Receipt)
	}
	// A batch from acme of its own entry and a new one.
	code, _, batch := tl.addBatchAs(tk.keys["acme/submit"], encodeBatch([][]byte{shared, []byte("acme only")}), "")
	if code != 200 || len(batch.Results) != 2 || !batch.Results[0].Duplicate || batch.Results[0].Index != indexes["acme"] || batch.Results[1].Duplicate {
		t.Fatalf("acme's batch: %d %+v", code, batch)
	}
	acmeOnly := batch.Results[1].Index
	if got := tl.checkpoint().Size; got != ops+4 {
		t.Errorf("size %d after %d operations records, 3 tenants' copies and one more entry, want %d", got, ops, ops+4)
	}

	// Attribution by index.
	for tenant, i := range indexes {
		resp, body := tl.getResp(fmt.Sprintf("/v1/entries/%d", i))
		if got := resp.Get(tenantHeader); got != tenant || !bytes.Equal(body, shared) {
			t.Errorf("entry %d: tenant %q, body %q; want %s", i, got, body, tenant)
		}
	}
	var r struct {
		Entries [][]byte
		Tenants []string
	}
	tl.getJSON(fmt.Sprintf("/v1/entries?start=0&count=%d", ops+4), &r)
	for tenant, i := range indexes {
		if r.Tenants[i] != tenant {
			t.Errorf("/v1/entries: entry %d's tenant %q, want %s", i, r.Tenants[i], tenant)
		}
	}
	if r.Tenants[acmeOnly] != "acme" {
		t.Errorf("/v1/entries: entry %d's tenant %q, want acme", acmeOnly, r.Tenants[acmeOnly])
	}

	// A tenant lists its own entries, by time, and nobody else's, once
	// published (and copied by the attributer).
	waitFor(t, "the published entries to be attributed", func() bool {
		_, l := tl.tenantEntries(tk.keys["default/read"], "")
		_, a := tl.tenantEntries(tk.keys["acme/read"], "")
		return len(l.Entries) == 1 && len(a.Entries) == 2
	})
	code, list := tl.tenantEntries(tk.keys["acme/read"], "")
	if code != 200 || list.Tenant != "acme" || len(list.Entries) != 2 {
		t.Fatalf("acme's entries: %d %+v", code, list)
	}
	if e := list.Entries[0]; !bytes.Equal(e.LeafHash, leafHash(shared)) || e.Index == nil || *e.Index != indexes["acme"] {
		t.Errorf("acme's first entry %+v; want index %d", e, indexes["acme"])
	}
	if e := list.Entries[1]; !bytes.Equal(e.LeafHash, leafHash([]byte("acme only"))) || e.Index == nil || *e.Index != acmeOnly {
		t.Errorf("acme's second entry %+v; want index %d", e, acmeOnly)
	}
	for key, want := range map[string]int{tk.keys["globex/admin"]: 1, tl.token: 1, tk.keys["default/read"]: 1} {
		if code, l := tl.tenantEntries(key, ""); code != 200 || len(l.Entries) != want || *l.Entries[0].Index != indexes[l.Tenant] {
			t.Errorf("%s's entries: %d %+v", l.Tenant, code, l)
		}
	}
	// Paging and time bounds.
	code, page := tl.tenantEntries(tk.keys["acme/read"], "?limit=1")
	if code != 200 || len(page.Entries) != 1 || page.Next == "" {
		t.Fatalf("page 1: %d %+v", code, page)
	}
	code, page2 := tl.tenantEntries(tk.keys["acme/read"], "?limit=1&after="+page.Next)
	if code != 200 || len(page2.Entries) != 1 || *page2.Entries[0].Index != acmeOnly {
		t.Errorf("page 2: %d %+v", code, page2)
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if code, l := tl.tenantEntries(tk.keys["acme/read"], "?from="+future); code != 200 || len(l.Entries) != 0 {
		t.Errorf("entries from an hour ahead: %d %+v", code, l)
	}
	if code, l := tl.tenantEntries(tk.keys["acme/read"], "?to="+future); code != 200 || len(l.Entries) != 2 {
		t.Errorf("entries until an hour ahead: %d %+v", code, l)
	}
	for _, q := range []string{"?limit=0", "?limit=101", "?limit=01", "?from=yesterday", "?after=xyz", "?from=" + future + "&to=" + future, "?tenant=globex", "?limit=1&limit=2"} {
		if code, l := tl.tenantEntries(tk.keys["acme/read"], q); code != 400 || l.Error == "" {
			t.Errorf("GET /v1/tenant/entries%s: %d %+v; want 400 with a message", q, code, l)
		}
	}
	for key, want := range map[string]int{"": 401, "evk_wrong": 401, tk.keys["acme/submit"]: 403} {
		if code, _ := tl.tenantEntries(key, ""); code != want {
			t.Errorf("GET /v1/tenant/entries with key %.8q: %d, want %d", key, code, want)
		}
	}
}

// TestTenantIdentity pins the identities: the default tenant's is the
// leaf hash (logs from before tenants deduplicate as before); others'
// differ per tenant.
func TestTenantIdentity(t *testing.T) {
	h := [32]byte{1, 2, 3}
	if IdentityHash(storage.DefaultTenant, h) != h {
		t.Error("the default tenant's identity is not the leaf hash")
	}
	a, b := IdentityHash("acme", h), IdentityHash("acme2", h)
	if a == h || b == h || a == b || IdentityHash("acme", [32]byte{1, 2, 4}) == a {
		t.Error("tenant identities collide")
	}
}
