package log

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
)

// TestPrivateLog checks a private log: entry contents need a read or
// admin key and show only the key's tenant's entries; checkpoints,
// proofs, receipts and the log's info stay public.
func TestPrivateLog(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.PrivateEntries = true })
	tk := issueKeys(t, tl.state)
	if err := tl.log.keys.reload(t.Context(), tl.state); err != nil {
		t.Fatal(err)
	}
	ops := tl.flushOps()
	code, a := tl.addAs(tk.keys["acme/submit"], []byte("acme's secret"), "")
	if code != 200 {
		t.Fatalf("acme add: %d %s", code, a.Error)
	}
	code, g := tl.addAs(tk.keys["globex/submit"], []byte("globex's secret"), "")
	if code != 200 {
		t.Fatalf("globex add: %d %s", code, g.Error)
	}
	one := fmt.Sprintf("/v1/entries/%d", a.Index)
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"", 401}, {"evk_wrong", 401}, {tk.keys["acme/submit"], 403}, {tk.keys["globex/read"], 403},
		{tk.keys["default/admin"], 403}, {tk.keys["acme/read"], 200}, {tk.keys["acme/admin"], 200},
	} {
		code, body := tl.call("GET", one, tc.key, nil)
		if code != tc.want || (code == 200) != (string(body) == "acme's secret") {
			t.Errorf("GET %s with %.8q: %d %q, want %d", one, tc.key, code, body, tc.want)
		}
	}
	// A range shows the key's own entries; others' are null.
	rng := fmt.Sprintf("/v1/entries?start=0&count=%d", ops+2)
	if code, _ := tl.call("GET", rng, "", nil); code != 401 {
		t.Errorf("GET %s without a key: %d, want 401", rng, code)
	}
	code, body := tl.call("GET", rng, tk.keys["globex/read"], nil)
	var r struct {
		Entries [][]byte
		Tenants []string
	}
	if code != 200 || json.Unmarshal(body, &r) != nil || len(r.Entries) != int(ops)+2 {
		t.Fatalf("GET %s as globex: %d %s", rng, code, body)
	}
	if r.Entries[a.Index] != nil || string(r.Entries[g.Index]) != "globex's secret" || r.Tenants[a.Index] != "acme" {
		t.Errorf("globex's view of the range: %q, tenants %v", r.Entries, r.Tenants)
	}
	code, body = tl.call("GET", rng, tk.keys["default/read"], nil)
	if code != 200 || json.Unmarshal(body, &r) != nil || r.Entries[0] == nil || r.Entries[a.Index] != nil {
		t.Errorf("the default tenant's view: %d %s; want the operations records, not acme's entry", code, body)
	}
	// Everything without contents stays public.
	size := tl.checkpoint().Size
	for _, path := range []string{
		"/checkpoint", "/v1/info", "/v1/checkpoints/" + fmt.Sprint(size),
		fmt.Sprintf("/v1/proof/inclusion?index=%d&tree_size=%d", a.Index, size),
		fmt.Sprintf("/v1/proof/consistency?first=1&second=%d", size),
		"/v1/receipt?leaf_hash=" + url.QueryEscape(fmt.Sprintf("%x", leafHash([]byte("acme's secret")))),
	} {
		if code, body := tl.get(path); code != 200 {
			t.Errorf("GET %s without a key: %d %s; want 200", path, code, body)
		}
	}
	var info map[string]any
	tl.getJSON("/v1/info", &info)
	if info["private"] != true {
		t.Errorf("/v1/info = %v; want private: true", info)
	}
	for _, path := range []string{"/v1/events", "/v1/evidence?subject=s"} {
		if code, _ := tl.call("GET", path, "", nil); code != 401 {
			t.Errorf("GET %s without a key: %d, want 401", path, code)
		}
		if code, _ := tl.call("GET", path, tk.keys["acme/read"], nil); code != 403 {
			t.Errorf("GET %s with acme's read key: %d, want 403", path, code)
		}
		if code, body := tl.call("GET", path, tk.keys["default/read"], nil); code != 200 {
			t.Errorf("GET %s with the default tenant's read key: %d %s", path, code, body)
		}
	}
}

// TestPrivateLogTiles checks tlog-tiles on a private log: hash tiles are
// public, entry bundles refused to everyone (they mix tenants).
func TestPrivateLogTiles(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.PrivateEntries = true })
	for i := range 3 {
		if code, r := tl.add(entryBytes(i), ""); code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	if code, body := tl.get("/tile/0/000.p/3"); code != 200 || len(body) != 3*32 {
		t.Errorf("hash tile of a private log: %d, %d bytes; want 200 with 3 hashes", code, len(body))
	}
	for _, key := range []string{"", tl.token} {
		if code, body := tl.call("GET", "/tile/entries/000.p/3", key, nil); code != 403 {
			t.Errorf("entry bundle of a private log with key %.8q: %d %s; want 403", key, code, body)
		}
	}
}
