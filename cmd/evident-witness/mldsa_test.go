package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testproc"
	"github.com/evidentlog/evident/witness"
)

// TestBinaryMLDSA: --key_type mldsa44 makes the first start create an
// ML-DSA-44 key (0600); the witness cosigns with it, the cosignature
// verifies against the printed vkey and a policy naming it; a restart
// without the flag keeps the key.
func TestBinaryMLDSA(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: builds and runs the binary")
	}
	dir := t.TempDir()
	binDir, cleanup, err := testproc.Build(".")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	bin := filepath.Join(binDir, "evident-witness")
	data := filepath.Join(dir, "data")
	lskey, lvkey, err := checkpoint.GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	logsFile := filepath.Join(dir, "logs.txt")
	if err := os.WriteFile(logsFile, []byte("log "+lvkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testproc.FreePorts(t, 1))
	p, vkey := start(t, bin, "--listen", addr, "--data_dir", data, "--logs_file", logsFile, "--name", "example.com/pq", "--key_type", "mldsa44")
	if alg, err := checkpoint.CosignatureAlgorithm(vkey); err != nil || alg != "ML-DSA-44" {
		t.Fatalf("printed vkey is %q (%v), want an ML-DSA-44 key", alg, err)
	}
	if fi, err := os.Stat(filepath.Join(data, witness.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	signer, _ := checkpoint.NewSigner(lskey)
	c := checkpoint.Checkpoint{Origin: "example.com/log", Size: 0, Hash: checkpoint.EmptyRoot}
	cp, err := checkpoint.Sign(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/add-checkpoint", "text/plain", bytes.NewReader((&witness.Request{Checkpoint: cp}).Marshal()))
	if err != nil {
		t.Fatal(err)
	}
	line, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("add-checkpoint: %d %s", resp.StatusCode, line)
	}
	v, err := checkpoint.NewCosignatureVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.VerifySignatureLine(c.Marshal(), line, v); err != nil {
		t.Fatalf("the witness's ML-DSA-44 cosignature: %v\n%s", err, line)
	}
	lv, _ := checkpoint.NewVerifier(lvkey)
	policy, err := checkpoint.ParsePolicy([]byte("log " + lvkey + "\nwitness pq " + vkey + "\nquorum pq\n"))
	if err != nil {
		t.Fatal(err)
	}
	full, err := checkpoint.AppendSignatures(cp, line)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.Open(full, lv, policy.Verifiers()...)
	if err != nil || !policy.Satisfied(policy.Cosigners(s)) {
		t.Fatalf("policy with the ML-DSA-44 witness: %v, cosigners %v", err, policy.Cosigners(s))
	}
	// The status page says which kind of key it cosigns with.
	page := get(t, "http://"+addr+"/")
	if !strings.Contains(page, "ML-DSA-44") {
		t.Errorf("status page does not name the key type:\n%s", page)
	}
	stop(t, p)

	p, vkey2 := start(t, bin, "--listen", addr, "--data_dir", data, "--logs_file", logsFile)
	if vkey2 != vkey {
		t.Errorf("vkey after restart %q..., want the ML-DSA-44 key", vkey2[:40])
	}
	stop(t, p)
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
