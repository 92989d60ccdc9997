package log

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/evidentlog/evident/storage"
)

// TestOperationsRecord makes admin changes (tenants, keys issued, rotated
// and revoked, a quota, a revocation by a tenant's admin key) and checks
// that each is a record in the state database and an entry of the log,
// attributed to the operations tenant, that commits to the record without
// naming tenants or keys; that only the operator's admin key reads the
// records; and that the reserved tenant cannot be added.
func TestOperationsRecord(t *testing.T) {
	tl := newTestLog(t, nil)
	ctx := t.Context()
	tk := issueKeys(t, tl.state) // 2 tenants, 9 keys
	if _, _, _, err := tl.state.RotateKey(ctx, "", tk.ids["acme/read"]); err != nil {
		t.Fatal(err)
	}
	if err := tl.state.SetQuota(ctx, "acme", storage.Quota{Rate: 10}); err != nil {
		t.Fatal(err)
	}
	if err := tl.log.keys.reload(ctx, tl.state); err != nil {
		t.Fatal(err)
	}
	if code, body := tl.call("POST", "/v1/keys/"+tk.ids["globex/submit"]+"/revoke", tk.keys["globex/admin"], nil); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if _, err := tl.state.AddTenant(ctx, storage.OpsTenant); err == nil {
		t.Errorf("AddTenant(%s) succeeded; the name is reserved", storage.OpsTenant)
	}
	n := tl.flushOps()
	if n != 2+9+1+1+1 {
		t.Errorf("%d operations records, want 14", n)
	}
	for key, want := range map[string]int{"": 401, tk.keys["default/submit"]: 403, tk.keys["acme/admin"]: 403, tk.keys["default/read"]: 403} {
		if code, body := tl.call("GET", "/v1/operations", key, nil); code != want {
			t.Errorf("GET /v1/operations with %.8q: %d %s, want %d", key, code, body, want)
		}
	}
	code, body := tl.call("GET", "/v1/operations", tk.keys["default/admin"], nil)
	var list struct {
		Records []struct {
			Seq      int64
			Record   json.RawMessage
			Entry    string
			LeafHash []byte `json:"leaf_hash"`
			Queued   bool
			Index    *uint64
		}
	}
	if code != 200 || json.Unmarshal(body, &list) != nil || uint64(len(list.Records)) != n {
		t.Fatalf("GET /v1/operations: %d %s", code, body)
	}
	actions := map[string]int{}
	for _, r := range list.Records {
		var rec map[string]any
		if err := json.Unmarshal(r.Record, &rec); err != nil {
			t.Fatalf("record %d: %v", r.Seq, err)
		}
		actions[fmt.Sprint(rec["action"])]++
		if rec["seq"] != float64(r.Seq) || rec["by"] == "" || rec["at"] == "" {
			t.Errorf("record %d: %s", r.Seq, r.Record)
		}
		h := sha256.Sum256(r.Record)
		want := fmt.Sprintf("evident operations record v1\nseq %d\nsha256 %s\n", r.Seq, hex.EncodeToString(h[:]))
		if r.Entry != want || strings.Contains(r.Entry, "acme") || !r.Queued || r.Index == nil {
			t.Errorf("record %d: entry %q, queued %v, index %v; want %q in the log", r.Seq, r.Entry, r.Queued, r.Index, want)
			continue
		}
		hdr, entry := tl.getResp(fmt.Sprintf("/v1/entries/%d", *r.Index))
		if string(entry) != r.Entry || hdr.Get(tenantHeader) != storage.OpsTenant {
			t.Errorf("entry %d: %q by %q; want record %d's entry by %s", *r.Index, entry, hdr.Get(tenantHeader), r.Seq, storage.OpsTenant)
		}
	}
	want := map[string]int{"tenant.add": 2, "key.issue": 9, "key.rotate": 1, "tenant.quota": 1, "key.revoke": 1}
	if fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Errorf("actions %v, want %v", actions, want)
	}
	// Appending again changes nothing: the entries are duplicates.
	size := tl.log.pub.latest().size
	if err := tl.log.appendPendingOps(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.state.SQL().ExecContext(ctx, `UPDATE ops_records SET queued = 0`); err != nil {
		t.Fatal(err)
	}
	if err := tl.log.appendPendingOps(ctx); err != nil {
		t.Fatal(err)
	}
	if code, r := tl.add([]byte("after the records"), ""); code != 200 || r.Index != size {
		t.Errorf("the next entry: %d at %d, want index %d (the records appended again were duplicates)", code, r.Index, size)
	}
}
