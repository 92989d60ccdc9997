package log

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkAddEntry adds entries over HTTP on loopback from parallel
// clients, waiting for receipts or not: 8 clients per GOMAXPROCS (16 on 2
// cores).
func BenchmarkAddEntry(b *testing.B) {
	for _, q := range []string{"", "?wait=false"} {
		b.Run("query="+q, func(b *testing.B) {
			tl := newTestLog(b, nil)
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := fmt.Appendf(nil, "bench entry %d", n.Add(1))
					if code, r := tl.add(e, q); code/100 != 2 {
						b.Errorf("add: %d %s", code, r.Error)
					}
				}
			})
		})
	}
}
