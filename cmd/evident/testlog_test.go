package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

// testLog is a small log that serves the log HTTP API on loopback, built
// with package checkpoint and transparency-dev/merkle. Its knobs make it
// misbehave: rewrite history (a fork), re-sign a size with another root, or
// serve entries that do not match its root.
type testLog struct {
	t      testing.TB
	origin string
	vkey   string
	signer note.Signer
	// witnesses cosign every checkpoint; policy names w0, w1, ...
	witnesses []note.Signer
	wvkeys    []string
	token     string

	mu      sync.Mutex
	entries [][]byte
	tree    *testonly.Tree
	byHash  map[[32]byte]uint64
	latest  []byte            // latest published checkpoint note
	archive map[uint64][]byte // published checkpoints by size
	// tamperEntry, when set, changes entries as they are served.
	tamperEntry func(index uint64, e []byte) []byte
	// failEntriesFrom, when > 0, makes /v1/entries answer 500 from there.
	failEntriesFrom uint64
	// badProof, when it returns true for an index, makes add-entry answer
	// with a receipt whose first proof hash is altered.
	badProof func(index uint64) bool
	// gate, when set, is received from before each add-entry is handled.
	gate chan struct{}
	// stop is closed when the test ends.
	stop chan struct{}

	srv *httptest.Server
}

func newTestLog(t testing.TB, nWitnesses int) *testLog {
	t.Helper()
	l := &testLog{t: t, origin: "test.example/log", token: "write-token", byHash: map[[32]byte]uint64{}, archive: map[uint64][]byte{}}
	skey, vkey, err := checkpoint.GenerateKey(l.origin)
	if err != nil {
		t.Fatal(err)
	}
	l.vkey = vkey
	if l.signer, err = checkpoint.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	for i := range nWitnesses {
		ws, wv, err := checkpoint.GenerateCosignerKey(fmt.Sprintf("witness%d.example", i))
		if err != nil {
			t.Fatal(err)
		}
		s, err := checkpoint.NewCosigner(ws)
		if err != nil {
			t.Fatal(err)
		}
		l.witnesses = append(l.witnesses, s)
		l.wvkeys = append(l.wvkeys, wv)
	}
	l.tree = testonly.New(rfc6962.DefaultHasher)
	l.mu.Lock()
	l.publish()
	l.mu.Unlock()
	l.stop = make(chan struct{})
	l.srv = httptest.NewServer(l.handler())
	t.Cleanup(l.srv.Close)
	// Runs before srv.Close: requests still held at the gate end, so that
	// Close, which waits for them, cannot hang the test.
	t.Cleanup(func() { close(l.stop) })
	return l
}

// policy returns a tlog-policy text requiring all witnesses.
func (l *testLog) policy() string {
	s := "log " + l.vkey + "\n"
	var names string
	for i, v := range l.wvkeys {
		s += fmt.Sprintf("witness w%d %s\n", i, v)
		names += fmt.Sprintf(" w%d", i)
	}
	if len(l.wvkeys) == 0 {
		return s + "quorum none\n"
	}
	return s + "group all-witnesses all" + names + "\nquorum all-witnesses\n"
}

