package log

import "testing"

func TestLeafCache(t *testing.T) {
	h := func(b byte) [32]byte { return [32]byte{b} }
	c := newLeafCache(3)
	c.add(10, [][32]byte{h(1), h(2)})
	c.add(12, [][32]byte{h(1), h(3), h(4)}) // h(1) keeps 10; h(4) evicts h(1)
	for _, tc := range []struct {
		leaf byte
		want uint64
		ok   bool
	}{{1, 0, false}, {2, 11, true}, {3, 13, true}, {4, 14, true}, {5, 0, false}} {
		got, ok := c.get(h(tc.leaf))
		if ok != tc.ok || got != tc.want {
			t.Errorf("get(%d) = %d, %v; want %d, %v", tc.leaf, got, ok, tc.want, tc.ok)
		}
	}
	off := newLeafCache(-1)
	off.add(0, [][32]byte{h(1)})
	if _, ok := off.get(h(1)); ok {
		t.Error("a disabled cache holds a leaf")
	}
}
