package client

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
)

// TestAddEntries: the batch goes out framed, and each result comes back in
// order, an entry's error as an *HTTPError with its own status.
func TestAddEntries(t *testing.T) {
	entries := [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/add-entries" || r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("request %s with %q", r.URL.Path, r.Header.Get("Authorization"))
		}
		body, _ := io.ReadAll(r.Body)
		var got [][]byte
		for len(body) >= 2 {
			n := int(binary.BigEndian.Uint16(body))
			got, body = append(got, body[2:2+n]), body[2+n:]
		}
		var res []map[string]any
		for i, e := range got {
			if i == 1 {
				res = append(res, map[string]any{"error": "entry too large", "status": 413})
				continue
			}
			lh := checkpoint.LeafHash(e)
			res = append(res, map[string]any{"index": i * 10, "leaf_hash": b64(lh[:]), "duplicate": i == 2, "receipt": "R"})
		}
		json.NewEncoder(w).Encode(map[string]any{"results": res})
	})
	c := newClient(t, h, Config{Token: "tok"})
	rs, err := c.AddEntries(t.Context(), entries)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].Err != nil || rs[0].Index != 0 || rs[2].Index != 20 || !rs[2].Duplicate || rs[0].Duplicate {
		t.Fatalf("results %+v", rs)
	}
	var he *HTTPError
	if !errors.As(rs[1].Err, &he) || he.StatusCode != 413 || he.Message != "entry too large" {
		t.Errorf("entry 1: %v, want an HTTPError 413", rs[1].Err)
	}
}

func TestEncodeBatchLimits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries [][]byte
	}{
		{"none", nil},
		{"too many", make([][]byte, MaxBatchEntries+1)},
		{"entry too large", [][]byte{make([]byte, MaxEntrySize+1)}},
		{"too many bytes", func() [][]byte {
			var es [][]byte
			for range MaxBatchBytes/MaxEntrySize + 1 {
				es = append(es, make([]byte, MaxEntrySize))
			}
			return es
		}()},
	} {
		if _, err := EncodeBatch(tc.entries); err == nil {
			t.Errorf("%s: EncodeBatch succeeded", tc.name)
		}
	}
}

// FuzzDecodeBatch: decodeBatch accepts only answers with one result per
// entry, each a good leaf hash with a receipt or an error status.
func FuzzDecodeBatch(f *testing.F) {
	lh := checkpoint.LeafHash([]byte("e"))
	f.Add([]byte(fmt.Sprintf(`{"results":[{"index":1,"leaf_hash":%q,"receipt":"R"},{"error":"x","status":400}]}`, b64(lh[:]))))
	f.Add([]byte(`{"results":[{"error":"x","status":200},{}]}`))
	f.Add([]byte(`{"results":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rs, err := decodeBatch(body, [][]byte{[]byte("e"), []byte("e")})
		if err != nil {
			return
		}
		if len(rs) != 2 {
			t.Fatalf("%d results for 2 entries", len(rs))
		}
		for _, r := range rs {
			var he *HTTPError
			switch {
			case r.Err != nil && (!errors.As(r.Err, &he) || he.StatusCode < 400):
				t.Errorf("entry error %v", r.Err)
			case r.Err == nil && (r.AddResponse == nil || r.LeafHash != lh || len(r.Receipt) == 0):
				t.Errorf("accepted a wrong answer: %+v", r.AddResponse)
			}
		}
	})
}
