package logbuf

import (
	"strings"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	l := b.Logger()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			l.Error("POSSIBLE FORK", "n", 1)
			l.Warn("POSSIBLE FORK")
			l.Info("other")
		})
	}
	wg.Wait()
	if n := b.Count("ERROR", "POSSIBLE FORK"); n != 8 {
		t.Errorf("Count(ERROR) = %d, want 8", n)
	}
	if n := b.Count("WARN", "POSSIBLE FORK"); n != 8 {
		t.Errorf("Count(WARN) = %d, want 8", n)
	}
	if n := strings.Count(b.String(), "\n"); n != 24 {
		t.Errorf("%d lines, want 24:\n%s", n, b.String())
	}
}
