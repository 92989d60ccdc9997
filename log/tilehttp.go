package log

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// The tlog-tiles read API (https://c2sp.org/tlog-tiles), beside
// /checkpoint: GET /tile/<L>/<N>[.p/<W>] and /tile/entries/<N>[.p/<W>].

// tileRoutes registers the tile endpoints.
func (l *Log) tileRoutes(handle func(string, func(http.ResponseWriter, *http.Request) error)) {
	handle("GET /tile/{path...}", l.handleTile)
}

// immutable is the Cache-Control of a tile: SPEC(tlog-tiles): the contents
// of a tile URL, full or partial, never change.
const immutable = "public, max-age=31536000, immutable"

func (l *Log) handleTile(w http.ResponseWriter, r *http.Request) error {
	level, index, width, err := checkpoint.ParseTilePath(r.PathValue("path"))
	if err != nil {
		return badRequest(err.Error())
	}
	if err := l.privateBundle(level); err != nil {
		return err
	}
	data, err := l.Tile(r.Context(), level, index, width)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("Cache-Control", immutable)
	_, err = w.Write(data)
	return err
}

// Tile returns the tile (level, index) of width width (0: full) as served:
// a hash tile, or an entry bundle at level storage.EntriesLevel. It is
// ErrNotFound unless the tile is in the published tree, and, when partial,
// of a width that a published checkpoint needs.
func (l *Log) Tile(ctx context.Context, level int, index uint64, width int) ([]byte, error) {
	size := l.pub.latest().size
	n := size // hashes (or entries) of the tile's level in the published tree
	if level > 0 {
		n = size >> (tileHeight * level)
	}
	if index > n/tileWidth {
		return nil, ErrNotFound
	}
	have := n - index*tileWidth
	switch {
	case width == 0 && have < tileWidth, width > 0 && uint64(width) > have:
		return nil, ErrNotFound
	case width > 0 && uint64(width) < have:
		// An older checkpoint's partial tile, if one needed it.
		shift := tileHeight * max(level, 0)
		lo := (index*tileWidth + uint64(width)) << shift
		ok, err := l.cfg.State.HasCheckpointIn(ctx, l.cfg.Origin, lo, lo+1<<shift)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrNotFound
		}
	}
	w := width
	if w == 0 {
		w = tileWidth
	}
	var data []byte
	var err error
	if level == storage.EntriesLevel {
		data, err = l.entryBundle(ctx, index, w)
	} else {
		var t *hashTile
		if t, err = l.tiles.hashTile(ctx, level, index, w); err == nil {
			data = t.data[:32*w]
		}
	}
	if errors.Is(err, errNoTile) && !errors.Is(err, errBadProof) {
		return nil, fmt.Errorf("%w (the log's tiles are still being written)", ErrNotFound)
	}
	return data, err
}

// refuseUncleanTiles answers 400 to a tile path with "." or ".." elements
// or empty ones, which http.ServeMux would otherwise redirect to a cleaned
// path: no such path is a tile.
func (l *Log) refuseUncleanTiles(next http.Handler) http.Handler {
	bad := l.wrap("GET /tile/{path...}", func(http.ResponseWriter, *http.Request) error {
		return badRequest("tile path has empty, . or .. elements")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := strings.CutPrefix(r.URL.Path, "/tile/"); ok {
			for _, seg := range strings.Split(p, "/") {
				if seg == "" || seg == "." || seg == ".." {
					bad.ServeHTTP(w, r)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
