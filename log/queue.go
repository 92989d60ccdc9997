package log

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/trillian"
)

// queuer gathers the entries of concurrent add-entry requests into
// Config.QueueBatch calls: whatever arrived while the previous batch was
// being committed goes into the next, so that a thousand writers share one
// durable commit (on MySQL, one transaction) instead of queueing one leaf
// each. With no writers waiting, an entry is queued alone at once.
type queuer struct {
	batch QueueBatchFunc
	reqs  chan *queueItem
	stop  chan struct{}
	wg    sync.WaitGroup
}

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

func newQueuer(batch QueueBatchFunc) *queuer {
	q := &queuer{batch: batch, reqs: make(chan *queueItem, MaxBatchEntries), stop: make(chan struct{})}
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
		var first *queueItem
		select {
		case first = <-q.reqs:
		case <-q.stop:
			return
		}
		items := []*queueItem{first}
	gather:
		for len(items) < MaxBatchEntries {
			select {
			case it := <-q.reqs:
				items = append(items, it)
			default:
				break gather
			}
		}
		q.commit(items)
	}
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
