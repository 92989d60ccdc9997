package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/google/go-cmp/cmp"
)

func newClient(t *testing.T, h http.Handler, cfg Config) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL
	c, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRetryHonoursRetryAfter: a 429 with Retry-After 120 makes the client
// wait 120 s (observed through the sleep hook, not the clock), then retry.
func TestRetryHonoursRetryAfter(t *testing.T) {
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":"slow down"}`)
			return
		}
		io.WriteString(w, "checkpoint text\n")
	})
	c := newClient(t, h, Config{})
	var waits []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}
	got, err := c.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "checkpoint text\n" || calls.Load() != 2 {
		t.Errorf("got %q after %d calls, want the checkpoint after 2", got, calls.Load())
	}
	if diff := cmp.Diff([]time.Duration{120 * time.Second}, waits); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

// TestRetryAfterPastDeadline: a Retry-After that ends after the context's
// deadline is not waited for; the 429 is returned at once.
func TestRetryAfterPastDeadline(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	c := newClient(t, h, Config{})
	c.sleep = func(ctx context.Context, d time.Duration) error {
		t.Errorf("slept %v past the deadline", d)
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := c.Checkpoint(ctx)
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 429 || !strings.Contains(err.Error(), "after the deadline") {
		t.Errorf("err = %v, want the 429 and the deadline", err)
	}
}

func TestBackoff(t *testing.T) {
	c, err := New(t.Context(), Config{URL: "http://127.0.0.1:1", MaxBackoff: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.backoff(0, 3*time.Second); got != 3*time.Second {
		t.Errorf("backoff with Retry-After 3s = %v, want 3s", got)
	}
	if got := c.backoff(0, time.Hour); got != 10*time.Second {
		t.Errorf("backoff with Retry-After 1h = %v, want the 10s cap", got)
	}
	def, _ := New(t.Context(), Config{URL: "http://127.0.0.1:1"})
	if got := def.backoff(0, 120*time.Second); got != 120*time.Second {
		t.Errorf("default backoff with Retry-After 120s = %v, want 120s", got)
	}
	for attempt := range 40 {
		if got := c.backoff(attempt, 0); got <= 0 || got > 10*time.Second {
			t.Errorf("backoff(%d) = %v, want in (0, 10s]", attempt, got)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 2 ", 2 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRetriesExhausted(t *testing.T) {
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"sequencer behind"}`)
	})
	c := newClient(t, h, Config{MaxRetries: 2, MaxBackoff: time.Millisecond})
	_, err := c.Entry(t.Context(), 5)
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 503 || he.Message != "sequencer behind" {
		t.Fatalf("err = %v, want HTTPError 503 with the server's message", err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d attempts, want 3 (1 + 2 retries)", calls.Load())
	}
}

func TestErrorNotRetried(t *testing.T) {
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"entry is empty"}`)
	})
	c := newClient(t, h, Config{Token: "tok"})
	_, err := c.AddEntry(t.Context(), []byte("x"))
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 400 || he.Message != "entry is empty" {
		t.Fatalf("err = %v, want HTTPError 400 with the server's message", err)
	}
	if !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), "entry is empty") {
		t.Errorf("error text %q lacks the status or message", err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d attempts, want 1", calls.Load())
	}
	if IsNotFound(err) {
		t.Errorf("IsNotFound(400) = true")
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestEndpoints checks each method's request (method, path, query, auth)
// and its decoding of the contract's answers.
func TestEndpoints(t *testing.T) {
	entry := []byte("hello evidence")
	lh := checkpoint.LeafHash(entry)
	h1, h2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	var seen []string
	mux := http.NewServeMux()
	record := func(r *http.Request) { seen = append(seen, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery) }
	mux.HandleFunc("POST /v1/add-entry", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(401)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if !bytes.Equal(body, entry) {
			w.WriteHeader(400)
			return
		}
		if r.URL.Query().Get("wait") == "false" {
			w.WriteHeader(202)
			fmt.Fprintf(w, `{"leaf_hash":%q}`, b64(lh[:]))
			return
		}
		fmt.Fprintf(w, `{"index":7,"leaf_hash":%q,"duplicate":true,"receipt":"R"}`, b64(lh[:]))
	})
	text := func(s string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { record(r); io.WriteString(w, s) }
	}
	mux.Handle("GET /checkpoint", text("latest\n"))
	mux.Handle("GET /v1/checkpoints/{size}", text("old\n"))
	mux.Handle("GET /v1/receipt", text("receipt\n"))
	mux.Handle("GET /v1/proof/inclusion", text(fmt.Sprintf(`{"index":3,"tree_size":9,"hashes":[%q,%q]}`, b64(h1), b64(h2))))
	mux.Handle("GET /v1/proof/consistency", text(fmt.Sprintf(`{"hashes":[%q]}`, b64(h2))))
	mux.Handle("GET /v1/entries/{index}", text("raw entry"))
	mux.Handle("GET /v1/entries", text(fmt.Sprintf(`{"entries":[%q,%q]}`, b64([]byte("a")), b64([]byte("bc")))))
	mux.Handle("GET /v1/info", text(`{"origin":"example.com/log","vkey":"k"}`))
	mux.Handle("GET /healthz", text("ok"))
	c := newClient(t, mux, Config{Token: "s3cret"})
	ctx := t.Context()

	add, err := c.AddEntry(ctx, entry)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&AddResponse{Index: 7, LeafHash: lh, Duplicate: true, Receipt: []byte("R")}, add); diff != "" {
		t.Errorf("AddEntry (-want +got):\n%s", diff)
	}
	if got, err := c.QueueEntry(ctx, entry); err != nil || got != lh {
		t.Errorf("QueueEntry = %x, %v", got, err)
	}
	must := func(b []byte, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := must(c.Checkpoint(ctx)); got != "latest\n" {
		t.Errorf("Checkpoint = %q", got)
	}
	if got := must(c.CheckpointAt(ctx, 12)); got != "old\n" {
		t.Errorf("CheckpointAt = %q", got)
	}
	if got := must(c.Receipt(ctx, lh, 0)); got != "receipt\n" {
		t.Errorf("Receipt = %q", got)
	}
	must(c.Receipt(ctx, lh, 9))
	incl, err := c.InclusionProof(ctx, lh, 9)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&InclusionProof{Index: 3, TreeSize: 9, Hashes: [][]byte{h1, h2}}, incl); diff != "" {
		t.Errorf("InclusionProof (-want +got):\n%s", diff)
	}
	if _, err := c.InclusionProofByIndex(ctx, 4, 9); !errors.Is(err, ErrBadResponse) {
		t.Errorf("InclusionProofByIndex answered for another index: err = %v, want ErrBadResponse", err)
	}
	if _, err := c.InclusionProof(ctx, lh, 10); !errors.Is(err, ErrBadResponse) {
		t.Errorf("InclusionProof answered for another size: err = %v, want ErrBadResponse", err)
	}
	cons, err := c.ConsistencyProof(ctx, 3, 9)
	if err != nil || len(cons) != 1 || !bytes.Equal(cons[0], h2) {
		t.Errorf("ConsistencyProof = %x, %v", cons, err)
	}
	if got := must(c.Entry(ctx, 3)); got != "raw entry" {
		t.Errorf("Entry = %q", got)
	}
	es, err := c.Entries(ctx, 10, 2)
	if diff := cmp.Diff([][]byte{[]byte("a"), []byte("bc")}, es); err != nil || diff != "" {
		t.Errorf("Entries: %v (-want +got):\n%s", err, diff)
	}
	if _, err := c.Entries(ctx, 10, 1); !errors.Is(err, ErrBadResponse) {
		t.Errorf("Entries with more answers than asked: err = %v, want ErrBadResponse", err)
	}
	if _, err := c.Entries(ctx, 0, MaxEntriesPerRequest+1); err == nil {
		t.Errorf("Entries(count %d) accepted", MaxEntriesPerRequest+1)
	}
	info, err := c.Info(ctx)
	if err != nil || *info != (Info{Origin: "example.com/log", VKey: "k"}) {
		t.Errorf("Info = %+v, %v", info, err)
	}
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health = %v", err)
	}

	hx := hex.EncodeToString(lh[:])
	want := []string{
		"POST /v1/add-entry?",
		"POST /v1/add-entry?wait=false",
		"GET /checkpoint?",
		"GET /v1/checkpoints/12?",
		"GET /v1/receipt?leaf_hash=" + hx,
		"GET /v1/receipt?leaf_hash=" + hx + "&tree_size=9",
		"GET /v1/proof/inclusion?leaf_hash=" + hx + "&tree_size=9",
		"GET /v1/proof/inclusion?index=4&tree_size=9",
		"GET /v1/proof/inclusion?leaf_hash=" + hx + "&tree_size=10",
		"GET /v1/proof/consistency?first=3&second=9",
		"GET /v1/entries/3?",
		"GET /v1/entries?count=2&start=10",
		"GET /v1/entries?count=1&start=10",
		"GET /v1/info?",
		"GET /healthz?",
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestAddEntryChecksLeafHash(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other := checkpoint.LeafHash([]byte("something else"))
		json.NewEncoder(w).Encode(map[string]any{"index": 1, "leaf_hash": b64(other[:]), "receipt": "R"})
	})
	c := newClient(t, h, Config{})
	if _, err := c.AddEntry(t.Context(), []byte("mine")); !errors.Is(err, ErrBadResponse) {
		t.Errorf("err = %v, want ErrBadResponse", err)
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "log.example.com", "http://h/?q=1"} {
		if _, err := New(t.Context(), Config{URL: u}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
}

func FuzzDecode(f *testing.F) {
	lh := checkpoint.LeafHash([]byte("e"))
	f.Add([]byte(fmt.Sprintf(`{"index":1,"leaf_hash":%q,"receipt":"R"}`, b64(lh[:]))))
	f.Add([]byte(fmt.Sprintf(`{"index":3,"tree_size":9,"hashes":[%q]}`, b64(lh[:]))))
	f.Add([]byte(`{"entries":["YQ==",""]}`))
	f.Add([]byte(`{"error":"bad \u0007 thing"}`))
	f.Add([]byte("\xff\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		if r, err := decodeAdd(body, []byte("e")); err == nil && (r.LeafHash != lh || len(r.Receipt) == 0) {
			t.Errorf("decodeAdd accepted a wrong answer: %+v", r)
		}
		if p, err := decodeInclusion(body, 9); err == nil {
			checkHashes(t, p.Hashes)
			if p.TreeSize != 9 {
				t.Errorf("decodeInclusion accepted tree size %d", p.TreeSize)
			}
		}
		if hs, err := decodeConsistency(body); err == nil {
			checkHashes(t, hs)
		}
		if es, err := decodeEntries(body, 2); err == nil && len(es) > 2 {
			t.Errorf("decodeEntries returned %d entries for 2", len(es))
		}
		for _, r := range errorMessage(body) {
			if r < 0x20 || r == 0x7f {
				t.Errorf("errorMessage kept control character %#x", r)
			}
		}
	})
}

