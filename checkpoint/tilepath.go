package checkpoint

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TilePath returns the canonical path of a c2sp.org/tlog-tiles tile below
// a log's "<prefix>/tile/": "<L>/<N>" for a hash tile, "entries/<N>" for an
// entry bundle (a negative level), followed by ".p/<W>" for a partial tile
// of width W (0 is a full tile). SPEC(tlog-tiles): the index is written in
// groups of three digits, all but the last prefixed with "x".
func TilePath(level int, index uint64, width int) string {
	var b strings.Builder
	if level < 0 {
		b.WriteString("entries")
	} else {
		b.WriteString(strconv.Itoa(level))
	}
	groups := []string{fmt.Sprintf("%03d", index%1000)}
	for index >= 1000 {
		index /= 1000
		groups = append(groups, fmt.Sprintf("x%03d", index%1000))
	}
	for i := len(groups) - 1; i >= 0; i-- {
		b.WriteString("/" + groups[i])
	}
	if width > 0 {
		fmt.Fprintf(&b, ".p/%d", width)
	}
	return b.String()
}

// MaxTileLevel is the highest tile level a tile path may name: tiles of
// height 8 over 64-bit indexes.
const MaxTileLevel = 63

// tileWidth is the width of a full tile: SPEC(tlog-tiles): 256.
const tileWidth = 256

// ParseTilePath parses the part of a tile URL after "/tile/": "<L>/<N>" or
// "entries/<N>", each optionally followed by ".p/<W>". It returns the level
// (-1 for an entry bundle, as TilePath takes it), the index, and the width of a
// partial tile (0 for a full tile). Only canonical paths parse.
func ParseTilePath(p string) (level int, index uint64, width int, err error) {
	if len(p) > 64 {
		return 0, 0, 0, errors.New("tile path too long")
	}
	first, rest, ok := strings.Cut(p, "/")
	if !ok {
		return 0, 0, 0, errors.New("tile path must be <L>/<N> or entries/<N>")
	}
	if first == "entries" {
		level = -1
	} else {
		l, err := parseCanonical(first, MaxTileLevel)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("tile level: %w", err)
		}
		level = int(l)
	}
	segs := strings.Split(rest, "/")
	if n := len(segs); n >= 2 && strings.HasSuffix(segs[n-2], ".p") {
		// SPEC(tlog-tiles): a partial tile's width is 1 to 255.
		w, err := parseCanonical(segs[n-1], tileWidth-1)
		if err != nil || w == 0 {
			return 0, 0, 0, fmt.Errorf("partial tile width %q is not 1 to %d", segs[n-1], tileWidth-1)
		}
		width = int(w)
		segs = segs[:n-1]
		segs[n-2] = strings.TrimSuffix(segs[n-2], ".p")
	}
	if index, err = parseTileIndex(segs); err != nil {
		return 0, 0, 0, err
	}
	return level, index, width, nil
}

// parseCanonical parses a decimal number of at most max, without sign or
// leading zeros.
func parseCanonical(s string, max uint64) (uint64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a canonical decimal number", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("%q is more than %d", s, max)
	}
	return n, nil
}

// parseTileIndex parses a tile index: SPEC(tlog-tiles): groups of three
// digits, every group but the last prefixed with "x", with no leading
// all-zero group.
func parseTileIndex(segs []string) (uint64, error) {
	if len(segs) > 7 { // 2^64 has 20 digits
		return 0, errors.New("tile index too long")
	}
	var n uint64
	for i, s := range segs {
		last := i == len(segs)-1
		if !last {
			if !strings.HasPrefix(s, "x") {
				return 0, fmt.Errorf("tile index element %q must start with x", s)
			}
			s = s[1:]
		}
		if len(s) != 3 || strings.TrimLeft(s, "0123456789") != "" {
			return 0, fmt.Errorf("tile index element %q is not three digits", segs[i])
		}
		if i == 0 && !last && s == "000" {
			return 0, errors.New("tile index has a leading x000")
		}
		d, _ := strconv.ParseUint(s, 10, 64)
		if n > (1<<64-1-d)/1000 {
			return 0, errors.New("tile index out of range")
		}
		n = n*1000 + d
	}
	return n, nil
}
