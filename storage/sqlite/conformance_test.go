package sqlite

import (
	"context"
	"testing"

	"github.com/google/trillian/integration/storagetest"
	"github.com/google/trillian/storage"
	"github.com/google/trillian/storage/testonly"
)

// TestAdminStorageConformance runs Trillian's own admin storage suite.
func TestAdminStorageConformance(t *testing.T) {
	tester := &testonly.AdminStorageTester{NewAdminStorage: func() storage.AdminStorage {
		return openTest(t, Config{}).AdminStorage()
	}}
	tester.RunAllTests(t)
}

// TestLogStorageConformance runs Trillian's own log storage suite.
func TestLogStorageConformance(t *testing.T) {
	storagetest.RunLogStorageTests(t, func(ctx context.Context, t *testing.T) (storage.LogStorage, storage.AdminStorage) {
		s := openTest(t, Config{})
		return s.LogStorage(), s.AdminStorage()
	})
}
