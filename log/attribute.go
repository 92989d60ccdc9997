package log

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// attributeInterval is how often the attributer copies newly published
// entries' tenants in the background. A listing (GET /v1/tenant/entries)
// first catches up itself, so it is never stale; the background work only
// keeps that catching up short. It runs every second, so that the entries
// it records are still in the sequencer's memory (Config.Leaves holds the
// latest 32,768 or more) and need not be read back from the tree; an idle
// run costs nothing.
const attributeInterval = time.Second

// attributeBatch is the most entries read and recorded at once, and
// attributePause the least wait between batches while catching up in the
// background: at most 100,000 entries a second. The wait is also at least
// attributeYield times what the batch before it took, so that catching up
// on entries read back from Trillian (a log restored, upgraded, or filled
// past the API) takes at most a third of the server's time: at half a
// core it slowed writers five times on a 10,000,000-entry log.
const (
	attributeBatch = MaxEntriesPerRequest
	attributePause = 10 * time.Millisecond
	attributeYield = 2
)

// attributer copies the tenants of published entries into the state
// database's tenant_entries, in index order. Every server sharing the
// state database runs one; the next index is advanced by compare-and-swap
// (storage.RecordAttributions), so each range is recorded once. A log
// from before tenants is attributed from its first entry on (to the
// default tenant), in the background.
type attributer struct {
	mu    sync.Mutex // one catch-up at a time
	next  uint64
	known bool // next was read from the state database
}

// attribute runs the background attributer until ctx ends.
func (l *Log) attribute(ctx context.Context) {
	t := time.NewTicker(attributeInterval)
	defer t.Stop()
	var o outage
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := l.catchUpAttribution(ctx, attributePause)
		o.note(ctx, l.log, err, "recording which tenant submitted published entries; retrying", "recording which tenant submitted published entries works again")
	}
}

// catchUpAttribution records the tenants of every entry the latest
// published checkpoint covers, pausing between batches.
func (l *Log) catchUpAttribution(ctx context.Context, pause time.Duration) error {
	a := &l.attr
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.known {
		n, err := l.cfg.State.AttributionNext(ctx)
		if err != nil {
			return err
		}
		a.next, a.known = n, true
		l.metrics.attributed.Set(float64(n))
	}
	var took time.Duration
	for size, first := l.pub.latest().size, true; a.next < size; first = false {
		if !first && pause > 0 {
			time.Sleep(max(pause, attributeYield*took)) // leave the writers room
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		start := time.Now()
		n, err := l.attributeRange(ctx, a.next, min(attributeBatch, size-a.next))
		took = time.Since(start)
		if err != nil {
			a.known = false
			return err
		}
		a.next = n
		l.metrics.attributed.Set(float64(n))
	}
	return nil
}

// attributeRange records the tenants of count entries from start, and
// returns the next index to record (further on if another server
// recorded them already).
func (l *Log) attributeRange(ctx context.Context, start, count uint64) (uint64, error) {
	if as, ok := l.recentAttributions(ctx, start, count); ok {
		return l.cfg.State.RecordAttributions(ctx, start, as)
	}
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

// recentAttributions returns the attributions of the entries [start,
// start+count) from the leaves this process queued and integrated lately
// (Config.Leaves), each leaf's value checked against the leaf hash at its
// index in the tiles (which the tiler checked against a signed root), so
// that attribution reads nothing back from Trillian. ok is false when the
// leaves are not at hand, or a check fails: then the caller reads and
// checks them the long way.
func (l *Log) recentAttributions(ctx context.Context, start, count uint64) ([]storage.Attribution, bool) {
	if l.cfg.Leaves == nil {
		return nil, false
	}
	leaves, ok := l.cfg.Leaves(start, start+count)
	if !ok {
		return nil, false
	}
	as := make([]storage.Attribution, len(leaves))
	var tiled []byte // the leaf hashes of index's tile
	for i, leaf := range leaves {
		index := start + uint64(i)
		if i == 0 || index%tileWidth == 0 {
			end := min(start+count, (index/tileWidth+1)*tileWidth)
			var err error
			if tiled, err = l.tiles.leafHashes(ctx, index/tileWidth, int(end-index/tileWidth*tileWidth)); err != nil {
				return nil, false
			}
		}
		h := checkpoint.LeafHash(leaf.LeafValue)
		k := 32 * (index % tileWidth)
		if uint64(leaf.LeafIndex) != index || !bytes.Equal(tiled[k:k+32], h[:]) {
			return nil, false
		}
		as[i] = storage.Attribution{Index: index, Tenant: leafTenant(leaf.ExtraData), LeafHash: h, QueuedAt: leaf.GetQueueTimestamp().AsTime()}
	}
	return as, true
}
