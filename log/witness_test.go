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
// loopback (package witness, each with its own SQLite state) and a policy
// that needs both: every receipt must verify with the policy, offline.
func TestWithWitnesses(t *testing.T) {
	tl := newTestLogWith(t, func(tl *testLog) {
		ctx := t.Context()
		policy := fmt.Sprintf("log %s\n", tl.vkey)
		for i := range 2 {
			name := fmt.Sprintf("witness.example/w%d", i)
			skey, vkey, err := checkpoint.GenerateCosignerKey(name)
			if err != nil {
				t.Fatal(err)
			}
			db, err := storage.OpenSQLite(ctx, filepath.Join(t.TempDir(), "witness.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			logs, err := witness.ParseLogs([]byte("log " + tl.vkey + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			w, err := witness.New(ctx, witness.Config{DB: db, Key: skey, Logs: logs, RateLimit: -1})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(w.Handler())
			t.Cleanup(srv.Close)
			policy += fmt.Sprintf("witness w%d %s %s\n", i, vkey, srv.URL)
		}
		policy += "group both all w0 w1\nquorum both\n"
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
	if err != nil || len(s.Cosignatures) != 2 {
		t.Errorf("/checkpoint: %v, %d cosignatures, want 2", err, len(s.Cosignatures))
	}
	if code, body := tl.get("/healthz"); code != 200 || !strings.HasPrefix(string(body), "ok\n") {
		t.Errorf("/healthz: %d %s", code, body)
	}
}
