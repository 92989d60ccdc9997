package log

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
)

// TestQueueLingers checks Config.QueueLinger on the real in-process
// storage: an entry that comes after a batch of queueLingerLoad entries
// waits for a full batch, and one queued with the next entries in a single
// QueueBatch call; after small batches an entry is queued at once.
func TestQueueLingers(t *testing.T) {
	// recorded wraps the backend's QueueBatch to record each call's size.
	recorded := func(sizes *[]int, mu *sync.Mutex) func(*Config) {
		return func(c *Config) {
			queue := c.QueueBatch
			c.QueueBatch = func(ctx context.Context, leaves []*trillian.LogLeaf) ([]*trillian.QueuedLogLeaf, error) {
				mu.Lock()
				*sizes = append(*sizes, len(leaves))
				mu.Unlock()
				return queue(ctx, leaves)
			}
		}
	}
	// A minute's linger: an entry that waited where it should not would
	// fail the bounded waits below instead of passing by luck.
	var sizes []int
	var mu sync.Mutex
	tl := newTestLog(t, func(c *Config) {
		recorded(&sizes, &mu)(c)
		c.QueueLinger, c.queueLingerLoad, c.queueLingerBatch = time.Minute, 1, 3
	})
	add := func(i int) chan int {
		done := make(chan int, 1)
		go func() {
			code, _ := tl.add(fmt.Appendf(nil, "linger %d", i), "?wait=false")
			done <- code
		}()
		return done
	}
	within := func(what string, c chan int) {
		t.Helper()
		select {
		case code := <-c:
			if code != http.StatusAccepted {
				t.Fatalf("%s: status %d, want 202", what, code)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s was not queued within 20 s (the linger is a minute)", what)
		}
	}
	within("the first entry", add(0)) // no batch before it: no wait
	b := add(1)
	time.Sleep(100 * time.Millisecond)
	select {
	case code := <-b:
		t.Fatalf("an entry after a batch of 1 (the load mark) was queued alone (status %d), want it to wait for a batch of 3", code)
	default:
	}
	c, d := add(2), add(3)
	within("the waiting entry", b)
	within("the second entry after it", c)
	within("the third entry after it", d)
	mu.Lock()
	got := slices.Clone(sizes)
	mu.Unlock()
	if !slices.Equal(got, []int{1, 3}) {
		t.Errorf("QueueBatch calls of %v entries, want [1 3]", got)
	}

	// Below the load mark nothing waits.
	var sizes2 []int
	tl2 := newTestLog(t, func(c *Config) {
		recorded(&sizes2, &mu)(c)
		c.QueueLinger, c.queueLingerLoad, c.queueLingerBatch = time.Minute, 5, 10
	})
	for i := range 3 {
		done := make(chan int, 1)
		go func() {
			code, _ := tl2.add(fmt.Appendf(nil, "lone %d", i), "?wait=false")
			done <- code
		}()
		within(fmt.Sprintf("lone entry %d", i), done)
	}

	// Stopping the queuer ends a wait, and the waiting entry is answered.
	q := newQueuer(tl2.be.QueueBatch, time.Minute, 1, 3)
	leaf := func(s string) *trillian.LogLeaf { return &trillian.LogLeaf{LeafValue: []byte(s)} }
	if _, err := q.queue(t.Context(), leaf("before the wait")); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := q.queue(t.Context(), leaf("waiting at close"))
		waited <- err
	}()
	time.Sleep(100 * time.Millisecond)
	closed := make(chan struct{})
	go func() { q.close(); close(closed) }()
	defer func() { <-closed }()
	select {
	case err := <-waited:
		t.Logf("the entry waiting when the queuer stopped got %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("an entry waiting for a fuller batch was not answered when the queuer stopped")
	}
}
