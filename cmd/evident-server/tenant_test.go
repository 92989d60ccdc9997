package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	evlog "github.com/evidentlog/evident/log"
	"github.com/evidentlog/evident/storage"
)

// admin runs "evident-server ARGS..." and returns its exit code, standard
// output and standard error.
func admin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return adminEnv(t, nil, args...)
}

// addWith submits entry with key and returns the status.
func (s *server) addWith(t *testing.T, key string, entry string) int {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL+"/v1/add-entry?wait=false", strings.NewReader(entry))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTenantCommands runs the tenant and key commands, as separate
// processes, against a running server's SQLite state database: a key
// issued is accepted, a rotated or revoked one refused within the key
// poll; the write-token file stays the default tenant's admin key. Bad
// arguments exit 2 and change nothing.
func TestTenantCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	dd := []string{"--data_dir", dir}
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := admin(t, append(args[:2:2], append(dd, args[2:]...)...)...)
		if code != want {
			t.Fatalf("evident-server %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out + errOut
	}
	run(0, "tenant", "add", "acme")
	if out := run(1, "tenant", "add", "acme"); !strings.Contains(out, "exists already") {
		t.Errorf("adding acme twice: %s", out)
	}
	run(2, "tenant", "add", "Not/A/Name")
	run(2, "key", "issue", "acme", "root")
	run(2, "key", "revoke", "not-an-id")
	run(2, "key", "frobnicate")
	if out := run(1, "key", "issue", "nobody", "submit"); !strings.Contains(out, "no such tenant") {
		t.Errorf("issuing for an unknown tenant: %s", out)
	}
	run(2, "tenant", "quota", "acme")
	run(2, "tenant", "quota", "--rate", "-5", "acme")
	if out := run(1, "tenant", "quota", "--rate", "5", "nobody"); !strings.Contains(out, "no such tenant") {
		t.Errorf("quota of an unknown tenant: %s", out)
	}
	run(0, "tenant", "quota", "--rate", "1000", "--backlog_permille", "500", "acme")
	if out := run(0, "tenant", "list"); !strings.Contains(out, "acme") || !strings.Contains(out, "default") || !strings.Contains(out, "rate 1000/s, burst default, backlog share 500‰") {
		t.Errorf("tenant list:\n%s", out)
	}

	code, key, errOut := admin(t, "key", "issue", "--data_dir", dir, "acme", "submit")
	key = strings.TrimSpace(key)
	if code != 0 || !strings.HasPrefix(key, "evk_") || strings.Contains(errOut, key) {
		t.Fatalf("key issue: exit %d, stdout %q, stderr %q", code, key, errOut)
	}
	waitFor(t, s, func() bool { return s.addWith(t, key, "by acme") == 202 }, "the issued key to be accepted")
	if got := s.addWith(t, s.token, "by the write token"); got != 202 {
		t.Errorf("the write token: %d", got)
	}
	list := run(0, "key", "list", "acme")
	if strings.Contains(list, "write-token") || strings.Count(list, "acme") != 1 {
		t.Errorf("key list acme:\n%s", list)
	}
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	if all := run(0, "key", "list"); len(strings.Fields(all)) < 10 || strings.Join(strings.Fields(all)[5:8], " ") != "write-token default admin" {
		t.Errorf("key list does not show the write token as the default tenant's admin key:\n%s", all)
	}

	// Rotation: the new key goes to a 0600 file; the old one is refused.
	keyFile := filepath.Join(t.TempDir(), "acme.key")
	run(0, "key", "rotate", "--key_file", keyFile, id)
	if m := mode(t, keyFile); m != 0o600 {
		t.Errorf("--key_file mode %v, want 0600", m)
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	newKey := strings.TrimSpace(string(b))
	waitFor(t, s, func() bool { return s.addWith(t, key, "old key") == 401 }, "the rotated key to be refused")
	if got := s.addWith(t, newKey, "new key"); got != 202 {
		t.Errorf("the rotated-in key: %d", got)
	}
	if out := run(1, "key", "revoke", id); !strings.Contains(out, "revoked already") {
		t.Errorf("revoking the rotated key: %s", out)
	}
	if out := run(1, "key", "revoke", "write-token"); !strings.Contains(out, "restarting") {
		t.Errorf("revoking the write token: %s", out)
	}

	newID := strings.Fields(strings.Split(run(0, "key", "list", "acme"), "\n")[2])[0]
	start := time.Now()
	run(0, "key", "revoke", newID)
	waitFor(t, s, func() bool { return s.addWith(t, newKey, "revoked") == 401 }, "the revoked key to be refused")
	t.Logf("the revoked key was refused %v after the revoke command returned", time.Since(start).Round(time.Millisecond))
	if got := s.addWith(t, s.token, "write token again"); got != 202 {
		t.Errorf("the write token after revocations: %d", got)
	}
	if strings.Contains(s.Stderr(), "evk_") {
		t.Errorf("the server's log holds key material:\n%s", s.Stderr())
	}
}

// FuzzParseAdmin feeds the tenant and key commands' argument parser
// arbitrary arguments (split at NUL bytes): it never panics, and what it
// accepts is a known command with well-formed names, roles and key IDs.
func FuzzParseAdmin(f *testing.F) {
	for _, s := range []string{
		"tenant\x00add\x00acme", "tenant\x00list", "key\x00issue\x00acme\x00submit",
		"key\x00list\x00acme", "key\x00rotate\x00--key_file\x00/tmp/k\x000123456789abcdef",
		"key\x00revoke\x00write-token", "key\x00issue\x00--data_dir\x00\x00a\x00read",
		"tenant\x00add\x00-acme", "key\x00issue\x00acme\x00root", "key",
		"tenant\x00grant\x00acme\x00audit", "tenant\x00revoke-grant\x00acme\x00v1", "tenant\x00grant\x00acme",
		"tenant\x00quota\x00--rate\x0010\x00acme", "tenant\x00quota\x00--backlog_permille\x001001\x00acme", "tenant\x00quota\x00acme",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseAdmin(strings.Split(s, "\x00"), "", io.Discard)
		if err != nil {
			return
		}
		switch c.group + " " + c.verb {
		case "tenant add", "key issue":
			if storage.CheckTenantName(c.tenant) != nil {
				t.Errorf("accepted tenant %q", c.tenant)
			}
		case "tenant quota":
			q := c.quota
			if storage.CheckTenantName(c.tenant) != nil || q.Rate < -1 || q.Burst < -1 || q.BacklogPermille < -1 || q.BacklogPermille > 1000 || len(c.set) == 0 {
				t.Errorf("accepted tenant quota %q %+v", c.tenant, q)
			}
		case "key rotate", "key revoke":
			if storage.CheckKeyID(c.id) != nil {
				t.Errorf("accepted key ID %q", c.id)
			}
		case "tenant grant", "tenant revoke-grant":
			if storage.CheckTenantName(c.tenant) != nil || evlog.CheckLogName(c.logName) != nil {
				t.Errorf("accepted %s %q %q", c.verb, c.tenant, c.logName)
			}
		case "tenant list", "key list":
		default:
			t.Errorf("accepted command %q", c.group+" "+c.verb)
		}
		if c.verb == "issue" {
			if _, err := storage.ParseRole(string(c.role)); err != nil {
				t.Errorf("accepted role %q", c.role)
			}
		}
	})
}
