package monitor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testlog"
	"github.com/google/go-cmp/cmp"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// TestAppendEntriesMatchesTree cross-checks the compact-range path against
// an independent tree implementation for every size up to 300.
func TestAppendEntriesMatchesTree(t *testing.T) {
	tree := testonly.New(rfc6962.DefaultHasher)
	r := rangeFactory.NewEmptyRange(0)
	for n := range 300 {
		root, err := rootOf(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root[:], tree.Hash()) {
			t.Fatalf("size %d: root %x, want %x", n, root, tree.Hash())
		}
		e := []byte(fmt.Sprint("leaf ", n))
		tree.AppendData(e)
		if err := appendEntries(r, [][]byte{e}); err != nil {
			t.Fatal(err)
		}
	}
	if root, _ := rootOf(rangeFactory.NewEmptyRange(0)); root != checkpoint.EmptyRoot {
		t.Errorf("empty root %x", root)
	}
}

// BenchmarkAuditVerify measures the audit's verification path with the
// entries already local: leaf hash and compact-range append per entry.
func BenchmarkAuditVerify(b *testing.B) {
	const batch = 1000
	entries := make([][]byte, batch)
	for i := range entries {
		entries[i] = bytes.Repeat([]byte{byte(i)}, 256)
	}
	r := rangeFactory.NewEmptyRange(0)
	b.SetBytes(256)
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		if err := appendEntries(r, entries[:min(batch, b.N-done)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func newAuditor(t testing.TB, l *testlog.Log, cfg AuditorConfig) *Auditor {
	t.Helper()
	cfg.Client, cfg.LogKey = logClient(t, l), l.Verifier
	a, err := NewAuditor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuditor(t *testing.T) {
	l := testlog.New(t, 1)
	addEntries(l, 0, 2345)
	policy, err := checkpoint.ParsePolicy([]byte("witness w0 " + l.WitnessVKeys[0] + "\nquorum w0\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Without a state directory; progress reports climb to the size.
	var reports []uint64
	progress := func(done, total uint64) {
		if total != 2345 {
			t.Errorf("progress total %d", total)
		}
		reports = append(reports, done)
	}
	res, err := newAuditor(t, l, AuditorConfig{Policy: policy, Batch: 100, Parallel: 3, Progress: progress}).Audit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Unchanged || res.From != 0 || res.Checkpoint.Size != 2345 {
		t.Errorf("audit = %+v", res)
	}
	if len(reports) != 25 || reports[0] != 0 || reports[len(reports)-1] != 2345 {
		t.Errorf("progress reports %v, want 0, 100, ..., 2345", reports)
	}

	// With a state directory the next audit fetches only new entries.
	dir := t.TempDir()
	a := newAuditor(t, l, AuditorConfig{StateDir: dir})
	if _, err := a.Audit(t.Context()); err != nil {
		t.Fatal(err)
	}
	addEntries(l, 5000, 100)
	if res, err = a.Audit(t.Context()); err != nil || res.From != 2345 || res.Checkpoint.Size != 2445 {
		t.Errorf("resumed audit = %+v, %v; want from 2345 to 2445", res, err)
	}
	if res, err = a.Audit(t.Context()); err != nil || !res.Unchanged {
		t.Errorf("audit of an unchanged log = %+v, %v", res, err)
	}
	st, err := LoadAuditState(dir, l.Origin)
	if err != nil || st.Verified == nil || st.Verified.Size != 2445 || st.Progress != nil || st.VerifiedCheckpoint == "" {
		t.Errorf("state after success = %+v, %v", st, err)
	}

	// The log shrinks: serves an older checkpoint than the one audited.
	l.ServeOld(2345)
	var se *ShrinkError
	if _, err := a.Audit(t.Context()); !errors.As(err, &se) || se.Size != 2345 || se.Audited != 2445 {
		t.Errorf("audit of a shrunk log = %v", err)
	}
}

// TestAuditorCatchesLyingEntries: entries that do not match the signed
// root are a *RootMismatchError, and no progress is kept from them.
func TestAuditorCatchesLyingEntries(t *testing.T) {
	l := testlog.New(t, 0)
	addEntries(l, 0, 2000)
	l.SetTamperEntry(func(i uint64, e []byte) []byte {
		if i == 1234 {
			return []byte("not what was logged")
		}
		return e
	})
	dir := t.TempDir()
	_, err := newAuditor(t, l, AuditorConfig{StateDir: dir}).Audit(t.Context())
	var re *RootMismatchError
	if !errors.As(err, &re) || !errors.Is(err, ErrViolation) || re.Size != 2000 || re.Got == re.Want {
		t.Fatalf("Audit = %v, want a *RootMismatchError", err)
	}
	if ev := EvidenceOf(err); ev == nil || len(ev.Checkpoints) != 1 || !strings.Contains(ev.Problem, "the 2000 entries the log serves hash to root") {
		t.Errorf("evidence %+v", ev)
	}
	if st, err := LoadAuditState(dir, l.Origin); err != nil || st.Progress != nil || st.Verified != nil {
		t.Errorf("state after a mismatch = %+v, %v", st, err)
	}
}

// TestAuditorResumes: a log that fails half-way leaves progress in the
// state directory; the next audit continues from there, and a fork at the
// audited size is caught from the state.
func TestAuditorResumes(t *testing.T) {
	l := testlog.New(t, 0)
	addEntries(l, 0, 3000)
	l.SetFailEntriesFrom(2000)
	dir := t.TempDir()
	a := newAuditor(t, l, AuditorConfig{StateDir: dir, Batch: 250, Parallel: 1})
	_, err := a.Audit(t.Context())
	// The log's own refusal is a finding that names the first entry it
	// cannot serve, not a violation (nothing signed is contradicted).
	var ue *UnservableError
	if !errors.As(err, &ue) || ue.Index != 2000 || errors.Is(err, ErrViolation) || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("Audit = %v, want an UnservableError at 2000 with the HTTP 500", err)
	}
	if st, err := LoadAuditState(dir, l.Origin); err != nil || st.Progress == nil || st.Progress.Size != 2000 {
		t.Fatalf("progress saved = %+v, %v; want 2000 entries", st.Progress, err)
	}
	l.SetFailEntriesFrom(0)
	if res, err := a.Audit(t.Context()); err != nil || res.From != 2000 {
		t.Fatalf("resumed audit = %+v, %v; want from 2000", res, err)
	}
	l.Rewrite(10, []byte("rewritten"))
	l.Republish()
	_, err = a.Audit(t.Context())
	var fe *ForkError
	if !errors.As(err, &fe) || fe.Size != 3000 || len(EvidenceOf(err).Checkpoints) != 2 {
		t.Errorf("audit of a forked log = %v", err)
	}
}

// TestAuditState: a state file that cannot be used wraps ErrBadState.
func TestAuditState(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"not JSON", "{"},
		{"another log", `{"origin":"other.example/log"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "audit.json"), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadAuditState(dir, "test.example/log"); !errors.Is(err, ErrBadState) {
				t.Errorf("LoadAuditState = %v, want ErrBadState", err)
			}
		})
	}
	// Save then Load gives the same state.
	dir := t.TempDir()
	r := rangeFactory.NewEmptyRange(0)
	if err := appendEntries(r, [][]byte{[]byte("a"), []byte("b"), []byte("c")}); err != nil {
		t.Fatal(err)
	}
	want := &AuditState{Origin: "o", Progress: rangeOf(r)}
	if err := want.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadAuditState(dir, "o")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state round trip (-want +got):\n%s", diff)
	}
}

func TestNewAuditorChecksConfig(t *testing.T) {
	l := testlog.New(t, 0)
	for _, cfg := range []AuditorConfig{
		{},
		{Client: logClient(t, l)},
		{Client: logClient(t, l), LogKey: l.Verifier, Batch: 1001},
		{Client: logClient(t, l), LogKey: l.Verifier, Parallel: 65},
		{Client: logClient(t, l), LogKey: l.Verifier, Batch: -1},
	} {
		if _, err := NewAuditor(cfg); err == nil {
			t.Errorf("NewAuditor(%+v) accepted", cfg)
		}
	}
}

// TestAuditorFetchesOverlap: against a log that answers each entries
// request after a delay (as a distant log does), the auditor keeps its
// whole window of requests in flight at once: the most the log saw in
// flight is the window, by default 16. (Counted by the log, not timed.)
func TestAuditorFetchesOverlap(t *testing.T) {
	for _, tc := range []struct {
		parallel, want int
		buffer         int64
	}{
		{0, 16, 0},
		{4, 4, 0},
		{8, 8, 1}, // a tiny byte bound holds back new requests, but the audit completes
	} {
		t.Run(fmt.Sprint(tc.parallel, "/", tc.buffer), func(t *testing.T) {
			l := testlog.New(t, 0)
			const batches, batch = 4 * DefaultParallel, 10
			addEntries(l, 0, batches*batch)
			l.SetEntriesDelay(20 * time.Millisecond)
			res, err := newAuditor(t, l, AuditorConfig{Batch: batch, Parallel: tc.parallel, BufferBytes: tc.buffer}).Audit(t.Context())
			if err != nil || res.Checkpoint.Size != batches*batch {
				t.Fatalf("Audit = %+v, %v", res, err)
			}
			got := l.MaxInFlight("GET /v1/entries")
			if tc.buffer == 0 && got != tc.want {
				t.Errorf("at most %d entries requests in flight, want %d", got, tc.want)
			}
			if got > max(tc.want, 1) {
				t.Errorf("%d entries requests in flight, more than the window %d", got, tc.want)
			}
			if n := l.Requests("GET /v1/entries"); n != batches {
				t.Errorf("%d entries requests, want %d", n, batches)
			}
		})
	}
}

// BenchmarkAuditDistantLog audits a test log that answers each entries
// request after EVIDENT_AUDIT_DELAY (default 100ms; a distant log's round
// trip) with --parallel from 1 to 32: how much the window hides latency.
// 16,000 entries of about 10 bytes, batches of 1,000.
func BenchmarkAuditDistantLog(b *testing.B) {
	delay := 100 * time.Millisecond
	if v := os.Getenv("EVIDENT_AUDIT_DELAY"); v != "" {
		var err error
		if delay, err = time.ParseDuration(v); err != nil {
			b.Fatal(err)
		}
	}
	l := testlog.New(b, 0)
	addEntries(l, 0, 16000)
	l.SetEntriesDelay(delay)
	for _, p := range []int{1, 2, 8, 16, 32} {
		b.Run(fmt.Sprint("parallel=", p), func(b *testing.B) {
			a := newAuditor(b, l, AuditorConfig{Parallel: p})
			for b.Loop() {
				if _, err := a.Audit(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(16000*b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
