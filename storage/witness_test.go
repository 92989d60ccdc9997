package storage

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func witnessState(origin string, size uint64) WitnessState {
	return WitnessState{
		Origin:    origin,
		Size:      size,
		Root:      sha256.Sum256([]byte(fmt.Sprint(origin, size))),
		Note:      []byte(fmt.Sprintf("%s\n%d\nnote\n", origin, size)),
		UpdatedAt: time.Unix(1700000000, int64(size)),
	}
}

func TestWitnessStateSwap(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if _, ok, err := db.WitnessState(ctx, "example.com/log"); err != nil || ok {
			t.Fatalf("WitnessState of a new origin = %v, %v; want none", ok, err)
		}
		s1 := witnessState("example.com/log", 1)
		if err := db.SwapWitnessState(ctx, nil, s1); err != nil {
			t.Fatalf("first swap: %v", err)
		}
		// A second insert-if-absent loses the race.
		if err := db.SwapWitnessState(ctx, nil, witnessState("example.com/log", 7)); !errors.Is(err, ErrWitnessStateChanged) {
			t.Fatalf("second insert = %v, want ErrWitnessStateChanged", err)
		}
		got, ok, err := db.WitnessState(ctx, "example.com/log")
		if err != nil || !ok {
			t.Fatalf("WitnessState = %v, %v", ok, err)
		}
		if diff := cmp.Diff(s1, got); diff != "" {
			t.Errorf("state after first swap (-want +got):\n%s", diff)
		}
		s5 := witnessState("example.com/log", 5)
		if err := db.SwapWitnessState(ctx, &s1, s5); err != nil {
			t.Fatalf("swap 1->5: %v", err)
		}
		// A swap from the stale state fails and changes nothing.
		if err := db.SwapWitnessState(ctx, &s1, witnessState("example.com/log", 3)); !errors.Is(err, ErrWitnessStateChanged) {
			t.Fatalf("stale swap = %v, want ErrWitnessStateChanged", err)
		}
		// Same size, other root: the root is part of the comparison.
		forged := s5
		forged.Root[0] ^= 1
		if err := db.SwapWitnessState(ctx, &forged, witnessState("example.com/log", 9)); !errors.Is(err, ErrWitnessStateChanged) {
			t.Fatalf("swap from other root = %v, want ErrWitnessStateChanged", err)
		}
		// Writing exactly the held state again succeeds (MySQL reports 0 rows).
		if err := db.SwapWitnessState(ctx, &s5, s5); err != nil {
			t.Fatalf("idempotent swap: %v", err)
		}
		got, _, err = db.WitnessState(ctx, "example.com/log")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s5, got); diff != "" {
			t.Errorf("final state (-want +got):\n%s", diff)
		}
		other := witnessState("example.org/other", 2)
		if err := db.SwapWitnessState(ctx, nil, other); err != nil {
			t.Fatal(err)
		}
		all, err := db.WitnessStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]WitnessState{s5, other}, all); diff != "" {
			t.Errorf("WitnessStates (-want +got):\n%s", diff)
		}
		if err := db.SwapWitnessState(ctx, nil, witnessState("x", 1<<63)); err == nil {
			t.Error("size 2^63 was stored")
		}
	})
}

// TestWitnessStateSwapRace races many swaps from one read state: exactly
// one may win.
func TestWitnessStateSwapRace(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		base := witnessState("example.com/log", 10)
		if err := db.SwapWitnessState(ctx, nil, base); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = db.SwapWitnessState(ctx, &base, witnessState("example.com/log", uint64(11+i)))
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrWitnessStateChanged):
				t.Errorf("swap: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d swaps from one state won, want exactly 1", won)
		}
	})
}

func TestWitnessEvidence(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		h := sha256.Sum256([]byte("h"))
		want := []WitnessEvidence{
			{Origin: "o", HeldNote: []byte("held\n"), NewNote: []byte("new\n"), Reason: "same-size-different-root", FoundAt: time.Unix(5, 6)},
			{Origin: "o", HeldNote: []byte("a\n"), NewNote: []byte("b\n"), Proof: [][]byte{h[:], h[:]}, Reason: "consistency-proof-failed", FoundAt: time.Unix(7, 8)},
		}
		for i := range want {
			id, added, err := db.AddWitnessEvidence(ctx, want[i])
			if err != nil || !added {
				t.Fatalf("AddWitnessEvidence = %v, %v; want stored", added, err)
			}
			want[i].ID = id
		}
		if want[1].ID <= want[0].ID {
			t.Errorf("evidence IDs %d, %d do not increase", want[0].ID, want[1].ID)
		}
		got, err := db.ListWitnessEvidence(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("evidence (-want +got):\n%s", diff)
		}
		got, err = db.ListWitnessEvidence(ctx, want[0].ID, 10)
		if err != nil || len(got) != 1 || got[0].ID != want[1].ID {
			t.Errorf("evidence after %d = %v, %v; want only %d", want[0].ID, got, err, want[1].ID)
		}
		if _, _, err := db.AddWitnessEvidence(ctx, WitnessEvidence{Origin: "o", Proof: [][]byte{{1}}}); err == nil {
			t.Error("evidence with a 1-byte proof hash was stored")
		}
	})
}

