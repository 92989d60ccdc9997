package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	evlog "github.com/evidentlog/evident/log"
)

// call sends method path with key ("" for none) and body, and returns the
// status and the answer.
func (s *server) call(method, path, key string, body []byte) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// namedLogs returns, per named log the server printed, its vkey.
func (s *server) namedLogs() map[string]string {
	s.t.Helper()
	out := map[string]string{}
	for k, v := range s.Lines {
		name, ok := strings.CutPrefix(k, "log ")
		if !ok {
			continue
		}
		fields := map[string]string{}
		for _, f := range strings.Fields(v) {
			a, b, _ := strings.Cut(f, "=")
			fields[a] = b
		}
		if fields["prefix"] != "/"+name+"/" || fields["vkey"] == "" || !strings.HasPrefix(fields["vkey"], fields["origin"]+"+") {
			s.t.Fatalf("startup line %q: %q", k, v)
		}
		out[name] = fields["vkey"]
	}
	return out
}

// verifiedCheckpoint fetches prefix+"checkpoint" and opens it with vkey.
func (s *server) verifiedCheckpoint(prefix, vkey string) (*checkpoint.Signed, []byte, error) {
	s.t.Helper()
	code, b := s.get(prefix + "checkpoint")
	if code != 200 {
		s.t.Fatalf("GET %scheckpoint: %d %s", prefix, code, b)
	}
	v, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := checkpoint.Open(b, v)
	return c, b, err
}

// addTo adds entry to the log at prefix with key, waiting for its
// receipt, and verifies the receipt offline with vkey.
func (s *server) addTo(prefix, key, vkey string, entry []byte) addResult {
	s.t.Helper()
	code, b := s.call("POST", prefix+"v1/add-entry", key, entry)
	var r addResult
	if code != 200 || json.Unmarshal(b, &r) != nil {
		s.t.Fatalf("POST %sv1/add-entry: %d %s", prefix, code, b)
	}
	rc, err := checkpoint.ParseReceipt([]byte(r.Receipt))
	if err != nil {
		s.t.Fatalf("the receipt of %sv1/add-entry: %v", prefix, err)
	}
	v, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := checkpoint.VerifyReceipt(rc, entry, v, nil); err != nil || rc.Index != r.Index {
		s.t.Errorf("the receipt of %q from %s: %v (index %d, answer %d)", entry, prefix, err, rc.Index, r.Index)
	}
	return r
}

