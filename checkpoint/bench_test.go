package checkpoint

import (
	"fmt"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	body := Checkpoint{Origin: "example.com/log", Size: 123456789, Hash: someHash}.Marshal()
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := newTestKeys(b, "example.com/log")
	n := k.signed(b, Checkpoint{Origin: "example.com/log", Size: 123456789, Hash: someHash}, 0, 1, 2)
	for b.Loop() {
		if _, err := Open(n, k.logVerifier, k.wVerifiers...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyReceipt(b *testing.B) {
	f := newReceiptFixture(b)
	k := f.keys
	p := mustPolicy(b, fmt.Sprintf("log %s\nwitness A %s\nwitness B %s\nwitness C %s\ngroup g 2 A B C\nquorum g\n",
		k.logVKey, k.wVKeys[0], k.wVKeys[1], k.wVKeys[2]))
	raw := f.receipt(b, 7, 0, 1).Marshal()
	for b.Loop() {
		r, err := ParseReceipt(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := VerifyReceipt(r, entry(7), k.logVerifier, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyInclusion(b *testing.B) {
	tree := newTestTree(1000)
	root := tree.root(0, 1000)
	p := tree.inclusion(500, 0, 1000)
	for b.Loop() {
		if err := VerifyInclusion(500, 1000, tree.leaves[500], p, root); err != nil {
			b.Fatal(err)
		}
	}
}