// sign signs a checkpoint of the current tree at size with the log key and
// every witness. Callers hold mu.
func (l *testLog) sign(size uint64, root []byte) []byte {
	c := checkpoint.Checkpoint{Origin: l.origin, Size: size, Hash: [32]byte(root)}
	n, err := checkpoint.Sign(c, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, w := range l.witnesses {
		line, err := checkpoint.SignatureLine(c.Marshal(), w)
		if err != nil {
			l.t.Fatal(err)
		}
		if n, err = checkpoint.AppendSignatures(n, line); err != nil {
			l.t.Fatal(err)
		}
	}
	return n
}

// publish signs and publishes the current tree. Callers hold mu.
func (l *testLog) publish() {
	n := l.sign(l.tree.Size(), l.tree.Hash())
	l.latest = n
	l.archive[l.tree.Size()] = n
}

// add appends entries (as a writer would) and publishes.
func (l *testLog) add(entries ...[]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range entries {
		l.appendLocked(e)
	}
	l.publish()
}

func (l *testLog) appendLocked(e []byte) uint64 {
	h := checkpoint.LeafHash(e)
	if i, ok := l.byHash[h]; ok {
		return i
	}
	i := uint64(len(l.entries))
	l.entries = append(l.entries, e)
	l.tree.Append(h[:])
	l.byHash[h] = i
	return i
}

// rewrite replaces entry i and rebuilds the tree (history changes), without
// publishing.
func (l *testLog) rewrite(i int, e []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[i] = e
	l.tree = testonly.New(rfc6962.DefaultHasher)
	l.byHash = map[[32]byte]uint64{}
	for j, e := range l.entries {
		h := checkpoint.LeafHash(e)
		l.tree.Append(h[:])
		l.byHash[h] = uint64(j)
	}
}

// republish signs the current (possibly rewritten) tree and serves it as
// latest and in the archive.
func (l *testLog) republish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.publish()
}

// setArchive replaces the archived checkpoint of size with a fresh
// signature over root.
func (l *testLog) setArchive(size uint64, root [32]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.archive[size] = l.sign(size, root[:])
}

func (l *testLog) receiptLocked(i, size uint64) []byte {
	p, err := l.tree.InclusionProof(i, size)
	if err != nil {
		l.t.Error(err)
	}
	r := &checkpoint.Receipt{Index: i, Proof: p, Checkpoint: l.archive[size]}
	return r.Marshal()
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
	mux.HandleFunc("POST /v1/add-entry", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+l.token {
			jsonError(w, 401, "bad token")
			return
		}
		e, _ := io.ReadAll(io.LimitReader(r.Body, 65536))
		// Wait at the gate after reading the body, so that the server
		// notices a client that goes away (and cancels r.Context()).
		l.mu.Lock()
		gate := l.gate
		l.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			case <-l.stop:
				jsonError(w, 503, "test log closing")
				return
			}
		}
		if len(e) == 0 || len(e) > 65535 {
			jsonError(w, 413, "entry size")
			return
		}
		l.mu.Lock()
		_, dup := l.byHash[checkpoint.LeafHash(e)]
		i := l.appendLocked(e)
		l.publish()
		size := l.tree.Size()
		rc := l.receiptLocked(i, size)
		if l.badProof != nil && l.badProof(i) {
			r, _ := checkpoint.ParseReceipt(rc)
			r.Proof[0] = append([]byte{r.Proof[0][0] ^ 1}, r.Proof[0][1:]...)
			rc = r.Marshal()
		}
		l.mu.Unlock()
		h := checkpoint.LeafHash(e)
		json.NewEncoder(w).Encode(map[string]any{"index": i, "leaf_hash": base64.StdEncoding.EncodeToString(h[:]), "duplicate": dup, "receipt": string(rc)})
	})
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
	mux.HandleFunc("GET /v1/receipt", func(w http.ResponseWriter, r *http.Request) {
		b, err := hex.DecodeString(r.FormValue("leaf_hash"))
		l.mu.Lock()
		defer l.mu.Unlock()
		i, ok := l.byHash[[32]byte(append(b, make([]byte, 32)...)[:32])]
		if err != nil || len(b) != 32 || !ok {
			jsonError(w, 404, "leaf not found")
			return
		}
		size := l.tree.Size()
		if s, ok := uintParam(r, "tree_size"); ok {
			size = s
		}
		if _, ok := l.archive[size]; !ok || i >= size {
			jsonError(w, 404, "no checkpoint of that size covers the leaf")
			return
		}
		w.Write(l.receiptLocked(i, size))
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
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"origin": l.origin, "vkey": l.vkey})
	})
	return mux
}

// keyPair returns a fresh witness key pair.
func keyPair(t testing.TB, name string) (skey, vkey string, s note.Signer) {
	t.Helper()
	skey, vkey, err := checkpoint.GenerateCosignerKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err = checkpoint.NewCosigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey, s
}
