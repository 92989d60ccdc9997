package backend

import (
	"context"
	"errors"

	tstorage "github.com/google/trillian/storage"
)

// trillianStorage is a Trillian storage provider that can be closed.
type trillianStorage interface {
	LogStorage() tstorage.LogStorage
	AdminStorage() tstorage.AdminStorage
	Close() error
}

// openSQLite opens the SQLite Trillian storage at path.
func openSQLite(ctx context.Context, path string) (trillianStorage, error) {
	return nil, errors.New("backend: the SQLite Trillian storage is not built yet")
}
