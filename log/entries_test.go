package log

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/logbuf"
)

// lyingTrillian is the log's real Trillian client, except that, when lie is
// set, it alters the leaves it returns as lie says: a broken or tampered
// Trillian, whose answers the log must check before serving them.
type lyingTrillian struct {
	trillian.TrillianLogClient
	lie atomic.Value // func(*trillian.LogLeaf), or nil for the truth
}

func (c *lyingTrillian) alter(leaves ...*trillian.LogLeaf) {
	f, _ := c.lie.Load().(func(*trillian.LogLeaf))
	for _, l := range leaves {
		if f != nil && l.LeafIndex == 2 {
			f(l)
		}
	}
}

func (c *lyingTrillian) GetLeavesByRange(ctx context.Context, in *trillian.GetLeavesByRangeRequest, opts ...grpc.CallOption) (*trillian.GetLeavesByRangeResponse, error) {
	r, err := c.TrillianLogClient.GetLeavesByRange(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	r = proto.Clone(r).(*trillian.GetLeavesByRangeResponse)
	c.alter(r.Leaves...)
	return r, nil
}

func (c *lyingTrillian) GetEntryAndProof(ctx context.Context, in *trillian.GetEntryAndProofRequest, opts ...grpc.CallOption) (*trillian.GetEntryAndProofResponse, error) {
	r, err := c.TrillianLogClient.GetEntryAndProof(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	r = proto.Clone(r).(*trillian.GetEntryAndProofResponse)
	if r.Leaf != nil {
		c.alter(r.Leaf)
	}
	return r, nil
}

// TestEntriesChecked serves entries from a Trillian that lies about leaf 2
// in several ways: /v1/entries must answer 500 rather than serve a leaf the
// published checkpoint does not commit to.
func TestEntriesChecked(t *testing.T) {
	var lt *lyingTrillian
	tl := newTestLog(t, func(c *Config) {
		lt = &lyingTrillian{TrillianLogClient: c.Trillian}
		c.Trillian = lt
	})
	for i := range 5 {
		if code, r := tl.add(entryBytes(i), ""); code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	paths := []string{"/v1/entries/2", "/v1/entries?start=0&count=5", "/v1/entries?start=1&count=2", "/v1/entries?start=2&count=3"}
	check := func(lie string, want int) {
		t.Helper()
		for _, path := range paths {
			code, body := tl.get(path)
			if code != want {
				t.Errorf("%s: GET %s: %d %.80q, want %d", lie, path, code, body, want)
				continue
			}
			if want != 200 {
				continue
			}
			got := body
			if path != "/v1/entries/2" {
				var r struct{ Entries [][]byte }
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatal(err)
				}
				got = r.Entries[2-startOf(path)]
			}
			if !bytes.Equal(got, entryBytes(2)) {
				t.Errorf("%s: GET %s: entry 2 is %q", lie, path, got)
			}
		}
	}
	check("the truth", 200)
	for _, tc := range []struct {
		name string
		lie  func(*trillian.LogLeaf)
	}{
		{"another value", func(l *trillian.LogLeaf) { l.LeafValue = []byte("forged") }},
		{"another value with its hash", func(l *trillian.LogLeaf) {
			l.LeafValue = []byte("forged")
			h := checkpoint.LeafHash(l.LeafValue)
			l.MerkleLeafHash = h[:]
		}},
		{"another index", func(l *trillian.LogLeaf) { l.LeafIndex = 3 }},
	} {
		lt.lie.Store(tc.lie)
		check(tc.name, 500)
	}
	lt.lie.Store(func(*trillian.LogLeaf) {})
	check("the truth again", 200)
}

// startOf is the start= of an /v1/entries?start=… path.
func startOf(path string) int {
	var start, count int
	fmt.Sscanf(path, "/v1/entries?start=%d&count=%d", &start, &count)
	return start
}

// TestIntegrityAlarm: once a stored entry fails its check, /healthz turns
// red with a short reason, the failure is counted and logged once, and the
// alarm stays raised after the data reads well again: it is for an
// operator to clear, by repairing the data and restarting.
func TestIntegrityAlarm(t *testing.T) {
	logs := &logbuf.Buffer{}
	var lt *lyingTrillian
	tl := newTestLog(t, func(c *Config) {
		lt = &lyingTrillian{TrillianLogClient: c.Trillian}
		c.Trillian = lt
		c.Logger = logs.Logger()
	})
	for i := range 5 {
		if code, r := tl.add(entryBytes(i), ""); code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	if code, body := tl.get("/healthz"); code != 200 {
		t.Fatalf("/healthz before any damage: %d %s", code, body)
	}
	lt.lie.Store(func(l *trillian.LogLeaf) { l.LeafValue = []byte("forged") })
	for range 3 {
		if code, _ := tl.get("/v1/entries/2"); code != 500 {
			t.Fatalf("GET a damaged entry: %d, want 500", code)
		}
	}
	lt.lie.Store(func(*trillian.LogLeaf) {})
	if code, _ := tl.get("/v1/entries/2"); code != 200 {
		t.Fatalf("GET the entry once it reads well: %d, want 200", code)
	}
	code, body := tl.get("/healthz")
	if code != 503 || !strings.HasPrefix(string(body), "integrity: stored data failed verification against a signed checkpoint since ") {
		t.Errorf("/healthz after a damaged entry: %d %q, want 503 with the integrity reason", code, body)
	}
	if strings.Contains(string(body), "forged") || strings.Contains(string(body), "leaf 2") {
		t.Errorf("/healthz tells the public the detail: %q", body)
	}
	_, metrics := tl.get("/metrics")
	if !strings.Contains(string(metrics), "evident_integrity_failures_total 3") {
		t.Errorf("/metrics lacks evident_integrity_failures_total 3")
	}
	if n := strings.Count(logs.String(), "INTEGRITY:"); n != 1 {
		t.Errorf("the alarm was logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestIntegrityReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("reading: %w", status.Error(codes.DataLoss, "sqlite storage: database file is corrupt")), true},
		{fmt.Errorf("leaf 3: %w", errBadProof), true},
		{status.Error(codes.Unavailable, "closed"), false},
		{ErrNotFound, false},
	} {
		if got := integrityReason(tc.err) != ""; got != tc.want {
			t.Errorf("integrityReason(%v) raised %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestScrubber: the scrubber re-reads the whole log in the background; a
// clean log passes (counted), and an entry that changed in storage, with
// or without its stored hash, raises the integrity alarm.
func TestScrubber(t *testing.T) {
	defer func(d time.Duration) { scrubPause = d }(scrubPause)
	scrubPause = 20 * time.Millisecond
	for _, tc := range []struct {
		name string
		lie  func(*trillian.LogLeaf)
	}{
		{"value changed", func(l *trillian.LogLeaf) { l.LeafValue = []byte("forged") }},
		{"value and hash changed", func(l *trillian.LogLeaf) {
			l.LeafValue = []byte("forged")
			h := checkpoint.LeafHash(l.LeafValue)
			l.MerkleLeafHash = h[:]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lt *lyingTrillian
			tl := newTestLog(t, func(c *Config) {
				lt = &lyingTrillian{TrillianLogClient: c.Trillian}
				c.Trillian = lt
				c.ScrubRate = 100000
			})
			j := &journal{index: map[string]uint64{}}
			var receipts sync.Map
			var entries [][]byte
			for i := range 300 {
				entries = append(entries, entryBytes(i))
			}
			submitAll(t, tl, j, &receipts, entries, 8)
			waitFor(t, "a clean scrubber pass", func() bool {
				_, m := tl.get("/metrics")
				return strings.Contains(string(m), "evident_scrub_index 300") && !strings.Contains(string(m), "evident_scrub_passes_total 0")
			})
			if code, body := tl.get("/healthz"); code != 200 {
				t.Fatalf("/healthz after clean passes: %d %s", code, body)
			}
			lt.lie.Store(tc.lie)
			waitFor(t, "the scrubber's alarm", func() bool {
				code, body := tl.get("/healthz")
				return code == 503 && strings.Contains(string(body), "integrity: stored data failed verification")
			})
		})
	}
}
