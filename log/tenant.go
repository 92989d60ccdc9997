package log

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/trillian"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// Attribution and per-tenant deduplication.
//
// Trillian deduplicates leaves by their identity hash. The default
// tenant's leaves have the identity Trillian gives every leaf, their
// Merkle leaf hash, so logs written before tenants existed deduplicate as
// before. Another tenant's leaf has IdentityHash(tenant, leaf hash): the
// same bytes from two tenants are two entries, from one tenant one. The
// leaf's value stays the entry's bytes (receipts, proofs and auditors see
// no difference); its extra data in Trillian names the tenant (empty for
// the default tenant), in the same commit as the leaf, so that every
// entry's tenant is known by index. The servers copy the published
// entries' tenants, in order, into the state database's tenant_entries
// (attribute.go), which lists a tenant's entries by time: nothing is
// added to the write path.

// identityDomain separates tenant identities from Merkle leaf hashes.
const identityDomain = "evident tenant leaf identity v1\x00"

// IdentityHash returns the Trillian leaf identity of the entry with leaf
// hash leafHash submitted by tenant: leafHash for storage.DefaultTenant,
// else SHA-256(domain ‖ len(tenant) ‖ tenant ‖ leafHash).
func IdentityHash(tenant string, leafHash [32]byte) [32]byte {
	if tenant == storage.DefaultTenant {
		return leafHash
	}
	b := make([]byte, 0, len(identityDomain)+2+len(tenant)+32)
	b = append(b, identityDomain...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(tenant)))
	b = append(b, tenant...)
	b = append(b, leafHash[:]...)
	return sha256.Sum256(b)
}

// tenantLeaf is the Trillian leaf of entry submitted by tenant.
func tenantLeaf(tenant string, entry []byte) *trillian.LogLeaf {
	h := checkpoint.LeafHash(entry)
	id := IdentityHash(tenant, h)
	leaf := &trillian.LogLeaf{LeafValue: entry, MerkleLeafHash: h[:], LeafIdentityHash: id[:]}
	if tenant != storage.DefaultTenant {
		leaf.ExtraData = []byte(tenant)
	}
	return leaf
}

// leafTenant reads the tenant from a leaf's extra data.
func leafTenant(extra []byte) string {
	if len(extra) == 0 || storage.CheckTenantName(string(extra)) != nil {
		return storage.DefaultTenant
	}
	return string(extra)
}

// tenanted reports whether entries of tenants other than the default may
// exist, so that a leaf found by its Merkle hash may be another tenant's.
// Until then (a log with one tenant) nothing is checked twice.
func (l *Log) tenanted() bool { return l.keys.others.Load() }

// ownLeaf finds the entry with Merkle hash hash and identity id under cp:
// among the leaves with that hash (one per tenant that submitted the
// bytes), the one whose identity is id.
func (l *Log) ownLeaf(ctx context.Context, hash, id [32]byte, cp *published) (found, bool, error) {
	if cp.size == 0 {
		return found{}, false, nil
	}
	r, err := l.cfg.Trillian.GetInclusionProofByHash(ctx, &trillian.GetInclusionProofByHashRequest{
		LogId: l.cfg.TreeID, LeafHash: hash[:], TreeSize: int64(cp.size), OrderBySequence: true})
	if err != nil {
		if grpcNotFound(err) {
			return found{}, false, nil
		}
		return found{}, false, fmt.Errorf("looking up an entry: %w", err)
	}
	for _, p := range r.Proof {
		f := found{index: uint64(p.LeafIndex), cp: cp, proof: nonNil(p.Hashes)}
		if id == hash && !l.tenanted() {
			return f, true, nil
		}
		ok, err := l.isOwn(ctx, f.index, id)
		if err != nil || ok {
			return f, ok, err
		}
	}
	return found{}, false, nil
}

// isOwn reports whether the leaf at index has identity id: from the
// leaves this process queued lately (Config.Leaves, in-process), the
// ones writers wait for, else from Trillian.
func (l *Log) isOwn(ctx context.Context, index uint64, id [32]byte) (bool, error) {
	if l.cfg.Leaves != nil {
		if ls, ok := l.cfg.Leaves(index, index+1); ok {
			return bytes.Equal(ls[0].LeafIdentityHash, id[:]), nil
		}
	}
	r, err := l.cfg.Trillian.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{
		LogId: l.cfg.TreeID, StartIndex: int64(index), Count: 1})
	if err != nil {
		return false, fmt.Errorf("reading leaf %d: %w", index, err)
	}
	if len(r.Leaves) != 1 || uint64(r.Leaves[0].LeafIndex) != index {
		return false, fmt.Errorf("Trillian returned no leaf %d: %w", index, errBadProof)
	}
	return bytes.Equal(r.Leaves[0].LeafIdentityHash, id[:]), nil
}

