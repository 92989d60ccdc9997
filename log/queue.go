package log

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/trillian"
)

// queuer gathers the entries of concurrent add-entry requests into
// Config.QueueBatch calls: whatever arrived while the previous batch was
// being committed goes into the next, so that a thousand writers share one
// durable commit (on MySQL, one transaction) instead of queueing one leaf
// each. With no writers waiting, an entry is queued alone at once.
//
// With Config.QueueLinger, a batch gathered after one of at least
// queueLingerLoad entries waits up to QueueLinger for queueLingerBatch
// entries: under load, fewer and fuller commits (and publisher rounds)
// cost less an entry. One worker gathers at a time, so that two lingering
// batches never split the arrivals between them.
type queuer struct {
	batch  QueueBatchFunc
	linger time.Duration
	// load and full are queueLingerLoad and queueLingerBatch, or a
	// test's values.
	load, full int
	reqs       chan *queueItem
	stop       chan struct{}
	wg         sync.WaitGroup
	gathering  sync.Mutex // held by the worker gathering a batch
	last       int        // entries in the last batch gathered; under gathering
}

// DefaultQueueLinger is the server's Config.QueueLinger
// (--commit_linger): at 256 waiting writers, ~10% more entries a second at
// ~10% less CPU each (docs/performance.md).
const DefaultQueueLinger = 2 * time.Millisecond

// A batch lingers after one of at least queueLingerLoad entries, until it
// holds queueLingerBatch entries or Config.QueueLinger has passed.
const (
	queueLingerLoad  = 48
	queueLingerBatch = 128
)

// queueItem is one entry waiting to be queued.
type queueItem struct {
	ctx  context.Context
	leaf *trillian.LogLeaf
	res  queued
	done chan struct{}
}

// queueWorkers is how many batches may be in flight at once: one being
// committed while the next is prepared.
const queueWorkers = 2

func newQueuer(batch QueueBatchFunc, linger time.Duration, load, full int) *queuer {
	q := &queuer{batch: batch, linger: linger, load: load, full: full, reqs: make(chan *queueItem, MaxBatchEntries), stop: make(chan struct{})}
	for range queueWorkers {
		q.wg.Go(q.run)
	}
	return q
}

// close stops the workers; entries still waiting fail with ErrUnavailable.
func (q *queuer) close() {
	close(q.stop)
	q.wg.Wait()
	for {
		select {
		case it := <-q.reqs:
			it.res.err = ErrUnavailable
			close(it.done)
		default:
			return
		}
	}
}

// queue queues leaf and says whether it was a duplicate.
func (q *queuer) queue(ctx context.Context, leaf *trillian.LogLeaf) (bool, error) {
	it := &queueItem{ctx: ctx, leaf: leaf, done: make(chan struct{})}
	select {
	case q.reqs <- it:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-q.stop:
		return false, ErrUnavailable
	}
	// Once sent, the item is answered: the batch it joins runs to its end
	// (the caller's context does not cancel other callers' commit).
	<-it.done
	return it.res.duplicate, it.res.err
}

func (q *queuer) run() {
	for {
		items := q.gather()
		if items == nil {
			return
		}
		q.commit(items)
	}
}

// gather returns the next batch: the first item to arrive, everything
// waiting behind it, and under load what arrives while it lingers. It
// returns nil when the queuer stops.
func (q *queuer) gather() []*queueItem {
	q.gathering.Lock()
	defer q.gathering.Unlock()
	var first *queueItem
	select {
	case first = <-q.reqs:
	case <-q.stop:
		return nil
	}
	items := []*queueItem{first}
more:
	for len(items) < MaxBatchEntries {
		select {
		case it := <-q.reqs:
			items = append(items, it)
		default:
			break more
		}
	}
	if q.linger > 0 && q.last >= q.load && len(items) < q.full {
		t := time.NewTimer(q.linger)
	linger:
		for len(items) < q.full {
			select {
			case it := <-q.reqs:
				items = append(items, it)
			case <-t.C:
				break linger
			case <-q.stop:
				break linger // answered by commit, like any gathered batch
			}
		}
		t.Stop()
	}
	q.last = len(items)
	return items
}

// commit queues the items whose callers still wait, in one call, and
// answers every item.
func (q *queuer) commit(items []*queueItem) {
	live := items[:0:0]
	var leaves []*trillian.LogLeaf
	for _, it := range items {
		if err := it.ctx.Err(); err != nil {
			it.res.err = err
			close(it.done)
			continue
		}
		live = append(live, it)
		leaves = append(leaves, it.leaf)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), roundTimeout)
	defer cancel()
	queuedLeaves, err := q.batch(ctx, leaves)
	if err == nil && len(queuedLeaves) != len(live) {
		err = fmt.Errorf("%d results for %d entries", len(queuedLeaves), len(live))
	}
	for i, it := range live {
		if err != nil {
			it.res.err = fmt.Errorf("queueing leaf: %w", err)
		} else {
			it.res = queuedStatus(queuedLeaves[i])
		}
		close(it.done)
	}
}

// queueOne queues one leaf (tenantLeaf): through the queuer with
// Config.QueueBatch, else with Trillian's QueueLeaf.
func (l *Log) queueOne(ctx context.Context, leaf *trillian.LogLeaf) (duplicate bool, err error) {
	if l.queuer != nil {
		return l.queuer.queue(ctx, leaf)
	}
	return l.queueLeaf(ctx, leaf)
}

// queueLeaf queues one leaf with Trillian's QueueLeaf.
func (l *Log) queueLeaf(ctx context.Context, leaf *trillian.LogLeaf) (duplicate bool, err error) {
	resp, err := l.cfg.Trillian.QueueLeaf(ctx, &trillian.QueueLeafRequest{LogId: l.cfg.TreeID, Leaf: leaf})
	if err != nil {
		return false, fmt.Errorf("queueing leaf: %w", err)
	}
	r := queuedStatus(resp.GetQueuedLeaf())
	return r.duplicate, r.err
}
