package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testlog"
)

// submittedReceipt submits an entry with the real binary against l, then
// grows the log and fetches a fresh receipt with "evident receipt", so that
// the proof has several hashes. It returns the entry file, receipt file and
// policy file.
func submittedReceipt(t *testing.T, l *testlog.Log) (entryPath, receiptPath, policyPath string) {
	t.Helper()
	dir := t.TempDir()
	tokenPath := writeFile(t, dir, "token", []byte(l.Token+"\n"), 0o600)
	policyPath = writeFile(t, dir, "policy", []byte(l.Policy()), 0o644)
	for i := range 5 {
		l.Add([]byte(fmt.Sprintf("earlier entry %d", i)))
	}
	entryPath = writeFile(t, dir, "invoice.json", []byte(`{"invoice":42,"amount":"100.00 EUR"}`), 0o644)
	r := evident(t, nil, "submit", "--log", l.URL, "--token_file", tokenPath, "--log_key", l.VKey, "--policy", policyPath, entryPath)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "index 5") {
		t.Errorf("submit output %q lacks the index", r.stdout)
	}
	if _, err := os.Stat(entryPath + ".tlog-proof"); err != nil {
		t.Fatalf("submit wrote no receipt: %v", err)
	}
	for i := range 7 {
		l.Add([]byte(fmt.Sprintf("later entry %d", i)))
	}
	receiptPath = filepath.Join(dir, "fresh.tlog-proof")
	r = evident(t, nil, "receipt", "--log", l.URL, "--entry", entryPath, "--log_key", l.VKey, "--policy", policyPath, "--out", receiptPath)
	wantCode(t, r, exitOK)
	return entryPath, receiptPath, policyPath
}

func TestSubmitAndVerify(t *testing.T) {
	l := testlog.New(t, 2)
	entry, receipt, policy := submittedReceipt(t, l)
	for _, rc := range []string{entry + ".tlog-proof", receipt} {
		r := evident(t, nil, "verify", "--log_key", l.VKey, "--policy", policy, "--entry", entry, rc)
		wantCode(t, r, exitOK)
		for _, want := range []string{"OK: index 5", "origin test.example/log", "cosigned by w0 (witness0.example) at", "w1 (witness1.example) at"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("verify output %q lacks %q", r.stdout, want)
			}
		}
	}
	r := evident(t, nil, "verify", "--json", "--log_key", l.VKey, "--policy", policy, "--entry", entry, receipt)
	wantCode(t, r, exitOK)
	m := r.json(t)
	if m["ok"] != true || m["index"] != 5.0 || m["tree_size"] != 13.0 || len(m["cosignatures"].([]any)) != 2 {
		t.Errorf("verify --json = %v", m)
	}
	// The log key may be given as a file, and the entry on stdin.
	keyFile := writeFile(t, t.TempDir(), "log.vkey", []byte(l.VKey+"\n"), 0o644)
	entryBytes, _ := os.ReadFile(entry)
	r = evident(t, entryBytes, "verify", "--log_key", keyFile, "--entry", "-", receipt)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "cosignatures not checked") {
		t.Errorf("verify without policy: %q", r.stdout)
	}
	// Submitting from stdin prints the receipt, and the same bytes again are
	// a duplicate with the original index.
	tok := writeFile(t, t.TempDir(), "token", []byte(l.Token), 0o600)
	r = evident(t, entryBytes, "submit", "--log", l.URL, "--token_file", tok, "--json", "-")
	wantCode(t, r, exitOK)
	if m := r.json(t); m["index"] != 5.0 || m["duplicate"] != true || !strings.HasPrefix(m["receipt"].(string), "c2sp.org/tlog-proof@v1\n") {
		t.Errorf("submit - of a duplicate: %v", m)
	}
}

// TestVerifyTampering checks that verify fails, with the right reason, for
// each way a receipt, entry or key can be tampered with.
func TestVerifyTampering(t *testing.T) {
	l := testlog.New(t, 2)
	entryPath, receiptPath, policyPath := submittedReceipt(t, l)
	good, _ := os.ReadFile(receiptPath)
	checkTampering(t, l.VKey, entryPath, good, policyPath)
}

