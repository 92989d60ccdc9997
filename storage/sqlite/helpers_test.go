package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// fakeTime is the queue timestamp of leaves in tests that do not care.
var fakeTime = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// openTest opens a fresh storage file in t.TempDir and closes it at the end
// of the test.
func openTest(t testing.TB, cfg Config) *Storage {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "trillian.db"), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
