package monitor

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

// testLog serves the read side of the log HTTP API on loopback (latest and
// archived checkpoints, consistency proofs, entries), built with package
// checkpoint and transparency-dev/merkle. Its knobs make it misbehave.
type testLog struct {
	t       testing.TB
	origin  string
	key     note.Verifier
	signer  note.Signer
	witness note.Signer // cosigns every checkpoint when set
	wvkey   string

	mu      sync.Mutex
	entries [][]byte
	tree    *testonly.Tree
	latest  []byte
	archive map[uint64][]byte
	// tamperEntry, when set, changes entries as they are served.
	tamperEntry func(i uint64, e []byte) []byte
	// failEntriesFrom, when > 0, makes /v1/entries answer 500 from there.
	failEntriesFrom uint64

	srv *httptest.Server
}

func newTestLog(t testing.TB, witness bool) *testLog {
	t.Helper()
	l := &testLog{t: t, origin: "test.example/log", archive: map[uint64][]byte{}, tree: testonly.New(rfc6962.DefaultHasher)}
	skey, vkey, err := checkpoint.GenerateKey(l.origin)
	if err != nil {
		t.Fatal(err)
	}
	if l.signer, err = checkpoint.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if l.key, err = checkpoint.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	if witness {
		ws, wv, err := checkpoint.GenerateCosignerKey("witness0.example")
		if err != nil {
			t.Fatal(err)
		}
		if l.witness, err = checkpoint.NewCosigner(ws); err != nil {
			t.Fatal(err)
		}
		l.wvkey = wv
	}
	l.mu.Lock()
	l.publish()
	l.mu.Unlock()
	l.srv = httptest.NewServer(l.handler())
	t.Cleanup(l.srv.Close)
	return l
}

// client returns a client of the log, closed when the test ends.
func (l *testLog) client() *client.Client {
	c, err := client.New(l.t.Context(), client.Config{URL: l.srv.URL})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	return c
}

// sign signs a checkpoint with the log key and the witness. Callers hold mu.
func (l *testLog) sign(size uint64, root []byte) []byte {
	c := checkpoint.Checkpoint{Origin: l.origin, Size: size, Hash: [32]byte(root)}
	n, err := checkpoint.Sign(c, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	if l.witness != nil {
		line, err := checkpoint.SignatureLine(c.Marshal(), l.witness)
		if err != nil {
			l.t.Fatal(err)
		}
		if n, err = checkpoint.AppendSignatures(n, line); err != nil {
			l.t.Fatal(err)
		}
	}
	return n
}

// publish signs the current tree and serves it as latest and archived.
// Callers hold mu.
func (l *testLog) publish() {
	n := l.sign(l.tree.Size(), l.tree.Hash())
	l.latest = n
	l.archive[l.tree.Size()] = n
}

// add appends n entries named from "entry <from>" and publishes.
func (l *testLog) add(from, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := from; i < from+n; i++ {
		e := []byte("entry " + strconv.Itoa(i))
		l.entries = append(l.entries, e)
		h := checkpoint.LeafHash(e)
		l.tree.Append(h[:])
	}
	l.publish()
}

// rewrite replaces entry i and rebuilds the tree; with publish, the new
// tree is signed and served.
func (l *testLog) rewrite(i int, e []byte, publish bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[i] = e
	l.tree = testonly.New(rfc6962.DefaultHasher)
	for _, e := range l.entries {
		h := checkpoint.LeafHash(e)
		l.tree.Append(h[:])
	}
	if publish {
		l.publish()
	}
}

// serveOld serves the archived checkpoint of size as the latest.
func (l *testLog) serveOld(size uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.latest = l.archive[size]
}

// setArchive replaces the archived checkpoint of size with a fresh
// signature over root.
func (l *testLog) setArchive(size uint64, root [32]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.archive[size] = l.sign(size, root[:])
}

func (l *testLog) set(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func uintParam(r *http.Request, name string) (uint64, bool) {
	v, err := strconv.ParseUint(r.FormValue(name), 10, 64)
	return v, err == nil
}

func (l *testLog) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkpoint", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		defer l.mu.Unlock()
		w.Write(l.latest)
	})
	mux.HandleFunc("GET /v1/checkpoints/{size}", func(w http.ResponseWriter, r *http.Request) {
		size, err := strconv.ParseUint(r.PathValue("size"), 10, 64)
		l.mu.Lock()
		defer l.mu.Unlock()
		n, ok := l.archive[size]
		if err != nil || !ok {
			jsonError(w, 404, "no such checkpoint")
			return
		}
		w.Write(n)
	})
	mux.HandleFunc("GET /v1/proof/consistency", func(w http.ResponseWriter, r *http.Request) {
		first, ok1 := uintParam(r, "first")
		second, ok2 := uintParam(r, "second")
		l.mu.Lock()
		defer l.mu.Unlock()
		if !ok1 || !ok2 || first > second || second > l.tree.Size() {
			jsonError(w, 400, "bad sizes")
			return
		}
		p, err := l.tree.ConsistencyProof(first, second)
		if err != nil {
			jsonError(w, 400, err.Error())
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"hashes": p})
	})
	mux.HandleFunc("GET /v1/entries", func(w http.ResponseWriter, r *http.Request) {
		start, ok1 := uintParam(r, "start")
		count, ok2 := uintParam(r, "count")
		if !ok1 || !ok2 || count < 1 || count > 1000 {
			jsonError(w, 400, "bad start or count")
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.failEntriesFrom > 0 && start+count > l.failEntriesFrom {
			jsonError(w, 500, "internal error")
			return
		}
		out := [][]byte{}
		for i := start; i < start+count && i < uint64(len(l.entries)); i++ {
			e := l.entries[i]
			if l.tamperEntry != nil {
				e = l.tamperEntry(i, e)
			}
			out = append(out, e)
		}
		json.NewEncoder(w).Encode(map[string]any{"entries": out})
	})
	return mux
}
