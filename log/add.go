package log

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/trillian"

	"github.com/evidentlog/evident/checkpoint"
)

// AddResult is the answer to an added entry.
type AddResult struct {
	// LeafHash is the entry's RFC 6962 leaf hash.
	LeafHash [32]byte
	// Duplicate is true when identical bytes were added before; Index is
	// then the original index.
	Duplicate bool
	// Index is the entry's position in the log (when waited for).
	Index uint64
	// Receipt is the entry's tlog-proof receipt (when waited for).
	Receipt []byte
	// Tenant is the tenant the entry is attributed to.
	Tenant string
}

// AddEntry queues entry in the log. With wait, it returns once a published
// checkpoint covers the entry, with the entry's index and receipt; without,
// as soon as the entry is durably queued. Identical bytes added again by
// the same tenant get the original index, with Duplicate set; by another
// tenant, they are another entry.
func (l *Log) AddEntry(ctx context.Context, tenant string, entry []byte, wait bool) (*AddResult, error) {
	start := time.Now()
	if len(entry) == 0 {
		return nil, badRequest("empty entry")
	}
	if len(entry) > l.cfg.MaxEntrySize {
		return nil, ErrTooLarge
	}
	if err := l.admitQuota(tenant, 1); err != nil {
		return nil, err
	}
	if l.pub.backlog() >= uint64(l.cfg.MaxBacklog) {
		return nil, ErrBacklog
	}
	if err := l.pub.stalledErr(); err != nil {
		// No receipt can come until an operator repairs the log.
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	leaf := tenantLeaf(tenant, entry)
	res := &AddResult{LeafHash: [32]byte(leaf.MerkleLeafHash), Tenant: tenant}
	id := [32]byte(leaf.LeafIdentityHash)
	if wait {
		// No receipt can come soon: say so now rather than at WaitTimeout,
		// unless the entry is already published (a client resubmitting
		// after a 504) and so has its receipt.
		if err := l.pub.failingErr(false); err != nil {
			f, ok, lerr := l.ownLeaf(ctx, res.LeafHash, id, l.pub.latest())
			if lerr != nil || !ok {
				return nil, err
			}
			res.Duplicate = true
			l.metrics.added.WithLabelValues("duplicate").Inc()
			if err := l.fillReceipt(ctx, res, f); err != nil {
				return nil, err
			}
			return res, nil
		}
	}
	var w *waiter
	var regCP *published
	if wait {
		// Register before queueing, so that no checkpoint covering the
		// entry can be published unseen in between.
		var err error
		if w, regCP, err = l.pub.register(res.LeafHash); err != nil {
			return nil, err
		}
		defer l.pub.unregister(w)
	}
	dup, err := l.queueOne(ctx, leaf)
	if err != nil {
		return nil, err
	}
	res.Duplicate = dup
	if res.Duplicate {
		l.metrics.added.WithLabelValues("duplicate").Inc()
	} else {
		l.metrics.added.WithLabelValues("new").Inc()
		l.pub.accept()
		l.quota.accept(tenant, 1, l.pub.grown())
	}
	if !wait {
		return res, nil
	}
	f, err := l.await(ctx, w, regCP, res, id, time.Now().Add(l.cfg.WaitTimeout))
	if err != nil {
		return nil, err
	}
	if err := l.fillReceipt(ctx, res, f); err != nil {
		return nil, err
	}
	l.metrics.receipt.Observe(time.Since(start).Seconds())
	return res, nil
}

// await waits until a published checkpoint covers the entry whose leaf
// identity (IdentityHash) is id, at most until deadline (then ErrTimeout). A duplicate may already be
// covered by regCP, the latest checkpoint when w was registered; any later
// checkpoint wakes w. Waiters wait for a Merkle leaf hash, which several
// tenants' entries may share: a leaf that is another tenant's sends it
// looking for its own, and waiting again. It gives up early when
// publishing keeps failing (ErrNotPublishing).
func (l *Log) await(ctx context.Context, w *waiter, regCP *published, res *AddResult, id [32]byte, deadline time.Time) (found, error) {
	if res.Duplicate {
		if f, ok, err := l.ownLeaf(ctx, res.LeafHash, id, regCP); ok || err != nil {
			return f, err
		}
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	failing := w.failing
	for {
		select {
		case f := <-w.ch:
			if id == res.LeafHash && !l.tenanted() {
				return f, nil
			}
			if ok, err := l.isOwn(ctx, f.index, id); ok || err != nil {
				return f, err
			}
			// Another tenant's entry of the same bytes. Wait again
			// (registered first, so that nothing is missed), unless
			// the latest checkpoint covers ours already.
			w2, cp, err := l.pub.register(res.LeafHash)
			if err != nil {
				return found{}, err
			}
			defer l.pub.unregister(w2)
			if f, ok, err := l.ownLeaf(ctx, res.LeafHash, id, cp); ok || err != nil {
				return f, err
			}
			w = w2
		case <-t.C:
			return found{}, ErrTimeout
		case <-ctx.Done():
			return found{}, ctx.Err()
		case <-l.pub.done:
			return found{}, ErrUnavailable
		case <-failing:
			// Publishing keeps failing: no receipt can come soon.
			if err := l.pub.failingErr(true); err != nil {
				return found{}, err
			}
			// It recovered meanwhile: wait on, and watch for the next
			// outage.
			failing = l.pub.failingChan()
		}
	}
}

// fillReceipt fetches and verifies the inclusion proof of res's leaf at
// f.index under f.cp (unless the publisher built it proven), and makes the
// receipt.
func (l *Log) fillReceipt(ctx context.Context, res *AddResult, f found) error {
	proof := f.proof
	if proof == nil && f.cp.size > 1 {
		proof, _ = l.tileInclusion(ctx, f.index, f.cp.size) // nil: not tiled here
	}
	if proof == nil && f.cp.size > 1 {
		r, err := l.cfg.Trillian.GetInclusionProof(ctx, &trillian.GetInclusionProofRequest{
			LogId: l.cfg.TreeID, LeafIndex: int64(f.index), TreeSize: int64(f.cp.size)})
		if err != nil {
			return fmt.Errorf("inclusion proof from Trillian: %w", err)
		}
		proof = r.GetProof().GetHashes()
	}
	if !f.proven { // a proven one would only hash its path again
		if err := checkpoint.VerifyInclusion(f.index, f.cp.size, res.LeafHash, proof, f.cp.root); err != nil {
			return fmt.Errorf("Trillian's inclusion proof for index %d at size %d: %w: %w", f.index, f.cp.size, err, errBadProof)
		}
	}
	res.Index = f.index
	res.Receipt = (&checkpoint.Receipt{Index: f.index, Proof: proof, Checkpoint: f.cp.note}).Marshal()
	return nil
}

// errBadProof marks a proof from Trillian that does not verify: a 500, and
// an error in the server's log.
var errBadProof = errors.New("proof from Trillian does not verify")
