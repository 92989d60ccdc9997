package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/trillian"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/logbuf"
	"github.com/evidentlog/evident/storage"
)

// copyTrillian copies the SQLite files of Trillian's tree from dir to dst
// (a backup, taken while the log is stopped).
func copyTrillian(t *testing.T, dir, dst string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dst, "trillian.db"+suffix))
		in, err := os.Open(filepath.Join(dir, "trillian.db"+suffix))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, "trillian.db"+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStallOnRollback restores an old copy of Trillian's tree under a log
// that published more: the publisher must stall, keep serving the last good
// checkpoint, turn /healthz red, and never sign again, even when the
// rolled-back tree regrows to a different tree of the same size or larger.
func TestStallOnRollback(t *testing.T) {
	logs := &logbuf.Buffer{}
	tl := newTestLog(t, func(c *Config) { c.Logger = logs.Logger() })
	for i := 1; i <= 2; i++ {
		if code, r := tl.add(entryBytes(i), ""); code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	backup := t.TempDir()
	tl.stop()
	copyTrillian(t, tl.dir, backup)
	tl.start()
	for i := 3; i <= 5; i++ {
		if code, r := tl.add(entryBytes(i), ""); code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	good := tl.checkpoint()
	tl.stop()
	copyTrillian(t, backup, tl.dir)

	// The rolled-back tree (size 2) is smaller than the published one.
	tl.start()
	waitFor(t, "/healthz to report the stall", func() bool {
		code, body := tl.get("/healthz")
		return code == 503 && strings.Contains(string(body), "stalled")
	})
	// The evidence is in the server's log: the published note verbatim,
	// Trillian's tree.
	if l := logs.String(); !strings.Contains(l, "level=ERROR msg=\"STALLED: ") ||
		!strings.Contains(l, fmt.Sprintf("published=%q", good.Note)) || !strings.Contains(l, "trillian_size=2 ") {
		t.Errorf("the server's log lacks the STALLED evidence:\n%s", l)
	}
	// A stalled log refuses writes: no receipt could come.
	if code, r := tl.add(entryBytes(100), "?wait=false"); code != 503 {
		t.Errorf("add to a stalled log: %d %s, want 503", code, r.Error)
	}
	for i := 100; i < 104; i++ {
		if _, err := tl.be.Log.QueueLeaf(t.Context(), &trillian.QueueLeafRequest{LogId: tl.be.TreeID, Leaf: &trillian.LogLeaf{LeafValue: entryBytes(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "Trillian to regrow", func() bool { return tl.snapshot().trillian == 6 })
	time.Sleep(5 * tl.log.cfg.CheckpointInterval)
	if got := tl.checkpoint(); !bytes.Equal(got.Note, good.Note) {
		t.Errorf("a stalled log serves\n%s\nwant the last good checkpoint\n%s", got.Note, good.Note)
	}
	if latest, err := tl.state.LatestCheckpoint(t.Context(), tl.log.Origin()); err != nil || latest.Size != 5 {
		t.Errorf("a stalled log stored a checkpoint of size %d (%v), want 5", latest.Size, err)
	}
	tl.stop()

	// Same again, but Trillian regrows past the published size before the
	// publisher looks: the consistency proof must fail.
	copyTrillian(t, backup, tl.dir)
	tl.mod = func(c *Config) { c.CheckpointInterval, c.Grown = time.Hour, nil }
	tl.start()
	for i := 200; i < 206; i++ {
		if code, r := tl.add(entryBytes(i), "?wait=false"); code != 202 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	waitFor(t, "Trillian to regrow", func() bool { return tl.snapshot().trillian == 8 })
	err := tl.log.pub.round(t.Context())
	var inc *InconsistencyError
	if !errors.As(err, &inc) || inc.Size != 8 || len(inc.Proof) == 0 || !bytes.Equal(inc.Published, good.Note) {
		t.Fatalf("publisher round on a forked tree: %v, want an InconsistencyError with the proof and the published note", err)
	}
	if got := tl.checkpoint(); !bytes.Equal(got.Note, good.Note) {
		t.Errorf("after a failed round /checkpoint changed")
	}
}

// TestCosign publishes through a Cosign hook that acts as a witness: it
// checks the log's consistency proofs and adds a cosignature/v1 line. While
// the hook fails, nothing is published and /healthz is red.
func TestCosign(t *testing.T) {
	cosigner, wv := newCosigner(t, "witness.example/w1")
	var (
		failing atomic.Bool
		mu      sync.Mutex
		held    checkpoint.Checkpoint // the witness's state
		calls   int
		capped  atomic.Bool // a call had a deadline
	)
	cosign := func(ctx context.Context, signed []byte, proof func(context.Context, uint64) ([][]byte, error)) ([]byte, error) {
		if _, ok := ctx.Deadline(); ok {
			capped.Store(true)
		}
		if failing.Load() {
			return nil, errors.New("witness unreachable")
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		body, _, err := checkpoint.SplitNote(signed)
		if err != nil {
			return nil, err
		}
		cp, err := checkpoint.Parse(body)
		if err != nil {
			return nil, err
		}
		if calls > 1 {
			p, err := proof(ctx, held.Size)
			if err != nil {
				return nil, err
			}
			if err := checkpoint.VerifyConsistency(held.Size, cp.Size, held.Hash, cp.Hash, p); err != nil {
				return nil, err
			}
		}
		held = cp
		line, err := checkpoint.SignatureLine(body, cosigner)
		if err != nil {
			return nil, err
		}
		return checkpoint.AppendSignatures(signed, line)
	}
	tl := newTestLog(t, func(c *Config) { c.Cosign = cosign })
	for i := 1; i <= 5; i++ {
		code, r := tl.add(entryBytes(i), "")
		if code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
		rec, err := checkpoint.ParseReceipt([]byte(r.Receipt))
		if err != nil {
			t.Fatal(err)
		}
		s, err := checkpoint.Open(rec.Checkpoint, tl.verifier, wv)
		if err != nil || len(s.Cosignatures) != 1 {
			t.Fatalf("receipt's checkpoint: %v, %d cosignatures; want 1", err, len(s.Cosignatures))
		}
	}
	if s, err := checkpoint.Open(tl.checkpoint().Note, tl.verifier, wv); err != nil || len(s.Cosignatures) != 1 || s.Size != 5 {
		t.Fatalf("/checkpoint: %v, want size 5 with a cosignature", err)
	}

	failing.Store(true)
	if code, r := tl.add(entryBytes(6), "?wait=false"); code != 202 {
		t.Fatalf("add: %d %s", code, r.Error)
	}
	waitFor(t, "/healthz to report the witness", func() bool {
		code, body := tl.get("/healthz")
		return code == 503 && strings.HasPrefix(string(body), "cannot publish: the witnesses did not cosign\n")
	})
	if s := tl.checkpoint(); s.Size != 5 {
		t.Errorf("published size %d while the cosigner fails, want 5", s.Size)
	}
	failing.Store(false)
	waitFor(t, "publication after the witness is back", func() bool { return tl.checkpoint().Size == 6 })
	if code, _ := tl.get("/healthz"); code != 200 {
		t.Errorf("/healthz after recovery: %d", code)
	}
	checkChain(t, tl)
	// Without CosignTimeout the witnesses' own timeout rules (for example
	// witness.Pool's, which may exceed the log's 30 s for Trillian).
	if capped.Load() {
		t.Error("Cosign was called with a deadline, want none without CosignTimeout")
	}
}

// TestBackoff checks the wait between publisher rounds: it doubles from
// CheckpointInterval after each failed round up to MaxBackoff, and a good
// round resets it.
func TestBackoff(t *testing.T) {
	// The publisher's own rounds never run (an hour apart): finish is
	// driven here.
	tl := newTestLog(t, func(c *Config) { c.CheckpointInterval, c.Grown = time.Hour, nil; c.MaxBackoff = 5 * time.Hour })
	p, fail := tl.log.pub, errors.New("witness unreachable")
	var got []time.Duration
	for range 5 {
		got = append(got, p.finish(t.Context(), fail))
	}
	got = append(got, p.finish(t.Context(), nil), p.finish(t.Context(), fail))
	want := []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 5 * time.Hour, 5 * time.Hour, time.Hour, time.Hour}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("waits after fail ×5, success, fail (-want +got):\n%s", diff)
	}
	for i := range 100 { // no overflow however long it fails
		if d := p.finish(t.Context(), fail); d != 5*time.Hour && i > 2 || d <= 0 {
			t.Fatalf("wait %v after %d more failures, want at most the cap", d, i+1)
		}
	}
}

// TestFailFast has a log whose witnesses never cosign: once publishing has
// failed for several rounds, a writer waiting for its receipt gets 503 with
// Retry-After and the reason instead of waiting for WaitTimeout, and so
// does any new waiting writer; ?wait=false writes are still queued. When
// the witnesses are back, writes get receipts again.
func TestFailFast(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	cosign := func(_ context.Context, signed []byte, _ func(context.Context, uint64) ([][]byte, error)) ([]byte, error) {
		if failing.Load() {
			return nil, &checkpoint.QuorumError{Missing: []string{"w1"}}
		}
		return signed, nil
	}
	tl := newTestLog(t, func(c *Config) {
		c.Cosign = cosign
		c.CheckpointInterval = 10 * time.Millisecond
		c.MaxBackoff = 50 * time.Millisecond
		c.WaitTimeout = 10 * time.Second // without failing fast: 504 after it
	})
	const reason = "the log cannot publish checkpoints now (witness quorum not satisfied: missing cosignatures from w1)"
	// Waiting before publishing starts to fail.
	code, h, r := tl.addAuth("Bearer "+tl.token, []byte("first"), "")
	if code != 503 || r.Error != reason+"; the entry is queued, submit it again later for its receipt" || h.Get("Retry-After") == "" {
		t.Errorf("waiting add while publishing fails: %d %q, Retry-After %q; want 503, the reason and Retry-After", code, r.Error, h.Get("Retry-After"))
	}
	code, h, r = tl.addAuth("Bearer "+tl.token, []byte("second"), "")
	if code != 503 || r.Error != reason+"; retry later" || h.Get("Retry-After") == "" {
		t.Errorf("new waiting add while publishing fails: %d %q, Retry-After %q; want 503, the reason and Retry-After", code, r.Error, h.Get("Retry-After"))
	}
	if code, r := tl.add([]byte("third"), "?wait=false"); code != http.StatusAccepted {
		t.Errorf("add ?wait=false while publishing fails: %d %s, want 202", code, r.Error)
	}
	failing.Store(false)
	waitFor(t, "publication after the witnesses are back", func() bool { return tl.checkpoint().Size == 2 })
	code, r = tl.add([]byte("first"), "")
	if code != 200 || !r.Duplicate || r.Index != 0 {
		t.Errorf("adding the queued entry again: %d %+v, want its receipt as a duplicate", code, r)
	}
	if code, r := tl.add([]byte("fourth"), ""); code != 200 || r.Index != 2 {
		t.Errorf("add after recovery: %d %+v", code, r)
	}
	// Failing again: an entry already published still gets its receipt.
	failing.Store(true)
	tl.add([]byte("fifth"), "?wait=false")
	waitFor(t, "publishing to fail for good", func() bool { return tl.log.pub.failingErr(false) != nil })
	if code, r := tl.add([]byte("first"), ""); code != 200 || !r.Duplicate || r.Index != 0 || r.Receipt == "" {
		t.Errorf("adding a published entry again while publishing fails: %d %+v, want its receipt as a duplicate", code, r)
	}
	if code, r := tl.add([]byte("sixth"), ""); code != 503 {
		t.Errorf("new waiting add while publishing fails again: %d %+v, want 503", code, r)
	}
}

// TestSignedCheckpoints has a log whose witnesses never reach a quorum:
// every checkpoint it signs is recorded before the witnesses see it, and
// consistency proofs are served from those. A witness holding a size the log
// has no record of raises an alarm; a different root recorded at a size the
// log is about to sign stalls it, with the evidence logged.
func TestSignedCheckpoints(t *testing.T) {
	logs := &logbuf.Buffer{}
	cosign := func(context.Context, []byte, func(context.Context, uint64) ([][]byte, error)) ([]byte, error) {
		return nil, &checkpoint.QuorumError{Missing: []string{"w1"}}
	}
	tl := newTestLog(t, func(c *Config) {
		c.Cosign, c.Logger = cosign, logs.Logger()
		c.CheckpointInterval, c.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	})
	ctx, origin := t.Context(), tl.log.Origin()
	signed := func(size uint64) *storage.SignedCheckpoint {
		var s *storage.SignedCheckpoint
		waitFor(t, fmt.Sprintf("the log to sign size %d", size), func() bool {
			var err error
			s, err = tl.state.Signed(ctx, origin, size)
			return err == nil
		})
		return s
	}
	tl.add([]byte("a"), "?wait=false")
	s1 := signed(1)
	tl.add([]byte("b"), "?wait=false")
	s2 := signed(2)
	if _, err := checkpoint.Open(s2.Note, tl.verifier); err != nil {
		t.Errorf("recorded note of size 2: %v", err)
	}
	if tl.checkpoint().Size != 0 {
		t.Fatalf("published without a quorum")
	}
	proof := tl.log.pub.proofFunc(2, s2.Root)
	p, err := proof(ctx, 1)
	if err != nil {
		t.Fatalf("consistency proof from the unpublished size 1: %v", err)
	}
	if err := checkpoint.VerifyConsistency(1, 2, s1.Root, s2.Root, p); err != nil {
		t.Errorf("consistency proof from the unpublished size 1: %v", err)
	}

	// As if the record of size 1 were lost: a witness holding it is an
	// alarm.
	if _, err := tl.state.SQL().ExecContext(ctx, `DELETE FROM signed_checkpoints WHERE size = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := proof(ctx, 1); !errors.Is(err, errNeverSigned) {
		t.Errorf("proof from a size never signed: %v, want errNeverSigned", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"ALARM: a witness holds a checkpoint of this log at a size the log never signed") {
		t.Errorf("no alarm in the server's log:\n%s", logs)
	}

	// Another root recorded at the next size: the log must not sign.
	forged := []byte("forged checkpoint of size 3")
	if err := tl.state.AddSigned(ctx, origin, 3, [32]byte{1}, forged, time.Now()); err != nil {
		t.Fatal(err)
	}
	tl.add([]byte("c"), "?wait=false")
	waitFor(t, "/healthz to report the stall", func() bool {
		code, body := tl.get("/healthz")
		return code == 503 && strings.HasPrefix(string(body), "cannot publish: stalled: ")
	})
	if l := logs.String(); !strings.Contains(l, "msg=\"STALLED: ") || !strings.Contains(l, fmt.Sprintf("published=%q", forged)) {
		t.Errorf("the server's log lacks the STALLED evidence:\n%s", l)
	}
	if s, err := tl.state.Signed(ctx, origin, 3); err != nil || !bytes.Equal(s.Note, forged) {
		t.Errorf("the record of size 3 changed: %v, %v", s, err)
	}
	if code, r := tl.add([]byte("d"), "?wait=false"); code != 503 {
		t.Errorf("add to a stalled log: %d %s, want 503", code, r.Error)
	}
}

// TestTrillianBehindSigned: a Trillian tree smaller than a checkpoint the
// log signed and showed witnesses (as after restoring an old backup of
// Trillian's database) is not signed: the log would otherwise show witnesses
// two views. /healthz says why.
func TestTrillianBehindSigned(t *testing.T) {
	cosign := func(context.Context, []byte, func(context.Context, uint64) ([][]byte, error)) ([]byte, error) {
		return nil, &checkpoint.QuorumError{Missing: []string{"w1"}}
	}
	tl := newTestLog(t, func(c *Config) {
		c.Cosign = cosign
		c.CheckpointInterval, c.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	})
	ctx, origin := t.Context(), tl.log.Origin()
	if err := tl.state.AddSigned(ctx, origin, 5, [32]byte{1}, []byte("signed before a restore"), time.Now()); err != nil {
		t.Fatal(err)
	}
	tl.add([]byte("a"), "?wait=false")
	waitFor(t, "/healthz to say Trillian is behind", func() bool {
		code, body := tl.get("/healthz")
		return code == 503 && strings.HasPrefix(string(body), "cannot publish: "+errTrillianBehind.Error())
	})
	if s, err := tl.state.Signed(ctx, origin, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the log signed size 1 below its signed size 5: %v, %v", s, err)
	}
	if err := tl.log.pub.stalledErr(); err != nil {
		t.Errorf("stalled while Trillian is only behind: %v", err)
	}
}

// waitingAnswer is the answer a writer waiting for its receipt got.
type waitingAnswer struct {
	code int
	r    addResult
}

// startWaiter adds an entry and waits for its receipt in the background;
// it returns once the writer waits, and the answer comes on the channel.
func startWaiter(t *testing.T, tl *testLog) <-chan waitingAnswer {
	done := make(chan waitingAnswer, 1)
	go func() {
		code, r := tl.add([]byte("waiting"), "")
		done <- waitingAnswer{code, r}
	}()
	p := tl.log.pub
	waitFor(t, "the writer to wait", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waiters) == 1
	})
	return done
}

// TestStallWakesWaiters: a writer waiting for its receipt when the
// publisher stalls gets 503 with the reason at once, not 504 later.
func TestStallWakesWaiters(t *testing.T) {
	// The publisher's own rounds never run: finish is driven here.
	tl := newTestLog(t, func(c *Config) { c.CheckpointInterval, c.Grown = time.Hour, nil })
	p := tl.log.pub
	done := startWaiter(t, tl)
	p.finish(t.Context(), &InconsistencyError{Published: p.latest().note, Reason: "test"})
	a := <-done
	want := "the log cannot publish checkpoints now (stalled: Trillian's tree is inconsistent with a checkpoint the log signed); the entry is queued, submit it again later for its receipt"
	if a.code != 503 || a.r.Error != want {
		t.Errorf("waiting writer after a stall: %d %q, want 503 %q", a.code, a.r.Error, want)
	}
}

// TestWaiterSeesSecondOutage: a writer woken by an outage that is over by
// the time it looks waits on, and a second outage during the same wait
// still answers it with 503 at once, not 504 at WaitTimeout.
func TestWaiterSeesSecondOutage(t *testing.T) {
	// The publisher's own rounds never run: its state is driven here.
	// Without noticing the second outage, the writer would get 504 after
	// WaitTimeout.
	tl := newTestLog(t, func(c *Config) { c.CheckpointInterval, c.Grown, c.WaitTimeout = time.Hour, nil, 20*time.Second })
	p := tl.log.pub
	done := startWaiter(t, tl)
	// An outage and its end, at once: the writer wakes to a log that
	// publishes again.
	p.mu.Lock()
	close(p.failing)
	p.failing = make(chan struct{})
	p.mu.Unlock()
	select {
	case a := <-done:
		t.Fatalf("the writer gave up after an outage that was over: %d %q", a.code, a.r.Error)
	case <-time.After(100 * time.Millisecond):
	}
	for range failFastRounds {
		p.finish(t.Context(), errors.New("test: state database down"))
	}
	if a := <-done; a.code != 503 || !strings.Contains(a.r.Error, "the entry is queued") {
		t.Errorf("waiting writer in the second outage: %d %q, want 503 saying the entry is queued", a.code, a.r.Error)
	}
}

// TestCosignInterval: with witnesses, the publisher asks them at most once
// per CosignInterval however fast entries come, and every entry still gets
// its receipt (a round carries all that arrived while it waited).
func TestCosignInterval(t *testing.T) {
	const interval = 150 * time.Millisecond
	var mu sync.Mutex
	var calls []time.Time
	tl := newTestLog(t, func(c *Config) {
		c.CosignInterval = interval
		c.Cosign = func(ctx context.Context, signed []byte, _ func(context.Context, uint64) ([][]byte, error)) ([]byte, error) {
			mu.Lock()
			calls = append(calls, time.Now())
			mu.Unlock()
			return signed, nil
		}
	})
	j := &journal{index: map[string]uint64{}}
	var receipts sync.Map
	var entries [][]byte
	for i := range 200 {
		entries = append(entries, entryBytes(i))
	}
	submitAll(t, tl, j, &receipts, entries, 16)
	checkWholeLog(t, tl, j, &receipts)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) < 3 {
		t.Fatalf("%d witness rounds for 200 entries", len(calls))
	}
	// Rounds start at least interval apart; a witness is called after the
	// round's first steps (reading and signing the tree), which take a few
	// milliseconds, more or less from one round to the next, and much more
	// on a busy machine. So one gap may look short when the round before
	// it was slow to call its witness; the span of all rounds may not:
	// it is the rounds' starts' span plus one round's steps, less
	// another's (calls[0] is the size-0 checkpoint's, at start).
	const slack = 100 * time.Millisecond
	if n := len(calls) - 2; n > 0 {
		if span, want := calls[len(calls)-1].Sub(calls[1]), time.Duration(n)*interval-slack; span < want {
			t.Errorf("%d witness rounds in %v, want at least %v: rounds closer than %v apart", n+1, span, want, interval)
		}
	}
}
