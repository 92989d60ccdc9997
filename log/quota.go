package log

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/evidentlog/evident/storage"
)

// Per-tenant quotas, so that one noisy tenant cannot starve the others: a
// token bucket per tenant (Config.TenantRate entries a second on average,
// Config.TenantBurst at once) and a share of the backlog
// (Config.TenantBacklogShare of Config.MaxBacklog). A tenant over either
// gets 429 with Retry-After; the global MaxBacklog stays the last guard
// (503). A tenant's own quota (storage.Quota, set with evident-server
// tenant quota) overrides the defaults. Each server enforces them on what
// it accepts: behind a load balancer that spreads a tenant's requests over
// N servers, its rate is up to N times its quota.

// quotaError is a request over its tenant's quota (429).
type quotaError struct {
	msg   string
	retry time.Duration
}

func (e *quotaError) Error() string { return e.msg }

// limits is a tenant's quota with the defaults applied: 0 means no limit.
type limits struct {
	rate    float64 // entries/s
	burst   float64
	backlog uint64 // entries
}

// bucket is a token bucket: tokens refill at the tenant's rate up to its
// burst.
type bucket struct {
	tokens float64
	last   time.Time
}

// runOf is a run of entries that one tenant added in a row, waiting for a
// checkpoint.
type runOf struct {
	tenant string
	n      uint64
}

// quotas holds the per-tenant limits and usage of this server.
type quotas struct {
	def        storage.Quota // the server's defaults (Config)
	maxBacklog uint64

	mu      sync.Mutex
	own     map[string]storage.Quota // tenants' own quotas, from State
	buckets map[string]*bucket
	// pending counts per tenant the entries accepted here that no
	// published checkpoint covers yet; fifo holds them in the order they
	// were accepted, which is the order Trillian's sequencer integrates
	// them in, and settled how many of the tree's growth were taken off.
	pending map[string]uint64
	fifo    []runOf
	settled uint64
}

func newQuotas(cfg *Config) *quotas {
	return &quotas{
		def: storage.Quota{Rate: int64(cfg.TenantRate), Burst: int64(cfg.TenantBurst),
			BacklogPermille: int64(math.Round(cfg.TenantBacklogShare * 1000))},
		maxBacklog: uint64(cfg.MaxBacklog),
		own:        map[string]storage.Quota{},
		buckets:    map[string]*bucket{},
		pending:    map[string]uint64{},
	}
}

// setOwn replaces the tenants' own quotas (reloaded with the keys).
func (q *quotas) setOwn(ts []storage.Tenant) {
	own := make(map[string]storage.Quota, len(ts))
	for _, t := range ts {
		own[t.Name] = t.Quota
	}
	q.mu.Lock()
	q.own = own
	q.mu.Unlock()
}

// limitsOf returns tenant's limits; q.mu is held.
func (q *quotas) limitsOf(tenant string) limits {
	o := q.own[tenant]
	pick := func(own, def int64) float64 {
		switch {
		case own > 0:
			return float64(own)
		case own < 0:
			return 0
		case def > 0:
			return float64(def)
		}
		return 0
	}
	l := limits{rate: pick(o.Rate, q.def.Rate), burst: pick(o.Burst, q.def.Burst)}
	if l.rate > 0 && l.burst == 0 {
		l.burst = max(1, l.rate) // a second's worth
	}
	if share := pick(o.BacklogPermille, q.def.BacklogPermille); share > 0 {
		l.backlog = max(1, uint64(share*float64(q.maxBacklog)/1000))
	}
	return l
}

// admit takes n entries from tenant's bucket and checks its backlog share
// (grown says how much the published tree grew since this server started,
// which settles the pending entries; it is asked only for a tenant with a
// share), or returns a *quotaError and takes nothing.
func (q *quotas) admit(tenant string, n int, grown func() uint64, now time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.limitsOf(tenant)
	if l.backlog > 0 {
		q.settle(grown())
		if q.pending[tenant]+uint64(n) > l.backlog {
			return &quotaError{fmt.Sprintf("too many requests: this tenant's share of the backlog (%d entries waiting for a checkpoint) is full; retry later", l.backlog), time.Second}
		}
	}
	if l.rate == 0 {
		return nil
	}
	if float64(n) > l.burst {
		return badRequest(fmt.Sprintf("a batch of %d entries is more than this tenant's burst of %.0f: send smaller batches", n, l.burst))
	}
	b := q.buckets[tenant]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		q.buckets[tenant] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < float64(n) {
		wait := time.Duration((float64(n) - b.tokens) / l.rate * float64(time.Second))
		return &quotaError{fmt.Sprintf("too many requests: this tenant may add %.0f entries a second (burst %.0f); retry after the Retry-After delay", l.rate, l.burst), wait}
	}
	b.tokens -= float64(n)
	return nil
}

// accept counts n entries of tenant newly queued here, for its backlog
// share, after settling the tree's growth (grown, as for admit), so that
// the pending runs stay as few as the entries waiting, with or without
// backlog shares.
func (q *quotas) accept(tenant string, n, grown uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.settle(grown)
	q.pending[tenant] += n
	if k := len(q.fifo); k > 0 && q.fifo[k-1].tenant == tenant {
		q.fifo[k-1].n += n
		return
	}
	q.fifo = append(q.fifo, runOf{tenant, n})
}

// settle takes the tree's growth since the last call off the oldest
// pending entries; q.mu is held. Like the global backlog it is an
// estimate: entries that other servers sharing the tree added settle
// this server's entries early.
func (q *quotas) settle(grown uint64) {
	if grown <= q.settled {
		return
	}
	d := grown - q.settled
	q.settled = grown
	for d > 0 && len(q.fifo) > 0 {
		r := &q.fifo[0]
		k := min(d, r.n)
		r.n -= k
		d -= k
		if q.pending[r.tenant] -= k; q.pending[r.tenant] == 0 {
			delete(q.pending, r.tenant)
		}
		if r.n == 0 {
			q.fifo = q.fifo[1:]
		}
	}
}

// admitQuota applies tenant's quota to n entries about to be queued.
func (l *Log) admitQuota(tenant string, n int) error {
	return l.quota.admit(tenant, n, l.pub.grown, time.Now())
}
