package checkpoint

import "testing"

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
		{"entries/005.p/255", -1, 255, 5, true},
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
		if tc.ok && TilePath(level, index, width) != tc.path {
			t.Errorf("TilePath(%d, %d, %d) = %q, want %q", level, index, width, TilePath(level, index, width), tc.path)
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
		if got := TilePath(level, index, width); got != p {
			t.Errorf("ParseTilePath(%q) = %d, %d, %d, printed back as %q", p, level, index, width, got)
		}
		if level < -1 || level > MaxTileLevel || width < 0 || width >= tileWidth {
			t.Errorf("ParseTilePath(%q) = %d, %d, %d: out of range", p, level, index, width)
		}
	})
}
