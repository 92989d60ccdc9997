package log

import (
	"context"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// attributeInterval is how often the attributer looks for newly
// published entries; a tenant's entry is listed by GET /v1/tenant/entries
// about this long after a checkpoint covers it.
const attributeInterval = 200 * time.Millisecond

// attributeBatch is the most entries read and recorded at once, and
// attributePause the wait between batches while catching up: at most
// 100,000 entries a second.
const (
	attributeBatch = MaxEntriesPerRequest
	attributePause = 10 * time.Millisecond
)

// attribute copies the tenants of published entries into the state
// database's tenant_entries, in index order, until ctx ends. The entries
// are read as GET /v1/entries serves them, checked against the published
// checkpoint. Every server sharing the state database runs it; the next
// index is advanced by compare-and-swap, so each range is recorded once.
// A log from before tenants is attributed from its first entry on (to the
// default tenant), in the background.
func (l *Log) attribute(ctx context.Context) {
	t := time.NewTicker(attributeInterval)
	defer t.Stop()
	next, known := uint64(0), false
	failing := false
	for {
		err := func() error {
			if !known {
				n, err := l.cfg.State.AttributionNext(ctx)
				if err != nil {
					return err
				}
				next, known = n, true
			}
			for size, first := l.pub.latest().size, true; next < size && ctx.Err() == nil; first = false {
				if !first {
					// Catching up (a log from before tenants, or
					// after downtime): leave the writers room.
					time.Sleep(attributePause)
				}
				n, err := l.attributeRange(ctx, next, min(attributeBatch, size-next))
				if err != nil {
					known = false
					return err
				}
				next = n
			}
			return nil
		}()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			l.log.Warn("recording which tenant submitted published entries; retrying", "from", next, "error", err)
			failing = true
		case err == nil && failing:
			l.log.Info("recording which tenant submitted published entries works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// attributeRange records the tenants of count entries from start, and
// returns the next index to record (further on if another server
// recorded them already).
func (l *Log) attributeRange(ctx context.Context, start, count uint64) (uint64, error) {
	es, err := l.AttributedEntries(ctx, start, count)
	if err != nil {
		return start, err
	}
	as := make([]storage.Attribution, len(es))
	for i, e := range es {
		as[i] = storage.Attribution{Index: start + uint64(i), Tenant: e.Tenant, LeafHash: checkpoint.LeafHash(e.Value), QueuedAt: e.QueuedAt}
	}
	return l.cfg.State.RecordAttributions(ctx, start, as)
}
