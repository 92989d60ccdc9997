package backend

import (
	"context"
	"fmt"

	"github.com/evidentlog/evident/storage/sqlite"
)

// openSQLite opens the SQLite Trillian storage at cfg.SQLitePath, checking
// the whole file first unless cfg.SkipIntegrityCheck is set.
func openSQLite(ctx context.Context, cfg Config) (*sqlite.Storage, error) {
	st, err := sqlite.Open(ctx, cfg.SQLitePath, sqlite.Config{
		Logger:         cfg.Logger,
		CheckIntegrity: !cfg.SkipIntegrityCheck,
	})
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	return st, nil
}