// TestSeveralLogs runs a server with the default log and two named logs,
// audit and billing, with tenants granted one each. Each log has its own
// indexes, checkpoints that verify with its own key only, receipts that
// verify offline, and tiles under its prefix; the default log is
// unchanged. Every write endpoint of every log refuses every bad
// credential (no key, wrong key, revoked key, another log's key, a read
// key used to write) with 401 or 403, and nothing is written anywhere.
// After a restart each log has its state. "log add" with a bad, reserved
// or existing name exits 2 and creates nothing.
func TestSeveralLogs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	// No default log yet: nothing to add a log to.
	if code, _, errOut := admin(t, "log", "add", "--data_dir", dir, "audit"); code != 2 || !strings.Contains(errOut, "no default log") {
		t.Errorf("log add without a default log: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("log add without a default log created %s: %v", dir, err)
	}
	s := startServer(t, dir)
	if len(s.namedLogs()) != 0 {
		t.Fatalf("a new server printed named logs: %v", s.Lines)
	}
	dd := []string{"--data_dir", dir}
	run := func(want int, args ...string) (string, string) {
		t.Helper()
		code, out, errOut := admin(t, append(args[:2:2], append(dd, args[2:]...)...)...)
		if code != want {
			t.Fatalf("evident-server %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out, errOut
	}
	run(0, "log", "add", "audit")
	run(0, "log", "add", "--private", "billing")
	// A log with witnesses (unreachable: it publishes its size-0
	// checkpoint only), for its own policy.
	_, wvkey, err := checkpoint.GenerateCosignerKey("witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "policy")
	policyText := "witness w1 " + wvkey + " http://127.0.0.1:1\nquorum w1\n"
	if err := os.WriteFile(policy, []byte(policyText), 0o644); err != nil {
		t.Fatal(err)
	}
	run(0, "log", "add", "--witness_policy_file", policy, "witnessed")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"log", "add", "audit"}, "exists already"},
		{[]string{"log", "add", "Bad/Name"}, "log name"},
		{[]string{"log", "add", "tile"}, "reserved"},
		{[]string{"log", "add", "v1"}, "reserved"},
		{[]string{"log", "add", "logs"}, "reserved"},
		{[]string{"log", "add", "--mysql_dsn", "u@tcp(127.0.0.1:1)/x", "other"}, "--log_mysql_dsn"},
		{[]string{"log", "add", "--log_mysql_dsn", "u@tcp(127.0.0.1:1)/x", "other"}, "default log's DSN"},
		{[]string{"log", "add", "--mysql_dsn", "u@tcp(127.0.0.1:1)/x", "--log_mysql_dsn", "u@tcp(127.0.0.1:1)/y", "other"}, "runs on SQLite"},
		{[]string{"log", "add", "--trillian_addr", "127.0.0.1:1", "other"}, "in-process Trillian"},
		{[]string{"log", "add", "--origin", s.origin, "other"}, "default log's"},
		{[]string{"log", "add", "--witness_policy_file", filepath.Join(dir, "nope"), "other"}, "witness_policy_file"},
		{[]string{"log", "add"}, "NAME"},
		{[]string{"log", "frobnicate"}, "unknown command"},
		{[]string{"tenant", "grant", "default", "nolog"}, "no log"},
		{[]string{"tenant", "grant", "default", "v1"}, "reserved"},
	} {
		want := 2
		if tc.args[0] == "tenant" && tc.msg == "no log" {
			want = 1
		}
		_, errOut := run(want, tc.args...)
		if !strings.Contains(errOut, tc.msg) {
			t.Errorf("evident-server %s: %q; want it to say %q", strings.Join(tc.args, " "), errOut, tc.msg)
		}
	}
	names := dirNames(t, filepath.Join(dir, logsDir))
	if !slices.Equal(names, []string{"audit", "billing", "witnessed"}) {
		t.Fatalf("logs/ holds %v after the refused commands; want audit, billing and witnessed only", names)
	}
	for _, f := range []string{keyFile, stateDB, treeDB} {
		if m := mode(t, filepath.Join(dir, logsDir, "audit", f)); m != 0o600 {
			t.Errorf("logs/audit/%s: mode %o, want 0600", f, m)
		}
	}
	if m := mode(t, filepath.Join(dir, logsDir, "audit")); m != 0o700 {
		t.Errorf("logs/audit: mode %o, want 0700", m)
	}
	list, _ := run(0, "log", "list")
	if !hasLine(list, "audit", "/audit/", "no") || !hasLine(list, "billing", "/billing/", "yes") || !hasLine(list, "(default)", "/", s.origin, s.vkey) {
		t.Errorf("log list:\n%s", list)
	}

	// Tenants: acme may use audit, globex billing.
	keys := map[string]string{}
	for _, tn := range []string{"acme", "globex"} {
		run(0, "tenant", "add", tn)
		for _, role := range []string{"submit", "read"} {
			k, _ := run(0, "key", "issue", tn, role)
			keys[tn+"/"+role] = strings.TrimSpace(k)
		}
	}
	revoked, _ := run(0, "key", "issue", "acme", "admin")
	keyList, _ := run(0, "key", "list", "acme")
	for _, line := range strings.Split(keyList, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "admin" {
			run(0, "key", "revoke", f[0])
		}
	}
	run(0, "tenant", "grant", "acme", "audit")
	run(0, "tenant", "grant", "globex", "billing")
	_, errOut := run(1, "tenant", "grant", "acme", "audit")
	if !strings.Contains(errOut, "exists already") {
		t.Errorf("granting twice: %s", errOut)
	}
	tl, _ := run(0, "tenant", "list")
	if !strings.Contains(tl, "NAMED LOGS") || !hasLine(tl, "acme", "audit") || !hasLine(tl, "globex", "billing") {
		t.Errorf("tenant list does not show the grants:\n%s", tl)
	}

	// A restart serves the named logs.
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dir)
	vkeys := s.namedLogs()
	if len(vkeys) != 3 || vkeys["audit"] == vkeys["billing"] || vkeys["audit"] == s.vkey {
		t.Fatalf("named logs printed: %v", vkeys)
	}
	// Each log its own witness policy.
	if code, body := s.get("/witnessed/v1/witness-policy"); code != 200 || string(body) != policyText {
		t.Errorf("/witnessed/v1/witness-policy: %d %q; want its policy", code, body)
	}
	for _, p := range []string{"/", "/audit/"} {
		if code, body := s.get(p + "v1/witness-policy"); code != 404 {
			t.Errorf("%sv1/witness-policy: %d %q; want 404 (no witnesses)", p, code, body)
		}
	}
	if _, _, err := s.verifiedCheckpoint("/witnessed/", vkeys["witnessed"]); err != nil {
		t.Errorf("/witnessed/checkpoint: %v", err)
	}
	delete(vkeys, "witnessed")
	vkeys[""] = s.vkey
	// The operations record: the default log's has the logs created and
	// the grants; each named log's begins with its own creation.
	opsHas := func(prefix string, want ...string) bool {
		code, body := s.call("GET", prefix+"v1/operations", s.token, nil)
		if code != 200 {
			t.Fatalf("GET %sv1/operations: %d %s", prefix, code, body)
		}
		var ops struct {
			Records []struct {
				Record json.RawMessage
				Queued bool
			}
		}
		if err := json.Unmarshal(body, &ops); err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, r := range ops.Records {
			if !r.Queued {
				return false
			}
			all.Write(r.Record)
		}
		for _, w := range want {
			if !strings.Contains(all.String(), w) {
				return false
			}
		}
		return true
	}
	waitFor(t, s, func() bool {
		return opsHas("/", `"action":"log.create"`, `"log":"billing"`, `"action":"log.grant"`, `"tenant":"globex"`)
	}, "the default log's operations record to hold the logs created and the grants, appended")
	waitFor(t, s, func() bool { return opsHas("/audit/", `"action":"log.create"`, `"log":"audit"`) }, "audit's operations record to hold its creation, appended")
	prefix := func(log string) string {
		if log == "" {
			return "/"
		}
		return "/" + log + "/"
	}

	// Each log's own entries, indexes and key.
	results := map[string]addResult{}
	entries := map[string][]byte{
		"":        []byte("into the default log"),
		"audit":   []byte("into audit"),
		"billing": []byte("into billing"),
	}
	writers := map[string]string{"": s.token, "audit": keys["acme/submit"], "billing": keys["globex/submit"]}
	for _, l := range []string{"", "audit", "billing"} {
		results[l] = s.addTo(prefix(l), writers[l], vkeys[l], entries[l])
	}
	sizes := map[string]uint64{}
	for l, vk := range vkeys {
		c, body, err := s.verifiedCheckpoint(prefix(l), vk)
		if err != nil {
			t.Fatalf("%scheckpoint does not verify with its own key: %v", prefix(l), err)
		}
		sizes[l] = c.Size
		if c.Size != results[l].Index+1 {
			t.Errorf("%scheckpoint size %d; its one entry is at %d", prefix(l), c.Size, results[l].Index)
		}
		for other, ovk := range vkeys {
			v, _ := checkpoint.NewVerifier(ovk)
			if _, err := checkpoint.Open(body, v); other != l && err == nil {
				t.Errorf("%scheckpoint verifies with %q's key", prefix(l), other)
			}
		}
		// The entry is in the log's own tiles, under its prefix.
		i := results[l].Index
		code, bundle := s.get(prefix(l) + "tile/" + checkpoint.TilePath(-1, 0, int(c.Size)))
		if l == "billing" {
			// Private: its entry bundles are not public.
			if code != 403 {
				t.Errorf("%stile/entries of a private log: %d, want 403", prefix(l), code)
			}
		} else if code != 200 || !bytes.Contains(bundle, entries[l]) {
			t.Errorf("%stile/entries: %d, lacks %q", prefix(l), code, entries[l])
		}
		code, tile := s.get(prefix(l) + "tile/" + checkpoint.TilePath(0, 0, int(c.Size)))
		if code != 200 || len(tile) != 32*int(c.Size) || !bytes.Equal(tile[32*i:32*i+32], results[l].LeafHash) {
			t.Errorf("%stile/0: %d, %d bytes, without the entry's leaf hash at %d", prefix(l), code, len(tile), i)
		}
		for other, e := range entries {
			if other != l && bytes.Contains(bundle, e) {
				t.Errorf("%s's entry %q is in %s's tiles", prefix(other), e, prefix(l))
			}
		}
	}

	// The auth table, over every write endpoint of every log.
	ev := `{"type":"t","actor":"a","subject":"s","occurred_at":"2026-01-01T00:00:00Z","data":{"k":"v"}}`
	writes := []struct{ path, body string }{
		{"v1/add-entry?wait=false", "cross-log entry"},
		{"v1/add-entries?wait=false", "\x00\x05batch"},
		{"v1/events?wait=false", ev},
	}
	otherLogs := map[string]string{"audit": "globex/submit", "billing": "acme/submit"}
	readers := map[string]string{"": keys["acme/read"], "audit": keys["acme/read"], "billing": keys["globex/read"]}
	n := 0
	for _, l := range []string{"", "audit", "billing"} {
		creds := []struct {
			name, key string
			want      int
			msg       string
		}{
			{"no key", "", 401, "unauthorized"},
			{"wrong key", "evk_" + strings.Repeat("B", 43), 401, "unauthorized"},
			{"revoked key", strings.TrimSpace(revoked), 401, "unauthorized"},
			{"read key used to write", readers[l], 403, "role"},
		}
		if l != "" {
			creds = append(creds, struct {
				name, key string
				want      int
				msg       string
			}{"another log's key", keys[otherLogs[l]], 403, "not granted the log " + l})
		}
		for _, w := range writes {
			for _, c := range creds {
				if l == "" && strings.HasPrefix(w.path, "v1/events") && c.name == "read key used to write" {
					// Typed events are the default tenant's on the
					// default log: 403 as well, for another reason.
					c.msg = ""
				}
				n++
				code, body := s.call("POST", prefix(l)+w.path, c.key, []byte(w.body))
				if code != c.want || !strings.Contains(string(body), c.msg) {
					t.Errorf("POST %s%s with %s: %d %s; want %d %q", prefix(l), w.path, c.name, code, body, c.want, c.msg)
				}
			}
		}
	}
	if n != 3*4*3+2*3 {
		t.Fatalf("%d cases ran", n)
	}
	// Nothing was written: one more entry in each log lands right after
	// the sizes before the table.
	for l := range vkeys {
		e := []byte("after the table into " + prefix(l))
		if r := s.addTo(prefix(l), writers[l], vkeys[l], e); r.Index != sizes[l] {
			t.Errorf("%s: the entry after the refused requests is at %d, want %d: something was written", prefix(l), r.Index, sizes[l])
		}
		sizes[l]++
	}
	// The Go client works with a named log's URL, through the API and
	// through the tiles alone (as a static copy of the log serves them).
	ctx := t.Context()
	ac, err := client.New(ctx, client.Config{URL: s.URL + "/audit/", Token: keys["acme/submit"]})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if info, err := ac.Info(ctx); err != nil || info.VKey != vkeys["audit"] {
		t.Errorf("the client's Info of /audit/: %+v, %v", info, err)
	}
	entry := []byte("through the client into audit")
	ar, err := ac.AddEntry(ctx, entry)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := checkpoint.ParseReceipt(ar.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	av, _ := checkpoint.NewVerifier(vkeys["audit"])
	cp, err := checkpoint.VerifyReceipt(rc, entry, av, nil)
	if err != nil || rc.Index != ar.Index || ar.Index != sizes["audit"] {
		t.Fatalf("the client's receipt from /audit/: %v (index %d, want %d)", err, ar.Index, sizes["audit"])
	}
	sizes["audit"]++
	tc, err := client.New(ctx, client.Config{URL: s.URL + "/audit", Tiles: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	p, err := tc.InclusionProofByIndex(ctx, ar.Index, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.VerifyInclusion(ar.Index, cp.Size, checkpoint.LeafHash(entry), p.Hashes, cp.Hash); err != nil {
		t.Errorf("the inclusion proof from /audit/'s tiles: %v", err)
	}

	// The default log takes every tenant's keys, as before.
	if code, body := s.call("POST", "/v1/add-entry?wait=false", keys["globex/submit"], []byte("globex on the default log")); code != 202 {
		t.Errorf("globex on the default log: %d %s", code, body)
	}
	sizes[""]++

	// A restart: every log comes back with its state. In MySQL mode the
	// server refuses to start: its named logs run on SQLite.
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--data_dir", dir, "--listen", "127.0.0.1:0", "--mysql_dsn", "u@tcp(127.0.0.1:1)/none")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "named log audit runs on SQLite") {
		t.Errorf("a server in MySQL mode over named logs: %v\n%s", err, out)
	}
	// A changed policy is recorded in the log's own operations record.
	if err := os.WriteFile(filepath.Join(dir, logsDir, "witnessed", logPolicyFile), []byte(policyText+"# changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dir)
	waitFor(t, s, func() bool { return opsHas("/witnessed/", `"action":"witness_policy.change"`) }, "the policy change in witnessed's operations record")
	for l, vk := range vkeys {
		if got := s.namedLogs()[l]; l != "" && got != vk {
			t.Errorf("after the restart log %s has vkey %q, want %q", l, got, vk)
		}
		waitFor(t, s, func() bool {
			c, _, err := s.verifiedCheckpoint(prefix(l), vk)
			return err == nil && c.Size == sizes[l]
		}, prefix(l)+" to publish its entries after the restart")
		code, b := s.call("POST", prefix(l)+"v1/add-entry", writers[l], entries[l])
		var r addResult
		if code != 200 || json.Unmarshal(b, &r) != nil || !r.Duplicate || r.Index != results[l].Index {
			t.Errorf("re-adding to %s after the restart: %d %s; want a duplicate at %d", prefix(l), code, b, results[l].Index)
		}
	}
	// billing is private: its entries need a key of their tenant.
	if code, body := s.get(fmt.Sprintf("/billing/v1/entries/%d", results["billing"].Index)); code != 401 {
		t.Errorf("reading the private billing log without a key: %d %s", code, body)
	}
	if code, body := s.call("GET", fmt.Sprintf("/billing/v1/entries/%d", results["billing"].Index), keys["globex/read"], nil); code != 200 || !bytes.Equal(body, entries["billing"]) {
		t.Errorf("globex reading its entry of billing: %d %s", code, body)
	}
	if code, body := s.get(fmt.Sprintf("/audit/v1/entries/%d", results["audit"].Index)); code != 200 {
		t.Errorf("reading the public audit log: %d %s", code, body)
	}

	// A key revoked (in the default log's state database) is refused on
	// the named log too, within the key poll.
	keyList, _ = run(0, "key", "list", "acme")
	for _, line := range strings.Split(keyList, "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[2] == "submit" && f[4] == "-" {
			run(0, "key", "revoke", f[0])
		}
	}
	waitFor(t, s, func() bool {
		code, _ := s.call("POST", "/audit/v1/add-entry?wait=false", keys["acme/submit"], []byte("after revocation"))
		return code == 401
	}, "acme's revoked key to be refused on audit")
	// And a grant revoked shuts the tenant out of that log only.
	run(0, "tenant", "revoke-grant", "globex", "billing")
	waitFor(t, s, func() bool {
		code, _ := s.call("POST", "/billing/v1/add-entry?wait=false", keys["globex/submit"], []byte("after the grant's revocation"))
		return code == 403
	}, "globex to be refused on billing")
	if code, body := s.call("POST", "/v1/add-entry?wait=false", keys["globex/submit"], []byte("globex still on the default log")); code != 202 {
		t.Errorf("globex on the default log after its grant of billing was revoked: %d %s", code, body)
	}

	// A named log that lost its key stops the server from starting.
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	k := filepath.Join(dir, logsDir, "audit", keyFile)
	if err := os.Rename(k, k+".away"); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(binary, "--data_dir", dir, "--listen", "127.0.0.1:0")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "named log audit") || !strings.Contains(string(out), "log.key is missing") {
		t.Errorf("a server whose named log lost its key: %v\n%s", err, out)
	}
	if fileExists(k) {
		t.Error("the server made a new key for a named log")
	}
	// "check" checks every log of the data directory.
	code, out, errOut := admin(t, "check", "--data_dir", dir)
	if code != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Errorf("check: exit %d\n%s%s", code, out, errOut)
	}
	for _, l := range []string{"audit", "billing", "witnessed"} {
		if !strings.Contains(out, "\nlog "+l+" OK: ") {
			t.Errorf("check does not check log %s:\n%s", l, out)
		}
	}
}

// hasLine reports whether some line of text has all the words.
func hasLine(text string, words ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		ok := true
		for _, w := range words {
			ok = ok && slices.Contains(f, w)
		}
		if ok {
			return true
		}
	}
	return false
}

