package witness

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/webui"
)

// SizeContentType is the content type of a 409 answer that carries the
// size the witness holds (tlog-witness).
const SizeContentType = "text/x.tlog.size"

// Handler returns the witness's HTTP API:
//
//	POST /add-checkpoint                  tlog-witness add-checkpoint
//	GET  /<hex SHA-256 of origin>/checkpoint  latest cosigned checkpoint
//	GET  /evidence[?after=ID]             split-view evidence (JSON)
//	GET  /                                status page (HTML for browsers, else text)
//	GET  /style.css                       the status page's stylesheet
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", w.serveAddCheckpoint)
	mux.HandleFunc("GET /{origin}/checkpoint", w.serveCheckpoint)
	mux.HandleFunc("GET /evidence", w.serveEvidence)
	mux.HandleFunc("GET /{$}", w.serveStatus)
	mux.HandleFunc("GET /style.css", webui.ServeCSS)
	return mux
}

func (w *Witness) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxRequestSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(rw, fmt.Sprintf("request body is larger than %d bytes", MaxRequestSize), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "reading request body failed", http.StatusBadRequest)
		return
	}
	req, err := ParseRequest(body)
	if err != nil {
		w.writeError(rw, err)
		return
	}
	line, err := w.AddCheckpoint(r.Context(), req)
	if err != nil {
		w.writeError(rw, err)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Write(line)
}

// originID names a log in the witness's checkpoint path,
// /<originID>/checkpoint: the lowercase hex SHA-256 of its origin.
func originID(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(sum[:])
}

func (w *Witness) serveCheckpoint(rw http.ResponseWriter, r *http.Request) {
	h := r.PathValue("origin")
	origin := ""
	for _, o := range w.logs.Load().Origins() {
		if originID(o) == h {
			origin = o
			break
		}
	}
	if origin == "" {
		http.Error(rw, "unknown log (the path is the lowercase hex SHA-256 of its origin)", http.StatusNotFound)
		return
	}
	b, err := w.Checkpoint(r.Context(), origin)
	if err != nil {
		w.writeError(rw, err)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Write(b)
}

func (w *Witness) serveEvidence(rw http.ResponseWriter, r *http.Request) {
	var after int64
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			http.Error(rw, "after must be a non-negative evidence ID", http.StatusBadRequest)
			return
		}
		after = n
	}
	ev, err := w.ListEvidence(r.Context(), after)
	if err != nil {
		w.writeError(rw, err)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	enc.Encode(struct {
		Evidence []Evidence `json:"evidence"`
	}{ev})
}

func (w *Witness) serveStatus(rw http.ResponseWriter, r *http.Request) {
	if wantsHTML(r) {
		w.serveUI(rw, r)
		return
	}
	states, err := w.db.WitnessStates(r.Context())
	if err != nil {
		w.writeError(rw, err)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	alg, _ := checkpoint.CosignatureAlgorithm(w.VKey())
	fmt.Fprintf(rw, "evident-witness %s\nvkey %s\nalgorithm %s\n\n", w.Name(), w.VKey(), alg)
	tw := tabwriter.NewWriter(rw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "log\tsize\tlast update\tcheckpoint")
	for _, o := range w.logs.Load().Origins() {
		size, at := "-", "never"
		for _, st := range states {
			if st.Origin == o {
				size, at = strconv.FormatUint(st.Size, 10), st.UpdatedAt.UTC().Format(time.RFC3339)
			}
		}
		sum := sha256.Sum256([]byte(o))
		fmt.Fprintf(tw, "%s\t%s\t%s\t/%x/checkpoint\n", o, size, at, sum)
	}
	tw.Flush()
}

// writeError maps an error to its tlog-witness status code. This is the
// package's one place that does.
func (w *Witness) writeError(rw http.ResponseWriter, err error) {
	var conflict *ConflictError
	var limited *RateLimitError
	switch {
	case errors.As(err, &conflict):
		// SPEC(tlog-witness): 409 with Content-Type text/x.tlog.size and
		// the size of the latest cosigned checkpoint, in decimal, then "\n".
		rw.Header().Set("Content-Type", SizeContentType)
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", conflict.Size)
	case errors.As(err, &limited):
		secs := int(math.Ceil(limited.RetryAfter.Seconds()))
		rw.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		http.Error(rw, "rate limit exceeded for this log", http.StatusTooManyRequests)
	case errors.Is(err, checkpoint.ErrMalformed):
		http.Error(rw, err.Error(), http.StatusBadRequest)
	case errors.Is(err, checkpoint.ErrSignature):
		http.Error(rw, err.Error(), http.StatusForbidden)
	case errors.Is(err, ErrUnknownOrigin):
		http.Error(rw, err.Error(), http.StatusNotFound)
	case errors.Is(err, ErrInconsistent):
		http.Error(rw, err.Error(), http.StatusUnprocessableEntity)
	case errors.Is(err, ErrBusy):
		rw.Header().Set("Retry-After", "1")
		http.Error(rw, "witness busy, retry", http.StatusServiceUnavailable)
	default:
		w.logger.Error("witness request failed", "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
	}
}
