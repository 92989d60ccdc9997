package witness

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/logbuf"
)

// TestRaceNeverRollsBack: request A (5 -> 8) is stalled between reading the
// state and writing it while request B (5 -> 12) completes. A must then
// fail with 409 "12", not write 8 over 12.
func TestRaceNeverRollsBack(t *testing.T) { eachBackend(t, testRaceNeverRollsBack) }

func testRaceNeverRollsBack(t *testing.T, b backend) {
	l := newTestLog(t, "example.com/log").grow(5)
	w := b.newWitness(t, "example.com/witness", []*testLog{l})
	mustAdd(t, w, l, 0)
	l.grow(3)
	reqA := l.request(5)
	l.grow(4)
	reqB := l.request(5)

	stalled, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	w.beforeSwap = func(string) {
		if calls.Add(1) == 1 {
			close(stalled)
			<-release
		}
	}
	errA := make(chan error, 1)
	go func() {
		_, err := w.AddCheckpoint(context.Background(), reqA)
		errA <- err
	}()
	<-stalled
	if _, err := w.AddCheckpoint(t.Context(), reqB); err != nil {
		t.Fatalf("request B: %v", err)
	}
	close(release)
	err := <-errA
	var conflict *ConflictError
	if !errors.As(err, &conflict) || conflict.Size != 12 {
		t.Fatalf("stalled request A = %v, want a 409 conflict at size 12", err)
	}
	if st, _, _ := w.db.WitnessState(t.Context(), l.origin); st.Size != 12 {
		t.Fatalf("state size %d after the race, want 12", st.Size)
	}
}

// TestRaceManyWriters: many concurrent requests from one old size, each
// stalled between read and write; the stored size never goes down (a
// watcher polls it) and exactly one request from that old size wins.
func TestRaceManyWriters(t *testing.T) { eachBackend(t, testRaceManyWriters) }

