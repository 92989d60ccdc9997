package log

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// encodeBatch frames entries as POST /v1/add-entries wants them.
func encodeBatch(entries [][]byte) []byte {
	var b []byte
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

// batchAnswer is add-entries' JSON answer.
type batchAnswer struct {
	Results []struct {
		addResult
		Status int `json:"status"`
	} `json:"results"`
	Error string `json:"error"`
}

// addBatch posts body to /v1/add-entries with the log's token.
func (tl *testLog) addBatch(body []byte, query string) (int, http.Header, batchAnswer) {
	tl.t.Helper()
	return tl.addBatchAs(tl.token, body, query)
}

// addBatchAs posts a batch with key.
func (tl *testLog) addBatchAs(key string, body []byte, query string) (int, http.Header, batchAnswer) {
	tl.t.Helper()
	req, err := http.NewRequest("POST", tl.srv.URL+"/v1/add-entries"+query, bytes.NewReader(body))
	if err != nil {
		tl.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tl.t.Fatalf("add-entries: %v", err)
	}
	defer resp.Body.Close()
	var a batchAnswer
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &a); err != nil {
		tl.t.Errorf("add-entries answered %d with non-JSON %.200q", resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, a
}

// TestAddEntries submits batches from concurrent clients, with and without
// the in-process one-commit queueing, each batch holding a bad entry, a
// repeat within the batch and a repeat of an earlier batch: every good
// entry gets a receipt that verifies, every bad one its own error, and the
// whole log checks out.
func TestAddEntries(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"one commit", nil},
		{"QueueLeaf calls", func(c *Config) { c.QueueBatch = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTestLog(t, func(c *Config) {
				c.MaxEntrySize = 61000
				if tc.mod != nil {
					tc.mod(c)
				}
			})
			j := &journal{index: map[string]uint64{}}
			var receipts sync.Map
			var wg sync.WaitGroup
			for c := range 4 {
				wg.Go(func() {
					for b := range 5 {
						var entries [][]byte
						for i := range 50 {
							entries = append(entries, entryBytes(1+(c*5+b)*50+i))
						}
						entries[10] = entries[3]                       // a repeat within the batch
						entries[20] = entryBytes(1 + (c*5+b)*50/2)     // maybe one of an earlier batch
						entries[30] = bytes.Repeat([]byte("x"), 61001) // too large
						entries[40] = nil                              // empty
						code, _, a := tl.addBatch(encodeBatch(entries), "")
						if code != http.StatusOK || len(a.Results) != len(entries) {
							t.Errorf("add-entries: %d %q with %d results, want 200 with %d", code, a.Error, len(a.Results), len(entries))
							return
						}
						for i, r := range a.Results {
							switch i {
							case 30:
								if r.Status != http.StatusRequestEntityTooLarge || r.Error == "" {
									t.Errorf("too large entry: status %d %q, want 413", r.Status, r.Error)
								}
								continue
							case 40:
								if r.Status != http.StatusBadRequest || !strings.Contains(r.Error, "entry 40 is empty") {
									t.Errorf("empty entry: status %d %q, want 400 naming entry 40", r.Status, r.Error)
								}
								continue
							}
							if r.Error != "" || r.Receipt == "" || !bytes.Equal(r.LeafHash, leafHash(entries[i])) {
								t.Errorf("entry %d: %q, receipt %d bytes, leaf hash %x", i, r.Error, len(r.Receipt), r.LeafHash)
								continue
							}
							// Queued concurrently (without QueueBatch), either
							// of the two may be stored first: exactly one is
							// the duplicate.
							if i == 10 && r.Duplicate == a.Results[3].Duplicate {
								t.Errorf("entries 3 and 10 are the same bytes, but duplicate is %v for both", r.Duplicate)
							}
							j.record(t, entries[i], r.addResult)
							receipts.Store(string(entries[i]), r.addResult)
						}
					}
				})
			}
			wg.Wait()
			checkWholeLog(t, tl, j, &receipts)
		})
	}
}

// TestAddEntriesNoWait: without waiting, a batch answers 202 once its
// entries are durably queued; they are then published.
func TestAddEntriesNoWait(t *testing.T) {
	tl := newTestLog(t, nil)
	var entries [][]byte
	for i := range MaxBatchEntries {
		entries = append(entries, entryBytes(i))
	}
	code, _, a := tl.addBatch(encodeBatch(entries), "?wait=false")
	if code != http.StatusAccepted || len(a.Results) != len(entries) {
		t.Fatalf("add-entries?wait=false: %d %q, %d results", code, a.Error, len(a.Results))
	}
	for i, r := range a.Results {
		if r.Error != "" || r.Receipt != "" || !bytes.Equal(r.LeafHash, leafHash(entries[i])) {
			t.Errorf("entry %d: %+v", i, r)
		}
	}
	if s := tl.snapshot().trillian; s != uint64(len(entries)) {
		waitFor(t, "the batch to be integrated", func() bool { return tl.snapshot().trillian == uint64(len(entries)) })
	}
	waitFor(t, "the batch to be published", func() bool { return tl.checkpoint().Size == uint64(len(entries)) })
}

