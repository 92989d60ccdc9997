package log

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/evidentlog/evident/storage"
)

// The operations record: every admin action (storage.OpsRecord) is
// appended to the log itself, as an entry of the reserved tenant
// storage.OpsTenant that commits to the action's record (the record stays
// in the state database, for the operator). The servers sharing the state
// database append what is pending when they start and whenever the key
// generation moves (every admin action of the commands and the API moves
// it, in its transaction), so within Config.KeyPoll of the action; two
// appending the same record at once is a duplicate, harmless.

// opsRetry is how long the appender waits after a failure.
const opsRetry = time.Second

// appendOps appends pending operations records until ctx ends: at once,
// then when kicked (l.opsKick).
func (l *Log) appendOps(ctx context.Context) {
	var o outage
	for {
		err := l.appendPendingOps(ctx)
		o.note(ctx, l.log, err, "appending the operations record; retrying", "appending the operations record works again")
		var retry <-chan time.Time
		if err != nil {
			retry = time.After(opsRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-l.opsKick:
		case <-retry:
		}
	}
}

// kickOps makes the operations record appender look for pending records.
func (l *Log) kickOps() {
	select {
	case l.opsKick <- struct{}{}:
	default:
	}
}

// appendPendingOps queues the entries of the records not yet queued, in
// order, and marks each queued.
func (l *Log) appendPendingOps(ctx context.Context) error {
	recs, err := l.cfg.State.OpsRecords(ctx, 0, 100, true)
	if err != nil || len(recs) == 0 {
		return err
	}
	// From now on a leaf found by its hash may be the operations tenant's.
	l.keys.others.Store(true)
	for _, r := range recs {
		dup, err := l.queueOne(ctx, tenantLeaf(storage.OpsTenant, r.Entry))
		if err != nil {
			return err
		}
		if !dup {
			l.pub.accept()
		}
		if err := l.cfg.State.MarkOpQueued(ctx, r.Seq); err != nil {
			return err
		}
		l.log.Info("operations record appended", "seq", r.Seq, "leaf_hash", hex.EncodeToString(r.LeafHash[:]))
	}
	return nil
}

// opsView is one operations record as GET /v1/operations shows it.
type opsView struct {
	Seq      int64           `json:"seq"`
	Record   json.RawMessage `json:"record"`
	Entry    string          `json:"entry"`
	LeafHash []byte          `json:"leaf_hash"`
	Queued   bool            `json:"queued"`
	Index    *uint64         `json:"index,omitempty"`
}

// handleOps lists the operations record: ?after=<seq>&limit=. It needs
// an admin key of the default tenant (the operator's): records name
// tenants and keys.
func (l *Log) handleOps(w http.ResponseWriter, r *http.Request) error {
	p, err := l.authorize(r, storage.RoleAdmin)
	if err != nil {
		return err
	}
	if p.Tenant != storage.DefaultTenant {
		return &forbiddenError{"the operations record is the operator's: it needs an admin key of the default tenant"}
	}
	q := r.URL.Query()
	for name, v := range q {
		if (name != "after" && name != "limit") || len(v) > 1 {
			return badRequest("give at most one after and one limit")
		}
	}
	after, limit := uint64(0), uint64(MaxTenantEntriesPerPage)
	if s := q.Get("after"); s != "" {
		if after, err = parseUint(s, "after"); err != nil {
			return err
		}
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = parseUint(s, "limit"); err != nil {
			return err
		}
		if limit == 0 || limit > MaxTenantEntriesPerPage {
			return badRequest("limit must be between 1 and " + strconv.Itoa(MaxTenantEntriesPerPage))
		}
	}
	recs, err := l.cfg.State.OpsRecords(r.Context(), int64(after), int(limit), false)
	if err != nil {
		return err
	}
	out := struct {
		Records []opsView `json:"records"`
	}{Records: []opsView{}}
	cp := l.pub.latest()
	for _, rec := range recs {
		v := opsView{Seq: rec.Seq, Record: rec.Record, Entry: string(rec.Entry), LeafHash: rec.LeafHash[:], Queued: rec.Queued}
		if rec.Queued {
			f, ok, err := l.ownLeaf(r.Context(), rec.LeafHash, IdentityHash(storage.OpsTenant, rec.LeafHash), cp)
			if err != nil {
				return err
			}
			if ok {
				v.Index = &f.index
			}
		}
		out.Records = append(out.Records, v)
	}
	return writeJSON(w, http.StatusOK, out)
}

// outage logs the failures of a background task once per outage: the
// first error as a warning (not when ctx ended), the recovery as info.
type outage struct{ failing bool }

func (o *outage) note(ctx context.Context, log *slog.Logger, err error, failed, recovered string) {
	switch {
	case err != nil && ctx.Err() == nil && !o.failing:
		log.Warn(failed, "error", err)
		o.failing = true
	case err == nil && o.failing:
		log.Info(recovered)
		o.failing = false
	}
}
