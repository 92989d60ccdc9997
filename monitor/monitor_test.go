package monitor

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testlog"
)

func newMonitor(t *testing.T, l *testlog.Log, dir string, policy *checkpoint.Policy) *Monitor {
	t.Helper()
	m, err := New(t.Context(), Config{Client: logClient(t, l), LogKey: l.Verifier, Policy: policy, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func check(t *testing.T, m *Monitor) *Result {
	t.Helper()
	res, err := m.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestMonitorHonestLog(t *testing.T) {
	l := testlog.New(t, 0)
	dir := t.TempDir()
	m := newMonitor(t, l, dir, nil)
	for round := range 4 {
		addEntries(l, round*10, 3+round)
		res := check(t, m)
		if !res.New || res.Stale || res.Kept != round+1 || res.Checkpoint.Size != l.Size() {
			t.Errorf("round %d: %+v", round, res)
		}
	}
	if res := check(t, m); res.New || res.Kept != 4 {
		t.Errorf("unchanged log: %+v", res)
	}
	// A new Monitor on the same directory keeps what the first one kept.
	m2 := newMonitor(t, l, dir, nil)
	if m2.Kept() != 4 {
		t.Errorf("reloaded monitor keeps %d checkpoints, want 4", m2.Kept())
	}
	if res := check(t, m2); res.New {
		t.Errorf("reloaded monitor: %+v", res)
	}
}

// TestMonitorStale: a log that serves an older checkpoint after a newer one
// is consistent, but the result says so.
func TestMonitorStale(t *testing.T) {
	l := testlog.New(t, 0)
	addEntries(l, 0, 5)
	addEntries(l, 5, 5)
	m := newMonitor(t, l, t.TempDir(), nil)
	check(t, m)
	l.ServeOld(5)
	res := check(t, m)
	if !res.New || !res.Stale || res.Newer != 10 || res.Checkpoint.Size != 5 {
		t.Errorf("stale checkpoint: %+v", res)
	}
}

// TestMonitorViolations: each way a log can contradict itself gives its
// typed error with evidence, and nothing is kept.
func TestMonitorViolations(t *testing.T) {
	for _, tc := range []struct {
		name        string
		misbehave   func(l *testlog.Log)
		problem     string
		wantProof   bool
		fork, incon bool
		wantKept    int // the archive is checked after the new checkpoint is kept
	}{
		{"history rewritten, log grown", func(l *testlog.Log) {
			l.Rewrite(2, []byte("a different entry 2"))
			addEntries(l, 100, 3)
		}, "are not consistent", true, false, true, 1},
		{"same size, other root", func(l *testlog.Log) {
			l.Rewrite(4, []byte("rewritten"))
			l.Republish()
		}, "two signed checkpoints of size 9 with different roots", false, true, false, 1},
		{"archive changed", func(l *testlog.Log) {
			addEntries(l, 9, 5)
			l.SetArchive(9, [32]byte{1, 2, 3})
		}, "different checkpoint for size 9", false, true, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := testlog.New(t, 0)
			addEntries(l, 0, 9)
			dir := t.TempDir()
			m := newMonitor(t, l, dir, nil)
			check(t, m)
			tc.misbehave(l)
			_, err := m.Check(t.Context())
			if !errors.Is(err, ErrViolation) || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("Check = %v, want a violation with %q", err, tc.problem)
			}
			var fe *ForkError
			var ie *InconsistencyError
			if got := errors.As(err, &fe); got != tc.fork {
				t.Errorf("ForkError: %v, want %v", got, tc.fork)
			}
			if got := errors.As(err, &ie); got != tc.incon {
				t.Errorf("InconsistencyError: %v, want %v", got, tc.incon)
			}
			if tc.incon && !errors.Is(err, checkpoint.ErrConsistency) {
				t.Errorf("%v does not wrap checkpoint.ErrConsistency", err)
			}
			ev := EvidenceOf(err)
			if ev == nil || ev.Problem != err.Error() || len(ev.Checkpoints) != 2 || (len(ev.Proof) > 0) != tc.wantProof || ev.Log == "" {
				t.Fatalf("evidence %+v", ev)
			}
			// Both checkpoints in the evidence verify with the log key.
			for _, n := range ev.Checkpoints {
				if _, err := checkpoint.Open([]byte(n), l.Verifier); err != nil {
					t.Errorf("evidence checkpoint does not verify: %v", err)
				}
			}
			path, err := ev.WriteFile(filepath.Join(dir, "evidence"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			var back Evidence
			if err := json.Unmarshal(b, &back); err != nil || back.Problem != ev.Problem || len(back.Checkpoints) != 2 {
				t.Errorf("evidence file %s: %v %+v", path, err, back)
			}
			if m.Kept() != tc.wantKept {
				t.Errorf("kept %d checkpoints after the violation, want %d", m.Kept(), tc.wantKept)
			}
		})
	}
}

// TestMonitorVerifyError: a checkpoint without the quorum, or signed with
// another key, is a *VerifyError wrapping the checkpoint error.
func TestMonitorVerifyError(t *testing.T) {
	l := testlog.New(t, 0) // no witness cosigns
	addEntries(l, 0, 3)
	_, wv, err := checkpoint.GenerateCosignerKey("witness9.example")
	if err != nil {
		t.Fatal(err)
	}
	other := testlog.New(t, 1)
	policy, err := checkpoint.ParsePolicy([]byte("witness w9 " + wv + "\nquorum w9\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		key    *testlog.Log
		policy *checkpoint.Policy
		want   error
	}{
		{"quorum not met", l, policy, checkpoint.ErrQuorum},
		{"another log key", other, nil, checkpoint.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(t.Context(), Config{Client: logClient(t, l), LogKey: tc.key.Verifier, Policy: tc.policy, StateDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Check(t.Context())
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, tc.want) || errors.Is(err, ErrViolation) {
				t.Errorf("Check = %v, want a *VerifyError wrapping %v", err, tc.want)
			}
			if m.Kept() != 0 {
				t.Errorf("kept an unverified checkpoint")
			}
		})
	}
}

// TestMonitorStateDir: a file in the state directory that is not a
// checkpoint of its size signed by the log key stops New.
func TestMonitorStateDir(t *testing.T) {
	l := testlog.New(t, 0)
	addEntries(l, 0, 4)
	dir := t.TempDir()
	check(t, newMonitor(t, l, dir, nil))
	// Temporary and foreign names are ignored.
	os.WriteFile(filepath.Join(dir, "checkpoints", ".4.tmp123"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "checkpoints", "04"), []byte("x"), 0o644)
	newMonitor(t, l, dir, nil)
	b, _ := os.ReadFile(filepath.Join(dir, "checkpoints", "4"))
	os.WriteFile(filepath.Join(dir, "checkpoints", "5"), b, 0o644)
	if _, err := New(t.Context(), Config{Client: logClient(t, l), LogKey: l.Verifier, StateDir: dir}); err == nil || !strings.Contains(err.Error(), "not a checkpoint of size 5") {
		t.Errorf("New with a misnamed checkpoint: %v", err)
	}
}

// TestMonitorProofRefused: a log that answers a 4xx (not 429) or garbage
// instead of a consistency proof between two checkpoints it signed hides a
// possible fork: that is a violation with both notes as evidence. A 5xx is
// a passing failure.
func TestMonitorProofRefused(t *testing.T) {
	for _, tc := range []struct {
		code      int
		violation bool
	}{
		{400, true}, {404, true}, {403, true}, {500, false},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			l := testlog.New(t, 0)
			addEntries(l, 0, 3)
			m, err := New(t.Context(), Config{Client: logClient(t, l), LogKey: l.Verifier, StateDir: t.TempDir(), RefusalGrace: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			check(t, m)
			addEntries(l, 3, 5)
			l.SetRefuseConsistency(tc.code)
			_, err = m.Check(t.Context())
			if got := errors.Is(err, ErrViolation); got != tc.violation {
				t.Fatalf("Check = %v; violation %v, want %v", err, got, tc.violation)
			}
			if !tc.violation {
				return
			}
			var ie *InconsistencyError
			if !errors.As(err, &ie) || ie.OldSize != 3 || ie.NewSize != 8 || !strings.Contains(err.Error(), "refuses to prove consistency between checkpoints it signed") {
				t.Errorf("Check = %v", err)
			}
			ev := EvidenceOf(err)
			if ev == nil || len(ev.Checkpoints) != 2 {
				t.Fatalf("evidence %+v", ev)
			}
			for i, want := range []uint64{3, 8} {
				if s, err := checkpoint.Open([]byte(ev.Checkpoints[i]), l.Verifier); err != nil || s.Size != want {
					t.Errorf("evidence checkpoint %d: %+v, %v; want size %d signed by the log", i, s, err, want)
				}
			}
			if m.Kept() != 1 {
				t.Errorf("kept %d checkpoints, want 1", m.Kept())
			}
		})
	}
}

// TestMonitorOpensOnlyWhatItNeeds: New opens only the largest kept
// checkpoint and Check only the neighbours of the new one; a damaged file
// elsewhere is found (ErrBadState) only when a check needs it.
func TestMonitorOpensOnlyWhatItNeeds(t *testing.T) {
	l := testlog.New(t, 0)
	dir := t.TempDir()
	m := newMonitor(t, l, dir, nil)
	for i := range 5 {
		addEntries(l, i*10, 10)
		check(t, m)
	}
	// Damage the checkpoint of size 20: neither the largest (50) nor a
	// neighbour of 60.
	damaged := filepath.Join(dir, "checkpoints", "20")
	if err := os.WriteFile(damaged, []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	m = newMonitor(t, l, dir, nil)
	addEntries(l, 50, 10)
	if res := check(t, m); !res.New || res.Kept != 6 {
		t.Errorf("check = %+v", res)
	}
	// A stale checkpoint of size 25 would be compared with 20: the damage
	// is found then.
	l.SetArchive(25, [32]byte{})
	l.ServeOld(25)
	if _, err := m.Check(t.Context()); !errors.Is(err, ErrBadState) || !strings.Contains(err.Error(), "not a checkpoint of size 20") {
		t.Errorf("Check needing the damaged file = %v, want ErrBadState", err)
	}
	// The largest checkpoint damaged, or signed by another log, stops New.
	other := testlog.New(t, 0)
	addEntries(other, 0, 70)
	b, err := logClient(t, other).Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "checkpoints", "70"), b, 0o644)
	if _, err := New(t.Context(), Config{Client: logClient(t, l), LogKey: l.Verifier, StateDir: dir}); !errors.Is(err, ErrBadState) {
		t.Errorf("New with another log's checkpoint = %v, want ErrBadState", err)
	}
}

// TestMonitorLogKeyNotInPolicy: a log key that is not among the policy's
// log lines is refused, as verify refuses it.
func TestMonitorLogKeyNotInPolicy(t *testing.T) {
	l := testlog.New(t, 1)
	addEntries(l, 0, 3)
	other := testlog.New(t, 0)
	policy, err := checkpoint.ParsePolicy([]byte("log " + other.VKey + "\nwitness w0 " + l.WitnessVKeys[0] + "\nquorum w0\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := newMonitor(t, l, t.TempDir(), policy)
	_, err = m.Check(t.Context())
	var ve *VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, checkpoint.ErrSignature) || !strings.Contains(err.Error(), "not one of the policy's log lines") {
		t.Errorf("Check = %v, want a *VerifyError: key not in the policy", err)
	}
	_, err = newAuditor(t, l, AuditorConfig{Policy: policy}).Audit(t.Context())
	if !errors.As(err, &ve) || !errors.Is(err, checkpoint.ErrSignature) {
		t.Errorf("Audit = %v, want a *VerifyError: key not in the policy", err)
	}
}

// TestMonitorRefusalPasses: a refusal that ends within RefusalGrace (a
// lagging personality catching up) is not a violation.
func TestMonitorRefusalPasses(t *testing.T) {
	l := testlog.New(t, 0)
	addEntries(l, 0, 3)
	m, err := New(t.Context(), Config{Client: logClient(t, l), LogKey: l.Verifier, StateDir: t.TempDir(), RefusalGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	check(t, m)
	addEntries(l, 3, 5)
	l.SetRefuseConsistency(400)
	go func() {
		for l.Requests("GET /v1/proof/consistency") < 1 {
			time.Sleep(time.Millisecond) // polling for the first refusal, not timing anything
		}
		l.SetRefuseConsistency(0)
	}()
	if res := check(t, m); !res.New || res.Checkpoint.Size != 8 {
		t.Errorf("check = %+v", res)
	}
	if n := l.Requests("GET /v1/proof/consistency"); n < 2 {
		t.Errorf("%d proof requests, want a refusal then a proof", n)
	}
}