func testRaceManyWriters(t *testing.T, b backend) {
	l := newTestLog(t, "example.com/log").grow(5)
	w := b.newWitness(t, "example.com/witness", []*testLog{l})
	mustAdd(t, w, l, 0)
	var reqs []*Request
	for range 12 {
		l.grow(1)
		reqs = append(reqs, l.request(5))
	}
	w.beforeSwap = func(string) { time.Sleep(2 * time.Millisecond) }

	stop := make(chan struct{})
	watchErr := make(chan error, 1)
	go func() {
		var last uint64
		for {
			select {
			case <-stop:
				watchErr <- nil
				return
			default:
			}
			st, _, err := w.db.WitnessState(context.Background(), l.origin)
			if err != nil {
				watchErr <- err
				return
			}
			if st.Size < last {
				watchErr <- fmt.Errorf("stored size went from %d back to %d", last, st.Size)
				return
			}
			last = st.Size
		}
	}()
	var wg sync.WaitGroup
	sizes := make([]uint64, len(reqs))
	for i, r := range reqs {
		wg.Go(func() {
			if _, err := w.AddCheckpoint(context.Background(), r); err == nil {
				sizes[i] = uint64(6 + i)
			} else if !errors.As(err, new(*ConflictError)) {
				t.Errorf("request %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-watchErr; err != nil {
		t.Fatal(err)
	}
	var won []uint64
	for _, s := range sizes {
		if s != 0 {
			won = append(won, s)
		}
	}
	st, _, _ := w.db.WitnessState(t.Context(), l.origin)
	if len(won) != 1 || st.Size != won[0] {
		t.Fatalf("winners %v, stored size %d; want exactly one winner, stored", won, st.Size)
	}
}

// TestRestartKeepsState: after a restart on the same data directory the
// witness holds the same checkpoint and cosigns nothing smaller.
func TestRestartKeepsState(t *testing.T) { eachBackend(t, testRestartKeepsState) }

func testRestartKeepsState(t *testing.T, b backend) {
	l := newTestLog(t, "example.com/log").grow(3)
	w := b.newWitness(t, "example.com/witness", []*testLog{l})
	mustAdd(t, w, l, 0)
	small := l.checkpoint()
	l.grow(5)
	mustAdd(t, w, l, 3)
	held, err := w.Checkpoint(t.Context(), l.origin)
	if err != nil {
		t.Fatal(err)
	}
	dir := w.dir
	w.close()

	skey, _, created, err := LoadOrCreateKey(dir, "")
	if err != nil || created {
		t.Fatalf("reloading the key: created=%v, %v", created, err)
	}
	w2 := b.open(t, dir, skey, []*testLog{l})
	if w2.VKey() != w.VKey() {
		t.Errorf("key changed across restart")
	}
	got, err := w2.Checkpoint(t.Context(), l.origin)
	if err != nil || string(got) != string(held) {
		t.Fatalf("checkpoint after restart = %q, %v; want %q", got, err, held)
	}
	for _, r := range []*Request{
		{OldSize: 0, Checkpoint: small},
		{OldSize: 3, Checkpoint: small},
		{OldSize: 8, Checkpoint: small},
	} {
		if line, err := w2.AddCheckpoint(t.Context(), r); err == nil {
			t.Errorf("cosigned size 3 (old %d) after holding 8: %q", r.OldSize, line)
		}
	}
	l.grow(1)
	if _, err := w2.AddCheckpoint(t.Context(), l.request(8)); err != nil {
		t.Errorf("growing after restart: %v", err)
	}
}

// TestCrossCheckFormatsNote: our cosignatures verify with the independent
// cosignature/v1 verifier of transparency-dev/formats/note.
func TestCrossCheckFormatsNote(t *testing.T) {
	l := newTestLog(t, "example.com/log").grow(7)
	w := newTestWitness(t, "example.com/witness", []*testLog{l})
	mustAdd(t, w, l, 0)
	v, err := fnote.NewVerifierForCosignatureV1(w.VKey())
	if err != nil {
		t.Fatal(err)
	}
	held, err := w.Checkpoint(t.Context(), l.origin)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(held, note.VerifierList(v))
	if err != nil {
		t.Fatalf("formats/note does not verify our cosignature: %v", err)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != "example.com/witness" {
		t.Fatalf("verified signatures %+v", n.Sigs)
	}
	ts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
	if err != nil || time.Since(ts) > time.Minute || time.Until(ts) > time.Minute {
		t.Errorf("cosignature timestamp %v, %v; want about now", ts, err)
	}
}

// TestCrossCheckSumdbKeys: the witness accepts checkpoints signed with keys
// made by golang.org/x/mod/sumdb/note.
func TestCrossCheckSumdbKeys(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "sumdb.example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{t: t, origin: "sumdb.example.com/log", signer: s, vkey: vkey, tag: "x"}
	l.grow(9)
	w := newTestWitness(t, "example.com/witness", []*testLog{l})
	mustAdd(t, w, l, 0)
	l.grow(3)
	mustAdd(t, w, l, 9)
}

// newForkScene returns a log of size 4 and three witnesses (w1, w2, w3)
// that each hold its checkpoint of size 4, before the log forks.
func newForkScene(t *testing.T) (*testLog, []*testWitness) {
	l := newTestLog(t, "example.com/log").grow(4)
	var ws []*testWitness
	for i := range 3 {
		w := newTestWitness(t, fmt.Sprintf("example.com/w%d", i+1), []*testLog{l})
		mustAdd(t, w, l, 0)
		ws = append(ws, w)
	}
	return l, ws
}

// TestMaliciousLog: a log forks after size 4 and shows the two histories
// to three witnesses in every order it can. Fork A reaches two witnesses
// first, so a 2-of-3 client accepts it; the test checks that each witness
// cosigns at most one fork, that the client never accepts checkpoints of
// both forks, and that the evidence the witnesses keep verifies offline.
// TestMaliciousLogSplitView is the split view that accepts neither fork.
func TestMaliciousLog(t *testing.T) {
	l, ws := newForkScene(t)
	a := l.fork("A").grow(4) // size 8
	b := l.fork("B").grow(4) // size 8, another root
	b10 := b.fork("B").grow(2)
	a12 := a.fork("A").grow(4)

	// cosigs collects, per checkpoint, the cosignature lines it got.
	cosigs := map[string][][]byte{}
	// submit plays the log: it learns the held size from a 409 and sends
	// an honest proof of its fork from there.
	submit := func(w *testWitness, f *testLog) {
		old := int64(4)
		for range 2 {
			line, err := w.AddCheckpoint(t.Context(), &Request{OldSize: uint64(old), Proof: f.proof(old), Checkpoint: f.checkpoint()})
			var conflict *ConflictError
			if errors.As(err, &conflict) && int64(conflict.Size) <= f.size {
				old = int64(conflict.Size)
				continue
			}
			if err == nil {
				cosigs[string(f.checkpoint())] = append(cosigs[string(f.checkpoint())], line)
			}
			return
		}
	}
	order := [][]*testLog{
		{a, b, b10, a12},
		{b, a, a12, b10},
		{a, b10, b, a12},
	}
	for i, w := range ws {
		for _, f := range order[i] {
			submit(w, f)
		}
	}

	pol, err := checkpoint.ParsePolicy([]byte(fmt.Sprintf(
		"log %s\nwitness w1 %s\nwitness w2 %s\nwitness w3 %s\ngroup g 2 w1 w2 w3\nquorum g\n",
		l.vkey, ws[0].VKey(), ws[1].VKey(), ws[2].VKey())))
	if err != nil {
		t.Fatal(err)
	}
	accepted := map[string]bool{} // fork tag -> a checkpoint of it was accepted
	for _, f := range []*testLog{a, b, b10, a12} {
		cp := f.checkpoint()
		full, err := checkpoint.AppendSignatures(cp, cosigs[string(cp)]...)
		if err != nil {
			t.Fatal(err)
		}
		s, err := checkpoint.Open(full, mustVerifier(t, l.vkey), pol.Verifiers()...)
		if err != nil {
			t.Fatal(err)
		}
		names := pol.Cosigners(s)
		t.Logf("fork %s size %d cosigned by %v", f.tag, f.size, names)
		if pol.Satisfied(names) {
			accepted[f.tag] = true
		}
	}
	if accepted["A"] && accepted["B"] {
		t.Fatalf("a 2-of-3 client accepted checkpoints of both forks")
	}
	if accepted["B"] {
		t.Errorf("a 2-of-3 client accepted fork B, shown to one witness only")
	}
	// Each witness cosigned at most one fork: its held checkpoint is on one
	// fork, and every cosignature it gave is on that fork.
	for i, w := range ws {
		forks := map[string]bool{}
		for _, f := range []*testLog{a, b, b10, a12} {
			for _, line := range cosigs[string(f.checkpoint())] {
				if strings.HasPrefix(string(line), "— "+w.Name()+" ") {
					forks[f.tag] = true
				}
			}
		}
		if len(forks) > 1 {
			t.Errorf("witness w%d cosigned both forks", i+1)
		}
	}
	proven := 0
	for i, w := range ws {
		ev, err := w.ListEvidence(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev) == 0 {
			t.Errorf("witness w%d kept no evidence", i+1)
		}
		for _, e := range ev {
			ok, err := VerifyEvidence(&e, mustVerifier(t, l.vkey))
			if err != nil {
				t.Errorf("w%d evidence %d (%s) does not verify: %v", i+1, e.ID, e.Reason, err)
			}
			if ok != (e.Reason == ReasonSameSize) {
				t.Errorf("w%d evidence %d (%s): proven=%v", i+1, e.ID, e.Reason, ok)
			}
			if ok {
				proven++
			}
		}
	}
	if proven == 0 {
		t.Error("no witness kept evidence that proves the split view on its own")
	}
	// Evidence about an honest log does not verify.
	e := Evidence{Held: string(l.checkpointAt(2)), New: string(l.checkpoint()), Proof: l.proof(2)}
	if _, err := VerifyEvidence(&e, mustVerifier(t, l.vkey)); !errors.Is(err, ErrNotEvidence) {
		t.Errorf("VerifyEvidence of consistent checkpoints = %v, want ErrNotEvidence", err)
	}
}

// TestMaliciousLogSplitView: a log forks after size 4 and shows fork A to
// w1 and fork B to w2, keeping w3 at size 4 (it cannot show either fork to
// w3 without giving that fork a second cosignature), then tries each
// witness with the other fork. Each fork gets at most one cosignature, a
// 2-of-3 client accepts no forked checkpoint, and w1 and w2 keep evidence
// that proves the split view offline.
func TestMaliciousLogSplitView(t *testing.T) {
	l, ws := newForkScene(t)
	a := l.fork("A").grow(4)
	b := l.fork("B").grow(4)
	forks := []*testLog{a, b, a.fork("A").grow(3), b.fork("B").grow(3)}
	cosigs := map[string][][]byte{}
	ask := func(w *testWitness, f *testLog) {
		// The log sends its fork with an honest proof from the size the
		// witness holds, as a Pool would.
		for _, old := range []int64{4, 8} {
			if old > f.size {
				continue
			}
			if line, err := w.AddCheckpoint(t.Context(), f.request(old)); err == nil {
				cosigs[string(f.checkpoint())] = append(cosigs[string(f.checkpoint())], line)
			}
		}
	}
	ask(ws[0], forks[0]) // w1 sees A
	ask(ws[1], forks[1]) // w2 sees B
	ask(ws[0], forks[2]) // A grows at w1
	ask(ws[1], forks[3]) // B grows at w2
	ask(ws[0], forks[1]) // then each is tried with the other fork
	ask(ws[1], forks[0])
	ask(ws[0], forks[3])
	ask(ws[1], forks[2])

	pol, err := checkpoint.ParsePolicy([]byte(fmt.Sprintf(
		"log %s\nwitness w1 %s\nwitness w2 %s\nwitness w3 %s\ngroup g 2 w1 w2 w3\nquorum g\n",
		l.vkey, ws[0].VKey(), ws[1].VKey(), ws[2].VKey())))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forks {
		full, err := checkpoint.AppendSignatures(f.checkpoint(), cosigs[string(f.checkpoint())]...)
		if err != nil {
			t.Fatal(err)
		}
		s, err := checkpoint.Open(full, mustVerifier(t, l.vkey), pol.Verifiers()...)
		if err != nil {
			t.Fatal(err)
		}
		names := pol.Cosigners(s)
		if len(names) != 1 {
			t.Errorf("fork %s size %d cosigned by %v, want exactly one witness", f.tag, f.size, names)
		}
		if pol.Satisfied(names) {
			t.Errorf("a 2-of-3 client accepted fork %s at size %d", f.tag, f.size)
		}
	}
	for i, want := range []int64{11, 11, 4} {
		if st, _, _ := ws[i].db.WitnessState(t.Context(), l.origin); st.Size != uint64(want) {
			t.Errorf("w%d holds size %d, want %d", i+1, st.Size, want)
		}
	}
	for i, w := range ws[:2] {
		ev, err := w.ListEvidence(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		proven := false
		for _, e := range ev {
			if ok, err := VerifyEvidence(&e, mustVerifier(t, l.vkey)); ok && err == nil {
				proven = true
			}
		}
		if !proven {
			t.Errorf("w%d kept no evidence that proves the split view (%d records)", i+1, len(ev))
		}
	}
}

// TestConcurrentLogs: many logs growing at once share group commits; every
// request succeeds and every log ends at its own latest checkpoint.
func TestConcurrentLogs(t *testing.T) { eachBackend(t, testConcurrentLogs) }

func testConcurrentLogs(t *testing.T, b backend) {
	var logs []*testLog
	for i := range 8 {
		logs = append(logs, newTestLog(t, fmt.Sprintf("example.com/log%d", i)))
	}
	// Build all requests first: testLog is not safe for concurrent use.
	reqs := make([][]*Request, len(logs))
	for i, l := range logs {
		old := int64(0)
		for range 10 {
			l.grow(1 + i)
			reqs[i] = append(reqs[i], l.request(old))
			old = l.size
		}
	}
	w := b.newWitness(t, "example.com/witness", logs)
	var wg sync.WaitGroup
	for i := range logs {
		wg.Go(func() {
			for j, r := range reqs[i] {
				if _, err := w.AddCheckpoint(context.Background(), r); err != nil {
					t.Errorf("log %d request %d: %v", i, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, l := range logs {
		st, ok, err := w.db.WitnessState(t.Context(), l.origin)
		if err != nil || !ok || st.Size != uint64(l.size) || st.Root != l.root(l.size) {
			t.Errorf("%s: state size %d (%v, %v), want %d", l.origin, st.Size, ok, err, l.size)
		}
	}
}

// TestEvidenceKeptOnce: a split view submitted again and again, from any
// old size, with other signature lines, after the witness cosigned its
// held checkpoint again and after a restart, is one record of evidence,
// logged at error level once.
func TestEvidenceKeptOnce(t *testing.T) { eachBackend(t, testEvidenceKeptOnce) }

func testEvidenceKeptOnce(t *testing.T, b backend) {
	l := newTestLog(t, "example.com/log").grow(5)
	logs := &logbuf.Buffer{}
	w := b.newWitness(t, "example.com/witness", []*testLog{l})
	w.logger = logs.Logger()
	mustAdd(t, w, l, 0)
	fork := l.rewrite("evil").grow(5)
	forkReqs := []*Request{
		fork.request(5),
		fork.request(0),
		{OldSize: 5, Checkpoint: withSignatures(t, fork.checkpoint(), 2)},
	}
	submit := func(w *testWitness) {
		for _, r := range forkReqs {
			if _, err := w.AddCheckpoint(t.Context(), r); err == nil {
				t.Fatal("the fork was cosigned")
			}
			mustAdd(t, w, l, 5)
		}
	}
	submit(w)
	dir := w.dir
	w.close()
	w = b.open(t, dir, w.skey, []*testLog{l})
	w.logger = logs.Logger()
	submit(w)
	ev, err := w.ListEvidence(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 1 || ev[0].Reason != ReasonSameSize {
		t.Fatalf("%d records of evidence (%+v), want one %s", len(ev), ev, ReasonSameSize)
	}
	if proven, err := VerifyEvidence(&ev[0], mustVerifier(t, l.vkey)); !proven || err != nil {
		t.Errorf("VerifyEvidence = %v, %v; want proven", proven, err)
	}
	if n := logs.Count("ERROR", "POSSIBLE SPLIT VIEW"); n != 1 {
		t.Errorf("%d error lines for one split view, want 1:\n%s", n, logs)
	}
}

// TestJunkProofIsNotEvidence: anyone can send a log's genuine checkpoint
// with a junk consistency proof. That is answered 422 and logged as an
// invalid proof, not kept or logged as a split view.
func TestJunkProofIsNotEvidence(t *testing.T) {
	l := newTestLog(t, "example.com/log").grow(5)
	logs := &logbuf.Buffer{}
	w := newTestWitness(t, "example.com/witness", []*testLog{l}, func(c *Config) { c.Logger = logs.Logger() })
	mustAdd(t, w, l, 0)
	l.grow(3)
	r := l.request(5)
	r.Proof[len(r.Proof)-1] = make([]byte, 32)
	if _, err := w.AddCheckpoint(t.Context(), r); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("junk proof: %v, want ErrInconsistent", err)
	}
	if ev, err := w.ListEvidence(t.Context(), 0); err != nil || len(ev) != 0 {
		t.Errorf("evidence after a junk proof: %+v, %v; want none", ev, err)
	}
	if n := logs.Count("WARN", "invalid consistency proof"); n != 1 || strings.Contains(logs.String(), "SPLIT VIEW") {
		t.Errorf("logs after a junk proof:\n%s", logs)
	}
	mustAdd(t, w, l, 5)
}
