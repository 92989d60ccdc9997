package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/event"
)

// TestEvidenceWitnessed runs the real log with a real witness, submits
// typed events (public, private, one erased), exports a bundle with the
// CLI and verifies it with the policy; then the tampering table: each
// change exits 1 with its reason.
func TestEvidenceWitnessed(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	first := startRealServerIn(t, dataDir)
	vkey := first.vkey
	first.stop()
	w0 := startRealWitness(t, "witness0.example", vkey)
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy", []byte(fmt.Sprintf("log %s\nwitness w0 %s %s\nquorum w0\n", vkey, w0.vkey, w0.url)), 0o644)
	srv := startRealServerIn(t, dataDir, "--witness_policy_file", policy)

	token, err := os.ReadFile(srv.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(t.Context(), client.Config{URL: srv.url, Token: strings.TrimSpace(string(token))})
	if err != nil {
		t.Fatal(err)
	}
	var private *client.EventResponse
	for i := range 5 {
		priv := i%2 == 1
		r, err := c.AddEvent(t.Context(), fmt.Appendf(nil,
			`{"type":"loan.decision","actor":"model:credit-v7","subject":"application/%d","occurred_at":"2026-06-0%dT10:00:00Z","data":{"score":%d,"applicant":"person %d"},"private":%v}`,
			1+i%2, i+1, 600+i, i, priv))
		if err != nil {
			t.Fatalf("AddEvent %d: %v", i, err)
		}
		if priv {
			private = r
		}
	}
	if _, err := c.EraseEvent(t.Context(), private.LeafHash, "dpo@example.com", "art. 17"); err != nil {
		t.Fatalf("EraseEvent: %v", err)
	}

	bundle, report := filepath.Join(dir, "bundle.json"), filepath.Join(dir, "report.md")
	r := evident(t, nil, "evidence", "export", "--log", srv.url, "--token_file", srv.tokenFile, "--subject", "application/2",
		"--from", "2026-06-01T00:00:00Z", "--to", "2026-07-01T00:00:00Z", "--log_key", vkey, "--policy", policy,
		"--out", bundle, "--report", report)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "2 events, verified") {
		t.Errorf("export: %q", r.stdout)
	}
	r = evident(t, nil, "evidence", "verify", "--log_key", vkey, "--policy", policy, bundle)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "OK: 2 events (1 private data verified, 1 erased)") || !strings.Contains(r.stdout, "w0 (witness0.example) at") {
		t.Errorf("verify: %q", r.stdout)
	}
	md, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(md), "cosigned by witness0.example at") || !strings.Contains(string(md), "erased at") {
		t.Errorf("report (%v):\n%s", err, md)
	}

	// Without --log_key: the log's own witness policy is in the bundle,
	// and the report says nobody verified it here.
	unverified := filepath.Join(dir, "unverified.json")
	wantCode(t, evident(t, nil, "evidence", "export", "--log", srv.url, "--subject", "application/1", "--out", unverified), exitOK)
	var ub event.Bundle
	if b, err := os.ReadFile(unverified); err != nil || json.Unmarshal(b, &ub) != nil {
		t.Fatalf("reading %s: %v", unverified, err)
	}
	if !strings.Contains(ub.Policy, w0.vkey) || !strings.Contains(ub.Report, "has not been verified") || len(ub.Events) != 3 || ub.Events[1].Data != nil {
		t.Errorf("unverified export: policy %q, %d events, report:\n%s", ub.Policy, len(ub.Events), ub.Report)
	}
	wantCode(t, evident(t, nil, "evidence", "verify", "--log_key", vkey, "--policy", policy, unverified), exitOK)

	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	_, w9, err := checkpoint.GenerateCosignerKey("witness9.example")
	if err != nil {
		t.Fatal(err)
	}
	otherPolicy := writeFile(t, dir, "other-policy", []byte(fmt.Sprintf("log %s\nwitness w0 %s\nwitness w9 %s\ngroup both all w0 w9\nquorum both\n",
		vkey, w0.vkey, w9)), 0o644)
	for _, tc := range []struct {
		name   string
		change func(b *event.Bundle)
		policy string
		reason string
	}{
		{"entry", func(b *event.Bundle) {
			b.Events[0].Entry = strings.Replace(b.Events[0].Entry, "credit-v7", "credit-v8", 1)
		}, policy, "bundle"},
		{"entry and leaf hash", func(b *event.Bundle) {
			b.Events[0].Entry = strings.Replace(b.Events[0].Entry, "credit-v7", "credit-v8", 1)
			b.Events[0].LeafHash = nil
		}, policy, "inclusion"},
		{"private data", func(b *event.Bundle) { b.Events[0].Data = json.RawMessage(`{"score":1}`) }, policy, "commitment"},
		{"cosignature removed", func(b *event.Bundle) {
			b.Checkpoint = b.Checkpoint[:strings.Index(b.Checkpoint, "— witness0")]
		}, policy, "quorum"},
		{"policy not met", func(*event.Bundle) {}, otherPolicy, "quorum"},
		{"consistency proof", func(b *event.Bundle) {
			for i := range b.Consistency {
				b.Consistency[i].Hashes[0][0] ^= 1
			}
		}, policy, "consistency"},
	} {
		var b event.Bundle
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		if tc.name == "consistency proof" && len(b.Consistency) == 0 {
			t.Fatal("the bundle has no consistency proof to alter")
		}
		tc.change(&b)
		altered, _ := json.Marshal(&b)
		path := writeFile(t, dir, "altered.json", altered, 0o644)
		r := evident(t, nil, "evidence", "verify", "--json", "--log_key", vkey, "--policy", tc.policy, path)
		wantCode(t, r, exitFailed)
		if got := r.json(t)["reason"]; got != tc.reason {
			t.Errorf("%s: reason %v, want %s (%s)", tc.name, got, tc.reason, r.stdout)
		}
	}
	wantCode(t, evident(t, nil, "evidence", "verify", bundle), exitUsage)
	wantCode(t, evident(t, nil, "evidence", "frobnicate"), exitUsage)
}
