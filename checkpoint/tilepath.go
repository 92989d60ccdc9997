package checkpoint

import (
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
