package log

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc/codes"
)

// Limits of POST /v1/add-entries.
const (
	// MaxBatchEntries is the most entries one batch carries.
	MaxBatchEntries = 1000
	// MaxBatchBytes is the largest batch body: 1,000 entries of up to
	// 8 KiB each, or fewer larger ones.
	MaxBatchBytes = 8 << 20
)

// QueueBatchFunc queues leaves in Trillian in one durable commit, as
// QueueLeaf would one by one: per leaf, in order, Trillian's queued leaf,
// whose status is AlreadyExists for a leaf identity queued before. An error
// means no leaf was queued (or, if ctx ended, that any may have been:
// queueing again is safe).
type QueueBatchFunc = func(ctx context.Context, leaves []*trillian.LogLeaf) ([]*trillian.QueuedLogLeaf, error)

// BatchResult is the outcome for one entry of a batch: its AddResult, or
// the error that failed this entry alone.
type BatchResult struct {
	*AddResult
	Err error
}

// AddEntries queues entries together (see Config.QueueBatch) and answers
// for each, in order, as AddEntry would: with wait, its index and receipt
// once a published checkpoint covers it; without, once it is durably
// queued. An entry that cannot be added (empty, too large) fails alone.
// The returned error is for the batch as a whole, of which nothing was
// then queued: a full backlog, a log that cannot publish, storage errors.
func (l *Log) AddEntries(ctx context.Context, tenant string, entries [][]byte, wait bool) ([]BatchResult, error) {
	start := time.Now()
	if len(entries) == 0 || len(entries) > MaxBatchEntries {
		return nil, badRequest(fmt.Sprintf("a batch holds 1 to %d entries, not %d", MaxBatchEntries, len(entries)))
	}
	if err := l.admitQuota(tenant, len(entries)); err != nil {
		return nil, err
	}
	if l.pub.backlog()+uint64(len(entries)) > uint64(l.cfg.MaxBacklog) {
		return nil, ErrBacklog
	}
	if err := l.pub.stalledErr(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if wait {
		if err := l.pub.failingErr(false); err != nil {
			return nil, err
		}
	}
	res := make([]BatchResult, len(entries))
	var valid []*trillian.LogLeaf
	var at []int // at[k] is the index in entries of valid[k]
	for i, e := range entries {
		switch {
		case len(e) == 0:
			res[i].Err = badRequest(fmt.Sprintf("entry %d is empty", i))
		case len(e) > l.cfg.MaxEntrySize:
			res[i].Err = fmt.Errorf("entry %d: %w", i, ErrTooLarge)
		default:
			leaf := tenantLeaf(tenant, e)
			res[i].AddResult = &AddResult{LeafHash: [32]byte(leaf.MerkleLeafHash), Tenant: tenant}
			valid = append(valid, leaf)
			at = append(at, i)
		}
	}
	if len(valid) == 0 {
		return res, nil
	}
	waiters := make([]*waiter, len(valid))
	var regCP *published
	if wait {
		// Registered before queueing, as in AddEntry.
		for k, i := range at {
			w, cp, err := l.pub.register(res[i].LeafHash)
			if err != nil {
				return nil, err
			}
			defer l.pub.unregister(w)
			waiters[k], regCP = w, cp
		}
	}
	queued, err := l.queueBatch(ctx, valid)
	if err != nil {
		return nil, fmt.Errorf("queueing leaves: %w", err)
	}
	for k, i := range at {
		r := res[i].AddResult
		switch q := queued[k]; {
		case q.err != nil:
			res[i].AddResult, res[i].Err = nil, q.err
		case q.duplicate:
			r.Duplicate = true
			l.metrics.added.WithLabelValues("duplicate").Inc()
		default:
			l.metrics.added.WithLabelValues("new").Inc()
			l.pub.accept()
			l.quota.accept(tenant, 1, l.pub.grown())
		}
	}
	if !wait {
		return res, nil
	}
	deadline := time.Now().Add(l.cfg.WaitTimeout)
	for k, i := range at {
		if res[i].Err != nil {
			continue
		}
		f, err := l.await(ctx, waiters[k], regCP, res[i].AddResult, [32]byte(valid[k].LeafIdentityHash), deadline)
		if err == nil {
			err = l.fillReceipt(ctx, res[i].AddResult, f)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			res[i].AddResult, res[i].Err = nil, err
		}
	}
	l.metrics.receipt.Observe(time.Since(start).Seconds())
	return res, nil
}

// queued is the outcome of queueing one entry.
type queued struct {
	duplicate bool
	err       error
}

// batchConcurrency bounds the QueueLeaf calls in flight for one batch
// without Config.QueueBatch.
const batchConcurrency = 64

// queueBatch queues leaves (tenantLeaf) with Config.QueueBatch, or else
// with concurrent QueueLeaf calls (which a group-committing storage still
// writes together).
func (l *Log) queueBatch(ctx context.Context, leaves []*trillian.LogLeaf) ([]queued, error) {
	out := make([]queued, len(leaves))
	if l.cfg.QueueBatch != nil {
		queuedLeaves, err := l.cfg.QueueBatch(ctx, leaves)
		if err != nil {
			return nil, err
		}
		if len(queuedLeaves) != len(leaves) {
			return nil, fmt.Errorf("%d results for %d entries", len(queuedLeaves), len(leaves))
		}
		for i, q := range queuedLeaves {
			out[i] = queuedStatus(q)
		}
	} else {
		sem := make(chan struct{}, batchConcurrency)
		var wg sync.WaitGroup
		for i, leaf := range leaves {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				out[i].duplicate, out[i].err = l.queueLeaf(ctx, leaf)
			})
		}
		wg.Wait()
	}
	return out, nil
}

// queuedStatus reads Trillian's per-leaf status: OK, or AlreadyExists for
// a duplicate; any other code fails that entry.
func queuedStatus(q *trillian.QueuedLogLeaf) queued {
	switch c := codes.Code(q.GetStatus().GetCode()); c {
	case codes.OK:
		return queued{}
	case codes.AlreadyExists:
		return queued{duplicate: true}
	default:
		return queued{err: fmt.Errorf("queueing leaf: Trillian says %v: %s: %w", c, q.GetStatus().GetMessage(), ErrUnavailable)}
	}
}

// parseBatch splits a POST /v1/add-entries body: entries one after the
// other, each a big-endian uint16 length and that many bytes (the framing
// of tlog-tiles entry bundles, https://c2sp.org/tlog-tiles).
func parseBatch(body []byte) ([][]byte, error) {
	var entries [][]byte
	for off := 0; off < len(body); {
		if len(entries) == MaxBatchEntries {
			return nil, badRequest(fmt.Sprintf("a batch holds at most %d entries", MaxBatchEntries))
		}
		if len(body)-off < 2 {
			return nil, badRequest(fmt.Sprintf("entry %d at byte %d: truncated length prefix", len(entries), off))
		}
		n := int(binary.BigEndian.Uint16(body[off:]))
		off += 2
		if len(body)-off < n {
			return nil, badRequest(fmt.Sprintf("entry %d at byte %d: length %d, but only %d bytes follow", len(entries), off-2, n, len(body)-off))
		}
		entries = append(entries, body[off:off+n:off+n])
		off += n
	}
	if len(entries) == 0 {
		return nil, badRequest("empty batch")
	}
	return entries, nil
}
