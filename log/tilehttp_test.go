package log

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestTileBadRequests sends malformed and out-of-range tile requests to a
// log of 300 entries: each gets 400 or 404, never anything else.
func TestTileBadRequests(t *testing.T) {
	tl := newTestLog(t, nil)
	var batch [][]byte
	for i := range 300 {
		batch = append(batch, fmt.Appendf(nil, "bad tile request entry %d", i))
	}
	if code, _, a := tl.addBatch(encodeBatch(batch), ""); code != http.StatusOK {
		t.Fatalf("add-entries: %d %s", code, a.Error)
	}
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/tile/0/000", 200},
		{"/tile/0/001.p/44", 200},
		{"/tile/entries/001.p/44", 200},
		{"/tile/1/000.p/1", 200},
		{"/tile/0/001", 404},       // not full yet
		{"/tile/0/001.p/45", 404},  // beyond the tree
		{"/tile/0/001.p/43", 404},  // no checkpoint of size 299
		{"/tile/0/000.p/255", 404}, // no checkpoint of size 255
		{"/tile/1/000", 404},       // not full
		{"/tile/63/000", 404},      // far beyond
		{"/tile/0/x001/000", 404},  // beyond
		{"/tile/entries/x001/000.p/1", 404},
		{"/tile/0/x000/001", 400},
		{"/tile/0/1", 400},
		{"/tile/0/000.p/0", 400},
		{"/tile/0/000.p/256", 400},
		{"/tile/64/000", 400},
		{"/tile/100/000", 400},
		{"/tile/0/../0/000", 400},
		{"/tile/0/%2e%2e/000", 400},
		{"/tile/0//000", 400},
		{"/tile/./0/000", 400},
		{"/tile/0/x018/x446/x744/x073/x709/x551/616", 400},
		{"/tile/0/x018/x446/x744/x073/x709/x551/615", 404},
		{"/tile/entries/x018/x446/x744/x073/x709/x551/615.p/255", 404},
		{"/tile/7/x018/x446/x744/x073/x709/x551/615.p/255", 404},
		{"/tile/", 400},
		{"/tile/entries", 400},
	} {
		resp, err := http.Get(tl.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
	}
	resp, err := http.Post(tl.srv.URL+"/tile/0/000", "application/octet-stream", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /tile/0/000: %d, want 405", resp.StatusCode)
	}
}

// TestTileReadsTakeNoWriteLock holds the state database's write lock
// while tiles are read from the database (a partial entry bundle is never
// cached): they are served all the same.
func TestTileReadsTakeNoWriteLock(t *testing.T) {
	tl := newTestLog(t, nil)
	var batch [][]byte
	for i := range 20 {
		batch = append(batch, fmt.Appendf(nil, "lock test entry %d", i))
	}
	if code, _, a := tl.addBatch(encodeBatch(batch), ""); code != http.StatusOK {
		t.Fatalf("add-entries: %d %s", code, a.Error)
	}
	tx, err := tl.state.SQL().BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`UPDATE settings SET name = name`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, p := range []string{"/tile/entries/000.p/20", "/tile/0/000.p/20"} {
		u, _ := url.Parse(tl.srv.URL + p)
		req, _ := http.NewRequestWithContext(ctx, "GET", u.String(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s while the database is write-locked: %v", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s while the database is write-locked: %d", p, resp.StatusCode)
		}
	}
}
