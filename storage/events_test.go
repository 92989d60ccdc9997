package storage

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testEvent makes a stored event numbered i.
func testEvent(i int, subject string, private bool) *StoredEvent {
	entry := fmt.Appendf(nil, `{"n":%d}`, i)
	e := &StoredEvent{
		LeafHash:   sha256.Sum256(entry),
		Entry:      entry,
		Type:       []string{"invoice.approved", "payment.sent"}[i%2],
		Actor:      []string{"alice", "bob", "carol"}[i%3],
		Subject:    subject,
		OccurredAt: time.Date(2026, 1, 1+i, 12, 0, 0, 123456000, time.UTC),
		ReceivedAt: time.Date(2026, 2, 1, 0, 0, i, 0, time.UTC),
		Private:    private,
	}
	if private {
		e.Data = fmt.Appendf(nil, `{"secret":"PERSONAL-DATA-%d"}`, i)
		e.Salt = bytes.Repeat([]byte{byte(i)}, 32)
	}
	return e
}

func TestEventsStoreAndQuery(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		var all []StoredEvent
		for i := range 10 {
			e := testEvent(i, []string{"invoice/1", "invoice/2"}[i%2], i%3 == 0)
			if i == 4 {
				e.EventID = "erp-4"
			}
			s, existing, err := db.AddEvent(ctx, e)
			if err != nil || existing {
				t.Fatalf("AddEvent %d: %v, existing %v", i, err, existing)
			}
			e.Seq = s.Seq
			if diff := cmp.Diff(e, s); diff != "" {
				t.Fatalf("stored event %d differs (-want +got):\n%s", i, diff)
			}
			all = append(all, *s)
		}
		// The same id again returns the stored event, and stores nothing.
		again := testEvent(99, "x", false)
		again.EventID = "erp-4"
		s, existing, err := db.AddEvent(ctx, again)
		if err != nil || !existing || s.LeafHash != all[4].LeafHash {
			t.Errorf("AddEvent with a stored id: %+v, %v, %v; want event 4, existing", s, existing, err)
		}
		// The same entry again too.
		s, existing, err = db.AddEvent(ctx, testEvent(3, "invoice/2", true))
		if err != nil || !existing || s.Seq != all[3].Seq {
			t.Errorf("AddEvent of a stored entry: %v, %v; want event 3, existing", existing, err)
		}
		if got, err := db.EventByID(ctx, "erp-4"); err != nil || got.Seq != all[4].Seq {
			t.Errorf("EventByID: %v, %v", got, err)
		}
		if _, err := db.Event(ctx, [32]byte{1}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Event of an unknown hash: %v, want ErrNotFound", err)
		}

		seqs := func(es []StoredEvent) []int64 {
			var out []int64
			for _, e := range es {
				out = append(out, e.Seq)
			}
			return out
		}
		pick := func(idx ...int) []int64 {
			var out []int64
			for _, i := range idx {
				out = append(out, all[i].Seq)
			}
			return out
		}
		day := func(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }
		for _, tc := range []struct {
			name string
			q    EventQuery
			want []int64
		}{
			{"all", EventQuery{Limit: 100}, pick(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
			{"subject", EventQuery{Subject: "invoice/1", Limit: 100}, pick(0, 2, 4, 6, 8)},
			{"type", EventQuery{Type: "payment.sent", Limit: 100}, pick(1, 3, 5, 7, 9)},
			{"actor", EventQuery{Actor: "carol", Limit: 100}, pick(2, 5, 8)},
			{"all three", EventQuery{Subject: "invoice/2", Type: "payment.sent", Actor: "bob", Limit: 100}, pick(1, 7)},
			// Events i occurred on January 1+i at 12:00:00.123456.
			{"from", EventQuery{From: day(8), Limit: 100}, pick(7, 8, 9)},
			{"to (exclusive)", EventQuery{To: time.Date(2026, 1, 3, 12, 0, 0, 123456000, time.UTC), Limit: 100}, pick(0, 1)},
			{"range", EventQuery{Subject: "invoice/1", From: day(3), To: day(8), Limit: 100}, pick(2, 4, 6)},
			{"page 1", EventQuery{Limit: 3}, pick(0, 1, 2)},
			{"page 2", EventQuery{After: all[2].Seq, Limit: 3}, pick(3, 4, 5)},
			{"last page", EventQuery{After: all[8].Seq, Limit: 3}, pick(9)},
			{"nothing", EventQuery{Subject: "invoice/3", Limit: 3}, nil},
			{"subject is exact", EventQuery{Subject: "INVOICE/1", Limit: 3}, nil},
		} {
			got, err := db.Events(ctx, tc.q)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if diff := cmp.Diff(tc.want, seqs(got)); diff != "" {
				t.Errorf("%s: seqs differ (-want +got):\n%s", tc.name, diff)
			}
		}
	})
}

