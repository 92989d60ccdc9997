package log

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/storage/backend"
)

// testLog is a real log on loopback: Trillian in-process on SQLite files
// (or MySQL) in a data directory, the state database, the handler served by
// httptest.
type testLog struct {
	t        testing.TB
	dir      string
	mysqlDSN string
	skey     string
	vkey     string
	token    string
	verifier note.Verifier
	policy   *checkpoint.Policy // receipts must satisfy it (nil: no witnesses)
	mod      func(*Config)

	state *storage.DB
	be    *backend.Backend
	log   *Log
	srv   *httptest.Server
}

// newTestLog creates a log in a new data directory and starts it. mod, if
// set, adjusts its Config.
func newTestLog(t testing.TB, mod func(*Config)) *testLog {
	return newTestLogWith(t, func(*testLog) {}, mod)
}

// start opens the storage and starts the log on tl's data directory.
func (tl *testLog) start() {
	t := tl.t
	ctx := t.Context()
	var err error
	bcfg := backend.Config{}
	if tl.mysqlDSN != "" {
		tl.state, err = storage.OpenMySQL(ctx, tl.mysqlDSN)
		bcfg.MySQLDSN = tl.mysqlDSN
	} else {
		tl.state, err = storage.OpenSQLite(ctx, filepath.Join(tl.dir, "state.db"))
		bcfg.SQLitePath = filepath.Join(tl.dir, "trillian.db")
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.state.AddToken(ctx, "test", tl.token); err != nil {
		t.Fatal(err)
	}
	bcfg.State = tl.state
	if tl.be, err = backend.New(ctx, bcfg); err != nil {
		t.Fatal(err)
	}
	signer, err := checkpoint.NewSigner(tl.skey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Origin:             signer.Name(),
		Signer:             signer,
		VKey:               tl.vkey,
		Trillian:           tl.be.Log,
		TreeID:             tl.be.TreeID,
		State:              tl.state,
		Healthy:            tl.be.Healthy,
		Grown:              tl.be.Grown,
		LeafHashes:         tl.be.LeafHashes,
		Root:               tl.be.Root,
		Leaves:             tl.be.Leaves,
		LeafIndex:          tl.be.LeafIndex,
		QueueBatch:         tl.be.QueueBatch,
		CheckpointInterval: 50 * time.Millisecond,
		WaitTimeout:        20 * time.Second,
	}
	if tl.mod != nil {
		tl.mod(&cfg)
	}
	if tl.log, err = New(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	tl.srv = httptest.NewServer(tl.log.Handler())
}

// stop stops the log and closes its storage, in the order the server does.
func (tl *testLog) stop() {
	if tl.srv == nil {
		return
	}
	tl.srv.Close()
	tl.log.Close()
	tl.be.Close()
	tl.state.Close()
	tl.srv = nil
}

// addResult is add-entry's JSON answer.
type addResult struct {
	Index     uint64 `json:"index"`
	LeafHash  []byte `json:"leaf_hash"`
	Duplicate bool   `json:"duplicate"`
	Receipt   string `json:"receipt"`
	Error     string `json:"error"`
}

// add posts entry with the log's token.
func (tl *testLog) add(entry []byte, query string) (int, addResult) {
	return tl.addAs(tl.token, entry, query)
}

func (tl *testLog) addAs(token string, entry []byte, query string) (int, addResult) {
	code, _, r := tl.addAuth("Bearer "+token, entry, query)
	return code, r
}

// addAuth posts entry with the given Authorization header (none if it is
// "Bearer "), and returns the answer's status, header and JSON.
func (tl *testLog) addAuth(auth string, entry []byte, query string) (int, http.Header, addResult) {
	req, err := http.NewRequest("POST", tl.srv.URL+"/v1/add-entry"+query, bytes.NewReader(entry))
	if err != nil {
		tl.t.Fatal(err)
	}
	if auth != "Bearer " {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tl.t.Errorf("add-entry: %v", err)
		return 0, nil, addResult{}
	}
	defer resp.Body.Close()
	var r addResult
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &r); err != nil {
		tl.t.Errorf("add-entry answered %d with non-JSON %q", resp.StatusCode, body)
	}
	return resp.StatusCode, resp.Header, r
}

// get fetches path and returns the status and body.
func (tl *testLog) get(path string) (int, []byte) {
	resp, err := http.Get(tl.srv.URL + path)
	if err != nil {
		tl.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tl.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// getHeader fetches path and returns the status and header.
func (tl *testLog) getHeader(path string) (int, http.Header) {
	resp, err := http.Get(tl.srv.URL + path)
	if err != nil {
		tl.t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// getJSON fetches path, wants 200, and decodes the answer into v.
func (tl *testLog) getJSON(path string, v any) {
	tl.t.Helper()
	code, b := tl.get(path)
	if code != http.StatusOK {
		tl.t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tl.t.Fatalf("GET %s: %v", path, err)
	}
}

// checkpoint fetches and verifies /checkpoint.
func (tl *testLog) checkpoint() *checkpoint.Signed {
	tl.t.Helper()
	code, b := tl.get("/checkpoint")
	if code != http.StatusOK {
		tl.t.Fatalf("GET /checkpoint: %d %s", code, b)
	}
	s, err := checkpoint.Open(b, tl.verifier)
	if err != nil {
		tl.t.Fatalf("GET /checkpoint: %v\n%s", err, b)
	}
	return s
}

// entries fetches every entry below size with /v1/entries.
func (tl *testLog) entries(size uint64) [][]byte {
	var all [][]byte
	for uint64(len(all)) < size {
		var r struct{ Entries [][]byte }
		tl.getJSON(fmt.Sprintf("/v1/entries?start=%d&count=%d", len(all), MaxEntriesPerRequest), &r)
		if len(r.Entries) == 0 {
			tl.t.Fatalf("/v1/entries from %d: none", len(all))
		}
		all = append(all, r.Entries...)
	}
	return all
}

// journal records what the log acknowledged: entry → index.
type journal struct {
	mu    sync.Mutex
	index map[string]uint64
}

func (j *journal) record(t testing.TB, entry []byte, r addResult) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if old, ok := j.index[string(entry)]; ok && old != r.Index {
		t.Errorf("entry %q acknowledged at %d and at %d", entry, old, r.Index)
	}
	j.index[string(entry)] = r.Index
}

// newTestLogWith is newTestLog with a hook that sets up tl before it starts
// (for example its MySQL DSN).
func newTestLogWith(t testing.TB, setup func(*testLog), mod func(*Config)) *testLog {
	skey, vkey, err := checkpoint.GenerateKey("example.com/evident-test")
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	tl := &testLog{t: t, dir: t.TempDir(), skey: skey, vkey: vkey, token: "test-token-0123456789", verifier: v, mod: mod}
	setup(tl)
	tl.start()
	t.Cleanup(tl.stop)
	return tl
}

// loadTrillianSchema loads Trillian's MySQL schema, from the Trillian
// module in the module cache, into the database dsn.
func loadTrillianSchema(t testing.TB, dsn string) {
	if err := backend.LoadMySQLSchema(t.Context(), dsn, testdb.TrillianSchema(t)); err != nil {
		t.Fatal(err)
	}
}

// newCosigner makes a witness's cosignature/v1 signer and its verifier.
func newCosigner(t *testing.T, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := checkpoint.GenerateCosignerKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewCosigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewCosignatureVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}
