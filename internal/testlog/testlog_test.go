package testlog

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
)

// call makes one request to the log and returns the status and body; a
// non-empty token is sent as the bearer token.
func call(t *testing.T, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	return call(t, "GET", url, "", nil)
}

// addEntry posts e to add-entry and decodes the JSON answer.
func addEntry(t *testing.T, l *Log, token string, e []byte) (int, map[string]any) {
	t.Helper()
	code, b := call(t, "POST", l.URL+"/v1/add-entry", token, e)
	var m map[string]any
	json.Unmarshal(b, &m)
	return code, m
}

// TestHonest: the log's checkpoints verify with its key and its policy, and
// an add-entry receipt verifies.
func TestHonest(t *testing.T) {
	l := New(t, 2)
	l.Add([]byte("a"), []byte("b"), []byte("a"))
	if l.Size() != 2 {
		t.Errorf("size %d after adding a, b, a; want 2", l.Size())
	}
	policy, err := checkpoint.ParsePolicy([]byte(l.Policy()))
	if err != nil {
		t.Fatal(err)
	}
	code, b := get(t, l.URL+"/checkpoint")
	if code != 200 {
		t.Fatalf("GET /checkpoint: %d %s", code, b)
	}
	if s, err := checkpoint.Open(b, l.Verifier); err != nil || s.Size != 2 {
		t.Errorf("checkpoint %q: %+v, %v", b, s, err)
	}
	if code, m := addEntry(t, l, "wrong", []byte("c")); code != 401 {
		t.Errorf("add-entry with a wrong token: %d %v", code, m)
	}
	code, m := addEntry(t, l, l.Token, []byte("c"))
	if code != 200 || m["index"] != 2.0 || m["duplicate"] != false {
		t.Fatalf("add-entry: %d %v", code, m)
	}
	rc, err := checkpoint.ParseReceipt([]byte(m["receipt"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.VerifyReceipt(rc, []byte("c"), l.Verifier, policy); err != nil {
		t.Errorf("receipt does not verify: %v", err)
	}
}

// TestMisbehaving: each switch makes the log lie as documented.
func TestMisbehaving(t *testing.T) {
	l := New(t, 0)
	l.Add([]byte("a"), []byte("b"), []byte("c"))
	l.SetBadProof(func(i uint64) bool { return i == 3 })
	_, m := addEntry(t, l, l.Token, []byte("d"))
	rc, err := checkpoint.ParseReceipt([]byte(m["receipt"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.VerifyReceipt(rc, []byte("d"), l.Verifier, nil); err == nil {
		t.Error("a receipt with a bad proof verifies")
	}
	l.SetFailEntriesFrom(2)
	if code, _ := get(t, l.URL+"/v1/entries?start=0&count=3"); code != 500 {
		t.Errorf("entries past the failure point: %d, want 500", code)
	}
	l.SetFailEntriesFrom(0)
	l.SetTamperEntry(func(i uint64, e []byte) []byte { return []byte("x") })
	if _, b := get(t, l.URL+"/v1/entries?start=0&count=1"); !strings.Contains(string(b), `"eA=="`) {
		t.Errorf("tampered entries %s", b)
	}
	_, before := get(t, l.URL+"/checkpoint")
	l.Rewrite(0, []byte("z"))
	l.Republish()
	_, after := get(t, l.URL+"/checkpoint")
	b1, _ := checkpoint.Open(before, l.Verifier)
	b2, _ := checkpoint.Open(after, l.Verifier)
	if b1 == nil || b2 == nil || b1.Size != b2.Size || b1.Hash == b2.Hash {
		t.Errorf("rewrite: %+v then %+v, want the same size with another root", b1, b2)
	}
	l.SetRefuseConsistency(400)
	if code, _ := get(t, l.URL+"/v1/proof/consistency?first=1&second=3"); code != 400 {
		t.Errorf("refused consistency proof: %d, want 400", code)
	}
	l.SetRefuseConsistency(0)
	if code, b := get(t, l.URL+"/v1/proof/consistency?first=1&second=3"); code != 200 {
		t.Errorf("consistency proof: %d %s", code, b)
	}
	l.ServeOld(3)
	if _, b := get(t, l.URL+"/checkpoint"); !strings.Contains(string(b), "\n3\n") {
		t.Errorf("ServeOld(3) serves %q", b)
	}
	l.SetArchive(3, [32]byte{1})
	_, b := get(t, l.URL+"/v1/checkpoints/3")
	if s, err := checkpoint.Open(b, l.Verifier); err != nil || s.Hash != [32]byte{1} {
		t.Errorf("archive of size 3: %+v, %v", s, err)
	}
}

// TestCountsAndDelay: requests are counted by route, and delayed entry
// reads overlap (the most in flight reaches the number sent at once).
func TestCountsAndDelay(t *testing.T) {
	l := New(t, 0)
	l.Add([]byte("a"))
	l.SetEntriesDelay(50 * time.Millisecond)
	const n = 4
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(n)
	for range n {
		wg.Go(func() {
			ready.Done()
			ready.Wait()
			get(t, l.URL+"/v1/entries?start=0&count=1")
		})
	}
	wg.Wait()
	get(t, l.URL+"/checkpoint")
	if got := l.Requests("GET /v1/entries"); got != n {
		t.Errorf("Requests(entries) = %d, want %d", got, n)
	}
	if got := l.Requests("GET /checkpoint"); got != 1 {
		t.Errorf("Requests(checkpoint) = %d, want 1", got)
	}
	if got := l.MaxInFlight("GET /v1/entries"); got < 2 || got > n {
		t.Errorf("MaxInFlight(entries) = %d, want 2..%d", got, n)
	}
}

// TestGateEndsWithTheTest: an add-entry held at the gate ends (503 or a
// closed connection) when the test ends, so that closing the server does
// not hang.
func TestGateEndsWithTheTest(t *testing.T) {
	done := make(chan int, 1)
	t.Run("held", func(t *testing.T) {
		l := New(t, 0)
		l.SetGate(make(chan struct{}))
		url := l.URL
		go func() {
			req, _ := http.NewRequest("POST", url+"/v1/add-entry", strings.NewReader("entry"))
			req.Header.Set("Authorization", "Bearer "+Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	})
	if code := <-done; code != 0 && code != 503 {
		t.Errorf("held add-entry answered %d, want 503 or a closed connection", code)
	}
}

// TestNotImported: no non-test file of the module imports this package, or
// the module's other test-only packages.
func TestNotImported(t *testing.T) {
	testOnly := map[string]bool{}
	for _, p := range []string{"testlog", "testdb", "testproc", "logbuf"} {
		testOnly["github.com/evidentlog/evident/internal/"+p] = true
	}
	root := filepath.Join("..", "..")
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		n++
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); testOnly[p] {
				t.Errorf("%s imports %s, which is for tests only", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Errorf("read only %d Go files from %s; is the walk wrong?", n, root)
	}
}
