package log

import (
	"context"
	"crypto/subtle"
	"fmt"
	"sync"
	"time"

	"github.com/evidentlog/evident/storage"
)

// tokenSet holds the hashes of the write tokens, reloaded from the state
// database every Config.TokenRefresh.
type tokenSet struct {
	mu     sync.RWMutex
	hashes []storage.TokenHash
}

func loadTokens(ctx context.Context, db *storage.DB) (*tokenSet, error) {
	t := &tokenSet{}
	if err := t.reload(ctx, db); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return t, nil
}

func (t *tokenSet) reload(ctx context.Context, db *storage.DB) error {
	list, err := db.Tokens(ctx)
	if err != nil {
		return err
	}
	hashes := make([]storage.TokenHash, len(list))
	for i, tk := range list {
		hashes[i] = tk.Hash
	}
	t.mu.Lock()
	t.hashes = hashes
	t.mu.Unlock()
	return nil
}

// valid reports whether token is a write token. It compares the token's
// hash with every stored hash in constant time, and does not stop at a
// match, so the answer's timing says nothing about the stored tokens.
func (t *tokenSet) valid(token string) bool {
	if token == "" {
		return false
	}
	h := storage.HashToken(token)
	t.mu.RLock()
	defer t.mu.RUnlock()
	ok := 0
	for _, s := range t.hashes {
		ok |= subtle.ConstantTimeCompare(h[:], s[:])
	}
	return ok == 1
}

// refreshTokens reloads the write tokens until ctx ends.
func (l *Log) refreshTokens(ctx context.Context) {
	t := time.NewTicker(l.cfg.TokenRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.tokens.reload(ctx, l.cfg.State); err != nil && ctx.Err() == nil {
			l.log.Warn("reloading write tokens", "error", err)
		}
	}
}