func checkHashes(t *testing.T, hs [][]byte) {
	if len(hs) > checkpoint.MaxProofHashes {
		t.Errorf("%d hashes accepted", len(hs))
	}
	for _, h := range hs {
		if len(h) != 32 {
			t.Errorf("hash of %d bytes accepted", len(h))
		}
	}
}

func TestAddEntryRetries504(t *testing.T) {
	var calls atomic.Int32
	entry := []byte("slow")
	lh := checkpoint.LeafHash(entry)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusGatewayTimeout)
			io.WriteString(w, `{"error":"no checkpoint yet"}`)
			return
		}
		fmt.Fprintf(w, `{"index":0,"leaf_hash":%q,"duplicate":true,"receipt":"R"}`, b64(lh[:]))
	})
	c := newClient(t, h, Config{MaxBackoff: time.Millisecond})
	if _, err := c.AddEntry(t.Context(), entry); err != nil || calls.Load() != 2 {
		t.Errorf("AddEntry after a 504: %v after %d calls, want success after 2", err, calls.Load())
	}
	// Other requests are not retried on 504.
	calls.Store(0)
	if _, err := c.Checkpoint(t.Context()); err == nil || calls.Load() != 1 {
		t.Errorf("Checkpoint on 504: %v after %d calls, want an error after 1", err, calls.Load())
	}
}

