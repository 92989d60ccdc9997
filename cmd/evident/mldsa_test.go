package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
)

// TestVerifyMLDSA: keygen makes an ML-DSA-44 witness key; verify accepts a
// receipt whose policy needs that witness's cosignature, and refuses it
// when the cosignature is missing or changed.
func TestVerifyMLDSA(t *testing.T) {
	dir := t.TempDir()
	wantCode(t, evident(t, nil, "keygen", "--name", "pq.example", "--mldsa44", "--out", filepath.Join(dir, "x.key")), exitUsage)
	r := evident(t, nil, "keygen", "--name", "pq.example", "--witness", "--mldsa44", "--out", filepath.Join(dir, "w.key"))
	wantCode(t, r, exitOK)
	wvkey := strings.TrimSpace(r.stdout)
	if alg, err := checkpoint.CosignatureAlgorithm(wvkey); err != nil || alg != "ML-DSA-44" {
		t.Fatalf("keygen --witness --mldsa44 printed a %q key (%v)", alg, err)
	}
	wskey, err := os.ReadFile(filepath.Join(dir, "w.key"))
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := checkpoint.NewCosigner(strings.TrimSpace(string(wskey)))
	if err != nil {
		t.Fatal(err)
	}
	lskey, lvkey, err := checkpoint.GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := checkpoint.NewSigner(lskey)
	entry := []byte("invoice 4711 approved")
	c := checkpoint.Checkpoint{Origin: "example.com/log", Size: 1, Hash: checkpoint.LeafHash(entry)}
	note, err := checkpoint.Sign(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	line, err := checkpoint.SignatureLine(c.Marshal(), cosigner)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	receipt := func(lines ...[]byte) []byte {
		n, err := checkpoint.AppendSignatures(note, lines...)
		if err != nil {
			t.Fatal(err)
		}
		return (&checkpoint.Receipt{Index: 0, Checkpoint: n}).Marshal()
	}
	entryFile := write("entry", entry)
	policy := write("policy", []byte("log "+lvkey+"\nwitness pq "+wvkey+"\nquorum pq\n"))
	good := write("good.tlog-proof", receipt(line))
	r = evident(t, nil, "verify", "--log_key", lvkey, "--policy", policy, "--entry", entryFile, good)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "pq") {
		t.Errorf("verify output does not name the ML-DSA-44 witness: %s", r.stdout)
	}
	// Without the cosignature, or with one byte of it changed: refused.
	for name, rc := range map[string][]byte{"missing": receipt(), "changed": receipt(flipLast(line))} {
		r := evident(t, nil, "verify", "--log_key", lvkey, "--policy", policy, "--entry", entryFile, write(name+".tlog-proof", rc))
		wantCode(t, r, exitFailed)
	}
}

// flipLast changes one bit of the last byte of a signature line's
// signature.
func flipLast(line []byte) []byte {
	i := strings.LastIndexByte(string(line), ' ')
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(string(line[i+1:]), "\n"))
	if err != nil {
		panic(err)
	}
	raw[len(raw)-40] ^= 1
	return []byte(string(line[:i+1]) + base64.StdEncoding.EncodeToString(raw) + "\n")
}
