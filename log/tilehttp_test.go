package log

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

func TestParseTilePath(t *testing.T) {
	for _, tc := range []struct {
		path         string
		level, width int
		index        uint64
		ok           bool
	}{
		{"0/000", 0, 0, 0, true},
		{"0/x001/234", 0, 0, 1234, true},
		{"3/x001/x234/067.p/8", 3, 8, 1234067, true},
		{"entries/005.p/255", storage.EntriesLevel, 255, 5, true},
		{"63/000", 63, 0, 0, true},
		{"0/x018/x446/x744/x073/x709/x551/615", 0, 0, 1<<64 - 1, true},
		{"0/x018/x446/x744/x073/x709/x551/616", 0, 0, 0, false}, // 2^64
		{"0/x999/x999/x999/x999/x999/x999/999", 0, 0, 0, false},
		{"0/x000/001", 0, 0, 0, false}, // non-canonical x000
		{"0/1", 0, 0, 0, false},
		{"0/0001", 0, 0, 0, false},
		{"0/x001", 0, 0, 0, false},
		{"0/001/002", 0, 0, 0, false},
		{"0/000.p/0", 0, 0, 0, false},
		{"0/000.p/256", 0, 0, 0, false},
		{"0/000.p/01", 0, 0, 0, false},
		{"0/000.p/", 0, 0, 0, false},
		{"0/000.p", 0, 0, 0, false},
		{"64/000", 0, 0, 0, false},
		{"00/000", 0, 0, 0, false},
		{"-1/000", 0, 0, 0, false},
		{"+1/000", 0, 0, 0, false},
		{"entry/000", 0, 0, 0, false},
		{"0", 0, 0, 0, false},
		{"", 0, 0, 0, false},
		{"0/x00a/000", 0, 0, 0, false},
	} {
		level, index, width, err := ParseTilePath(tc.path)
		if got := err == nil; got != tc.ok {
			t.Errorf("ParseTilePath(%q): err %v, want ok=%v", tc.path, err, tc.ok)
			continue
		}
		if tc.ok && (level != tc.level || index != tc.index || width != tc.width) {
			t.Errorf("ParseTilePath(%q) = %d, %d, %d; want %d, %d, %d", tc.path, level, index, width, tc.level, tc.index, tc.width)
		}
		if tc.ok && checkpoint.TilePath(level, index, width) != tc.path {
			t.Errorf("checkpoint.TilePath(%d, %d, %d) = %q, want %q", level, index, width, checkpoint.TilePath(level, index, width), tc.path)
		}
	}
}

// FuzzParseTilePath checks that only canonical paths parse: whatever
// parses is printed back byte for byte by TilePath.
func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"0/000", "0/x001/234.p/7", "entries/x001/x000/000", "0/x000/001", "7/255.p/01", "0/000.p/256"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		level, index, width, err := ParseTilePath(p)
		if err != nil {
			return
		}
		if got := checkpoint.TilePath(level, index, width); got != p {
			t.Errorf("ParseTilePath(%q) = %d, %d, %d, printed back as %q", p, level, index, width, got)
		}
		if level < storage.EntriesLevel || level > maxTileLevel || width < 0 || width >= tileWidth {
			t.Errorf("ParseTilePath(%q) = %d, %d, %d: out of range", p, level, index, width)
		}
	})
}

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
