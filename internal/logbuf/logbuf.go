// Package logbuf collects what a *slog.Logger writes, for tests that check
// what a component logs. It is test code: only _test.go files import it.
package logbuf

import (
	"log/slog"
	"strings"
	"sync"
)

// Buffer holds the text-format log lines written to it; it is safe for
// concurrent use. The zero value is empty and ready.
type Buffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count returns the number of lines at level (e.g. "ERROR") that contain s.
func (b *Buffer) Count(level, s string) int {
	n := 0
	for line := range strings.SplitSeq(b.String(), "\n") {
		if strings.Contains(line, "level="+level) && strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// Logger returns a logger that writes text lines to b.
func (b *Buffer) Logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }
