package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evidentlog/evident/internal/testlog"
)

func auditArgs(l *testlog.Log, extra ...string) []string {
	return append([]string{"audit", "--log", l.URL, "--log_key", l.VKey}, extra...)
}

func bulkAdd(l *testlog.Log, from, n int) {
	es := make([][]byte, n)
	for i := range es {
		es[i] = []byte(fmt.Sprintf(`{"event":%d}`, from+i))
	}
	l.Add(es...)
}

func TestAudit(t *testing.T) {
	l := testlog.New(t, 1)
	bulkAdd(l, 0, 2345)
	policy := writeFile(t, t.TempDir(), "policy", []byte(l.Policy()), 0o644)
	r := evident(t, nil, auditArgs(l, "--policy", policy, "--batch", "100")...)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "OK: all 2345 entries") {
		t.Errorf("audit output %q", r.stdout)
	}

	// With a state directory, the next audit fetches only new entries.
	state := t.TempDir()
	wantCode(t, evident(t, nil, auditArgs(l, "--state_dir", state)...), exitOK)
	bulkAdd(l, 5000, 100)
	r = evident(t, nil, auditArgs(l, "--state_dir", state, "--json")...)
	wantCode(t, r, exitOK)
	if m := r.json(t); m["entries_this_run"] != 100.0 || m["tree_size"] != 2445.0 {
		t.Errorf("resumed audit = %v, want 100 entries this run of 2445", m)
	}
	r = evident(t, nil, auditArgs(l, "--state_dir", state)...)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "has not grown") {
		t.Errorf("audit of an unchanged log: %q", r.stdout)
	}
}

// TestAuditCatchesLyingEntries: the log serves entries that do not match
// its signed root.
func TestAuditCatchesLyingEntries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(i uint64, e []byte) []byte
	}{
		{"one entry changed", func(i uint64, e []byte) []byte {
			if i == 1234 {
				return []byte("not what was logged")
			}
			return e
		}},
		{"two entries swapped", func(i uint64, e []byte) []byte {
			switch i {
			case 7:
				return []byte(`{"event":8}`)
			case 8:
				return []byte(`{"event":7}`)
			}
			return e
		}},
		{"last entry changed", func(i uint64, e []byte) []byte {
			if i == 1999 {
				return append(bytes.Clone(e), ' ')
			}
			return e
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := testlog.New(t, 0)
			bulkAdd(l, 0, 2000)
			l.SetTamperEntry(tc.tamper)
			state := t.TempDir()
			r := evident(t, nil, auditArgs(l, "--state_dir", state)...)
			wantCode(t, r, exitFailed)
			if !strings.Contains(r.stderr, "SECURITY ERROR: the 2000 entries the log serves hash to root") {
				t.Errorf("stderr %q", r.stderr)
			}
			if files, _ := filepath.Glob(filepath.Join(state, "evidence-*.json")); len(files) != 1 {
				t.Errorf("%d evidence files, want 1", len(files))
			}
		})
	}
}

// TestAuditResumesAfterFailure: a log that fails half-way leaves progress
// in the state directory; the next run continues from there.
func TestAuditResumesAfterFailure(t *testing.T) {
	l := testlog.New(t, 0)
	bulkAdd(l, 0, 3000)
	l.SetFailEntriesFrom(2000)
	state := t.TempDir()
	r := evident(t, nil, auditArgs(l, "--state_dir", state, "--batch", "250", "--parallel", "1")...)
	// The log's own refusal (500) is a finding, exit 1, naming the first
	// entry it cannot serve.
	wantCode(t, r, exitFailed)
	if !strings.Contains(r.stderr, "the log cannot serve entry 2000") || !strings.Contains(r.stderr, "HTTP 500") {
		t.Errorf("stderr %q", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "audit.json")); err != nil {
		t.Fatalf("no progress saved: %v", err)
	}
	l.SetFailEntriesFrom(0)
	r = evident(t, nil, auditArgs(l, "--state_dir", state, "--json")...)
	wantCode(t, r, exitOK)
	if m := r.json(t); m["entries_this_run"] != 1000.0 {
		t.Errorf("resumed audit = %v, want 1000 entries this run", m)
	}
	// A fork at the audited size is caught from the state.
	l.Rewrite(10, []byte("rewritten"))
	l.Republish()
	r = evident(t, nil, auditArgs(l, "--state_dir", state)...)
	wantCode(t, r, exitFailed)
	if !strings.Contains(r.stderr, "SECURITY ERROR: the log forked") {
		t.Errorf("stderr %q", r.stderr)
	}
}