// TestWitnessEvidenceOnce: a conflict is stored once, however often it is
// added, whatever signature lines its notes carry, concurrently or not;
// another held checkpoint, new checkpoint or origin is another record.
func TestWitnessEvidenceOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		if err := db.SwapWitnessState(ctx, nil, witnessState("o", 5)); err != nil {
			t.Fatal(err)
		}
		e := WitnessEvidence{Origin: "o", HeldNote: []byte("o\n5\nroot1\n\n\u2014 log sig1\n\u2014 witness t1\n"),
			NewNote: []byte("o\n5\nroot2\n\n\u2014 log sig2\n"), Reason: "same-size-different-root"}
		first, added, err := db.AddWitnessEvidence(ctx, e)
		if err != nil || !added {
			t.Fatalf("first add = %v, %v", added, err)
		}
		again := e
		again.HeldNote = []byte("o\n5\nroot1\n\n\u2014 log sig1\n\u2014 witness t2\n") // cosigned again later
		again.NewNote = []byte("o\n5\nroot2\n\n\u2014 log sig2\n\u2014 other x\n")     // with another line
		const n = 8
		var wg sync.WaitGroup
		ids, adds, errs := make([]int64, n), make([]bool, n), make([]error, n)
		for i := range n {
			wg.Go(func() { ids[i], adds[i], errs[i] = db.AddWitnessEvidence(ctx, again) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || adds[i] || ids[i] != first {
				t.Errorf("add %d of the same conflict = %d, %v, %v; want %d, not added", i, ids[i], adds[i], errs[i], first)
			}
		}
		for _, other := range []WitnessEvidence{
			{Origin: "o", HeldNote: []byte("o\n5\nroot1\n\n\u2014 log sig1\n"), NewNote: []byte("o\n5\nroot3\n\n\u2014 log sig3\n")},
			{Origin: "o", HeldNote: []byte("o\n6\nroot4\n\n\u2014 log sig4\n"), NewNote: e.NewNote},
			{Origin: "p", HeldNote: e.HeldNote, NewNote: e.NewNote},
		} {
			if id, added, err := db.AddWitnessEvidence(ctx, other); err != nil || !added || id == first {
				t.Errorf("add of another conflict %q = %d, %v, %v; want a new record", other.NewNote, id, added, err)
			}
		}
		all, err := db.ListWitnessEvidence(ctx, 0, 100)
		if err != nil || len(all) != 4 {
			t.Errorf("%d records, %v; want 4", len(all), err)
		}
	})
}

// TestWitnessStatesBatch: swaps in one transaction each get their own
// outcome; one that loses its compare-and-swap changes nothing and does not
// stop the others.
func TestWitnessStatesBatch(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		a1, b1 := witnessState("a", 1), witnessState("b", 1)
		for _, s := range []WitnessState{a1, b1} {
			if err := db.SwapWitnessState(ctx, nil, s); err != nil {
				t.Fatal(err)
			}
		}
		a2, a3, b2, c1 := witnessState("a", 2), witnessState("a", 3), witnessState("b", 2), witnessState("c", 1)
		errs, err := db.SwapWitnessStates(ctx, []WitnessSwap{
			{Prev: &a1, Next: a2},
			{Prev: &a1, Next: a3}, // same read state as the first: loses
			{Prev: nil, Next: b2}, // b exists: loses
			{Prev: &b1, Next: b2},
			{Prev: nil, Next: c1},
			{Prev: nil, Next: witnessState("d", 1<<63)}, // refused, changes nothing
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []error{nil, ErrWitnessStateChanged, ErrWitnessStateChanged, nil, nil, errBadState} {
			if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
				t.Errorf("swap %d: %v, want %v", i, errs[i], want)
			}
		}
		all, err := db.WitnessStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]WitnessState{a2, b2, c1}, all); diff != "" {
			t.Errorf("states (-want +got):\n%s", diff)
		}
	})
}
