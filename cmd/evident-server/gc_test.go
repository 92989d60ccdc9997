package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestLimitMemoryFollowsLiveHeap checks that the collector's soft limit
// rises above a live heap larger than gcMemoryLimit (a limit the live heap
// fills makes the collector run without end) and comes back down when the
// heap is freed.
func TestLimitMemoryFollowsLiveHeap(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(gcMemoryLimit))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { limitMemory(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitLimit := func(what string, ok func(limit int64) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			runtime.GC()
			limit := debug.SetMemoryLimit(-1)
			if ok(limit) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("soft memory limit %d MiB; want it %s", limit>>20, what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	const live = 300 << 20
	held := make([]byte, live)
	waitLimit("at least 128 MiB above a 300 MiB live heap", func(l int64) bool { return l >= live+gcHeadroom-8<<20 })
	runtime.KeepAlive(held)
	held = nil
	waitLimit("back at 256 MiB once the heap is freed", func(l int64) bool { return l == gcMemoryLimit })
}