// FuzzParseRetryAfter: any header value gives a wait in [0, 2^32 s) and
// never panics.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, v := range []string{"", "7", " 2 ", "-1", "4294967295", "4294967296", "1e3", now.Add(time.Hour).Format(http.TimeFormat), "Fri, 31 Dec 9999 23:59:59 GMT"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := parseRetryAfter(v, now)
		if d < 0 {
			t.Errorf("parseRetryAfter(%q) = %v, negative", v, d)
		}
	})
}

// FuzzDecodeInfo: an accepted info answer has both fields.
func FuzzDecodeInfo(f *testing.F) {
	f.Add([]byte(`{"origin":"example.com/log","vkey":"example.com/log+01234567+AAAA"}`))
	f.Add([]byte(`{"origin":""}`))
	f.Add([]byte(`[]`))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, body []byte) {
		i, err := decodeInfo(body)
		if err == nil && (i.Origin == "" || i.VKey == "") {
			t.Errorf("decodeInfo accepted %+v", i)
		}
		if err != nil && !errors.Is(err, ErrBadResponse) {
			t.Errorf("decodeInfo error %v does not wrap ErrBadResponse", err)
		}
	})
}

// TestEntriesSizeCaps: an entry larger than the log's cap of 65,535 bytes,
// or an empty one, is a bad response, and the answer is bounded by count
// times the largest entry in base64.
func TestEntriesSizeCaps(t *testing.T) {
	var body atomic.Value
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body.Load().(string))
	})
	c := newClient(t, h, Config{})
	entries := func(es ...[]byte) string {
		b, _ := json.Marshal(map[string]any{"entries": es})
		return string(b)
	}
	for _, tc := range []struct {
		name  string
		body  string
		count int
		ok    bool
	}{
		{"largest entry", entries(bytes.Repeat([]byte{'a'}, MaxEntrySize)), 1, true},
		{"two largest entries", entries(bytes.Repeat([]byte{'a'}, MaxEntrySize), bytes.Repeat([]byte{'b'}, MaxEntrySize)), 2, true},
		{"entry over the cap", entries(bytes.Repeat([]byte{'a'}, MaxEntrySize+1)), 1, false},
		{"empty entry", entries([]byte{}), 1, false},
		{"answer longer than count allows", entries(bytes.Repeat([]byte{'a'}, MaxEntrySize)) + strings.Repeat(" ", maxEntryB64+1024), 1, false},
	} {
		body.Store(tc.body)
		_, err := c.Entries(t.Context(), 0, tc.count)
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrBadResponse) {
			t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	body.Store(strings.Repeat("x", MaxEntrySize+1))
	if _, err := c.Entry(t.Context(), 0); !errors.Is(err, ErrBadResponse) {
		t.Errorf("Entry of %d bytes: err = %v, want ErrBadResponse", MaxEntrySize+1, err)
	}
}
