package log

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/witness"
)

// TestWithWitnesses runs the log end to end with two real witnesses on
// loopback (package witness, each with its own SQLite state): with a policy
// that needs both, and with a policy that needs one of them while the other
// is stopped. Every receipt must verify with the policy, offline.
func TestWithWitnesses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		quorum  string // the group's threshold
		stopped int    // how many witnesses are down, from the last
		want    int    // cosignatures on the final checkpoint
	}{
		{"2-of-2", "all", 0, 2},
		{"1-of-2, one stopped", "1", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTestLogWith(t, func(tl *testLog) {
				var srvs []*httptest.Server
				policy := fmt.Sprintf("log %s\n", tl.vkey)
				for i := range 2 {
					url, vkey := startWitness(t, tl.vkey, fmt.Sprintf("witness.example/w%d", i), &srvs)
					policy += fmt.Sprintf("witness w%d %s %s\n", i, vkey, url)
				}
				policy += "group g " + tc.quorum + " w0 w1\nquorum g\n"
				for _, s := range srvs[len(srvs)-tc.stopped:] {
					s.Close()
				}
				p, err := checkpoint.ParsePolicy([]byte(policy))
				if err != nil {
					t.Fatalf("%v\n%s", err, policy)
				}
				pool, err := witness.NewPool(witness.PoolConfig{Policy: p})
				if err != nil {
					t.Fatal(err)
				}
				tl.policy = p
				tl.mod = func(c *Config) { c.Cosign = pool.Cosign; c.CosignStatus = pool.StatusText }
			}, nil)
			runEndToEnd(t, tl, 200, 2, 16)
			s, err := checkpoint.Open(tl.checkpoint().Note, tl.verifier, tl.policy.Verifiers()...)
			if err != nil || len(s.Cosignatures) != tc.want {
				t.Errorf("/checkpoint: %v, %d cosignatures, want %d", err, len(s.Cosignatures), tc.want)
			}
			code, body := tl.get("/healthz")
			if tc.stopped == 0 && (code != 200 || !strings.HasPrefix(string(body), "ok\n")) {
				t.Errorf("/healthz: %d %s", code, body)
			}
			if tc.stopped > 0 && !strings.Contains(string(body), "w1") {
				t.Errorf("/healthz: %d %s; want it to name the stopped witness w1", code, body)
			}
		})
	}
}

// startWitness starts a real witness following the log with verifier key
// logVKey, on loopback, and returns its URL and its cosignature vkey.
func startWitness(t *testing.T, logVKey, name string, srvs *[]*httptest.Server) (url, vkey string) {
	ctx := t.Context()
	skey, vkey, err := checkpoint.GenerateCosignerKey(name)
	if err != nil {
		t.Fatal(err)
	}
	db, err := storage.OpenSQLite(ctx, filepath.Join(t.TempDir(), "witness.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	logs, err := witness.ParseLogs([]byte("log " + logVKey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(ctx, witness.Config{DB: db, Key: skey, Logs: logs, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	*srvs = append(*srvs, srv)
	return srv.URL, vkey
}
