package log

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/evidentlog/evident/storage"
)

// Handler returns the log's HTTP API (docs/api.md).
func (l *Log) Handler() http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{} // path pattern → its methods
	route := func(pattern string, h http.Handler) {
		mux.Handle(pattern, h)
		method, path, _ := strings.Cut(pattern, " ")
		allowed[path] = append(allowed[path], method)
		if method == http.MethodGet {
			allowed[path] = append(allowed[path], http.MethodHead)
		}
	}
	handle := func(pattern string, h func(http.ResponseWriter, *http.Request) error) {
		route(pattern, l.wrap(pattern, h))
	}
	l.routes(handle)
	gatherers := prometheus.Gatherers{l.metrics.reg}
	if l.cfg.Gatherer != nil {
		gatherers = append(gatherers, l.cfg.Gatherer)
	}
	metrics := promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{})
	route("GET /metrics", l.wrap("GET /metrics", func(w http.ResponseWriter, r *http.Request) error {
		metrics.ServeHTTP(w, r)
		return nil
	}))
	// Other methods on a known path, and unknown paths, get JSON errors
	// too, counted under their path pattern and "unmatched".
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		mux.Handle(path, l.wrap(path, func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return errMethod
		}))
	}
	mux.Handle("/", l.wrap("unmatched", func(http.ResponseWriter, *http.Request) error { return ErrNotFound }))
	return l.refuseUncleanTiles(mux)
}

// routes registers the API's endpoints but /metrics with handle.
func (l *Log) routes(handle func(string, func(http.ResponseWriter, *http.Request) error)) {
	handle("POST /v1/add-entry", l.handleAdd)
	handle("POST /v1/add-entries", l.handleAddBatch)
	handle("GET /checkpoint", l.handleCheckpoint)
	l.tileRoutes(handle) // tlog-tiles (tilehttp.go)
	handle("GET /v1/receipt", l.handleReceipt)
	handle("GET /v1/proof/inclusion", l.handleInclusion)
	handle("GET /v1/proof/consistency", l.handleConsistency)
	handle("GET /v1/entries/{index}", l.handleEntry)
	handle("GET /v1/entries", l.handleEntries)
	handle("GET /v1/checkpoints/{size}", l.handlePublished)
	handle("GET /v1/info", l.handleInfo)
	handle("GET /healthz", l.handleHealth)
	l.eventRoutes(handle)  // typed events and evidence bundles (events.go)
	l.uiRoutes(handle)     // the explorer /ui and its JSON (ui.go)
	l.tenantRoutes(handle) // a tenant's own entries and keys (keys.go)
}

// wrap turns a handler that returns an error into an http.Handler: it
// limits the request body, maps the error to a status (httpStatus) and
// counts the answer.
func (l *Log) wrap(route string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(0)
		switch {
		case route == "POST /v1/add-entries":
			limit = MaxBatchBytes
		case r.Method == http.MethodPost:
			limit = int64(l.cfg.MaxEntrySize)
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		cw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
		if err := h(cw, r); err != nil {
			l.writeError(cw, route, err)
		}
		l.metrics.httpRequests.WithLabelValues(route, strconv.Itoa(cw.code)).Inc()
	})
}

type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (l *Log) writeError(w http.ResponseWriter, route string, err error) {
	code, msg := httpStatus(err)
	l.noteIntegrity(route, err)
	// Not the client going away, nor a log that cannot publish (the
	// publisher logs why, once).
	if code >= 500 && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrNotPublishing) {
		l.log.Error("request failed", "route", route, "status", code, "error", err)
	}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterFor(err))
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeJSONBytes(w, code, b)
}

// writeJSONBytes writes b, a JSON value, and a newline.
func writeJSONBytes(w http.ResponseWriter, code int, b []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, err := w.Write(append(b, '\n'))
	return err
}

func writeText(w http.ResponseWriter, b []byte) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write(b)
	return err
}

