package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// TestE2EExportTiles exports a real server's log as static files, serves
// them with a plain file server, and audits and monitors that static copy;
// then the log grows, --resume updates the copy (reusing its full tiles),
// and the copy is audited again. A damaged tile on disk is caught.
func TestE2EExportTiles(t *testing.T) {
	srv := startRealServer(t)
	dir := t.TempDir()
	static := filepath.Join(dir, "static")
	fileServer := httptest.NewServer(http.FileServer(http.Dir(static)))
	defer fileServer.Close()
	monState := filepath.Join(dir, "monitor")
	submit := func(round, n int) {
		var lines bytes.Buffer
		for i := range n {
			fmt.Fprintf(&lines, `{"export":%d,"n":%d}`+"\n", round, i)
		}
		wantCode(t, evident(t, nil, "submit", "--log", srv.url, "--token_file", srv.tokenFile, "--concurrency", "50",
			"--jsonl", writeFile(t, dir, fmt.Sprintf("r%d.jsonl", round), lines.Bytes(), 0o644)), exitOK)
	}
	submit(0, 600)
	r := evident(t, nil, "export-tiles", "--url", srv.url, "--dir", static, "--log_key", srv.vkey, "--json")
	wantCode(t, r, exitOK)
	if m := r.json(t); m["tree_size"] != 600.0 || m["tiles_reused"] != 0.0 {
		t.Errorf("export: %v", m)
	}
	r = evident(t, nil, "audit", "--log", fileServer.URL, "--log_key", srv.vkey, "--json")
	wantCode(t, r, exitOK)
	if m := r.json(t); m["tree_size"] != 600.0 || m["entries_this_run"] != 600.0 {
		t.Errorf("audit of the static copy: %v", m)
	}
	wantCode(t, evident(t, nil, "monitor", "--once", "--log", fileServer.URL, "--log_key", srv.vkey, "--state_dir", monState), exitOK)

	// A second export into the same directory needs --resume.
	wantCode(t, evident(t, nil, "export-tiles", "--url", srv.url, "--dir", static), exitUsage)

	submit(1, 300)
	r = evident(t, nil, "export-tiles", "--url", srv.url, "--dir", static, "--resume", "--json")
	wantCode(t, r, exitOK)
	if m := r.json(t); m["tree_size"] != 900.0 || m["tiles_reused"] != 4.0 { // level 0 and bundles 0, 1
		t.Errorf("resumed export: %v", m)
	}
	// The monitor checks the static copy's growth with a consistency
	// proof from its tiles.
	wantCode(t, evident(t, nil, "monitor", "--once", "--log", fileServer.URL, "--log_key", srv.vkey, "--state_dir", monState), exitOK)
	r = evident(t, nil, "audit", "--log", fileServer.URL, "--log_key", srv.vkey, "--json")
	wantCode(t, r, exitOK)
	if m := r.json(t); m["tree_size"] != 900.0 {
		t.Errorf("audit of the updated static copy: %v", m)
	}
	// An older checkpoint's partial tiles stay, for clients of that tree.
	if _, err := os.Stat(filepath.Join(static, "tile", "0", "002.p", "88")); err != nil {
		t.Error(err)
	}

	// A damaged full tile in the copy is caught on the next --resume.
	p := filepath.Join(static, "tile", "entries", "001")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[10] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r = evident(t, nil, "export-tiles", "--url", srv.url, "--dir", static, "--resume")
	wantCode(t, r, exitFailed)
	if !bytes.Contains([]byte(r.stderr), []byte("SECURITY ERROR")) {
		t.Errorf("damaged tile: %q", r.stderr)
	}
}
