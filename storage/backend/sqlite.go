package backend

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/evidentlog/evident/storage/sqlite"
)

// openSQLite opens the SQLite Trillian storage at path.
func openSQLite(ctx context.Context, path string, logger *slog.Logger) (*sqlite.Storage, error) {
	st, err := sqlite.Open(ctx, path, sqlite.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	return st, nil
}
