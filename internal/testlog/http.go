package testlog

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/evidentlog/evident/checkpoint"
)

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func uintParam(r *http.Request, name string) (uint64, bool) {
	v, err := strconv.ParseUint(r.FormValue(name), 10, 64)
	return v, err == nil
}

// count wraps the mux: it counts each request by its route pattern, and
// the requests in flight.
func (l *Log) count(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, route := mux.Handler(r)
		l.mu.Lock()
		l.requests[route]++
		l.inFlight[route]++
		l.maxInFlight[route] = max(l.maxInFlight[route], l.inFlight[route])
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.inFlight[route]--
			l.mu.Unlock()
		}()
		mux.ServeHTTP(w, r)
	})
}

func (l *Log) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/add-entry", l.addEntry)
	mux.HandleFunc("GET /checkpoint", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		defer l.mu.Unlock()
		w.Write(l.latest)
	})
	mux.HandleFunc("GET /v1/checkpoints/{size}", func(w http.ResponseWriter, r *http.Request) {
		size, err := strconv.ParseUint(r.PathValue("size"), 10, 64)
		l.mu.Lock()
		defer l.mu.Unlock()
		n, ok := l.archive[size]
		if err != nil || !ok {
			jsonError(w, 404, "no such checkpoint")
			return
		}
		w.Write(n)
	})
	mux.HandleFunc("GET /v1/receipt", l.receipt)
	mux.HandleFunc("GET /v1/proof/consistency", func(w http.ResponseWriter, r *http.Request) {
		first, ok1 := uintParam(r, "first")
		second, ok2 := uintParam(r, "second")
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.refuseConsistency != 0 {
			jsonError(w, l.refuseConsistency, "refused")
			return
		}
		if !ok1 || !ok2 || first > second || second > l.tree.Size() {
			jsonError(w, 400, "bad sizes")
			return
		}
		p, err := l.tree.ConsistencyProof(first, second)
		if err != nil {
			jsonError(w, 400, err.Error())
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"hashes": p})
	})
	mux.HandleFunc("GET /v1/entries", l.getEntries)
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"origin": l.Origin, "vkey": l.VKey})
	})
	return l.count(mux)
}

func (l *Log) addEntry(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+l.Token {
		jsonError(w, 401, "bad token")
		return
	}
	e, _ := io.ReadAll(io.LimitReader(r.Body, 65536))
	// Wait at the gate after reading the body, so that the server
	// notices a client that goes away (and cancels r.Context()).
	l.mu.Lock()
	gate := l.gate
	l.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		case <-l.stop:
			jsonError(w, 503, "test log closing")
			return
		}
	}
	if len(e) == 0 || len(e) > 65535 {
		jsonError(w, 413, "entry size")
		return
	}
	l.mu.Lock()
	_, dup := l.byHash[checkpoint.LeafHash(e)]
	i := l.appendLocked(e)
	l.publish()
	size := l.tree.Size()
	rc := l.receiptLocked(i, size)
	if l.badProof != nil && l.badProof(i) {
		r, _ := checkpoint.ParseReceipt(rc)
		r.Proof[0] = append([]byte{r.Proof[0][0] ^ 1}, r.Proof[0][1:]...)
		rc = r.Marshal()
	}
	l.mu.Unlock()
	h := checkpoint.LeafHash(e)
	json.NewEncoder(w).Encode(map[string]any{"index": i, "leaf_hash": base64.StdEncoding.EncodeToString(h[:]), "duplicate": dup, "receipt": string(rc)})
}

func (l *Log) receipt(w http.ResponseWriter, r *http.Request) {
	b, err := hex.DecodeString(r.FormValue("leaf_hash"))
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.byHash[[32]byte(append(b, make([]byte, 32)...)[:32])]
	if err != nil || len(b) != 32 || !ok {
		jsonError(w, 404, "leaf not found")
		return
	}
	size := l.tree.Size()
	if s, ok := uintParam(r, "tree_size"); ok {
		size = s
	}
	if _, ok := l.archive[size]; !ok || i >= size {
		jsonError(w, 404, "no checkpoint of that size covers the leaf")
		return
	}
	w.Write(l.receiptLocked(i, size))
}

func (l *Log) getEntries(w http.ResponseWriter, r *http.Request) {
	start, ok1 := uintParam(r, "start")
	count, ok2 := uintParam(r, "count")
	if !ok1 || !ok2 || count < 1 || count > 1000 {
		jsonError(w, 400, "bad start or count")
		return
	}
	l.mu.Lock()
	delay := l.entriesDelay
	l.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		case <-l.stop:
			jsonError(w, 503, "test log closing")
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failEntriesFrom > 0 && start+count > l.failEntriesFrom {
		jsonError(w, 500, "internal error")
		return
	}
	out := [][]byte{}
	for i := start; i < start+count && i < uint64(len(l.entries)); i++ {
		e := l.entries[i]
		if l.tamperEntry != nil {
			e = l.tamperEntry(i, e)
		}
		out = append(out, e)
	}
	json.NewEncoder(w).Encode(map[string]any{"entries": out})
}