func TestEraseEvent(t *testing.T) {
	eachDB(t, func(t *testing.T, db *DB) {
		ctx := t.Context()
		priv, pub := testEvent(0, "s", true), testEvent(1, "s", false)
		for _, e := range []*StoredEvent{priv, pub} {
			if _, _, err := db.AddEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		at := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
		e, err := db.EraseEvent(ctx, priv.LeafHash, at, "dpo@example.com", "GDPR art. 17 request 42")
		if err != nil {
			t.Fatalf("EraseEvent: %v", err)
		}
		if e.Data != nil || e.Salt != nil || !e.ErasedAt.Equal(at) || e.ErasedBy != "dpo@example.com" || e.EraseReason != "GDPR art. 17 request 42" {
			t.Errorf("erased event: %+v", e)
		}
		if !bytes.Equal(e.Entry, priv.Entry) {
			t.Errorf("erasing changed the entry")
		}
		// Erasing is one-way; the first record stands.
		if _, err := db.EraseEvent(ctx, priv.LeafHash, at.Add(time.Hour), "someone else", ""); !errors.Is(err, ErrErased) {
			t.Errorf("erasing again: %v, want ErrErased", err)
		}
		if _, err := db.EraseEvent(ctx, pub.LeafHash, at, "dpo", ""); !errors.Is(err, ErrNotPrivate) {
			t.Errorf("erasing a public event: %v, want ErrNotPrivate", err)
		}
		if _, err := db.EraseEvent(ctx, [32]byte{9}, at, "dpo", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("erasing an unknown event: %v, want ErrNotFound", err)
		}
		got, err := db.Event(ctx, priv.LeafHash)
		if err != nil || got.Data != nil || got.Salt != nil || got.ErasedBy != "dpo@example.com" {
			t.Errorf("after erasure: %+v, %v", got, err)
		}
	})
}

// TestEraseLeavesNoTrace checks that erased data is in no file of an
// SQLite database: neither the database nor its write-ahead log.
func TestEraseLeavesNoTrace(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenSQLite(t.Context(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := testEvent(7, "s", true)
	e.Data = bytes.Repeat([]byte("PERSONAL-DATA-7 "), 300) // overflow pages too
	if _, _, err := db.AddEvent(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	grep := func() []string {
		var found []string
		files, _ := filepath.Glob(filepath.Join(dir, "state.db*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("PERSONAL-DATA-7")) || bytes.Contains(b, e.Salt) {
				found = append(found, filepath.Base(f))
			}
		}
		return found
	}
	if len(grep()) == 0 {
		t.Fatal("the data is in no file before erasure: the test cannot see it")
	}
	if _, err := db.EraseEvent(t.Context(), e.LeafHash, time.Now(), "dpo", ""); err != nil {
		t.Fatal(err)
	}
	if found := grep(); len(found) > 0 {
		t.Errorf("erased data is still in %v", found)
	}
}
