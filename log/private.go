package log

import (
	"net/http"

	"github.com/evidentlog/evident/storage"
)

// Private logs (Config.PrivateEntries): the contents of entries are read
// with a read (or admin) key, and only the key's tenant's own entries
// (the default tenant's keys also read the operations record's entries,
// which are commitments). Checkpoints, proofs, receipts and everything
// else that carries hashes, not contents (hash tiles among them), stay
// public, so witnesses, monitors and auditors that check the tree work
// unchanged; entry bundles (tlog-tiles) are refused to all.

// entryReader returns who reads entry contents: in a public log anyone
// (ok with a zero Principal); in a private log the holder of a valid read
// or admin key, else ErrUnauthorized or a *forbiddenError.
func (l *Log) entryReader(r *http.Request) (p Principal, private bool, err error) {
	if !l.cfg.PrivateEntries {
		return Principal{}, false, nil
	}
	p, err = l.authorize(r, storage.RoleRead)
	return p, true, err
}

// mayRead reports whether p may read the contents of an entry of tenant.
func mayRead(p Principal, tenant string) bool {
	return p.Tenant == tenant || p.Tenant == storage.DefaultTenant && tenant == storage.OpsTenant
}

// privateBundle refuses, in a private log, the entry bundles of
// tlog-tiles (level storage.EntriesLevel) to everyone: a bundle holds the
// entries of every tenant. Hash tiles stay public.
func (l *Log) privateBundle(level int) error {
	if l.cfg.PrivateEntries && level == storage.EntriesLevel {
		return &forbiddenError{"this log is private: entry bundles hold every tenant's entries; read yours with GET /v1/entries and a read key (hash tiles are public)"}
	}
	return nil
}

// errNotOwnEntry is a read key asking for another tenant's entry.
var errNotOwnEntry = &forbiddenError{"this log is private: a key reads its own tenant's entries only"}

// eventReader authorizes a read of typed events once: in a private log
// (their entries are contents) it refuses all but the default tenant's
// read and admin keys, as events are the default tenant's; in any log it
// reports whether the request may read the events' private data (a valid
// read or admin key of the default tenant, whose rows carry no tenant
// yet).
func (l *Log) eventReader(r *http.Request) (withData bool, err error) {
	p, err := l.authorize(r, storage.RoleRead)
	withData = err == nil && p.Tenant == storage.DefaultTenant
	switch {
	case !l.cfg.PrivateEntries:
		return withData, nil
	case err != nil:
		return false, err
	case !withData:
		return false, errNotOwnEntry
	}
	return true, nil
}
