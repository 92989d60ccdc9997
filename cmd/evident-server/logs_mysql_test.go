package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/storage/backend"
)

// mysqlWithSchema returns the DSN of a new MariaDB database into which
// Trillian's schema is loaded.
func mysqlWithSchema(t *testing.T) string {
	t.Helper()
	dsn := testdb.MySQL(t)
	loadTrillianSchema(t, dsn)
	return dsn
}

// loadTrillianSchema loads Trillian's MySQL schema (from the module go.mod
// pins) into the database of dsn.
func loadTrillianSchema(t *testing.T, dsn string) {
	t.Helper()
	script := testdb.TrillianSchema(t)
	if err := backend.LoadMySQLSchema(t.Context(), dsn, script); err != nil {
		t.Fatal(err)
	}
}

// otherAddress returns dsn with its server's address written another way
// that reaches the same server: a DSN that names the same database but
// does not look like it.
func otherAddress(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(cfg.Addr, ":")
	switch {
	case cfg.Net == "unix":
		cfg.Addr = filepath.Dir(cfg.Addr) + "/./" + filepath.Base(cfg.Addr)
	case cfg.Net == "tcp" && host == "127.0.0.1":
		cfg.Addr = "localhost:" + port
	case cfg.Net == "tcp" && host == "localhost":
		cfg.Addr = "127.0.0.1:" + port
	default:
		t.Fatalf("no other address known for the test server's %s(%s)", cfg.Net, cfg.Addr)
	}
	return cfg.FormatDSN()
}

// adminEnv runs the binary with extra environment variables, as admin.
func adminEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}

