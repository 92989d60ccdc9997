package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testproc"
	"golang.org/x/mod/sumdb/note"
)

// evidentBin is the evident binary built once for these tests: the tests
// run the real binary, as users do. serverBin is the real evident-server,
// for the end-to-end tests; serverBuildErr says why it could not be built.
var (
	evidentBin      string
	serverBin       string
	serverBuildErr  error
	witnessBin      string
	witnessBuildErr error
)

func TestMain(m *testing.M) {
	testproc.Main(m, func(dir string) {
		evidentBin = filepath.Join(dir, "evident")
		serverBin, serverBuildErr = testproc.BuildInto(dir, "../evident-server")
		witnessBin, witnessBuildErr = testproc.BuildInto(dir, "../evident-witness")
	}, ".")
}

// result is what one run of the binary produced.
type result struct {
	stdout, stderr string
	code           int
}

// json decodes the last line of stdout.
func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return m
}

// evident runs the binary with args and stdin.
func evident(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), evidentBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// wantCode fails the test unless r exited with code.
func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
}

func writeFile(t testing.TB, dir, name string, b []byte, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "Commands:"},
		{[]string{"--help"}, exitOK, "Exit codes:"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"verify", "--help"}, exitOK, "Verifies a receipt"},
		{[]string{"audit", "--help"}, exitOK, "compact range"},
		{[]string{"verify", "--no_such_flag"}, exitUsage, "flag provided but not defined"},
		{[]string{"verify", "--log_key", "x+y+z", "r"}, exitUsage, "--entry is required"},
		{[]string{"submit", "--log", "http://127.0.0.1:1"}, exitUsage, "give either FILE arguments or --jsonl"},
		{[]string{"monitor", "--log", "http://127.0.0.1:1", "--log_key", "k"}, exitUsage, "--state_dir is required"},
		{[]string{"keygen", "--name", "x"}, exitUsage, "--name and --out are required"},
	} {
		r := evident(t, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("evident %q: exit %d, output %q; want exit %d and %q", tc.args, r.code, r.stdout+r.stderr, tc.code, tc.want)
		}
	}
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "log.key")
	r := evident(t, nil, "keygen", "--name", "example.com/log", "--out", out)
	wantCode(t, r, exitOK)
	vkey := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(vkey, "example.com/log+") {
		t.Errorf("printed vkey %q", vkey)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key mode %v, want 0600", fi.Mode().Perm())
	}
	pub, err := os.ReadFile(out + ".pub")
	if err != nil || strings.TrimSpace(string(pub)) != vkey {
		t.Errorf("%s.pub = %q, %v; want the printed vkey", out, pub, err)
	}
	// A second run must not overwrite the key.
	before, _ := os.ReadFile(out)
	r = evident(t, nil, "keygen", "--name", "example.com/log", "--out", out)
	wantCode(t, r, exitUsage)
	after, _ := os.ReadFile(out)
	if !bytes.Equal(before, after) {
		t.Error("keygen overwrote an existing key")
	}
	// The key pair works: a checkpoint signed with it verifies with the vkey.
	c := checkpoint.Checkpoint{Origin: "example.com/log", Size: 0, Hash: checkpoint.EmptyRoot}
	signer, err := checkpoint.NewSigner(strings.TrimSpace(string(before)))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := checkpoint.Sign(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := checkpoint.Open(signed, verifier); err != nil || s.Origin != c.Origin {
		t.Errorf("a checkpoint signed with the generated key: %+v, %v", s, err)
	}
	_, otherVKey, _ := checkpoint.GenerateKey("example.com/log")
	otherV, _ := checkpoint.NewVerifier(otherVKey)
	if _, err := checkpoint.Open(signed, otherV); err == nil {
		t.Error("the checkpoint verifies with another key")
	}
	// A witness key pair: its cosignature verifies with its vkey.
	wkey := filepath.Join(dir, "w.key")
	r = evident(t, nil, "keygen", "--name", "w1.example", "--witness", "--out", wkey, "--json")
	wantCode(t, r, exitOK)
	wvkey, _ := r.json(t)["vkey"].(string)
	if !strings.HasPrefix(wvkey, "w1.example+") {
		t.Errorf("witness vkey %q", wvkey)
	}
	wskey, _ := os.ReadFile(wkey)
	cosigner, err := checkpoint.NewCosigner(strings.TrimSpace(string(wskey)))
	if err != nil {
		t.Fatal(err)
	}
	line, err := checkpoint.SignatureLine(c.Marshal(), cosigner)
	if err != nil {
		t.Fatal(err)
	}
	wv, err := checkpoint.NewCosignatureVerifier(wvkey)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.VerifySignatureLine(c.Marshal(), line, wv); err != nil {
		t.Errorf("the witness key's cosignature does not verify with its vkey: %v", err)
	}
}

// keyPair returns a fresh witness key pair.
func keyPair(t testing.TB, name string) (skey, vkey string, s note.Signer) {
	t.Helper()
	skey, vkey, err := checkpoint.GenerateCosignerKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err = checkpoint.NewCosigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey, s
}
