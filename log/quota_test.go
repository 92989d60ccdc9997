package log

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/evidentlog/evident/storage"
)

// at is a constant tree growth, for quotas.admit.
func at(grown uint64) func() uint64 { return func() uint64 { return grown } }

// TestTokenBucket drives one tenant's bucket with a made-up clock: the
// burst at once, then the rate, with the wait until the next token; other
// tenants are untouched; a tenant's own quota overrides the defaults.
func TestTokenBucket(t *testing.T) {
	q := newQuotas(&Config{TenantRate: 10, TenantBurst: 5, MaxBacklog: 1000})
	q.setOwn([]storage.Tenant{{Name: "vip", Quota: storage.Quota{Rate: -1}}, {Name: "slow", Quota: storage.Quota{Rate: 1, Burst: 2}}})
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		if err := q.admit("acme", 1, at(0), t0); err != nil {
			t.Fatalf("entry %d of the burst: %v", i, err)
		}
	}
	err := q.admit("acme", 1, at(0), t0)
	var qe *quotaError
	if !errors.As(err, &qe) || qe.retry != 100*time.Millisecond {
		t.Fatalf("sixth entry at once: %v; want a quota error with a 100 ms wait", err)
	}
	if code, _ := httpStatus(err); code != 429 || retryAfterFor(err) != "1" {
		t.Errorf("quota error: status %d, Retry-After %s; want 429, 1", code, retryAfterFor(err))
	}
	if err := q.admit("globex", 5, at(0), t0); err != nil {
		t.Errorf("another tenant after acme's burst: %v", err)
	}
	if err := q.admit("acme", 1, at(0), t0.Add(100*time.Millisecond)); err != nil {
		t.Errorf("one entry 100 ms later (10/s): %v", err)
	}
	if err := q.admit("acme", 2, at(0), t0.Add(150*time.Millisecond)); err == nil {
		t.Error("two entries 50 ms after that: admitted, want refused")
	}
	if err := q.admit("acme", 6, at(0), t0.Add(time.Hour)); err == nil || errors.As(err, &qe) {
		t.Errorf("a batch over the burst: %v; want a 400 (it can never pass)", err)
	}
	for i := range 100 {
		if err := q.admit("vip", 1, at(0), t0); err != nil {
			t.Fatalf("an unlimited tenant's entry %d: %v", i, err)
		}
	}
	if err := q.admit("slow", 2, at(0), t0); err != nil {
		t.Fatal(err)
	}
	if err := q.admit("slow", 1, at(0), t0); !errors.As(err, &qe) || qe.retry != time.Second || retryAfterFor(err) != "1" {
		t.Errorf("slow's third entry: %v; want a 1 s wait", err)
	}
	if err := q.admit("slow", 1, at(0), t0.Add(3*time.Second)); err != nil || retryAfterFor(&quotaError{retry: 2500 * time.Millisecond}) != strconv.Itoa(3) {
		t.Errorf("slow 3 s later: %v", err)
	}
}

// TestBacklogShare fills one tenant's share of the backlog: it is refused
// while the others are not, until the tree grows over its entries.
func TestBacklogShare(t *testing.T) {
	q := newQuotas(&Config{TenantBacklogShare: 0.1, MaxBacklog: 100})
	t0 := time.Unix(1000, 0)
	if err := q.admit("acme", 10, at(0), t0); err != nil {
		t.Fatal(err)
	}
	q.accept("acme", 10, 0)
	var qe *quotaError
	if err := q.admit("acme", 1, at(0), t0); !errors.As(err, &qe) {
		t.Fatalf("acme over its share (10 of 100): %v; want a quota error", err)
	}
	if err := q.admit("globex", 10, at(0), t0); err != nil {
		t.Errorf("globex with acme's share full: %v", err)
	}
	q.accept("globex", 10, 0)
	// The tree grew by 4: acme's oldest four are covered.
	if err := q.admit("acme", 4, at(4), t0); err != nil {
		t.Errorf("acme after 4 of its entries were published: %v", err)
	}
	q.accept("acme", 4, 4)
	if err := q.admit("acme", 1, at(4), t0); !errors.As(err, &qe) {
		t.Errorf("acme's fifth: %v; want a quota error", err)
	}
	// 20 more cover the rest of acme's first 10, globex's 10, and acme's
	// last 4 (in the order they were accepted).
	q.settle(24)
	if q.pending["acme"] != 0 || q.pending["globex"] != 0 {
		t.Errorf("pending after growth of 24: %v; want none", q.pending)
	}
}

// TestQuotaHTTP checks the answer a tenant over its rate gets: 429 with
// Retry-After and a message, nothing queued, and another tenant served.
func TestQuotaHTTP(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.TenantRate, c.TenantBurst = 1, 3 })
	tk := issueKeys(t, tl.state)
	if err := tl.log.keys.reload(t.Context(), tl.state); err != nil {
		t.Fatal(err)
	}
	ops := tl.flushOps()
	for i := range 3 {
		if code, r := tl.addAs(tk.keys["acme/submit"], entryBytes(i), "?wait=false"); code != 202 {
			t.Fatalf("entry %d of acme's burst: %d %s", i, code, r.Error)
		}
	}
	waitFor(t, "acme's entries to be published", func() bool { return tl.log.pub.latest().size == ops+3 })
	before := tl.snapshot()
	code, h, r := tl.addAuth("Bearer "+tk.keys["acme/submit"], entryBytes(3), "?wait=false")
	if code != 429 || h.Get("Retry-After") != "1" || r.Error == "" {
		t.Errorf("acme over its rate: %d, Retry-After %q, %q; want 429, 1, a message", code, h.Get("Retry-After"), r.Error)
	}
	if after := tl.snapshot(); after != before {
		t.Errorf("the refused entry changed the log: %+v → %+v", before, after)
	}
	if code, _ := tl.addAs(tk.keys["globex/submit"], entryBytes(4), "?wait=false"); code != 202 {
		t.Errorf("globex while acme is over its rate: %d", code)
	}
	if code, _, _ := tl.addBatchAs(tk.keys["globex/submit"], encodeBatch([][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}), ""); code != 400 {
		t.Errorf("a batch over the burst: %d, want 400", code)
	}
}

// TestPendingRunsBounded: entries of alternating tenants, each published
// before the next is accepted, leave no pending runs behind, with no
// backlog share set (admit never settles then).
func TestPendingRunsBounded(t *testing.T) {
	q := newQuotas(&Config{MaxBacklog: 100})
	for i := range uint64(1000) {
		q.accept([]string{"acme", "globex"}[i%2], 1, i)
	}
	if len(q.fifo) > 2 || len(q.pending) > 1 {
		t.Errorf("%d pending runs, %d tenants pending after 1,000 entries of which 999 were published", len(q.fifo), len(q.pending))
	}
}