// FuzzParseLogCmd feeds the log commands' argument parser arbitrary
// arguments (split at NUL bytes): it never panics, and what it accepts is
// "log list" or "log add" of a valid, unreserved name and origin; in
// MySQL mode, "log add" has the default log's
// DSN and the new log's, each naming a database, and not the same one.
func FuzzParseLogCmd(f *testing.F) {
	for _, s := range []string{
		"add\x00audit", "list", "add\x00--private\x00--origin\x00example.com/a\x00a", "add\x00v1", "add\x00../x",
		"add\x00--mysql_dsn\x00u@tcp(h)/d\x00a", "add\x00--trillian_addr\x00h:1\x00a", "add", "add\x00a\x00b",
		"list\x00x", "remove\x00a", "add\x00--origin\x00bad origin\x00a", "add\x00--data_dir\x00\x00a",
		"add\x00--mysql_dsn\x00u@tcp(h)/d\x00--log_mysql_dsn\x00u@tcp(h)/e\x00a", "add\x00--mysql_dsn\x00u@tcp(h)/d\x00--log_mysql_dsn\x00v@tcp(h:3306)/D\x00a",
		"add\x00--mysql_dsn\x00u@tcp(h)/\x00--log_mysql_dsn\x00u@tcp(h)/e\x00a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseLogCmd(strings.Split(s, "\x00"), "", io.Discard)
		if err != nil {
			if c != nil {
				t.Errorf("%q: an error and a command", s)
			}
			return
		}
		switch c.verb {
		case "list":
		case "add":
			if err := evlog.CheckLogName(c.name); err != nil {
				t.Errorf("accepted the log name %q: %v", c.name, err)
			}
			if c.origin != "" {
				if _, _, err := checkpoint.GenerateKey(c.origin); err != nil {
					t.Errorf("accepted the origin %q", c.origin)
				}
			}
		default:
			t.Errorf("accepted the command %q", c.verb)
		}
		if c.dataDir == "" {
			t.Error("accepted an empty --data_dir")
		}
		if c.verb == "add" && (c.defaultDSN != "") != (c.logDSN != "") {
			t.Errorf("%q: accepted one DSN of two (default %t, new log %t)", s, c.defaultDSN != "", c.logDSN != "")
		}
		if c.logDSN != "" {
			a, err1 := dsnDatabase(c.defaultDSN)
			b, err2 := dsnDatabase(c.logDSN)
			if err1 != nil || err2 != nil || a == b {
				t.Errorf("%q: accepted the DSNs of %q and %q (%v, %v)", s, a, b, err1, err2)
			}
		}
	})
}

// TestLogCommandsHelp: --help of the log and grant commands exits 0 and
// says what they do; the server's own --help lists them.
func TestLogCommandsHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"log", "--help"}, []string{"log add", "log list", "/NAME/", "tenant grant", "MySQL mode", "--log_mysql_dsn", "Exit codes"}},
		{[]string{"log", "add", "--help"}, []string{"-witness_policy_file", "-private", "-origin", "-data_dir", "reserved", "checkpoint, healthz", "-log_mysql_dsn_file", "mysql-dsn (0600)", "Trillian's schema"}},
		{[]string{"log", "list", "--help"}, []string{"-data_dir"}},
		{[]string{"tenant", "grant", "--help"}, []string{"tenant grant [flags] NAME LOG", "revoke-grant", "403"}},
		{[]string{"--help"}, []string{"log add|list", "tenant grant|revoke-grant"}},
	} {
		code, out, errOut := admin(t, tc.args...)
		if code != 0 {
			t.Errorf("evident-server %s: exit %d\n%s", strings.Join(tc.args, " "), code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out+errOut, w) {
				t.Errorf("evident-server %s does not say %q:\n%s", strings.Join(tc.args, " "), w, out+errOut)
			}
		}
	}
}

// dirNames returns the names in directory dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
