package client

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "receipts")
	if done, err := ReadJournal(path); err != nil || len(done) != 0 {
		t.Fatalf("missing journal = %v, %v; want empty", done, err)
	}
	want := map[int]string{}
	for _, batch := range []int{3, 250} { // 250 crosses the sync threshold twice
		j, err := OpenJournal(path)
		if err != nil {
			t.Fatal(err)
		}
		for range batch {
			n := len(want) + 1
			h := fmt.Sprintf("%064x", n)
			if err := j.Append(JournalRecord{Line: n, Index: uint64(n - 1), LeafHash: h, Receipt: "r\n"}); err != nil {
				t.Fatal(err)
			}
			want[n] = h
		}
		if err := j.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := ReadJournal(path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("journal after %d records (-want +got):\n%s", len(want), diff)
		}
	}
	// A record cut short is dropped from the file, and appending goes on.
	before, _ := os.ReadFile(path)
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"line":999,"index":`)
	f.Close()
	if got, err := ReadJournal(path); err != nil || len(got) != len(want) {
		t.Fatalf("journal with a partial record: %d records, %v", len(got), err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Errorf("partial record not truncated")
	}
	// Two records for one line are refused.
	j, _ := OpenJournal(path)
	j.Append(JournalRecord{Line: 1, LeafHash: strings.Repeat("0", 64)})
	j.Close()
	if _, err := ReadJournal(path); err == nil || !strings.Contains(err.Error(), "two records for input line 1") {
		t.Errorf("duplicate line: %v", err)
	}
}

// FuzzReadJournal feeds arbitrary receipts files to ReadJournal: it
// must never panic, and what it accepts must be well-formed records.
func FuzzReadJournal(f *testing.F) {
	f.Add([]byte(`{"line":1,"index":0,"leaf_hash":"ab","receipt":"x"}` + "\n"))
	f.Add([]byte(`{"line":3,"index":9,"leaf_hash":"0000000000000000000000000000000000000000000000000000000000000000","receipt":"r"}` + "\n" + `{"line":3`))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"line":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "r")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		done, err := ReadJournal(p)
		if err != nil {
			return
		}
		for line, h := range done {
			if line < 1 || len(h) != 64 {
				t.Errorf("accepted line %d hash %q", line, h)
			}
		}
		// An accepted file ends with a complete record (or is empty).
		after, _ := os.ReadFile(p)
		if len(after) > 0 && after[len(after)-1] != '\n' {
			t.Errorf("file not truncated to its last complete record: %q", after)
		}
	})
}

// TestJournalRecordTooLong: a line longer than a record can be is refused
// (the journal is read as a stream, one record at a time).
func TestJournalRecordTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "receipts")
	good := `{"line":1,"index":0,"leaf_hash":"` + strings.Repeat("0", 64) + `","receipt":"r"}` + "\n"
	long := `{"line":2,"receipt":"` + strings.Repeat("x", maxJournalRecord) + `"}` + "\n"
	if err := os.WriteFile(path, []byte(good+long), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJournal(path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ReadJournal with a %d-byte line: %v", len(long), err)
	}
}
