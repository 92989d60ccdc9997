package log

import (
	"embed"
	"errors"
	"fmt"
	"net/http"
	"path"
	"time"

	"github.com/evidentlog/evident/internal/webui"
	"github.com/evidentlog/evident/storage"
)

// The explorer: GET /ui/ serves a page (embedded: no CDN, no framework,
// nothing fetched from elsewhere) that shows the latest checkpoint, its
// cosignatures and the witness policy's quorum, the tree's growth, health
// and metrics, looks entries up, and verifies receipts in the browser
// (docs/api.md, "The explorer"). It trusts nothing the server says: the
// page verifies signatures, cosignatures and proofs itself, with the log
// key and policy its user pins. Two small JSON/text endpoints feed it:
// GET /v1/witness-policy and GET /v1/ui/history.

//go:embed ui
var uiFiles embed.FS

// uiAssets are the explorer's files and their content types.
var uiAssets = map[string]string{
	"index.html": "text/html; charset=utf-8",
	"app.js":     "text/javascript; charset=utf-8",
	"verify.js":  "text/javascript; charset=utf-8",
	"mldsa.js":   "text/javascript; charset=utf-8",
	"ed25519.js": "text/javascript; charset=utf-8",
	// A self-test of the browser's verifier (scripts/ui-test.sh runs it).
	"selftest.html": "text/html; charset=utf-8",
	"selftest.js":   "text/javascript; charset=utf-8",
}

// History sampling: GET /v1/ui/history?points=N returns at most N
// published checkpoints spread evenly over the tree's sizes.
const (
	defaultHistoryPoints = 120
	maxHistoryPoints     = 500
)

// uiRoutes registers the explorer's routes (called from Handler).
func (l *Log) uiRoutes(handle func(string, func(http.ResponseWriter, *http.Request) error)) {
	handle("GET /ui", func(w http.ResponseWriter, r *http.Request) error {
		// Relative, so that a log served under a prefix (a named log of a
		// server with several, at /<name>/) sends the browser to its own
		// explorer; the page's own links are relative for the same reason.
		w.Header().Set("Location", "ui/")
		w.WriteHeader(http.StatusMovedPermanently)
		return nil
	})
	handle("GET /ui/{file...}", l.handleUIFile)
	handle("GET /v1/witness-policy", l.handleWitnessPolicy)
	handle("GET /v1/ui/history", l.handleHistory)
}

func (l *Log) handleUIFile(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("file")
	if name == "" {
		name = "index.html"
	}
	webui.SecurityHeaders(w.Header())
	if name == "style.css" {
		webui.ServeCSS(w, r)
		return nil
	}
	ctype, ok := uiAssets[name]
	if !ok {
		return ErrNotFound
	}
	b, err := uiFiles.ReadFile(path.Join("ui", name))
	if err != nil {
		return fmt.Errorf("explorer asset %s: %w", name, err)
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	_, err = w.Write(b)
	return err
}

// handleWitnessPolicy serves the witness policy's text, or 404 for a log
// without witnesses.
func (l *Log) handleWitnessPolicy(w http.ResponseWriter, r *http.Request) error {
	if l.cfg.WitnessPolicy == nil {
		return ErrNotFound
	}
	w.Header().Set("Cache-Control", "no-cache")
	return writeText(w, l.cfg.WitnessPolicy.Text())
}

// historyPoint is one published checkpoint in GET /v1/ui/history.
type historyPoint struct {
	Size        uint64    `json:"size"`
	PublishedAt time.Time `json:"published_at"`
	// SignedAt is when the log signed it and showed it to witnesses (only
	// logs with witnesses record it): PublishedAt - SignedAt is the time
	// the witnesses took.
	SignedAt *time.Time `json:"signed_at,omitempty"`
	// Note is the signed checkpoint, verbatim: the explorer checks it.
	Note string `json:"note"`
}

// handleHistory answers {"origin": ..., "checkpoints": [...]}: up to
// ?points=N (default 120, at most 500) published checkpoints, in size
// order, sampled at evenly spaced sizes from 0 to the latest, which is
// always included.
func (l *Log) handleHistory(w http.ResponseWriter, r *http.Request) error {
	points := uint64(defaultHistoryPoints)
	if s := r.URL.Query().Get("points"); s != "" || r.URL.Query().Has("points") {
		n, err := parseUint(s, "points")
		if err != nil {
			return err
		}
		if n < 2 || n > maxHistoryPoints {
			return badRequest(fmt.Sprintf("points must be from 2 to %d", maxHistoryPoints))
		}
		points = n
	}
	h, err := l.history(r, int(points))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-cache")
	return writeJSON(w, http.StatusOK, struct {
		Origin      string         `json:"origin"`
		Checkpoints []historyPoint `json:"checkpoints"`
	}{l.cfg.Origin, h})
}

func (l *Log) history(r *http.Request, points int) ([]historyPoint, error) {
	ctx := r.Context()
	latest, err := l.cfg.State.LatestCheckpoint(ctx, l.cfg.Origin)
	if err != nil {
		return nil, fmt.Errorf("reading the latest checkpoint: %w", err)
	}
	var out []historyPoint
	add := func(c storage.StoredCheckpoint) error {
		if len(out) > 0 && out[len(out)-1].Size >= c.Size {
			return nil
		}
		p := historyPoint{Size: c.Size, PublishedAt: c.PublishedAt.UTC(), Note: string(c.Note)}
		if l.cfg.Cosign != nil {
			s, err := l.cfg.State.Signed(ctx, l.cfg.Origin, c.Size)
			switch {
			case err == nil:
				at := s.SignedAt.UTC()
				p.SignedAt = &at
			case !errors.Is(err, storage.ErrNotFound):
				return fmt.Errorf("reading signed checkpoint %d: %w", c.Size, err)
			}
		}
		out = append(out, p)
		return nil
	}
	// One indexed query per point: the first checkpoint at or after each
	// of points evenly spaced sizes.
	for i := range points - 1 {
		from := latest.Size / uint64(points-1) * uint64(i)
		if latest.Size < uint64(points) {
			from = latest.Size * uint64(i) / uint64(points-1)
		}
		cs, err := l.cfg.State.Checkpoints(ctx, l.cfg.Origin, from, 1)
		if err != nil {
			return nil, err
		}
		if len(cs) == 1 && cs[0].Size < latest.Size {
			if err := add(cs[0]); err != nil {
				return nil, err
			}
		}
	}
	if err := add(*latest); err != nil {
		return nil, err
	}
	return out, nil
}
