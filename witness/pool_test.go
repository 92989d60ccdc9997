package witness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/logbuf"
)

// testPool returns a Pool for ws with "group g <k> ..." as its quorum.
func testPool(t testing.TB, k string, failOpen bool, ws ...*testWitness) *Pool {
	t.Helper()
	var text, members string
	for i, w := range ws {
		text += fmt.Sprintf("witness w%d %s %s\n", i+1, w.VKey(), w.url)
		members += fmt.Sprintf(" w%d", i+1)
	}
	text += "group g " + k + members + "\nquorum g\n"
	pol, err := checkpoint.ParsePolicy([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPool(PoolConfig{Policy: pol, FailOpen: failOpen, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkCosigned opens a Cosign result with the log key and the witnesses'
// keys and checks who cosigned it.
func checkCosigned(t *testing.T, l *testLog, note []byte, size int64, want []string, ws ...*testWitness) {
	t.Helper()
	s := openWith(t, l, note, ws...)
	if s.Size != uint64(size) {
		t.Errorf("cosigned size %d, want %d", s.Size, size)
	}
	var got []string
	for _, c := range s.Cosignatures {
		got = append(got, c.Name)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cosigners (-want +got):\n%s", diff)
	}
}

func openWith(t *testing.T, l *testLog, note []byte, ws ...*testWitness) *checkpoint.Signed {
	t.Helper()
	s, err := checkpoint.Open(note, mustVerifier(t, l.vkey), verifiers(t, ws...)...)
	if err != nil {
		t.Fatalf("opening cosigned checkpoint: %v", err)
	}
	return s
}

func TestPoolAllOfTwo(t *testing.T) {
	l := newTestLog(t, "example.com/log")
	w1 := newTestWitness(t, "example.com/w1", []*testLog{l})
	w2 := newTestWitness(t, "example.com/w2", []*testLog{l})
	p := testPool(t, "all", false, w1, w2)
	for _, grow := range []int{0, 3, 1, 0, 17} {
		l.grow(grow)
		got, err := p.Cosign(t.Context(), l.checkpoint(), l.proofFunc())
		if err != nil {
			t.Fatalf("Cosign at size %d: %v", l.size, err)
		}
		checkCosigned(t, l, got, l.size, []string{"example.com/w1", "example.com/w2"}, w1, w2)
	}
	for _, s := range p.Status() {
		if s.Size != uint64(l.size) || s.LastError != "" || s.LastSuccess.IsZero() {
			t.Errorf("status %+v, want size %d and no error", s, l.size)
		}
	}

	// A new pool (the log restarted) learns the witnesses' sizes from 409s.
	l.grow(2)
	p2 := testPool(t, "all", false, w1, w2)
	got, err := p2.Cosign(t.Context(), l.checkpoint(), l.proofFunc())
	if err != nil {
		t.Fatalf("Cosign after restart: %v", err)
	}
	checkCosigned(t, l, got, l.size, []string{"example.com/w1", "example.com/w2"}, w1, w2)

	// One witness stopped: all-of-two fails closed and names it.
	w2.close()
	l.grow(1)
	_, err = p2.Cosign(t.Context(), l.checkpoint(), l.proofFunc())
	var qe *checkpoint.QuorumError
	if !errors.As(err, &qe) || !errors.Is(err, checkpoint.ErrQuorum) {
		t.Fatalf("Cosign with w2 stopped = %v, want a quorum error", err)
	}
	if diff := cmp.Diff([]string{"w2"}, qe.Missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	if st := p2.Status(); st[1].LastError == "" || st[0].LastError != "" {
		t.Errorf("status after w2 stopped: %+v", st)
	}
	text := p2.StatusText()
	if !strings.Contains(text, "witness w1 ("+w1.url+"): size 24: ok\n") || !strings.Contains(text, "witness w2 ("+w2.url+"): size 23: FAILING: ") {
		t.Errorf("StatusText:\n%s", text)
	}
}

func TestPoolOneOfTwoWithOneStopped(t *testing.T) {
	l := newTestLog(t, "example.com/log").grow(4)
	w1 := newTestWitness(t, "example.com/w1", []*testLog{l})
	w2 := newTestWitness(t, "example.com/w2", []*testLog{l})
	w2.close()
	p := testPool(t, "1", false, w1, w2)
	for range 3 {
		got, err := p.Cosign(t.Context(), l.checkpoint(), l.proofFunc())
		if err != nil {
			t.Fatalf("Cosign 1-of-2 with w2 stopped: %v", err)
		}
		checkCosigned(t, l, got, l.size, []string{"example.com/w1"}, w1, w2)
		l.grow(5)
	}
	// Fail open: none reachable, still published, without cosignatures.
	w1.close()
	pOpen := testPool(t, "all", true, w1, w2)
	got, err := pOpen.Cosign(t.Context(), l.checkpoint(), l.proofFunc())
	if err != nil {
		t.Fatalf("fail-open Cosign: %v", err)
	}
	checkCosigned(t, l, got, l.size, nil, w1, w2)
}

// TestPoolForkedWitness: a witness that holds another tree of the same size
// refuses, and the pool reports it without counting it.
func TestPoolForkedWitness(t *testing.T) {
	l := newTestLog(t, "example.com/log").grow(3)
	w1 := newTestWitness(t, "example.com/w1", []*testLog{l})
	w2 := newTestWitness(t, "example.com/w2", []*testLog{l})
	evil := l.fork("evil").grow(2)
	mustAdd(t, w2, evil, 0)
	l.grow(2)
	p := testPool(t, "1", false, w1, w2)
	logs := &logbuf.Buffer{}
	p.logger = logs.Logger()
	// The log retries the same checkpoint round after round (its quorum is
	// not met, say): the fork is logged at error level once.
	for range 3 {
		got, err := p.Cosign(t.Context(), l.checkpoint(), l.proofFunc())
		if err != nil {
			t.Fatal(err)
		}
		checkCosigned(t, l, got, l.size, []string{"example.com/w1"}, w1, w2)
		if st := p.Status(); st[1].LastError == "" || st[1].Size != 5 {
			t.Errorf("forked witness status %+v, want an error and size 5", st[1])
		}
	}
	if n := logs.Count("ERROR", "POSSIBLE FORK"); n != 1 {
		t.Errorf("%d POSSIBLE FORK errors in 3 rounds, want 1:\n%s", n, logs)
	}
}

// TestPoolRetryAfter: a witness that answers 429 with Retry-After is not
// asked again before then; it counts as failed meanwhile, and Status says
// why and until when.
func TestPoolRetryAfter(t *testing.T) {
	l := newTestLog(t, "example.com/log").grow(3)
	w1 := newTestWitness(t, "example.com/w1", []*testLog{l})
	// One request, then Retry-After: 1000 (seconds).
	w2 := newTestWitness(t, "example.com/w2", []*testLog{l}, func(c *Config) { c.RateLimit, c.RateBurst = 0.001, 1 })
	p := testPool(t, "1", false, w1, w2)
	round := func() {
		t.Helper()
		l.grow(1)
		got, err := p.Cosign(t.Context(), l.checkpoint(), l.proofFunc())
		if err != nil {
			t.Fatal(err)
		}
		openWith(t, l, got, w1, w2)
	}
	round() // both cosign; w2's budget is spent
	round() // w2: 429
	st := p.Status()[1]
	if !strings.Contains(st.LastError, "rate limit") || time.Until(st.RetryAt) < 900*time.Second {
		t.Fatalf("status after a 429: %+v, want the rate limit and a retry in about 1000 s", st)
	}
	asked := w2.requests.Load()
	round()
	round()
	if n := w2.requests.Load() - asked; n != 0 {
		t.Errorf("w2 was asked %d times before its Retry-After", n)
	}
	if st := p.Status()[1]; !strings.Contains(st.LastError, "not asked") || !strings.Contains(st.LastError, "Retry-After") || st.RetryAt.IsZero() {
		t.Errorf("status while waiting: %+v", st)
	}
	if !strings.Contains(p.StatusText(), "witness w2 ("+w2.url+"): size 4: FAILING: not asked") {
		t.Errorf("StatusText:\n%s", p.StatusText())
	}
}

// TestPoolRetryAfter503: a witness (not ours) that answers 503 with
// Retry-After is not asked again before then.
func TestPoolRetryAfter503(t *testing.T) {
	l := newTestLog(t, "example.com/log").grow(3)
	w1 := newTestWitness(t, "example.com/w1", []*testLog{l})
	var asked atomic.Int64
	busy := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		rw.Header().Set("Retry-After", "120")
		http.Error(rw, "busy", http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	_, vkey, err := checkpoint.GenerateCosignerKey("example.com/busy")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := checkpoint.ParsePolicy([]byte(fmt.Sprintf("witness w1 %s %s\nwitness w2 %s %s\ngroup g any w1 w2\nquorum g\n",
		w1.VKey(), w1.url, vkey, busy.URL)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPool(PoolConfig{Policy: pol, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		l.grow(1)
		if _, err := p.Cosign(t.Context(), l.checkpoint(), l.proofFunc()); err != nil {
			t.Fatal(err)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the busy witness was asked %d times in 3 rounds, want 1", n)
	}
	if st := p.Status()[1]; time.Until(st.RetryAt) < 100*time.Second || !strings.Contains(st.LastError, "503") {
		t.Errorf("busy witness status %+v", st)
	}
}

func verifiers(t testing.TB, ws ...*testWitness) []note.Verifier {
	var vs []note.Verifier
	for _, w := range ws {
		vs = append(vs, w.verifier(t))
	}
	return vs
}

// TestClientErrors checks how Client maps answers of witnesses that are not
// ours: a 409 without the size content type, a garbled size, other codes.
func TestClientErrors(t *testing.T) {
	tests := []struct {
		code  int
		ctype string
		body  string
		check func(error) bool
	}{
		{409, "text/plain", "conflict\n", func(err error) bool { return errors.Is(err, ErrPossibleFork) }},
		{409, SizeContentType, "12\n", func(err error) bool {
			var c *ConflictError
			return errors.As(err, &c) && c.Size == 12
		}},
		{409, SizeContentType + "; charset=utf-8", "012\n", func(err error) bool { return errors.Is(err, checkpoint.ErrMalformed) }},
		{409, SizeContentType, "12", func(err error) bool { return errors.Is(err, checkpoint.ErrMalformed) }},
		{400, "", "", func(err error) bool { return errors.Is(err, checkpoint.ErrMalformed) }},
		{403, "", "", func(err error) bool { return errors.Is(err, checkpoint.ErrSignature) }},
		{404, "", "", func(err error) bool { return errors.Is(err, ErrUnknownOrigin) }},
		{422, "", "", func(err error) bool { return errors.Is(err, ErrInconsistent) }},
		{429, "", "", func(err error) bool {
			var r *RateLimitError
			return errors.As(err, &r) && r.RetryAfter == time.Second
		}},
		{429, "Retry-After: 7", "", func(err error) bool {
			var r *RateLimitError
			return errors.As(err, &r) && r.RetryAfter == 7*time.Second
		}},
		{429, "Retry-After: " + time.Now().Add(time.Hour+time.Minute).UTC().Format(http.TimeFormat), "", func(err error) bool {
			var r *RateLimitError
			return errors.As(err, &r) && r.RetryAfter == MaxRetryAfter
		}},
		{503, "Retry-After: 30", "", func(err error) bool {
			var h *HTTPError
			return errors.As(err, &h) && h.Code == 503 && h.RetryAfter == 30*time.Second
		}},
		{503, "", "", func(err error) bool {
			var h *HTTPError
			return errors.As(err, &h) && h.Code == 503 && h.RetryAfter == 0
		}},
		{500, "", "boom", func(err error) bool {
			var h *HTTPError
			return errors.As(err, &h) && h.Code == 500
		}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s %q", tt.code, tt.ctype, tt.body), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				if h, v, ok := strings.Cut(tt.ctype, ": "); ok {
					rw.Header().Set(h, v)
				} else if tt.ctype != "" {
					rw.Header().Set("Content-Type", tt.ctype)
				}
				rw.WriteHeader(tt.code)
				io.WriteString(rw, tt.body)
			}))
			defer srv.Close()
			c := &Client{URL: srv.URL}
			_, err := c.AddCheckpoint(context.Background(), &Request{Checkpoint: []byte("x")})
			if !tt.check(err) {
				t.Errorf("error %v (%T) is not the expected kind", err, err)
			}
		})
	}
}