// tableCount is the number of tables of the database of dsn.
func tableCount(t *testing.T, dsn string) int {
	t.Helper()
	return mysqlCount(t, dsn, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()`)
}

// leafCount is how many of Trillian's leaves in the database of dsn hold
// value.
func leafCount(t *testing.T, dsn string, value []byte) int {
	t.Helper()
	return mysqlCount(t, dsn, `SELECT COUNT(*) FROM LeafData WHERE LeafValue = ?`, value)
}

// mysqlCount runs query, a COUNT, on the database of dsn.
func mysqlCount(t *testing.T, dsn, query string, args ...any) int {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSeveralLogsMySQL runs the default log and two named logs, audit and
// billing, in MySQL mode, each in a MariaDB database of its own: each
// log's own indexes, checkpoints that verify with its own key only,
// receipts that verify offline, tiles under its prefix, its entries in its
// own database only; a tenant granted one log refused (403) on the other
// with nothing written; a restart; "check" of every log, which finds a
// changed entry of a named log. "log add" refuses (exit 2, nothing
// created) a DSN of the default log's database or of another log's, a
// database without Trillian's schema, and mixing SQLite and MySQL logs;
// so does the server.
func TestSeveralLogsMySQL(t *testing.T) {
	dsnDef, dsnAudit, dsnBilling := mysqlWithSchema(t), mysqlWithSchema(t), mysqlWithSchema(t)
	dsnBare, dsnEmpty := testdb.MySQL(t), testdb.MySQL(t) // no Trillian schema
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir, "--mysql_dsn", dsnDef)
	dd := []string{"--data_dir", dir}
	run := func(want int, env []string, args ...string) (string, string) {
		t.Helper()
		code, out, errOut := adminEnv(t, env, append(args[:2:2], append(dd, args[2:]...)...)...)
		if code != want {
			t.Fatalf("evident-server %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out, errOut
	}

	// audit with the DSNs in flags; billing with the default log's in the
	// environment and its own in a file.
	out, errOut := run(0, nil, "log", "add", "--mysql_dsn", dsnDef, "--log_mysql_dsn", dsnAudit, "audit")
	if strings.Contains(out+errOut, dsnAudit) || strings.Contains(out+errOut, dsnDef) || !strings.Contains(out, "store: MySQL, database evident_test_") {
		t.Errorf("log add printed a DSN, or not its database:\n%s%s", out, errOut)
	}
	dsnFile := filepath.Join(t.TempDir(), "billing-dsn")
	if err := os.WriteFile(dsnFile, []byte(dsnBilling+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(0, []string{dsnEnv + "=" + dsnDef}, "log", "add", "--private", "--log_mysql_dsn_file", dsnFile, "billing")
	for _, l := range []string{"audit", "billing"} {
		for _, f := range []string{keyFile, logDSNFile} {
			if m := mode(t, filepath.Join(dir, logsDir, l, f)); m != 0o600 {
				t.Errorf("logs/%s/%s: mode %o, want 0600", l, f, m)
			}
		}
		for _, f := range []string{stateDB, treeDB} {
			if fileExists(filepath.Join(dir, logsDir, l, f)) {
				t.Errorf("logs/%s/%s exists in MySQL mode", l, f)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, logsDir, "audit", logDSNFile)); err != nil || strings.TrimSpace(string(b)) != dsnAudit {
		t.Errorf("logs/audit/%s: %q, %v; want audit's DSN", logDSNFile, b, err)
	}

	// Refused: exit 2, a message that says why, and nothing created.
	sqliteDir := filepath.Join(t.TempDir(), "sqlite")
	sq := startServer(t, sqliteDir)
	if err := sq.terminate(); err != nil {
		t.Fatal(err)
	}
	mysqlFlags := func(logDSN string) []string {
		return []string{"--mysql_dsn", dsnDef, "--log_mysql_dsn", logDSN}
	}
	for _, tc := range []struct {
		what string
		args []string
		msg  string
	}{
		{"the default log's database", mysqlFlags(dsnDef), "the default log's database"},
		{"the default log's database by another user", mysqlFlags(strings.Replace(dsnDef, "@", "x@", 1)), "the default log's database"},
		{"audit's database", mysqlFlags(dsnAudit), "log audit's database"},
		{"audit's database under another address", mysqlFlags(otherAddress(t, dsnAudit)), "holds 1 Trillian trees"},
		{"a database without Trillian's schema", mysqlFlags(dsnBare), "storage.sql"},
		{"no new log's DSN", []string{"--mysql_dsn", dsnDef}, "--log_mysql_dsn"},
		{"no default log's DSN", []string{"--log_mysql_dsn", dsnBare}, "default log's DSN"},
		{"the DSN of another log as the default's", []string{"--mysql_dsn", dsnAudit, "--log_mysql_dsn", dsnBare}, "log audit's database, not the default log's"},
		{"the DSN of an empty database as the default's", []string{"--mysql_dsn", dsnEmpty, "--log_mysql_dsn", dsnBare}, "holds no log"},
		{"a remote Trillian", []string{"--mysql_dsn", dsnDef, "--trillian_addr", "127.0.0.1:1"}, "in-process Trillian"},
	} {
		code, out, errOut := adminEnv(t, nil, append(append([]string{"log", "add", "--data_dir", dir}, tc.args...), "other")...)
		if code != 2 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("log add with %s: exit %d, %q; want 2 and %q\n%s", tc.what, code, errOut, tc.msg, out)
		}
		if strings.Contains(out+errOut, dsnDef) || strings.Contains(out+errOut, dsnAudit) {
			t.Errorf("log add with %s printed a DSN:\n%s%s", tc.what, out, errOut)
		}
	}
	for _, dsn := range []string{dsnBare, dsnEmpty} {
		if n := tableCount(t, dsn); n != 0 {
			t.Errorf("the refused log add created %d tables in a database without Trillian's schema", n)
		}
	}
	// A MySQL log under a default log on SQLite, and a SQLite log under
	// one on MySQL.
	if code, _, errOut := adminEnv(t, nil, append([]string{"log", "add", "--data_dir", sqliteDir}, append(mysqlFlags(dsnBare), "other")...)...); code != 2 || !strings.Contains(errOut, "runs on SQLite") {
		t.Errorf("log add of a MySQL log under an SQLite default log: exit %d, %q", code, errOut)
	}
	if code, _, errOut := adminEnv(t, nil, "log", "add", "--data_dir", dir, "other"); code != 2 || !strings.Contains(errOut, "runs on MySQL") {
		t.Errorf("log add of an SQLite log under a MySQL default log: exit %d, %q", code, errOut)
	}
	names := dirNames(t, filepath.Join(dir, logsDir))
	if !slices.Equal(names, []string{"audit", "billing"}) || fileExists(filepath.Join(sqliteDir, logsDir, "other")) || fileExists(filepath.Join(dir, stateDB)) {
		t.Fatalf("logs/ holds %v after the refused commands; want audit and billing only", names)
	}
	list, _ := run(0, nil, "log", "list")
	if !hasLine(list, "audit", "/audit/", "no") || !hasLine(list, "billing", "/billing/", "yes") || !hasLine(list, "(default)", "/", "mysql", s.vkey) ||
		!strings.Contains(list, "mysql evident_test_") || strings.Contains(list, dsnAudit) {
		t.Errorf("log list:\n%s", list)
	}

	// Tenants in the default log's database: acme may use audit, globex
	// billing.
	keys := map[string]string{}
	for _, tn := range []string{"acme", "globex"} {
		run(0, nil, "tenant", "add", "--mysql_dsn", dsnDef, tn)
		k, _ := run(0, nil, "key", "issue", "--mysql_dsn", dsnDef, tn, "submit")
		keys[tn] = strings.TrimSpace(k)
	}
	run(0, nil, "tenant", "grant", "--mysql_dsn", dsnDef, "acme", "audit")
	run(0, []string{dsnEnv + "=" + dsnDef}, "tenant", "grant", "globex", "billing")
	if _, errOut := run(1, nil, "tenant", "grant", "--mysql_dsn", dsnDef, "acme", "nolog"); !strings.Contains(errOut, "no log") {
		t.Errorf("granting a log that does not exist: %s", errOut)
	}
	tl, _ := run(0, nil, "tenant", "list", "--mysql_dsn", dsnDef)
	if !hasLine(tl, "acme", "audit") || !hasLine(tl, "globex", "billing") {
		t.Errorf("tenant list does not show the grants:\n%s", tl)
	}

	// The server serves them from its next start.
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dir, "--mysql_dsn", dsnDef)
	vkeys := s.namedLogs()
	if len(vkeys) != 2 || vkeys["audit"] == vkeys["billing"] {
		t.Fatalf("named logs printed: %v", vkeys)
	}
	if strings.Contains(s.Stderr(), dsnAudit) || strings.Contains(s.Stderr(), dsnBilling) {
		t.Errorf("the server logged a named log's DSN:\n%s", s.Stderr())
	}
	vkeys[""] = s.vkey
	prefix := func(l string) string {
		if l == "" {
			return "/"
		}
		return "/" + l + "/"
	}
	sizes := map[string]uint64{}
	dsns := map[string]string{"": dsnDef, "audit": dsnAudit, "billing": dsnBilling}
	writers := map[string]string{"": s.token, "audit": keys["acme"], "billing": keys["globex"]}
	// (The operations records are entries too: the default log holds
	// the creations and grants, each named log its own creation.)
	results := map[string]addResult{}
	for _, l := range []string{"", "audit", "billing", "audit"} {
		e := []byte("into " + prefix(l) + " on mariadb")
		if l == "audit" && results[l].Receipt != "" {
			e = []byte("into /audit/ on mariadb, again")
			if r := s.addTo(prefix(l), writers[l], vkeys[l], e); r.Index <= results[l].Index {
				t.Errorf("/audit/: the second entry at %d, the first at %d", r.Index, results[l].Index)
			}
		} else {
			results[l] = s.addTo(prefix(l), writers[l], vkeys[l], e)
		}
		// In the log's own database, and no other.
		for other, dsn := range dsns {
			if n := leafCount(t, dsn, e); (other == l) != (n == 1) {
				t.Errorf("%s's entry %q: %d leaves in %s's database", prefix(l), e, n, prefix(other))
			}
		}
	}
	for l, vk := range vkeys {
		c, body, err := s.verifiedCheckpoint(prefix(l), vk)
		if err != nil || c.Size <= results[l].Index {
			t.Fatalf("%scheckpoint: %v; want it to verify with its own key and cover entry %d", prefix(l), err, results[l].Index)
		}
		sizes[l] = c.Size
		for other, ovk := range vkeys {
			v, _ := checkpoint.NewVerifier(ovk)
			if _, err := checkpoint.Open(body, v); other != l && err == nil {
				t.Errorf("%scheckpoint verifies with %q's key", prefix(l), other)
			}
		}
		i := results[l].Index
		code, tile := s.get(prefix(l) + "tile/" + checkpoint.TilePath(0, 0, int(c.Size)))
		if code != 200 || len(tile) != 32*int(c.Size) || !bytes.Equal(tile[32*i:32*i+32], results[l].LeafHash) {
			t.Errorf("%stile/0: %d, %d bytes, without the entry's leaf hash at %d", prefix(l), code, len(tile), i)
		}
	}
	if code, bundle := s.get("/audit/tile/" + checkpoint.TilePath(-1, 0, int(sizes["audit"]))); code != 200 || !bytes.Contains(bundle, []byte("into /audit/ on mariadb, again")) {
		t.Errorf("/audit/tile/entries: %d %q", code, bundle)
	}
	// A tenant granted one log is refused on the other, and nothing is
	// written there.
	for l, other := range map[string]string{"audit": "globex", "billing": "acme"} {
		code, body := s.call("POST", prefix(l)+"v1/add-entry", keys[other], []byte("refused into "+l))
		if code != 403 || !strings.Contains(string(body), "not granted the log "+l) {
			t.Errorf("POST %sv1/add-entry with %s's key: %d %s; want 403", prefix(l), other, code, body)
		}
		if n := leafCount(t, dsns[l], []byte("refused into "+l)); n != 0 {
			t.Errorf("the refused entry is in %s's database", l)
		}
		r := s.addTo(prefix(l), writers[l], vkeys[l], []byte("after the refusal into "+l))
		if r.Index != sizes[l] {
			t.Errorf("%s: the entry after the refused one is at %d, want %d: something was written", prefix(l), r.Index, sizes[l])
		}
		sizes[l] = r.Index + 1
	}

	// A restart: every log comes back with its state.
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dir, "--mysql_dsn", dsnDef)
	for l, vk := range vkeys {
		if got := s.namedLogs()[l]; l != "" && got != vk {
			t.Errorf("after the restart log %s has vkey %q, want %q", l, got, vk)
		}
		if c, _, err := s.verifiedCheckpoint(prefix(l), vk); err != nil || c.Size < sizes[l] {
			t.Errorf("%scheckpoint after the restart: %v; want it to verify, of size %d at least", prefix(l), err, sizes[l])
		}
	}
	// Each log's operations record, in its own database, begins with its
	// creation; the default log's has the creations and the grants.
	for l, want := range map[string][]string{
		"":      {`"action":"log.create"`, `"log":"billing"`, `"action":"log.grant"`, `"tenant":"globex"`},
		"audit": {`"action":"log.create"`, `"log":"audit"`},
	} {
		code, body := s.call("GET", prefix(l)+"v1/operations", s.token, nil)
		for _, w := range want {
			if code != 200 || !strings.Contains(string(body), w) {
				t.Errorf("GET %sv1/operations: %d, lacks %s\n%s", prefix(l), code, w, body)
			}
		}
	}
	// billing is private: its entries need its tenant's key.
	if code, body := s.get(fmt.Sprintf("/billing/v1/entries/%d", results["billing"].Index)); code != 401 {
		t.Errorf("reading the private billing log without a key: %d %s", code, body)
	}
	if r := s.addTo("/billing/", keys["globex"], vkeys["billing"], []byte("after the restart")); r.Index != sizes["billing"] {
		t.Errorf("billing after the restart: entry at %d, want %d", r.Index, sizes["billing"])
	}
	sizes["billing"]++
	if err := s.terminate(); err != nil {
		t.Fatal(err)
	}

	// The server refuses mixed modes: this data directory on SQLite, the
	// SQLite one (with a named log) on MySQL, and a named log's DSN
	// changed to the default log's or another log's; nothing is created.
	if out := runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0"); !strings.Contains(out, "named log audit runs on MySQL") {
		t.Errorf("a server on SQLite over named logs on MySQL:\n%s", out)
	}
	if fileExists(filepath.Join(dir, stateDB)) {
		t.Error("the refused start on SQLite created state.db")
	}
	run(0, nil, "log", "add", "--data_dir", sqliteDir, "onsqlite")
	if out := runFails(t, 1, nil, "--data_dir", sqliteDir, "--listen", "127.0.0.1:0", "--mysql_dsn", dsnBare); !strings.Contains(out, "named log onsqlite runs on SQLite") {
		t.Errorf("a server on MySQL over a named log on SQLite:\n%s", out)
	}
	if n := tableCount(t, dsnBare); n != 0 {
		t.Errorf("the refused start created %d tables", n)
	}
	if out := runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0", "--mysql_dsn", dsnDef, "--trillian_addr", "127.0.0.1:1"); !strings.Contains(out, "in-process Trillian") {
		t.Errorf("a server with a remote Trillian over named logs:\n%s", out)
	}
	dsnPath := filepath.Join(dir, logsDir, "billing", logDSNFile)
	for _, other := range []string{dsnDef, dsnAudit} {
		if err := os.WriteFile(dsnPath, []byte(other+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if out := runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0", "--mysql_dsn", dsnDef); !strings.Contains(out, "every log needs a database of its own") || strings.Contains(out, other) {
			t.Errorf("a server whose log billing has another log's DSN:\n%s", out)
		}
	}
	// A named log's database replaced by an empty one: no new tree, no
	// second history under billing's key.
	dsnNew := mysqlWithSchema(t)
	if err := os.WriteFile(dsnPath, []byte(dsnNew+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := runFails(t, 1, nil, "--data_dir", dir, "--listen", "127.0.0.1:0", "--mysql_dsn", dsnDef); !strings.Contains(out, "named log billing") || !strings.Contains(out, "records no Trillian tree") {
		t.Errorf("a server whose log billing's database was replaced by an empty one:\n%s", out)
	}
	if n, err := backend.MySQLTrees(t.Context(), dsnNew); err != nil || n != 0 {
		t.Errorf("the refused start made %d trees in the empty database (%v)", n, err)
	}
	if err := os.WriteFile(dsnPath, []byte(dsnBilling+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// "check" checks every log in its own database; a changed entry of a
	// named log is found and named.
	code, out, errOut := admin(t, "check", "--data_dir", dir, "--mysql_dsn", dsnDef)
	if code != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Errorf("check: exit %d\n%s%s", code, out, errOut)
	}
	for _, l := range []string{"audit", "billing"} {
		if !strings.Contains(out, fmt.Sprintf("\nlog %s OK: %d entries", l, sizes[l])) {
			t.Errorf("check does not check log %s:\n%s", l, out)
		}
	}
	adb, err := sql.Open("mysql", dsnAudit)
	if err != nil {
		t.Fatal(err)
	}
	defer adb.Close()
	if _, err := adb.ExecContext(t.Context(), `UPDATE LeafData SET LeafValue = 'into /audit/ on mariadX' WHERE LeafValue = 'into /audit/ on mariadb'`); err != nil {
		t.Fatal(err)
	}
	code, out, _ = admin(t, "check", "--data_dir", dir, "--mysql_dsn", dsnDef)
	if code != 1 || !strings.Contains(out, "log audit DAMAGED: ") || !strings.Contains(out, fmt.Sprintf("entry %d: its value does not hash", results["audit"].Index)) || !strings.Contains(out, "log billing OK") {
		t.Errorf("check with audit's entry 0 changed: exit %d, want 1 naming audit's entry %d\n%s", code, results["audit"].Index, out)
	}
}
