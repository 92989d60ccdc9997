//go:build soak

package integration

// The soak of scripts/soak.sh: SIGKILL cycles of every component under
// load. It is not part of `go test ./...` (build tag soak): it takes
// minutes. Run it with scripts/soak.sh.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/internal/testproc"
)

// soak is the running topology and what the load saw.
type soak struct {
	t        *testing.T
	env      []string // CLUSTER_*, MARIADB_*, TRILLIAN_PORT
	dir      string
	url      string
	verifier note.Verifier
	policy   *checkpoint.Policy

	acked    sync.Map // leaf hash → index, for every 2xx with a receipt
	nAcked   atomic.Int64
	refused  atomic.Int64 // non-2xx answers and transport errors (allowed)
	badRcpt  atomic.Int64 // receipts that did not verify
	shrinks  atomic.Int64
	forks    atomic.Int64 // consecutive checkpoints without a valid consistency proof
	maxSize  atomic.Uint64
	stuck    atomic.Int64 // cycles after which the log did not grow within the deadline
	monitorE atomic.Int64 // checkpoints that did not verify
}

// TestSoak runs 16 submitters waiting for receipts against evident-server
// in front of Trillian's own log server and signer on MariaDB, with three
// evident-witness processes and a 2-of-3 policy, while it SIGKILLs and
// restarts, EVIDENT_SOAK_CYCLES times each (default 50): MariaDB, the
// trillian_log_signer, and one witness (in turn). Then it checks that no
// acknowledged entry is missing from the final checkpoint, that no served
// checkpoint was smaller than an earlier one or inconsistent with it, and
// that every receipt verified offline (log key and witness policy).
func TestSoak(t *testing.T) {
	cycles := 50
	if v, err := strconv.Atoi(os.Getenv("EVIDENT_SOAK_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	s := &soak{t: t, dir: t.TempDir()}
	ports := testproc.FreePorts(t, 10)
	var b [4]byte
	rand.Read(b[:])
	s.env = append(os.Environ(),
		"MARIADB_DIR="+filepath.Join(s.dir, "mariadb"),
		fmt.Sprintf("MARIADB_PORT=%d", ports),
		"CLUSTER_DIR="+s.dir,
		"CLUSTER_DB=evident_soak_"+hex.EncodeToString(b[:]),
		"CLUSTER_SERVERS=0",
		fmt.Sprintf("TRILLIAN_PORT=%d", ports+1), // +1..+4
	)
	t.Cleanup(func() {
		s.script("cluster.sh", "stop")
		s.script("mariadb.sh", "stop")
	})
	s.script("cluster.sh", "start")
	dsn := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s.script("mariadb.sh", "start")), "export EVIDENT_MYSQL_DSN='"), "'")
	dsn += s.envValue("CLUSTER_DB")

	// The log's key first, so that the witnesses can follow it from the
	// start; the server takes an existing key with an empty tree as new.
	dataDir := filepath.Join(s.dir, "evident-data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := checkpoint.GenerateKey("soak.example/log")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dataDir, "log.vkey"), []byte(vkey+"\n"), 0o644)
	if err := os.WriteFile(filepath.Join(dataDir, "log.key"), []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s.verifier, err = checkpoint.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	witnessBin := s.build("./cmd/evident-witness")
	serverBin := s.build("./cmd/evident-server")
	var witnesses [3]*witnessProc
	policy := "log " + vkey + "\n"
	for i := range witnesses {
		w := &witnessProc{bin: witnessBin, dir: filepath.Join(s.dir, fmt.Sprintf("witness%d", i)), port: ports + 5 + i, vkey: vkey}
		w.start(t)
		witnesses[i] = w
		policy += fmt.Sprintf("witness w%d %s http://127.0.0.1:%d\n", i, w.wvkey, w.port)
	}
	policy += "group two 2 w0 w1 w2\nquorum two\n"
	policyFile := filepath.Join(s.dir, "policy")
	os.WriteFile(policyFile, []byte(policy), 0o644)
	if s.policy, err = checkpoint.ParsePolicy([]byte(policy)); err != nil {
		t.Fatal(err)
	}
	srv := testproc.Start(t, serverBin, "--data_dir", dataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", ports+8),
		"--trillian_addr", fmt.Sprintf("127.0.0.1:%d", ports+1), "--mysql_dsn", dsn,
		"--witness_policy_file", policyFile, "--checkpoint_interval", "200ms", "--wait_timeout", "20s")
	t.Cleanup(func() { srv.Stop(30 * time.Second) })
	s.url = srv.URL
	token, err := os.ReadFile(srv.Lines["write token"])
	if err != nil {
		t.Fatal(err)
	}

	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() { s.submit(ctx, w, strings.TrimSpace(string(token))) })
	}
	wg.Go(func() { s.monitor(ctx) })

	start := time.Now()
	mariadbPid := func() int {
		b, _ := os.ReadFile(filepath.Join(s.dir, "mariadb", "mysqld.pid"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	signerPid := func() int {
		b, _ := os.ReadFile(filepath.Join(s.dir, "log_signer.pid"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	phases := []struct {
		name    string
		kill    func()
		restart func()
	}{
		{"mariadb", func() { kill9(t, mariadbPid()) }, func() { s.script("mariadb.sh", "start") }},
		{"trillian_log_signer", func() { kill9(t, signerPid()) }, func() { s.script("cluster.sh", "signer") }},
	}
	for _, ph := range phases {
		t0 := time.Now()
		for c := range cycles {
			s.waitGrowth(ph.name, c)
			ph.kill()
			time.Sleep(jitter(200*time.Millisecond, 800*time.Millisecond))
			ph.restart()
		}
		s.waitGrowth(ph.name, cycles)
		t.Logf("%s: %d SIGKILL cycles in %v; %d entries acknowledged so far", ph.name, cycles, time.Since(t0).Round(time.Second), s.nAcked.Load())
	}
	t0 := time.Now()
	for c := range cycles {
		s.waitGrowth("witness", c)
		w := witnesses[c%3]
		w.kill(t)
		time.Sleep(jitter(200*time.Millisecond, 800*time.Millisecond))
		w.start(t)
	}
	s.waitGrowth("witness", cycles)
	t.Logf("witness (one of three in turn, 2-of-3 policy): %d SIGKILL cycles in %v; %d entries acknowledged so far", cycles, time.Since(t0).Round(time.Second), s.nAcked.Load())
	stop()
	wg.Wait()
	for _, w := range witnesses {
		w.kill(t)
	}

	s.verifyFinal(t.Context())
	t.Logf("SOAK: %d kill cycles each of MariaDB, trillian_log_signer and a witness in %v: %d entries acknowledged, %d refused or failed (retried), "+
		"%d lost, %d bad receipts, %d shrinks, %d inconsistent checkpoint pairs, %d cycles without recovery, %d unverifiable checkpoints; final size %d",
		cycles, time.Since(start).Round(time.Second), s.nAcked.Load(), s.refused.Load(), lost.Load(), s.badRcpt.Load(),
		s.shrinks.Load(), s.forks.Load(), s.stuck.Load(), s.monitorE.Load(), s.maxSize.Load())
	if lost.Load()+s.badRcpt.Load()+s.shrinks.Load()+s.forks.Load()+s.stuck.Load()+s.monitorE.Load() > 0 || s.nAcked.Load() == 0 {
		t.Fail()
	}
}

// lost counts acknowledged entries missing from the final checkpoint.
var lost atomic.Int64

// submit adds entries until ctx ends, verifying every receipt.
func (s *soak) submit(ctx context.Context, w int, token string) {
	c, err := client.New(ctx, client.Config{URL: s.url, Token: token, MaxRetries: -1, HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		s.t.Error(err)
		return
	}
	defer c.Close()
	for n := 0; ctx.Err() == nil; n++ {
		entry := fmt.Appendf(nil, "soak entry %d/%d %x", w, n, randBytes(8))
		r, err := c.AddEntry(ctx, entry)
		if err != nil {
			if ctx.Err() == nil {
				s.refused.Add(1)
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		rc, err := checkpoint.ParseReceipt(r.Receipt)
		if err == nil {
			_, err = checkpoint.VerifyReceipt(rc, entry, s.verifier, s.policy)
		}
		if err != nil {
			s.badRcpt.Add(1)
			s.t.Errorf("receipt of entry %d does not verify: %v", r.Index, err)
		}
		s.acked.Store(r.LeafHash, r.Index)
		s.nAcked.Add(1)
	}
}

// monitor polls the checkpoint, as a witness or auditor would, and checks
// each new one against the last: never smaller, always consistent.
func (s *soak) monitor(ctx context.Context) {
	c, err := client.New(ctx, client.Config{URL: s.url, MaxRetries: -1, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		s.t.Error(err)
		return
	}
	defer c.Close()
	var last *checkpoint.Signed
	for ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		b, err := c.Checkpoint(ctx)
		if err != nil {
			continue // the log may be down with its database
		}
		cp, err := checkpoint.Open(b, s.verifier)
		if err != nil {
			s.monitorE.Add(1)
			s.t.Errorf("served checkpoint does not verify: %v", err)
			continue
		}
		if last != nil && cp.Size < last.Size {
			s.shrinks.Add(1)
			s.t.Errorf("checkpoint shrank from %d to %d", last.Size, cp.Size)
			continue
		}
		if last != nil && cp.Size > last.Size {
			var proof [][]byte
			for try := 0; try < 50; try++ {
				if proof, err = c.ConsistencyProof(ctx, last.Size, cp.Size); err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				err = checkpoint.VerifyConsistency(last.Size, cp.Size, last.Hash, cp.Hash, proof)
			}
			if err != nil {
				s.forks.Add(1)
				s.t.Errorf("checkpoints %d and %d: no valid consistency proof: %v", last.Size, cp.Size, err)
			}
		} else if last != nil && cp.Hash != last.Hash {
			s.forks.Add(1)
			s.t.Errorf("two roots of size %d", cp.Size)
		}
		last = cp
		s.maxSize.Store(cp.Size)
	}
}

// waitGrowth waits until the log published a larger checkpoint than it
// had (the system recovered from the last kill), up to a minute.
func (s *soak) waitGrowth(phase string, cycle int) {
	from := s.maxSize.Load()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s.maxSize.Load() > from {
			return
		}
	}
	s.stuck.Add(1)
	s.t.Errorf("%s cycle %d: the log did not publish a larger checkpoint than %d within a minute", phase, cycle, from)
}

// verifyFinal checks every acknowledged entry against the final checkpoint.
func (s *soak) verifyFinal(ctx context.Context) {
	c, err := client.New(ctx, client.Config{URL: s.url, HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	b, err := c.Checkpoint(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	final, err := checkpoint.Open(b, s.verifier)
	if err != nil {
		s.t.Fatal(err)
	}
	s.acked.Range(func(k, v any) bool {
		h, idx := k.([32]byte), v.(uint64)
		if idx >= final.Size {
			lost.Add(1)
			s.t.Errorf("acknowledged entry %d is past the final checkpoint (%d)", idx, final.Size)
			return true
		}
		p, err := c.InclusionProofByIndex(ctx, idx, final.Size)
		if err == nil {
			err = checkpoint.VerifyInclusion(idx, final.Size, h, p.Hashes, final.Hash)
		}
		if err != nil {
			lost.Add(1)
			s.t.Errorf("acknowledged entry %d (%x) is not in the final checkpoint: %v", idx, h, err)
		}
		return true
	})
}

func (s *soak) script(name string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(filepath.Join("..", "scripts", name), args...)
	cmd.Env = s.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("%s %v: %v\n%s\n%s", name, args, err, out, stderr.String())
	}
	return string(out)
}

func (s *soak) envValue(name string) string {
	for _, e := range s.env {
		if v, ok := strings.CutPrefix(e, name+"="); ok {
			return v
		}
	}
	return ""
}

func (s *soak) build(pkg string) string {
	s.t.Helper()
	bin, err := testproc.BuildInto(s.dir, filepath.Join("..", pkg))
	if err != nil {
		s.t.Fatal(err)
	}
	return bin
}

// witnessProc is an evident-witness that is killed and started again on
// the same port and data directory.
type witnessProc struct {
	bin, dir, vkey string
	port           int
	wvkey          string
	proc           *testproc.Proc
}

func (w *witnessProc) start(t *testing.T) {
	t.Helper()
	os.MkdirAll(w.dir, 0o700)
	logs := filepath.Join(w.dir, "logs.txt")
	os.WriteFile(logs, []byte("log "+w.vkey+"\n"), 0o644)
	w.proc = testproc.StartReady(t, func(lines map[string]string, stderr string) bool {
		if lines["vkey"] == "" {
			return false
		}
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", w.port))
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, w.bin, "--name", fmt.Sprintf("w%d.soak.example", w.port), "--listen", fmt.Sprintf("127.0.0.1:%d", w.port),
		"--data_dir", filepath.Join(w.dir, "data"), "--logs_file", logs)
	if w.wvkey == "" {
		w.wvkey = w.proc.Lines["vkey"]
	} else if w.proc.Lines["vkey"] != w.wvkey {
		t.Fatalf("witness restarted with another key")
	}
}

func (w *witnessProc) kill(t *testing.T) {
	if w.proc != nil {
		w.proc.Kill()
		w.proc = nil
	}
}

func kill9(t *testing.T, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("no pid to kill")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	// Wait for it to be gone, so that the restart does not race it.
	for range 200 {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("process %d survived SIGKILL", pid)
}

func jitter(lo, hi time.Duration) time.Duration {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(hi-lo)))
	return lo + time.Duration(n.Int64())
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