// MaxTenantEntriesPerPage is the most entries GET /v1/tenant/entries
// returns at once.
const MaxTenantEntriesPerPage = 100

// tenantEntryView is one entry of GET /v1/tenant/entries.
type tenantEntryView struct {
	Index    uint64 `json:"index"`
	LeafHash []byte `json:"leaf_hash"`
	QueuedAt string `json:"queued_at"`
}

// handleTenantEntries lists the requesting tenant's own entries by the
// time they were first queued: ?from=&to= (RFC 3339), ?after= (the
// previous page's next), ?limit=. It needs a read or admin key.
func (l *Log) handleTenantEntries(w http.ResponseWriter, r *http.Request) error {
	p, err := l.authorize(r, storage.RoleRead)
	if err != nil {
		return err
	}
	q, err := parseTenantEntriesQuery(r.URL.Query())
	if err != nil {
		return err
	}
	q.Tenant = p.Tenant
	// Every published entry is listed: catch up first (the background
	// attributer keeps this short).
	if err := l.catchUpAttribution(r.Context(), 0); err != nil {
		return err
	}
	list, err := l.cfg.State.TenantEntries(r.Context(), q)
	if err != nil {
		return err
	}
	out := struct {
		Tenant  string            `json:"tenant"`
		Entries []tenantEntryView `json:"entries"`
		Next    string            `json:"next,omitempty"`
	}{Tenant: p.Tenant, Entries: []tenantEntryView{}}
	for _, a := range list {
		out.Entries = append(out.Entries, tenantEntryView{Index: a.Index, LeafHash: a.LeafHash[:], QueuedAt: a.QueuedAt.UTC().Format(time.RFC3339Nano)})
	}
	if len(list) == q.Limit {
		out.Next = formatCursor(list[len(list)-1])
	}
	return writeJSON(w, http.StatusOK, out)
}

// formatCursor and parseCursor make the opaque ?after= of the listing:
// base64url of the last entry's time (8 bytes, µs) and index (8 bytes).
func formatCursor(a storage.Attribution) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(a.QueuedAt.UnixMicro()))
	return base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(b, a.Index))
}

func parseCursor(s string) (*storage.Attribution, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 || base64.RawURLEncoding.EncodeToString(b) != s {
		return nil, badRequest("after must be the next of a previous page")
	}
	return &storage.Attribution{QueuedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b))), Index: binary.BigEndian.Uint64(b[8:])}, nil
}

// parseTenantEntriesQuery reads ?from=&to=&after=&limit=.
func parseTenantEntriesQuery(q url.Values) (storage.EntryQuery, error) {
	out := storage.EntryQuery{Limit: MaxTenantEntriesPerPage}
	for name, v := range q {
		switch name {
		case "from", "to", "after", "limit":
		default:
			return out, badRequest(fmt.Sprintf("unknown parameter %q: give from, to, after or limit", truncate(name)))
		}
		if len(v) > 1 {
			return out, badRequest(name + " is given more than once")
		}
	}
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"from", &out.From}, {"to", &out.To}} {
		if s := q.Get(f.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil || t.Year() < 1970 || t.Year() > 9999 {
				return out, badRequest(fmt.Sprintf("%s must be an RFC 3339 time between 1970 and 9999, got %q", f.name, truncate(s)))
			}
			*f.t = t
		}
	}
	if !out.From.IsZero() && !out.To.IsZero() && !out.From.Before(out.To) {
		return out, badRequest("from must be before to")
	}
	if s := q.Get("after"); s != "" {
		a, err := parseCursor(s)
		if err != nil {
			return out, err
		}
		out.After = a
	}
	if s := q.Get("limit"); s != "" {
		n, err := parseUint(s, "limit")
		if err != nil {
			return out, err
		}
		if n == 0 || n > MaxTenantEntriesPerPage {
			return out, badRequest(fmt.Sprintf("limit must be between 1 and %d", MaxTenantEntriesPerPage))
		}
		out.Limit = int(n)
	}
	return out, nil
}

// tenantHeader is the header of GET /v1/entries/{index} that names the
// entry's tenant.
const tenantHeader = "Evident-Tenant"