// addResponse is the JSON answer of POST /v1/add-entry.
type addResponse struct {
	Index     *uint64 `json:"index,omitempty"`
	LeafHash  []byte  `json:"leaf_hash"`
	Duplicate *bool   `json:"duplicate,omitempty"`
	Receipt   string  `json:"receipt,omitempty"`
	Tenant    string  `json:"tenant,omitempty"`
}

func (l *Log) handleAdd(w http.ResponseWriter, r *http.Request) error {
	entry, wait, p, err := l.readWrite(r, "entry", int64(l.cfg.MaxEntrySize))
	if err != nil {
		return err
	}
	res, err := l.AddEntry(r.Context(), p.Tenant, entry, wait)
	if err != nil {
		return err
	}
	if !wait {
		return writeAddResponse(w, http.StatusAccepted, &addResponse{LeafHash: res.LeafHash[:], Tenant: res.Tenant})
	}
	return writeAddResponse(w, http.StatusOK, &addResponse{
		Index: &res.Index, LeafHash: res.LeafHash[:], Duplicate: &res.Duplicate, Receipt: string(res.Receipt), Tenant: res.Tenant})
}

// readWrite authenticates a write request (before reading anything else:
// it needs a submit or admin key), reads its ?wait= and its body (at most
// limit bytes: wrap limits the reader, and a larger Content-Length is
// refused at once), naming what the body is in errors.
func (l *Log) readWrite(r *http.Request, what string, limit int64) (body []byte, wait bool, p Principal, err error) {
	if p, err = l.authorize(r, storage.RoleSubmit); err != nil {
		return nil, false, p, err
	}
	if wait, err = parseWait(r.URL.Query()); err != nil {
		return nil, false, p, err
	}
	if r.ContentLength > limit {
		return nil, false, p, ErrTooLarge
	}
	if body, err = io.ReadAll(r.Body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, false, p, ErrTooLarge
		}
		return nil, false, p, badRequest("reading the " + what + ": " + err.Error())
	}
	return body, wait, p, nil
}

// batchResponse is the JSON answer of POST /v1/add-entries: one result
// per entry, in order, each an addResponse or an error.
type batchResponse struct {
	Results []batchResult `json:"results"`
}

type batchResult struct {
	addResponse
	Error  string `json:"error,omitempty"`
	Status int    `json:"status,omitempty"`
}

func (l *Log) handleAddBatch(w http.ResponseWriter, r *http.Request) error {
	body, wait, p, err := l.readWrite(r, "batch", MaxBatchBytes)
	if err != nil {
		return err
	}
	entries, err := parseBatch(body)
	if err != nil {
		return err
	}
	results, err := l.AddEntries(r.Context(), p.Tenant, entries, wait)
	if err != nil {
		return err
	}
	out := batchResponse{Results: make([]batchResult, len(results))}
	for i, res := range results {
		if res.Err != nil {
			code, msg := httpStatus(res.Err)
			if code >= 500 {
				l.log.Error("batch entry failed", "entry", i, "status", code, "error", res.Err)
			}
			out.Results[i] = batchResult{Error: msg, Status: code}
			continue
		}
		out.Results[i].LeafHash, out.Results[i].Tenant = res.LeafHash[:], res.Tenant
		if wait {
			out.Results[i].Index, out.Results[i].Duplicate, out.Results[i].Receipt = &res.Index, &res.Duplicate, string(res.Receipt)
		}
	}
	code := http.StatusOK
	if !wait {
		code = http.StatusAccepted
	}
	return writeJSON(w, code, out)
}

func (l *Log) handleCheckpoint(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-cache")
	return writeText(w, l.Checkpoint())
}

func (l *Log) handlePublished(w http.ResponseWriter, r *http.Request) error {
	size, err := parseUint(r.PathValue("size"), "size")
	if err != nil {
		return err
	}
	note, err := l.PublishedCheckpoint(r.Context(), size)
	if err != nil {
		return err
	}
	return writeText(w, note)
}

func (l *Log) handleReceipt(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	hash, err := parseHash(q.Get("leaf_hash"), "leaf_hash")
	if err != nil {
		return err
	}
	var size *uint64
	if q.Has("tree_size") {
		n, err := parseUint(q.Get("tree_size"), "tree_size")
		if err != nil {
			return err
		}
		size = &n
	}
	receipt, err := l.Receipt(r.Context(), hash, size)
	if err != nil {
		return err
	}
	return writeText(w, receipt)
}

