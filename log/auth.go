package log

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evidentlog/evident/storage"
)

// Principal is who a request acts for: the tenant and role of the API key
// it carries.
type Principal struct {
	Tenant string
	Role   storage.Role
	// KeyID is the key's public ID (storage.KeyID), for logs and records.
	KeyID string
}

// keyring holds the valid API keys (the write-token file's token among
// them), reloaded from the state database whenever its key generation
// moves (polled every Config.KeyPoll) and at least every
// Config.TokenRefresh.
type keyring struct {
	mu   sync.RWMutex
	byID map[string][]storage.APIKey // by storage.KeyID of the hash
	gen  int64
	at   time.Time // of the last full reload
	// logName is Config.LogName; for a named log, granted holds the
	// tenants granted it (storage.DefaultTenant always is).
	logName string
	granted map[string]bool
	// others is set once a tenant other than the default exists, and
	// stays set (tenants are never deleted): entries of several tenants
	// may exist.
	others atomic.Bool
	// quota, when set, gets the tenants' own quotas on every reload.
	quota *quotas
}

func loadKeys(ctx context.Context, db *storage.DB, logName string, q *quotas) (*keyring, error) {
	k := &keyring{quota: q, logName: logName}
	if err := k.reload(ctx, db); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return k, nil
}

// reload reads the generation, then the keys: a change made after the
// generation was read moves it again, and the next poll reloads.
func (k *keyring) reload(ctx context.Context, db *storage.DB) error {
	gen, err := db.AuthGeneration(ctx)
	if err != nil {
		return err
	}
	list, err := db.ValidKeys(ctx)
	if err != nil {
		return err
	}
	ts, err := db.Tenants(ctx)
	if err != nil {
		return err
	}
	if len(ts) > 1 {
		k.others.Store(true)
	}
	if k.quota != nil {
		k.quota.setOwn(ts)
	}
	var granted map[string]bool
	if k.logName != "" {
		gs, err := db.Grants(ctx)
		if err != nil {
			return err
		}
		granted = map[string]bool{storage.DefaultTenant: true}
		for _, g := range gs {
			if g.Log == k.logName {
				granted[g.Tenant] = true
			}
		}
	}
	byID := make(map[string][]storage.APIKey, len(list))
	for _, key := range list {
		id := storage.KeyID(key.Hash)
		byID[id] = append(byID[id], key)
	}
	k.mu.Lock()
	k.byID, k.granted, k.gen, k.at = byID, granted, gen, time.Now()
	k.mu.Unlock()
	return nil
}

// lookup returns the principal of key, if key is valid. The candidates
// are found by the first bytes of the key's SHA-256 hash (which says
// nothing about the stored keys that an attacker could use: finding a key
// with a chosen hash prefix does not help find one with the whole hash),
// and the whole hash is compared in constant time (crypto/subtle).
func (k *keyring) lookup(key string) (Principal, bool) {
	if key == "" {
		return Principal{}, false
	}
	h := storage.HashToken(key)
	k.mu.RLock()
	defer k.mu.RUnlock()
	var p Principal
	ok := 0
	for _, s := range k.byID[storage.KeyID(h)] {
		if subtle.ConstantTimeCompare(h[:], s.Hash[:]) == 1 {
			p, ok = Principal{Tenant: s.Tenant, Role: s.Role, KeyID: s.ID}, 1
		}
	}
	return p, ok == 1
}

// mayUse reports whether tenant may use this log: every tenant may use
// the default log, a tenant granted it a named one.
func (k *keyring) mayUse(tenant string) bool {
	if k.logName == "" {
		return true
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.granted[tenant]
}

// stale reports whether the keys must be reloaded: the generation moved
// or the last full reload is older than full.
func (k *keyring) stale(gen int64, full time.Duration) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return gen != k.gen || time.Since(k.at) >= full
}

// refreshKeys polls the key generation every Config.KeyPoll, and reloads
// the keys when it moved (a key was issued, rotated or revoked, by this
// server's process or any other sharing the state database), until ctx
// ends.
func (l *Log) refreshKeys(ctx context.Context) {
	t := time.NewTicker(l.cfg.KeyPoll)
	defer t.Stop()
	var o outage // logged once per outage: the poll runs several times a second
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gen, err := l.cfg.Auth.AuthGeneration(ctx)
		if err == nil && l.keys.stale(gen, l.cfg.TokenRefresh) {
			if err = l.keys.reload(ctx, l.cfg.Auth); err == nil {
				l.kickOps() // an admin action may have written a record
			}
		}
		o.note(ctx, l.log, err, "reloading API keys; keeping the ones loaded before", "reloading API keys works again")
	}
}

// authenticate returns the principal of the request's bearer key:
// ErrUnauthorized without a valid key (none, unknown or revoked), a
// *forbiddenError with a valid key of a tenant not granted this log.
func (l *Log) authenticate(r *http.Request) (Principal, error) {
	key, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return Principal{}, ErrUnauthorized
	}
	p, ok := l.keys.lookup(key)
	if !ok {
		return Principal{}, ErrUnauthorized
	}
	if !l.keys.mayUse(p.Tenant) {
		// Names the caller's own tenant and this log, nothing of others.
		return Principal{}, &forbiddenError{fmt.Sprintf("tenant %s is not granted the log %s (the operator grants it: evident-server tenant grant)", p.Tenant, l.cfg.LogName)}
	}
	return p, nil
}

// authorize returns the principal of the request's key if its role allows
// need: ErrUnauthorized without a valid key, a *forbiddenError with one
// whose role does not allow need.
func (l *Log) authorize(r *http.Request, need storage.Role) (Principal, error) {
	p, err := l.authenticate(r)
	if err != nil {
		return p, err
	}
	if !p.Role.Allows(need) {
		return p, &forbiddenError{fmt.Sprintf("this key's role is %s; this request needs a %s or admin key", p.Role, need)}
	}
	return p, nil
}
