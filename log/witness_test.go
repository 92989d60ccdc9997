package log

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
			// The log publishes (200, "ok"); each witness's line says how it
			// fares, the stopped one's that it fails.
			code, body := tl.get("/healthz")
			lines := strings.Split(string(body), "\n")
			if code != 200 || len(lines) != 4 || lines[0] != "ok" || lines[3] != "" {
				t.Fatalf("/healthz: %d %q, want 200, ok and a line per witness", code, body)
			}
			for i, line := range lines[1:3] {
				state := ": ok"
				if i >= 2-tc.stopped {
					state = ": FAILING: "
				}
				if !strings.HasPrefix(line, fmt.Sprintf("witness w%d ", i)) || !strings.Contains(line, state) {
					t.Errorf("/healthz line %q, want witness w%d with %q", line, i, state)
				}
			}
		})
	}
}

// newWitness makes a real witness, its state in a SQLite file, following
// the log with verifier key logVKey; it returns the witness and its
// cosignature vkey.
func newWitness(t *testing.T, logVKey, name string) (*witness.Witness, string) {
	skey, vkey, err := checkpoint.GenerateCosignerKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return newWitnessWithKey(t, logVKey, skey), vkey
}

// newWitnessWithKey starts a witness with the signing key skey, following
// the log with logVKey, its state in a SQLite file.
func newWitnessWithKey(t *testing.T, logVKey, skey string) *witness.Witness {
	ctx := t.Context()
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
	t.Cleanup(func() { w.Close() })
	return w
}

// startWitness starts a real witness following the log with verifier key
// logVKey, on loopback, and returns its URL and its cosignature vkey.
func startWitness(t *testing.T, logVKey, name string, srvs *[]*httptest.Server) (url, vkey string) {
	w, vkey := newWitness(t, logVKey, name)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	*srvs = append(*srvs, srv)
	return srv.URL, vkey
}

// switchableWitness is a real witness on loopback whose HTTP server can be
// made to fail (503) as if it were down, and brought back with its state.
type switchableWitness struct {
	w    *witness.Witness
	url  string
	vkey string
	down atomic.Bool
}

func startSwitchableWitness(t *testing.T, logVKey, name string) *switchableWitness {
	sw := &switchableWitness{}
	sw.w, sw.vkey = newWitness(t, logVKey, name)
	h := sw.w.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if sw.down.Load() {
			http.Error(rw, "down for the test", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	sw.url = srv.URL
	return sw
}

// size is the size of the checkpoint the witness holds for origin (0 when
// none).
func (sw *switchableWitness) size(t *testing.T, origin string) uint64 {
	n, err := sw.w.Checkpoint(t.Context(), origin)
	if errors.Is(err, witness.ErrUnknownOrigin) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := checkpoint.SplitNote(n)
	if err != nil {
		t.Fatal(err)
	}
	c, err := checkpoint.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	return c.Size
}

// TestWitnessHoldsUnpublishedCheckpoint is a 2-of-2 log whose second
// witness is down while the tree grows twice: the first witness cosigns
// checkpoints that are never published (no quorum). When the second comes
// back the log must publish again, proving consistency to the first witness
// from the unpublished checkpoint it holds, also after a restart of the log
// (when its witness pool has forgotten what each witness holds).
func TestWitnessHoldsUnpublishedCheckpoint(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			var w0, w1 *switchableWitness
			tl := newTestLogWith(t, func(tl *testLog) {
				w0 = startSwitchableWitness(t, tl.vkey, "witness.example/w0")
				w1 = startSwitchableWitness(t, tl.vkey, "witness.example/w1")
				p, err := checkpoint.ParsePolicy(fmt.Appendf(nil, "log %s\nwitness w0 %s %s\nwitness w1 %s %s\ngroup g all w0 w1\nquorum g\n",
					tl.vkey, w0.vkey, w0.url, w1.vkey, w1.url))
				if err != nil {
					t.Fatal(err)
				}
				tl.policy = p
				// A new pool at every start, as in a restarted server.
				tl.mod = func(c *Config) {
					pool, err := witness.NewPool(witness.PoolConfig{Policy: p})
					if err != nil {
						t.Fatal(err)
					}
					c.Cosign, c.CosignStatus = pool.Cosign, pool.StatusText
					c.MaxBackoff = 200 * time.Millisecond
				}
			}, nil)
			origin := tl.log.Origin()
			for i := range 3 {
				if code, r := tl.add(entryBytes(i), ""); code != http.StatusOK {
					t.Fatalf("add: %d %s", code, r.Error)
				}
			}
			published := tl.checkpoint().Size
			w1.down.Store(true)
			for i := 3; i < 5; i++ {
				if code, r := tl.add(entryBytes(i), "?wait=false"); code != http.StatusAccepted {
					t.Fatalf("add: %d %s", code, r.Error)
				}
				want := uint64(i + 1)
				waitFor(t, fmt.Sprintf("w0 to cosign the unpublished size %d", want), func() bool { return w0.size(t, origin) == want })
			}
			if got := tl.checkpoint().Size; got != published {
				t.Fatalf("published size %d without w1's cosignature, want %d", got, published)
			}
			if restart {
				tl.stop()
				tl.start()
				if code, r := tl.add(entryBytes(5), "?wait=false"); code != http.StatusAccepted {
					t.Fatalf("add: %d %s", code, r.Error)
				}
			}
			w1.down.Store(false)
			want := uint64(5)
			if restart {
				want = 6
			}
			waitFor(t, "the log to publish again", func() bool { return tl.checkpoint().Size == want })
			s, err := checkpoint.Open(tl.checkpoint().Note, tl.verifier, tl.policy.Verifiers()...)
			if err != nil || len(s.Cosignatures) != 2 {
				t.Errorf("/checkpoint: %v, %d cosignatures, want 2", err, len(s.Cosignatures))
			}
			if w0.size(t, origin) != want || w1.size(t, origin) != want {
				t.Errorf("witnesses hold sizes %d and %d, want %d", w0.size(t, origin), w1.size(t, origin), want)
			}
			checkChain(t, tl)
		})
	}
}
