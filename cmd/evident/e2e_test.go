package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/internal/testproc"
)

// realServer is a running evident-server process (the real log: Trillian
// in-process on SQLite files in a temporary data directory).
type realServer struct {
	url, vkey, tokenFile string
	proc                 *testproc.Proc
}

// startRealServer builds nothing (TestMain did) and starts the server on a
// free loopback port, reading its vkey, token path and URL from its output.
func startRealServer(t testing.TB, flags ...string) *realServer {
	t.Helper()
	return startRealServerIn(t, filepath.Join(t.TempDir(), "data"), flags...)
}

// stop sends SIGTERM and waits for the server to exit (killing it after
// 30s).
func (s *realServer) stop() {
	s.proc.Stop(30 * time.Second)
}

// startRealServerIn starts the server on dataDir.
func startRealServerIn(t testing.TB, dataDir string, flags ...string) *realServer {
	t.Helper()
	if serverBuildErr != nil {
		t.Fatal(serverBuildErr)
	}
	args := append([]string{"--data_dir", dataDir, "--listen", "127.0.0.1:0"}, flags...)
	p := testproc.Start(t, serverBin, args...)
	s := &realServer{url: p.URL, vkey: p.Lines["vkey"], tokenFile: p.Lines["write token"], proc: p}
	t.Cleanup(s.stop)
	return s
}

// cosignAll appends cosignatures by the given witnesses to the receipt's
// checkpoint, as witnesses would.
func cosignAll(t *testing.T, receipt []byte, witnesses ...string) []byte {
	t.Helper()
	rc, err := checkpoint.ParseReceipt(receipt)
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := checkpoint.SplitNote(rc.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	for _, skey := range witnesses {
		s, err := checkpoint.NewCosigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		line, err := checkpoint.SignatureLine(body, s)
		if err != nil {
			t.Fatal(err)
		}
		if rc.Checkpoint, err = checkpoint.AppendSignatures(rc.Checkpoint, line); err != nil {
			t.Fatal(err)
		}
	}
	return rc.Marshal()
}

// TestE2EVerify submits to the real server with the real CLI, verifies the
// receipts, and runs the tampering table on a real receipt (cosigned by two
// test witnesses, since the server runs without witnesses here).
func TestE2EVerify(t *testing.T) {
	srv := startRealServer(t)
	dir := t.TempDir()
	var lines bytes.Buffer
	for i := range 40 {
		fmt.Fprintf(&lines, `{"approval":%d}`+"\n", i)
	}
	jsonl := writeFile(t, dir, "earlier.jsonl", lines.Bytes(), 0o644)
	r := evident(t, nil, "submit", "--log", srv.url, "--token_file", srv.tokenFile, "--log_key", srv.vkey, "--jsonl", jsonl)
	wantCode(t, r, exitOK)
	entry := writeFile(t, dir, "contract.pdf", []byte("%PDF-1.7 a signed contract"), 0o644)
	r = evident(t, nil, "submit", "--log", srv.url, "--token_file", srv.tokenFile, "--log_key", srv.vkey, "--json", entry)
	wantCode(t, r, exitOK)
	if m := r.json(t); m["index"] != 40.0 || m["verified"] != true {
		t.Errorf("submit = %v", m)
	}
	r = evident(t, nil, "verify", "--log_key", srv.vkey, "--entry", entry, entry+".tlog-proof")
	wantCode(t, r, exitOK)
	if !strings.HasPrefix(r.stdout, "OK: index 40, tree size ") {
		t.Errorf("verify: %q", r.stdout)
	}
	// Grow the log, then fetch a fresh receipt with a longer proof.
	lines.Reset()
	for i := range 100 {
		fmt.Fprintf(&lines, `{"payment":%d}`+"\n", i)
	}
	wantCode(t, evident(t, nil, "submit", "--log", srv.url, "--token_file", srv.tokenFile, "--jsonl", writeFile(t, dir, "later.jsonl", lines.Bytes(), 0o644)), exitOK)
	r = evident(t, nil, "receipt", "--log", srv.url, "--entry", entry, "--log_key", srv.vkey)
	wantCode(t, r, exitOK)
	w0s, w0v, _ := keyPair(t, "witness0.example")
	w1s, w1v, _ := keyPair(t, "witness1.example")
	policy := writeFile(t, dir, "policy", []byte(fmt.Sprintf("log %s\nwitness w0 %s\nwitness w1 %s\ngroup both all w0 w1\nquorum both\n", srv.vkey, w0v, w1v)), 0o644)
	checkTampering(t, srv.vkey, entry, cosignAll(t, []byte(r.stdout), w0s, w1s), policy)
}

// TestE2ESubmitJSONLResume: 10,000 lines to the real server, the CLI killed
// part-way and resumed; every line ends with exactly one verifying receipt.
func TestE2ESubmitJSONLResume(t *testing.T) {
	const n = 10000
	srv := startRealServer(t)
	dir := t.TempDir()
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, `{"event":"config-change","id":%d,"by":"user%d"}`+"\n", i, i%37)
	}
	input := writeFile(t, dir, "events.jsonl", in.Bytes(), 0o644)
	receipts := input + ".receipts"
	args := []string{"submit", "--log", srv.url, "--token_file", srv.tokenFile, "--log_key", srv.vkey, "--jsonl", input, "--concurrency", "200"}
	killWhen(t, func() bool { return countLines(receipts) >= 1000 }, args...)
	first := countLines(receipts)
	if first >= n {
		t.Fatalf("all %d receipts were written before the kill", first)
	}
	r := evident(t, nil, append(args, "--json")...)
	wantCode(t, r, exitOK)
	if m := r.json(t); m["already_had_receipts"] != float64(first) || m["submitted"] != float64(n-first) || m["failed"] != 0.0 {
		t.Errorf("resumed run summary %v, want %d already done", m, first)
	}
	checkReceipts(t, srv.vkey, in.Bytes(), receipts, n)
}