func (l *Log) handleInclusion(w http.ResponseWriter, r *http.Request) error {
	q, err := parseInclusionQuery(r.URL.Query())
	if err != nil {
		return err
	}
	index, path, err := l.InclusionProof(r.Context(), q.hash, q.index, q.size)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Index    uint64   `json:"index"`
		TreeSize uint64   `json:"tree_size"`
		Hashes   [][]byte `json:"hashes"`
	}{index, q.size, path})
}

func (l *Log) handleConsistency(w http.ResponseWriter, r *http.Request) error {
	first, second, err := parseConsistencyQuery(r.URL.Query())
	if err != nil {
		return err
	}
	path, err := l.ConsistencyProof(r.Context(), first, second)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Hashes [][]byte `json:"hashes"`
	}{path})
}

func (l *Log) handleEntry(w http.ResponseWriter, r *http.Request) error {
	p, private, err := l.entryReader(r)
	if err != nil {
		return err
	}
	index, err := parseUint(r.PathValue("index"), "index")
	if err != nil {
		return err
	}
	entries, err := l.AttributedEntries(r.Context(), index, 1)
	if err != nil {
		return err
	}
	if private && !mayRead(p, entries[0].Tenant) {
		return errNotOwnEntry
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(tenantHeader, entries[0].Tenant)
	_, err = w.Write(entries[0].Value)
	return err
}

func (l *Log) handleEntries(w http.ResponseWriter, r *http.Request) error {
	p, private, err := l.entryReader(r)
	if err != nil {
		return err
	}
	start, count, err := parseEntriesQuery(r.URL.Query())
	if err != nil {
		return err
	}
	entries, err := l.AttributedEntries(r.Context(), start, count)
	if err != nil {
		return err
	}
	out := struct {
		Entries [][]byte `json:"entries"`
		Tenants []string `json:"tenants"`
	}{}
	for _, e := range entries {
		if private && !mayRead(p, e.Tenant) {
			e.Value = nil // another tenant's, in a private log: null
		}
		out.Entries, out.Tenants = append(out.Entries, e.Value), append(out.Tenants, e.Tenant)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (l *Log) handleInfo(w http.ResponseWriter, r *http.Request) error {
	info := map[string]any{"origin": l.cfg.Origin, "vkey": l.cfg.VKey}
	if l.cfg.PrivateEntries {
		info["private"] = true
	}
	return writeJSON(w, http.StatusOK, info)
}

func (l *Log) handleHealth(w http.ResponseWriter, r *http.Request) error {
	// The answer is for operators but public: short reasons that may name
	// witnesses, never storage errors, paths or addresses (those go to the
	// server's log).
	reason := ""
	if alarm := l.integrityErr(); alarm != "" {
		reason = "integrity: " + alarm
	} else if err := l.pub.health(); err != nil {
		reason = "cannot publish: " + publishReason(err)
	} else if l.cfg.Healthy != nil {
		err := l.cfg.Healthy(r.Context())
		if err != nil {
			reason = "Trillian's storage does not answer"
		}
		l.logHealth(err)
	}
	extra := ""
	if l.cfg.CosignStatus != nil {
		extra = l.cfg.CosignStatus()
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if reason != "" {
		w.Header().Set("Retry-After", retryAfter)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, err := fmt.Fprintf(w, "%s\n%s", reason, extra)
		return err
	}
	_, err := fmt.Fprintf(w, "ok\n%s", extra)
	return err
}

// logHealth logs why Trillian's storage does not answer (err, nil when it
// does), once per distinct error: health checks poll.
func (l *Log) logHealth(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	l.healthMu.Lock()
	repeated := l.healthErr == msg
	l.healthErr = msg
	l.healthMu.Unlock()
	if err != nil && !repeated {
		l.log.Error("Trillian's storage does not answer", "error", err)
	}
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header. SPEC(RFC 9110 §11.1, https://www.rfc-editor.org/rfc/rfc9110#section-11.1):
// the scheme is case-insensitive, and one or more spaces follow it.
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

// The request parsers below accept only canonical forms: decimal numbers
// without sign or leading zeros, hashes as 64 lowercase hex digits.

// parseUint parses a canonical decimal number up to 2^63-1.
func parseUint(s, name string) (uint64, error) {
	bad := badRequest(fmt.Sprintf("%s must be a decimal number without leading zeros, got %q", name, truncate(s)))
	if s == "" || len(s) > 19 || s[0] == '0' && len(s) > 1 {
		return 0, bad
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, bad
		}
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, bad
	}
	return n, nil
}

// parseHash parses a SHA-256 hash in lowercase hex.
func parseHash(s, name string) ([32]byte, error) {
	var h [32]byte
	if len(s) != 64 || strings.ToLower(s) != s {
		return h, badRequest(fmt.Sprintf("%s must be 64 lowercase hex digits, got %q", name, truncate(s)))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, badRequest(fmt.Sprintf("%s must be 64 lowercase hex digits, got %q", name, truncate(s)))
	}
	return h, nil
}

func truncate(s string) string {
	if len(s) > 70 {
		return s[:70] + "..."
	}
	return s
}

// parseWait reads add-entry's ?wait= (true when absent).
func parseWait(q map[string][]string) (bool, error) {
	v, ok := q["wait"]
	if !ok {
		return true, nil
	}
	switch {
	case len(v) == 1 && v[0] == "true":
		return true, nil
	case len(v) == 1 && v[0] == "false":
		return false, nil
	}
	return false, badRequest("wait must be true or false")
}

type inclusionQuery struct {
	hash  *[32]byte
	index uint64
	size  uint64
}

// parseInclusionQuery reads ?leaf_hash= or ?index=, and ?tree_size=.
func parseInclusionQuery(q map[string][]string) (inclusionQuery, error) {
	var out inclusionQuery
	get := func(k string) (string, bool) {
		v, ok := q[k]
		if !ok || len(v) == 0 {
			return "", false
		}
		return v[0], true
	}
	hs, hasHash := get("leaf_hash")
	is, hasIndex := get("index")
	if hasHash == hasIndex {
		return out, badRequest("give exactly one of leaf_hash and index")
	}
	var err error
	if hasHash {
		var h [32]byte
		if h, err = parseHash(hs, "leaf_hash"); err != nil {
			return out, err
		}
		out.hash = &h
	} else if out.index, err = parseUint(is, "index"); err != nil {
		return out, err
	}
	ss, _ := get("tree_size")
	if out.size, err = parseUint(ss, "tree_size"); err != nil {
		return out, err
	}
	return out, nil
}

// parseConsistencyQuery reads ?first=&second=.
func parseConsistencyQuery(q map[string][]string) (first, second uint64, err error) {
	f, s := "", ""
	if v := q["first"]; len(v) > 0 {
		f = v[0]
	}
	if v := q["second"]; len(v) > 0 {
		s = v[0]
	}
	if first, err = parseUint(f, "first"); err != nil {
		return 0, 0, err
	}
	if second, err = parseUint(s, "second"); err != nil {
		return 0, 0, err
	}
	if first > second {
		return 0, 0, badRequest(fmt.Sprintf("first %d is larger than second %d", first, second))
	}
	return first, second, nil
}

// parseEntriesQuery reads ?start=&count=.
func parseEntriesQuery(q map[string][]string) (start, count uint64, err error) {
	st, c := "", ""
	if v := q["start"]; len(v) > 0 {
		st = v[0]
	}
	if v := q["count"]; len(v) > 0 {
		c = v[0]
	}
	if start, err = parseUint(st, "start"); err != nil {
		return 0, 0, err
	}
	if count, err = parseUint(c, "count"); err != nil {
		return 0, 0, err
	}
	if count == 0 || count > MaxEntriesPerRequest {
		return 0, 0, badRequest(fmt.Sprintf("count must be between 1 and %d", MaxEntriesPerRequest))
	}
	return start, count, nil
}
