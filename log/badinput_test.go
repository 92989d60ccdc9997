package log

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
)

// snapshot is everything a bad request must not change.
type snapshot struct {
	checkpoint  string
	trillian    uint64
	checkpoints int
	tokens      int
}

func (tl *testLog) snapshot() snapshot {
	tl.t.Helper()
	ctx := tl.t.Context()
	r, err := tl.be.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: tl.be.TreeID})
	if err != nil {
		tl.t.Fatal(err)
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(r.SignedLogRoot.LogRoot); err != nil {
		tl.t.Fatal(err)
	}
	cps, err := tl.state.Checkpoints(ctx, tl.log.Origin(), 0, 1<<30)
	if err != nil {
		tl.t.Fatal(err)
	}
	toks, err := tl.state.Tokens(ctx)
	if err != nil {
		tl.t.Fatal(err)
	}
	return snapshot{string(tl.log.Checkpoint()), root.TreeSize, len(cps), len(toks)}
}

func TestBadInput(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.MaxEntrySize = 1000 })
	for i := 1; i <= 3; i++ {
		if code, r := tl.add(entryBytes(i), ""); code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	before := tl.snapshot()
	hash := fmt.Sprintf("%x", leafHash(entryBytes(1)))
	unknown := strings.Repeat("ab", 32)

	for _, tc := range []struct {
		name, method, path, auth string
		body                     io.Reader
		chunked                  bool
		want                     int
	}{
		{"no token", "POST", "/v1/add-entry", "", strings.NewReader("x"), false, 401},
		{"wrong token", "POST", "/v1/add-entry", "Bearer wrong", strings.NewReader("x"), false, 401},
		{"token without Bearer", "POST", "/v1/add-entry", tl.token, strings.NewReader("x"), false, 401},
		{"token prefix", "POST", "/v1/add-entry", "Bearer " + tl.token[:5], strings.NewReader("x"), false, 401},
		{"basic auth", "POST", "/v1/add-entry", "Basic " + tl.token, strings.NewReader("x"), false, 401},
		{"too large", "POST", "/v1/add-entry", "Bearer " + tl.token, bytes.NewReader(make([]byte, 1001)), false, 413},
		{"too large, chunked", "POST", "/v1/add-entry", "Bearer " + tl.token, bytes.NewReader(make([]byte, 5000)), true, 413},
		{"empty", "POST", "/v1/add-entry", "Bearer " + tl.token, strings.NewReader(""), false, 400},
		{"bad wait", "POST", "/v1/add-entry?wait=maybe", "Bearer " + tl.token, strings.NewReader("x"), false, 400},
		{"receipt without hash", "GET", "/v1/receipt", "", nil, false, 400},
		{"receipt bad hex", "GET", "/v1/receipt?leaf_hash=" + strings.Repeat("zz", 32), "", nil, false, 400},
		{"receipt uppercase hex", "GET", "/v1/receipt?leaf_hash=" + strings.ToUpper(hash), "", nil, false, 400},
		{"receipt short hash", "GET", "/v1/receipt?leaf_hash=" + hash[:62], "", nil, false, 400},
		{"receipt unknown hash", "GET", "/v1/receipt?leaf_hash=" + unknown, "", nil, false, 404},
		{"receipt negative size", "GET", "/v1/receipt?leaf_hash=" + hash + "&tree_size=-1", "", nil, false, 400},
		{"receipt non-numeric size", "GET", "/v1/receipt?leaf_hash=" + hash + "&tree_size=abc", "", nil, false, 400},
		{"receipt leading zero", "GET", "/v1/receipt?leaf_hash=" + hash + "&tree_size=03", "", nil, false, 400},
		{"receipt size beyond", "GET", "/v1/receipt?leaf_hash=" + hash + "&tree_size=4", "", nil, false, 400},
		{"receipt size 0", "GET", "/v1/receipt?leaf_hash=" + hash + "&tree_size=0", "", nil, false, 404},
		{"receipt huge size", "GET", "/v1/receipt?leaf_hash=" + hash + "&tree_size=99999999999999999999", "", nil, false, 400},
		{"inclusion both", "GET", "/v1/proof/inclusion?leaf_hash=" + hash + "&index=1&tree_size=3", "", nil, false, 400},
		{"inclusion neither", "GET", "/v1/proof/inclusion?tree_size=3", "", nil, false, 400},
		{"inclusion no size", "GET", "/v1/proof/inclusion?index=1", "", nil, false, 400},
		{"inclusion size beyond", "GET", "/v1/proof/inclusion?index=1&tree_size=4", "", nil, false, 400},
		{"inclusion size 0", "GET", "/v1/proof/inclusion?index=0&tree_size=0", "", nil, false, 400},
		{"inclusion index beyond", "GET", "/v1/proof/inclusion?index=3&tree_size=3", "", nil, false, 400},
		{"inclusion unknown hash", "GET", "/v1/proof/inclusion?leaf_hash=" + unknown + "&tree_size=3", "", nil, false, 404},
		{"inclusion hash not yet in size", "GET", fmt.Sprintf("/v1/proof/inclusion?leaf_hash=%x&tree_size=1", leafHash(entryBytes(2))), "", nil, false, 404},
		{"consistency first > second", "GET", "/v1/proof/consistency?first=3&second=2", "", nil, false, 400},
		{"consistency second beyond", "GET", "/v1/proof/consistency?first=1&second=4", "", nil, false, 400},
		{"consistency missing", "GET", "/v1/proof/consistency?first=1", "", nil, false, 400},
		{"consistency sign", "GET", "/v1/proof/consistency?first=+1&second=2", "", nil, false, 400},
		{"entry beyond", "GET", "/v1/entries/3", "", nil, false, 404},
		{"entry non-numeric", "GET", "/v1/entries/x", "", nil, false, 400},
		{"entry negative", "GET", "/v1/entries/-1", "", nil, false, 400},
		{"entries count 0", "GET", "/v1/entries?start=0&count=0", "", nil, false, 400},
		{"entries count 1001", "GET", "/v1/entries?start=0&count=1001", "", nil, false, 400},
		{"entries start beyond", "GET", "/v1/entries?start=3&count=1", "", nil, false, 404},
		{"entries no start", "GET", "/v1/entries?count=1", "", nil, false, 400},
		{"checkpoint unknown size", "GET", "/v1/checkpoints/2000", "", nil, false, 404},
		{"checkpoint bad size", "GET", "/v1/checkpoints/0x1", "", nil, false, 400},
		{"unknown route", "GET", "/v1/nonexistent", "", nil, false, 404},
		{"root", "GET", "/", "", nil, false, 404},
		{"entries without index", "GET", "/v1/entries/", "", nil, false, 404},
		{"add-entry with GET", "GET", "/v1/add-entry", "", nil, false, 405},
		{"checkpoint with POST", "POST", "/checkpoint", "", strings.NewReader("x"), false, 405},
		{"entry with DELETE", "DELETE", "/v1/entries/1", "", nil, false, 405},
		{"metrics with POST", "POST", "/metrics", "", strings.NewReader("x"), false, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tl.srv.URL+tc.path, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.chunked {
				req.ContentLength = -1 // no Content-Length: the limit must hold while reading
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, body, tc.want)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Errorf("%s %s: body %q is not a JSON error", tc.method, tc.path, body)
			}
			if tc.want == 401 && e.Error != "unauthorized" {
				t.Errorf("401 says %q, want just \"unauthorized\"", e.Error)
			}
			if allow := resp.Header.Get("Allow"); tc.want == 405 && allow == "" {
				t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
			}
		})
	}
	// Every answer is counted, unmatched ones under a fixed label.
	_, metrics := tl.get("/metrics")
	for _, want := range []string{
		`evident_http_requests_total{code="404",route="unmatched"} 3`,
		`evident_http_requests_total{code="405",route="/v1/add-entry"} 1`,
		`evident_http_requests_total{code="405",route="/metrics"} 1`,
		`evident_http_requests_total{code="400",route="GET /v1/receipt"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, h := tl.getHeader("/v1/add-entry"); code != 405 || h.Get("Allow") != "POST" {
		t.Errorf("GET /v1/add-entry: %d, Allow %q; want 405, POST", code, h.Get("Allow"))
	}
	if code, h := tl.getHeader("/v1/add-entry"); code != 405 || h.Get("Content-Type") != "application/json" {
		t.Errorf("GET /v1/add-entry: %d, Content-Type %q; want 405 application/json", code, h.Get("Content-Type"))
	}
	time.Sleep(3 * tl.log.cfg.CheckpointInterval)
	if after := tl.snapshot(); after != before {
		t.Errorf("bad requests changed the log:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestBacklog503 fills the backlog of a log that does not publish, and
// wants 503 with Retry-After for the next entry, which is not queued.
func TestBacklog503(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.MaxBacklog = 2; c.CheckpointInterval, c.Grown = time.Hour, nil })
	for _, e := range []string{"a", "b"} {
		if code, r := tl.add([]byte(e), "?wait=false"); code != http.StatusAccepted {
			t.Fatalf("add %s: %d %s", e, code, r.Error)
		}
	}
	req, _ := http.NewRequest("POST", tl.srv.URL+"/v1/add-entry?wait=false", strings.NewReader("c"))
	req.Header.Set("Authorization", "Bearer "+tl.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("add over the backlog: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Only a and b reach the tree.
	deadline := time.Now().Add(10 * time.Second)
	for tl.snapshot().trillian < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if got := tl.snapshot().trillian; got != 2 {
		t.Errorf("Trillian holds %d leaves, want 2", got)
	}
}

// TestTrillianDown closes Trillian's storage under a running log: writes
// get 503 with Retry-After and a generic message, /healthz turns red, and
// the last checkpoint is still served.
func TestTrillianDown(t *testing.T) {
	tl := newTestLog(t, nil)
	if code, r := tl.add([]byte("before"), ""); code != 200 {
		t.Fatalf("add: %d %s", code, r.Error)
	}
	cp := tl.checkpoint()
	tl.be.Close()
	code, h, r := tl.addAuth("Bearer "+tl.token, []byte("after"), "")
	if code != 503 || r.Error != ErrUnavailable.Error() || h.Get("Retry-After") != retryAfter {
		t.Errorf("add with Trillian down: %d %q, Retry-After %q; want 503 %q, Retry-After %s", code, r.Error, h.Get("Retry-After"), ErrUnavailable, retryAfter)
	}
	var body []byte
	waitFor(t, "/healthz to turn red", func() bool {
		code, body = tl.get("/healthz")
		return code == 503
	})
	// Short reasons for the public: no storage errors, paths or addresses.
	if !strings.HasPrefix(string(body), "cannot publish: Trillian or the state database failed\n") &&
		!strings.HasPrefix(string(body), "Trillian's storage does not answer\n") {
		t.Errorf("/healthz with Trillian down: %q, want a short reason", body)
	}
	if strings.Contains(string(body), tl.dir) || strings.Contains(string(body), "sql") {
		t.Errorf("/healthz shows storage details: %q", body)
	}
	if got := tl.checkpoint(); !bytes.Equal(got.Note, cp.Note) {
		t.Errorf("/checkpoint changed with Trillian down")
	}
}