// TestAddEntriesBadInput: malformed batches are refused whole with a clear
// error, and change nothing.
func TestAddEntriesBadInput(t *testing.T) {
	tl := newTestLog(t, nil)
	if code, r := tl.add([]byte("first"), ""); code != 200 {
		t.Fatalf("add: %d %s", code, r.Error)
	}
	before := tl.snapshot()
	many := make([][]byte, MaxBatchEntries+1)
	for i := range many {
		many[i] = []byte{byte(i), byte(i >> 8)}
	}
	big := encodeBatch([][]byte{bytes.Repeat([]byte("y"), 65535)})
	for len(big) <= MaxBatchBytes {
		big = append(big, big[:65537]...)
	}
	for _, tc := range []struct {
		name  string
		body  []byte
		query string
		code  int
		msg   string
	}{
		{"empty body", nil, "", 400, "empty batch"},
		{"half a length", []byte{0}, "", 400, "entry 0 at byte 0: truncated length prefix"},
		{"short entry", []byte{0, 5, 'a', 'b'}, "", 400, "entry 0 at byte 0: length 5, but only 2 bytes follow"},
		{"short second entry", append(encodeBatch([][]byte{[]byte("ok")}), 0, 9, 'x'), "", 400, "entry 1 at byte 4: length 9, but only 1 bytes follow"},
		{"too many entries", encodeBatch(many), "", 400, "a batch holds at most 1000 entries"},
		{"too large", big, "", 413, "entry too large"},
		{"bad wait", encodeBatch([][]byte{[]byte("ok")}), "?wait=maybe", 400, "wait must be true or false"},
	} {
		code, _, a := tl.addBatch(tc.body, tc.query)
		if code != tc.code || a.Error != tc.msg {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, a.Error, tc.code, tc.msg)
		}
	}
	// Without a valid token.
	req, _ := http.NewRequest("POST", tl.srv.URL+"/v1/add-entries", bytes.NewReader(encodeBatch([][]byte{[]byte("no token")})))
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("add-entries with a wrong token: %d, want 401", resp.StatusCode)
	}
	time.Sleep(3 * tl.log.cfg.CheckpointInterval)
	if after := tl.snapshot(); after != before {
		t.Errorf("bad batches changed the log:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestAddEntriesBacklog: a batch that would overflow the backlog is
// refused whole with 503 and Retry-After, and nothing of it is queued.
func TestAddEntriesBacklog(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.MaxBacklog = 10; c.CheckpointInterval, c.Grown = time.Hour, nil })
	var entries [][]byte
	for i := range 11 {
		entries = append(entries, entryBytes(i))
	}
	code, h, a := tl.addBatch(encodeBatch(entries), "?wait=false")
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("batch over the backlog: %d %q, Retry-After %q; want 503 with Retry-After", code, a.Error, h.Get("Retry-After"))
	}
	if code, _, a = tl.addBatch(encodeBatch(entries[:10]), "?wait=false"); code != http.StatusAccepted {
		t.Errorf("batch within the backlog: %d %q, want 202", code, a.Error)
	}
	waitFor(t, "the batch to be integrated", func() bool { return tl.snapshot().trillian == 10 })
	time.Sleep(100 * time.Millisecond)
	if got := tl.snapshot().trillian; got != 10 {
		t.Errorf("Trillian holds %d leaves, want 10", got)
	}
}

// FuzzParseBatch: parseBatch never panics, and what it accepts frames back
// to exactly its input.
func FuzzParseBatch(f *testing.F) {
	f.Add(encodeBatch([][]byte{[]byte("a"), nil, []byte("bc")}))
	f.Add([]byte{0})
	f.Add([]byte{0, 3, 'a'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		entries, err := parseBatch(body)
		if err != nil {
			return
		}
		if len(entries) == 0 || len(entries) > MaxBatchEntries {
			t.Fatalf("parseBatch accepted %d entries", len(entries))
		}
		if got := encodeBatch(entries); !bytes.Equal(got, body) {
			t.Fatalf("parseBatch(%x) = %q, which frames to %x", body, entries, got)
		}
	})
}
