// Package integration holds tests of Evident's multi-process topology: the
// processes that scripts/cluster.sh starts (and docker-compose.yml
// describes), run for real on loopback.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/internal/testproc"
)

// TestCluster starts MariaDB, Trillian's own trillian_log_server and
// trillian_log_signer, and two evident-server personalities of one log in
// front of them, as separate processes (scripts/cluster.sh); submits entries
// to both at once; and checks every receipt offline and the consistency of
// the checkpoints each personality serves.
func TestCluster(t *testing.T) {
	testdb.MySQL(t) // skips, visibly, without MariaDB; fails under scripts/test.sh
	dir := t.TempDir()
	var b [4]byte
	rand.Read(b[:])
	env := append(os.Environ(),
		"CLUSTER_DIR="+dir,
		"CLUSTER_DB=evident_cluster_"+hex.EncodeToString(b[:]),
		"CLUSTER_SERVERS=2",
		"EVIDENT_PORT=0", // each personality binds a port of its own and prints it
		fmt.Sprintf("TRILLIAN_PORT=%d", testproc.FreePorts(t, 4)),
	)
	script := filepath.Join("..", "scripts", "cluster.sh")
	start := exec.Command(script, "start")
	start.Env = env
	var stderr bytes.Buffer
	start.Stderr = &stderr
	out, err := start.Output()
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s (last 3 KiB):\n%s", filepath.Base(l), b[max(0, len(b)-3072):])
			}
		}
		stop := exec.Command(script, "stop")
		stop.Env = env
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("cluster.sh stop: %v\n%s", err, out)
		}
		dropDB(t, env)
	})
	if err != nil {
		t.Fatalf("cluster.sh start: %v\n%s\n%s", err, out, stderr.String())
	}
	var urls []string
	var vkey string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "listening: "); ok {
			urls = append(urls, v)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "vkey: "); ok {
			vkey = v
		}
	}
	if len(urls) != 2 || vkey == "" {
		t.Fatalf("cluster.sh start printed no vkey or not two servers:\n%s", out)
	}
	token, err := os.ReadFile(filepath.Join(dir, "evident-data-1", "write-token"))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}

	const n = 200
	indexes := make([]uint64, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			entry := fmt.Appendf(nil, "cluster entry %d", i)
			r, err := addEntry(urls[i%2], strings.TrimSpace(string(token)), entry)
			if err != nil {
				t.Errorf("entry %d via %s: %v", i, urls[i%2], err)
				return
			}
			rc, err := checkpoint.ParseReceipt([]byte(r.Receipt))
			if err != nil {
				t.Errorf("entry %d: receipt: %v", i, err)
				return
			}
			if _, err := checkpoint.VerifyReceipt(rc, entry, verifier, nil); err != nil {
				t.Errorf("entry %d: receipt does not verify offline: %v", i, err)
			}
			indexes[i] = r.Index
		})
	}
	wg.Wait()
	seen := map[uint64]int{}
	for i, idx := range indexes {
		if j, dup := seen[idx]; dup {
			t.Errorf("entries %d and %d both got index %d", j, i, idx)
		}
		seen[idx] = i
	}

	// Both personalities publish one log. Each publishes on its own cadence,
	// so one may briefly serve an older checkpoint; both must come to the
	// same checkpoint of exactly n entries, consistent with every earlier
	// one each of them served.
	var first [2]*checkpoint.Signed
	var cps [2]*checkpoint.Signed
	for deadline := time.Now().Add(time.Minute); ; {
		for i, u := range urls {
			if cps[i], err = checkpoint.Open(get(t, u+"/checkpoint"), verifier); err != nil {
				t.Fatalf("%s/checkpoint: %v", u, err)
			}
			if first[i] == nil {
				first[i] = cps[i]
			}
		}
		if cps[0].Size == n && cps[1].Size == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range cps {
		if cps[i].Size != n || cps[i].Hash != cps[0].Hash {
			t.Errorf("%s serves a checkpoint of size %d (root %x); want size %d, root %x", urls[i], cps[i].Size, cps[i].Hash, n, cps[0].Hash)
		}
		var proof struct{ Hashes [][]byte }
		if err := json.Unmarshal(get(t, fmt.Sprintf("%s/v1/proof/consistency?first=%d&second=%d", urls[1-i], first[i].Size, n)), &proof); err != nil {
			t.Fatal(err)
		}
		if err := checkpoint.VerifyConsistency(first[i].Size, n, first[i].Hash, cps[i].Hash, proof.Hashes); err != nil {
			t.Errorf("%s: its checkpoint of size %d is inconsistent with the final one: %v", urls[i], first[i].Size, err)
		}
	}
}

type addResult struct {
	Index   uint64 `json:"index"`
	Receipt string `json:"receipt"`
	Error   string `json:"error"`
}

func addEntry(url, token string, entry []byte) (*addResult, error) {
	req, err := http.NewRequest("POST", url+"/v1/add-entry", bytes.NewReader(entry))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r addResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("status %d: %v", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, r.Error)
	}
	return &r, nil
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return b
}

// dropDB drops the cluster's database from the test server.
func dropDB(t *testing.T, env []string) {
	var name string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "CLUSTER_DB="); ok {
			name = v
		}
	}
	cfg, err := mysql.ParseDSN(os.Getenv(testdb.EnvDSN))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
		t.Errorf("dropping %s: %v", name, err)
	}
}