// checkTampering runs the tampering table against a good receipt for the
// entry in entryPath, whose checkpoint carries the log signature and then
// cosignatures by w0 and w1, both required by the policy in policyPath.
func checkTampering(t *testing.T, vkey, entryPath string, good []byte, policyPath string) {
	entry, _ := os.ReadFile(entryPath)
	r := evident(t, nil, "verify", "--log_key", vkey, "--policy", policyPath, "--entry", entryPath, writeFile(t, t.TempDir(), "good", good, 0o644))
	wantCode(t, r, exitOK)
	rc, err := checkpoint.ParseReceipt(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Proof) < 3 {
		t.Fatalf("proof has %d hashes; the test wants a deeper tree", len(rc.Proof))
	}
	body, sigs, err := checkpoint.SplitNote(rc.Checkpoint)
	if err != nil || len(sigs) != 3 {
		t.Fatalf("SplitNote: %d signature lines, %v", len(sigs), err)
	}
	cp, err := checkpoint.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	origin := cp.Origin
	cp.Size++
	editedBody := cp.Marshal()
	note := func(body []byte, sigs ...[]byte) []byte {
		return append(append(append([]byte(nil), body...), '\n'), bytes.Join(sigs, nil)...)
	}
	withCheckpoint := func(n []byte) []byte {
		r := *rc
		r.Checkpoint = n
		return r.Marshal()
	}
	otherKey := func() []byte {
		skey, _, _ := checkpoint.GenerateKey(origin)
		s, _ := checkpoint.NewSigner(skey)
		line, err := checkpoint.SignatureLine(body, s)
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	_, otherVKey, _ := checkpoint.GenerateKey(origin)

	flipped := bytes.Clone(entry)
	flipped[3] ^= 1
	proofChanged := *rc
	proofChanged.Proof = append([][]byte(nil), rc.Proof...)
	proofChanged.Proof[1] = bytes.Repeat([]byte{7}, 32)
	indexChanged := *rc
	indexChanged.Index++
	indexPastSize := *rc
	indexPastSize.Index = cp.Size - 1 // the signed size (cp.Size was incremented above)
	proofShort := *rc
	proofShort.Proof = rc.Proof[1:]
	proofLong := *rc
	proofLong.Proof = append(append([][]byte(nil), rc.Proof...), bytes.Repeat([]byte{9}, 32))

	for _, tc := range []struct {
		name    string
		entry   []byte
		receipt []byte
		logKey  string
		reason  string
		text    string
	}{
		{"entry byte flipped", flipped, good, "", "entry_mismatch", "the entry does not match this receipt (or the receipt's proof hashes or index were altered)"},
		{"proof hash changed", entry, proofChanged.Marshal(), "", "entry_mismatch", "the entry does not match this receipt"},
		// An index moved within the same proof length cannot be told from a
		// wrong entry offline.
		{"index changed", entry, indexChanged.Marshal(), "", "entry_mismatch", "the entry does not match this receipt"},
		{"index past the tree size", entry, indexPastSize.Marshal(), "", "receipt_altered", "the receipt was altered: its index"},
		{"proof hash removed", entry, proofShort.Marshal(), "", "receipt_altered", "the receipt was altered: its proof has"},
		{"proof hash added", entry, proofLong.Marshal(), "", "receipt_altered", "the receipt was altered: its proof has"},
		{"checkpoint body edited", entry, withCheckpoint(note(editedBody, sigs...)), "", "signature", "log signature"},
		{"log signature removed", entry, withCheckpoint(note(body, sigs[1:]...)), "", "signature", "log signature"},
		{"log signature by another key", entry, withCheckpoint(note(body, append([][]byte{otherKey()}, sigs[1:]...)...)), "", "signature", "log signature"},
		{"cosignature removed below quorum", entry, withCheckpoint(note(body, sigs[0], sigs[2])), "", "quorum", "missing cosignatures from w"},
		{"all cosignatures removed", entry, withCheckpoint(note(body, sigs[0])), "", "quorum", "w0, w1"},
		{"wrong log key", entry, good, otherVKey, "signature", "log signature"},
		{"not a receipt", entry, []byte("hello\n"), "", "malformed", "malformed receipt"},
		{"proof hash truncated", entry, bytes.Replace(good, []byte(base64.StdEncoding.EncodeToString(rc.Proof[0])), []byte("AAAA"), 1), "", "malformed", "malformed receipt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ep := writeFile(t, dir, "entry", tc.entry, 0o644)
			rp := writeFile(t, dir, "receipt", tc.receipt, 0o644)
			key := vkey
			if tc.logKey != "" {
				key = tc.logKey
			}
			r := evident(t, nil, "verify", "--log_key", key, "--policy", policyPath, "--entry", ep, rp)
			wantCode(t, r, exitFailed)
			if !strings.Contains(r.stderr, "FAILED: "+tc.text) && !strings.Contains(r.stderr, tc.text) {
				t.Errorf("stderr %q lacks %q", r.stderr, tc.text)
			}
			if tc.reason == "entry_mismatch" && !regexp.MustCompile(`gives root [0-9a-f]{64}, the signed checkpoint of size \d+ has root [0-9a-f]{64}$`).MatchString(strings.TrimSpace(r.stderr)) {
				t.Errorf("stderr %q does not give both roots in hex", r.stderr)
			}
			if strings.Contains(r.stderr, "not met: witness quorum not satisfied") {
				t.Errorf("stderr %q repeats itself", r.stderr)
			}
			r = evident(t, nil, "verify", "--json", "--log_key", key, "--policy", policyPath, "--entry", ep, rp)
			wantCode(t, r, exitFailed)
			if m := r.json(t); m["reason"] != tc.reason || m["ok"] != false {
				t.Errorf("--json reason = %v, want %q (%v)", m["reason"], tc.reason, m)
			}
		})
	}
}