// TestE2EMonitorAudit follows and audits the real server as it grows.
func TestE2EMonitorAudit(t *testing.T) {
	srv := startRealServer(t)
	dir := t.TempDir()
	monState, auditState := filepath.Join(dir, "monitor"), filepath.Join(dir, "audit")
	for round := range 3 {
		var lines bytes.Buffer
		for i := range 700 {
			fmt.Fprintf(&lines, `{"round":%d,"decision":%d}`+"\n", round, i)
		}
		wantCode(t, evident(t, nil, "submit", "--log", srv.url, "--token_file", srv.tokenFile, "--concurrency", "100",
			"--jsonl", writeFile(t, dir, fmt.Sprintf("r%d.jsonl", round), lines.Bytes(), 0o644)), exitOK)
		r := evident(t, nil, "monitor", "--once", "--log", srv.url, "--log_key", srv.vkey, "--state_dir", monState)
		wantCode(t, r, exitOK)
		r = evident(t, nil, "audit", "--log", srv.url, "--log_key", srv.vkey, "--state_dir", auditState, "--json")
		wantCode(t, r, exitOK)
		m := r.json(t)
		if m["tree_size"].(float64) < float64(700*(round+1)) || m["entries_this_run"].(float64) > m["tree_size"].(float64)-float64(700*round) {
			t.Errorf("round %d: audit %v", round, m)
		}
	}
	// A fresh audit without state recomputes everything.
	r := evident(t, nil, "audit", "--log", srv.url, "--log_key", srv.vkey, "--json")
	wantCode(t, r, exitOK)
	if m := r.json(t); m["entries_this_run"] != m["tree_size"] {
		t.Errorf("fresh audit %v", m)
	}
	// The wrong key fails verification.
	_, other, _ := checkpoint.GenerateKey(strings.SplitN(srv.vkey, "+", 2)[0])
	wantCode(t, evident(t, nil, "audit", "--log", srv.url, "--log_key", other), exitFailed)
	wantCode(t, evident(t, nil, "monitor", "--once", "--log", srv.url, "--log_key", other, "--state_dir", t.TempDir()), exitFailed)
	if _, err := os.Stat(filepath.Join(monState, "checkpoints")); err != nil {
		t.Error(err)
	}
}

// TestE2EClient runs the client's methods against the real server and
// verifies what they return with package checkpoint.
func TestE2EClient(t *testing.T) {
	srv := startRealServer(t)
	ctx := t.Context()
	tok, err := os.ReadFile(srv.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(ctx, client.Config{URL: srv.url, Token: strings.TrimSpace(string(tok))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key, err := checkpoint.NewVerifier(srv.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health = %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil || info.VKey != srv.vkey || info.Origin != key.Name() {
		t.Errorf("Info = %+v, %v; want vkey %s", info, err, srv.vkey)
	}
	var entries [][]byte
	var last *client.AddResponse
	for i := range 5 {
		e := fmt.Appendf(nil, `{"client-e2e":%d}`, i)
		if last, err = c.AddEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	rc, err := checkpoint.ParseReceipt(last.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.VerifyReceipt(rc, entries[4], key, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		lh := checkpoint.LeafHash(e)
		p, err := c.InclusionProof(ctx, lh, s.Size)
		if err != nil || p.Index != uint64(i) {
			t.Fatalf("InclusionProof(entry %d) = %+v, %v", i, p, err)
		}
		if err := checkpoint.VerifyInclusion(p.Index, s.Size, lh, p.Hashes, s.Hash); err != nil {
			t.Errorf("InclusionProof(entry %d) does not verify: %v", i, err)
		}
		pi, err := c.InclusionProofByIndex(ctx, uint64(i), s.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkpoint.VerifyInclusion(uint64(i), s.Size, lh, pi.Hashes, s.Hash); err != nil {
			t.Errorf("InclusionProofByIndex(%d) does not verify: %v", i, err)
		}
		got, err := c.Entry(ctx, uint64(i))
		if err != nil || !bytes.Equal(got, e) {
			t.Errorf("Entry(%d) = %q, %v; want %q", i, got, err, e)
		}
	}
	es, err := c.Entries(ctx, 0, 5)
	if err != nil || len(es) != 5 || !bytes.Equal(es[3], entries[3]) {
		t.Errorf("Entries = %q, %v", es, err)
	}
	if _, err := c.Entry(ctx, 1000); !client.IsNotFound(err) {
		t.Errorf("Entry past the tree: %v, want 404", err)
	}
	// An earlier checkpoint from the archive is consistent with the latest.
	old, err := c.CheckpointAt(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	so, err := checkpoint.Open(old, key)
	if err != nil || so.Size != 1 {
		t.Fatalf("CheckpointAt(1) = %+v, %v", so, err)
	}
	cp, err := c.ConsistencyProof(ctx, 1, s.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.VerifyConsistency(1, s.Size, so.Hash, s.Hash, cp); err != nil {
		t.Errorf("consistency 1 -> %d: %v", s.Size, err)
	}
	rb, err := c.Receipt(ctx, checkpoint.LeafHash(entries[0]), 0)
	if err != nil {
		t.Fatal(err)
	}
	if r0, err := checkpoint.ParseReceipt(rb); err != nil {
		t.Error(err)
	} else if _, err := checkpoint.VerifyReceipt(r0, entries[0], key, nil); err != nil {
		t.Errorf("Receipt does not verify: %v", err)
	}
}
