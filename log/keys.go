package log

import (
	"errors"
	"net/http"
	"time"

	"github.com/evidentlog/evident/storage"
)

// tenantRoutes registers the endpoints of a tenant's own things: its
// entries by time (tenant.go), and its keys, which its admin key lists
// and revokes. Tenants, and keys, are issued by the operator
// (evident-server tenant and key commands); a revocation here reaches
// every server sharing the state database within Config.KeyPoll.
func (l *Log) tenantRoutes(handle func(string, func(http.ResponseWriter, *http.Request) error)) {
	handle("GET /v1/tenant/entries", l.handleTenantEntries)
	handle("GET /v1/operations", l.handleOps) // the operator's (ops.go)
	handle("GET /v1/keys", l.handleKeys)
	handle("POST /v1/keys/{id}/revoke", l.handleRevokeKey)
}

// keyView is an API key as GET /v1/keys shows it: never the key, nor its
// hash.
type keyView struct {
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	Role      string `json:"role"`
	CreatedAt string `json:"created_at"`
	RevokedAt string `json:"revoked_at,omitempty"`
}

func viewKey(k storage.APIKey) keyView {
	v := keyView{ID: k.ID, Tenant: k.Tenant, Role: string(k.Role), CreatedAt: k.CreatedAt.UTC().Format(time.RFC3339Nano)}
	if !k.RevokedAt.IsZero() {
		v.RevokedAt = k.RevokedAt.UTC().Format(time.RFC3339Nano)
	}
	return v
}

func (l *Log) handleKeys(w http.ResponseWriter, r *http.Request) error {
	p, err := l.authorize(r, storage.RoleAdmin)
	if err != nil {
		return err
	}
	keys, err := l.cfg.Auth.APIKeys(r.Context(), p.Tenant)
	if err != nil {
		return err
	}
	out := struct {
		Tenant string    `json:"tenant"`
		Keys   []keyView `json:"keys"`
	}{Tenant: p.Tenant, Keys: []keyView{}}
	for _, k := range keys {
		out.Keys = append(out.Keys, viewKey(k))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (l *Log) handleRevokeKey(w http.ResponseWriter, r *http.Request) error {
	p, err := l.authorize(r, storage.RoleAdmin)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := storage.CheckKeyID(id); err != nil {
		return badRequest(err.Error())
	}
	// Another tenant's key is "not found": its existence is not the
	// caller's business.
	k, err := l.cfg.Auth.RevokeKey(r.Context(), p.Tenant, id)
	switch {
	case errors.Is(err, storage.ErrNoKey):
		return ErrNotFound
	case errors.Is(err, storage.ErrLegacyKey), errors.Is(err, storage.ErrKeyRevoked):
		return &conflictError{err.Error()}
	case err != nil:
		return err
	}
	l.log.Info("API key revoked", "tenant", k.Tenant, "key_id", k.ID, "by_key", p.KeyID)
	// Refused here at once; elsewhere within Config.KeyPoll.
	if err := l.keys.reload(r.Context(), l.cfg.Auth); err != nil {
		l.log.Warn("reloading API keys after a revocation", "error", err)
	}
	l.kickOps()
	return writeJSON(w, http.StatusOK, viewKey(k))
}
