package log

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"github.com/transparency-dev/merkle/compact"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// published is a checkpoint the log has published: its size, root, and the
// signed note byte for byte as stored and served.
type published struct {
	size uint64
	root [32]byte
	note []byte
}

// InconsistencyError is why a publisher stalls: Trillian's tree (Size,
// Root) is not an extension of a checkpoint the log signed (Published,
// verbatim: the last published one, or one that was signed and shown to
// witnesses but not published), as shown by Proof, or it is smaller. It is
// evidence of a broken or tampered Trillian and is logged in full.
type InconsistencyError struct {
	Published []byte
	Size      uint64
	Root      [32]byte
	Proof     [][]byte
	Reason    string
}

func (e *InconsistencyError) Error() string {
	return fmt.Sprintf("Trillian's tree of size %d (root %x) is inconsistent with the published checkpoint: %s", e.Size, e.Root, e.Reason)
}

// publisher signs, stores and serves checkpoints, and wakes add-entry
// requests whose entry a new checkpoint covers.
type publisher struct {
	l *Log

	mu        sync.Mutex
	cur       *published
	edge      *compact.Range // the compact range of cur's tree, when known (only run touches it)
	waiters   map[[32]byte][]*waiter
	stalled   error         // set once; the publisher never signs again
	lastErr   error         // the last round's failure, nil after a good round
	failures  int           // failed rounds in a row
	nextRound time.Time     // when the next round starts (after a failure)
	failing   chan struct{} // closed once failures reach failFastRounds, or on a stall
	closed    bool          // failing is closed
	accepted  uint64
	startSize uint64
	done      chan struct{}
}

// waiter is an add-entry request waiting for a checkpoint covering its leaf.
type waiter struct {
	hash    [32]byte
	ch      chan found      // buffered, 1
	failing <-chan struct{} // closed when publishing starts failing for good
}

// found says where a waiter's leaf is: at index, under checkpoint cp.
type found struct {
	index uint64
	cp    *published
	proof [][]byte // the inclusion proof when already known, else nil
	// proven says that proof was built by a batchProver from nodes that
	// hash to cp's root, with the waiter's leaf hash at index: it verifies
	// by construction (TestBatchProver checks every such proof).
	proven bool
}

// newPublisher loads the latest published checkpoint, or publishes the
// size-0 checkpoint of a new log.
func newPublisher(ctx context.Context, l *Log) (*publisher, error) {
	p := &publisher{l: l, waiters: map[[32]byte][]*waiter{}, done: make(chan struct{}), failing: make(chan struct{})}
	stored, err := l.cfg.State.LatestCheckpoint(ctx, l.cfg.Origin)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		cp, err := p.publishEmpty(ctx)
		if err != nil {
			return nil, err
		}
		p.cur = cp
	case err != nil:
		return nil, fmt.Errorf("log: %w", err)
	default:
		s, err := checkpoint.Open(stored.Note, l.verifier)
		if err != nil || s.Size != stored.Size {
			return nil, fmt.Errorf("log: the stored checkpoint of size %d does not verify with the log's key (was the key replaced?): %v", stored.Size, err)
		}
		p.cur = &published{size: s.Size, root: s.Hash, note: stored.Note}
	}
	p.startSize = p.cur.size
	l.metrics.size.Set(float64(p.cur.size))
	return p, nil
}

// publishEmpty signs and stores the size-0 checkpoint of a new log, so that
// /checkpoint answers from the start. Witnesses are asked to cosign it, but
// it is published without their cosignatures if they fail: the empty tree
// commits to nothing (every tree is consistent with it), so no split view
// can hide behind it. Every later checkpoint needs the quorum.
func (p *publisher) publishEmpty(ctx context.Context) (*published, error) {
	l := p.l
	cp := checkpoint.Checkpoint{Origin: l.cfg.Origin, Size: 0, Hash: checkpoint.EmptyRoot}
	signed, err := checkpoint.Sign(cp, l.cfg.Signer)
	if err != nil {
		return nil, fmt.Errorf("log: signing the size-0 checkpoint: %w", err)
	}
	if l.cfg.Cosign != nil {
		cosigned, err := l.cfg.Cosign(ctx, signed, func(context.Context, uint64) ([][]byte, error) { return nil, nil })
		if err != nil {
			l.log.Warn("publishing the size-0 checkpoint without cosignatures", "error", err)
		} else {
			signed = cosigned
		}
	}
	if err := l.cfg.State.AddCheckpoint(ctx, cp.Origin, 0, signed, time.Now()); err != nil {
		if !errors.Is(err, storage.ErrConflict) {
			return nil, fmt.Errorf("log: %w", err)
		}
		// Another server of this log published it first: use theirs.
		stored, err := l.cfg.State.Checkpoint(ctx, cp.Origin, 0)
		if err != nil {
			return nil, fmt.Errorf("log: %w", err)
		}
		signed = stored.Note
	}
	l.log.Info("published the size-0 checkpoint", "origin", cp.Origin)
	return &published{size: 0, root: checkpoint.EmptyRoot, note: signed}, nil
}

// run publishes until ctx ends, starting CheckpointInterval after New.
// With Config.Grown, a round starts as soon as Trillian's tree grew; rounds
// never overlap, so under load each one covers everything integrated while
// the last one ran. Without it, a round starts every CheckpointInterval.
// With witnesses, rounds start at most once per CosignInterval. After a
// failed round it waits, doubling from CheckpointInterval up to
// MaxBackoff, so that failing witnesses and storage are not asked ten
// times a second.
func (p *publisher) run(ctx context.Context) {
	t := time.NewTimer(p.l.cfg.CheckpointInterval)
	defer t.Stop()
	var grown <-chan struct{} // nil: poll
	var lastRound time.Time
	if p.l.cfg.Cosign != nil && p.l.cfg.Held != nil {
		p.probe(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-grown:
		}
		if p.stalledErr() != nil {
			return // for good: /healthz and add-entry report it
		}
		if p.l.cfg.Cosign != nil {
			// Witnesses are asked at most once per CosignInterval.
			if d := time.Until(lastRound.Add(p.l.cfg.CosignInterval)); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			lastRound = time.Now()
		}
		if p.l.cfg.Grown != nil {
			// Taken before the round reads the tree: growth during the
			// round closes it, and the next round starts at once.
			grown = p.l.cfg.Grown()
		}
		err := p.round(ctx)
		wait := p.finish(ctx, err)
		if err == nil && grown != nil {
			continue // until the tree grows
		}
		grown = nil // after a failure, wait out the backoff
		t.Reset(wait)
	}
}

// probe shows the witnesses the latest published checkpoint again (signed
// anew: the same statement), so that each answers with the size it holds
// (a 409 when it differs) before the log signs anything new: a log
// restored from an older backup learns that witnesses hold more, and
// checkHeld keeps it from signing below that. The answer's cosignatures
// are not needed.
func (p *publisher) probe(ctx context.Context) {
	cur := p.latest()
	signed, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: p.l.cfg.Origin, Size: cur.size, Hash: cur.root}, p.l.cfg.Signer)
	if err != nil {
		p.l.log.Warn("asking witnesses what they hold: signing", "error", err)
		return
	}
	if _, err := p.l.cfg.Cosign(ctx, signed, p.proofFunc(cur.size, cur.root)); err != nil {
		p.l.log.Debug("asking witnesses what they hold", "error", err)
	}
	if held, name := p.l.cfg.Held(); held > cur.size {
		p.l.log.Warn("a witness holds a larger checkpoint of this log than the latest published one: the log signs nothing smaller than it or inconsistent with it",
			"witness", name, "witness_size", held, "published_size", cur.size)
	}
}

// failFastRounds is how many rounds in a row must fail before add-entry
// stops waiting for receipts and answers 503 at once.
const failFastRounds = 4

// finish records the outcome of a round and returns how long to wait
// before the next one.
func (p *publisher) finish(ctx context.Context, err error) time.Duration {
	interval := p.l.cfg.CheckpointInterval
	var inc *InconsistencyError
	stall := errors.As(err, &inc)
	p.mu.Lock()
	repeated := err != nil && p.lastErr != nil && err.Error() == p.lastErr.Error()
	p.lastErr = err
	if err == nil {
		if p.closed {
			p.failing, p.closed = make(chan struct{}), false
		}
		p.failures = 0
		p.mu.Unlock()
		return interval
	}
	p.failures++
	if stall {
		p.stalled = fmt.Errorf("publisher stalled: %w", inc)
	}
	if (p.failures >= failFastRounds || stall) && !p.closed {
		close(p.failing) // wakes the waiting writers
		p.closed = true
	}
	wait := interval
	for i := 1; i < p.failures && wait < p.l.cfg.MaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, p.l.cfg.MaxBackoff)
	p.nextRound = time.Now().Add(wait)
	p.mu.Unlock()

	p.l.metrics.publishErrs.Inc()
	if stall {
		p.logStall(inc)
	} else if ctx.Err() == nil && !repeated {
		// Logged once per distinct error; /healthz shows it meanwhile.
		p.l.log.Error("publishing a checkpoint", "error", err, "retry_in", wait)
	}
	return wait
}

// roundTimeout bounds the Trillian and state database steps of a round
// (each side of asking the witnesses, which CosignTimeout bounds).
const roundTimeout = 30 * time.Second

// round publishes a checkpoint of Trillian's current tree if it grew.
func (p *publisher) round(ctx context.Context) error {
	l := p.l
	start := time.Now()
	signed, next, g, err := p.sign(ctx)
	if err != nil || next == nil {
		return err
	}
	if l.cfg.Cosign != nil {
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if l.cfg.CosignTimeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, l.cfg.CosignTimeout)
		}
		signed, err = l.cfg.Cosign(cctx, signed, p.proofFunc(next.size, next.root))
		cancel()
		if err != nil {
			return &cosignError{size: next.size, err: err}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, roundTimeout)
	defer cancel()
	next.note = signed
	if err := l.cfg.State.AddCheckpoint(ctx, l.cfg.Origin, next.size, signed, time.Now()); err != nil {
		if !errors.Is(err, storage.ErrConflict) {
			return err
		}
		if next, err = p.adopt(ctx, next.size, next.root); err != nil {
			return err
		}
	}
	l.metrics.publish.Observe(time.Since(start).Seconds())
	p.advance(ctx, next, g)
	return nil
}

// sign reads Trillian's tree and, if it grew, verifies it against what the
// log signed before, signs it, and (with witnesses) records it as signed
// before any witness sees it. It returns nils when the tree did not grow.
//
// The new tree is verified by recomputing its root from the compact range
// of the published tree and the new leaves' hashes (see growth), or, where
// those are not at hand, with a consistency proof (publisher.consistency).
func (p *publisher) sign(ctx context.Context) ([]byte, *published, *growth, error) {
	l := p.l
	outer := ctx // the tiler's catching up may take longer than a round
	ctx, cancel := context.WithTimeout(ctx, roundTimeout)
	defer cancel()
	size, root, err := p.trillianRoot(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	cur := p.latest()
	if size < cur.size || size == cur.size && root != cur.root {
		return nil, nil, nil, &InconsistencyError{Published: cur.note, Size: size, Root: root, Reason: "smaller tree or different root at the same size"}
	}
	if size == cur.size {
		// Nothing to sign; the tiles (of a log from before tiles, or
		// after a failed round) may still have to catch up.
		return nil, nil, nil, l.tiler.reach(outer, size, root, cur)
	}
	// Verify before signing: the new tree must extend everything published.
	g, err := p.growth(ctx, cur, size, root)
	if err != nil {
		l.log.Warn("recomputing the new tree from its leaves failed; asking Trillian for a consistency proof", "from", cur.size, "to", size, "error", err)
	}
	if g == nil {
		// size > cur.size here: the reason is the proof's failure.
		if _, err := p.extends(ctx, cur.size, cur.root, cur.note, size, root, "", ""); err != nil {
			return nil, nil, nil, err
		}
	}
	// And the log's own tiles, hashed from the entries, must reach the
	// same root: a second check by code that does not trust Trillian,
	// and the tiles of a tree are stored before it is signed.
	if err := l.tiler.reach(outer, size, root, cur); err != nil {
		return nil, nil, nil, err
	}
	if l.cfg.Cosign != nil {
		// And everything witnesses may hold.
		if err := p.checkSigned(ctx, cur.size, size, root); err != nil {
			return nil, nil, nil, err
		}
		if l.cfg.Held != nil {
			if err := p.checkHeld(ctx, cur.size, size, root); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	signed, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: l.cfg.Origin, Size: size, Hash: root}, l.cfg.Signer)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("signing checkpoint: %w", err)
	}
	if l.cfg.Cosign != nil {
		if err := p.recordSigned(ctx, size, root, signed); err != nil {
			return nil, nil, nil, err
		}
	}
	return signed, &published{size: size, root: root}, g, nil
}

// growth is what the publisher learns of the leaves that a new checkpoint
// adds: their hashes, the inclusion proofs of each, and the new tree's
// compact range.
type growth struct {
	leaves [][32]byte
	prover *batchProver
	edge   *compact.Range
}

// growth recomputes the tree of (size, root) from the compact range of the
// published tree cur and the hashes of the leaves [cur.size, size): from
// the sequencer (Config.LeafHashes), or else read from Trillian when there
// are at most maxScan. If the root comes out equal to Trillian's, the new
// tree extends cur by construction: no consistency proof is needed. It
// returns nil, nil when the leaves are not at hand, and nil and an error
// when they did not hash to root (the caller then checks with a proof).
func (p *publisher) growth(ctx context.Context, cur *published, size uint64, root [32]byte) (*growth, error) {
	var leaves [][32]byte
	ok := false
	if p.l.cfg.LeafHashes != nil {
		leaves, ok = p.l.cfg.LeafHashes(cur.size, size)
	}
	if !ok {
		if size-cur.size > maxScan {
			return nil, nil
		}
		var err error
		if leaves, err = p.readLeaves(ctx, cur.size, size); err != nil {
			return nil, err
		}
	}
	edge := p.edge
	if edge == nil || edge.End() != cur.size {
		var err error
		if edge, err = p.l.rightEdge(ctx, cur); err != nil {
			return nil, err
		}
	}
	prover, next, err := newBatchProver(edge, leaves, root)
	if err != nil {
		return nil, err
	}
	return &growth{leaves: leaves, prover: prover, edge: next}, nil
}

// adopt returns the checkpoint of this size that another server of this log
// stored first, if it verifies and has the same root.
func (p *publisher) adopt(ctx context.Context, size uint64, root [32]byte) (*published, error) {
	stored, err := p.l.cfg.State.Checkpoint(ctx, p.l.cfg.Origin, size)
	if err != nil {
		return nil, err
	}
	s, err := checkpoint.Open(stored.Note, p.l.verifier)
	if err != nil || s.Hash != root {
		return nil, &InconsistencyError{Published: stored.Note, Size: size, Root: root, Reason: "a different checkpoint of this size is stored"}
	}
	return &published{size: size, root: root, note: stored.Note}, nil
}

// trillianRoot reads Trillian's latest root.
func (p *publisher) trillianRoot(ctx context.Context) (uint64, [32]byte, error) {
	if p.l.cfg.Root != nil {
		if size, root, ok := p.l.cfg.Root(); ok && size >= p.latest().size {
			return size, root, nil
		}
	}
	resp, err := p.l.cfg.Trillian.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: p.l.cfg.TreeID})
	if err != nil {
		return 0, [32]byte{}, fmt.Errorf("reading root from Trillian: %w", err)
	}
	var r types.LogRootV1
	if err := r.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()); err != nil {
		return 0, [32]byte{}, fmt.Errorf("reading root from Trillian: %w", err)
	}
	if len(r.RootHash) != 32 {
		return 0, [32]byte{}, fmt.Errorf("reading root from Trillian: root hash of %d bytes", len(r.RootHash))
	}
	return r.TreeSize, [32]byte(r.RootHash), nil
}

// consistency returns (without verifying) the consistency proof between
// the trees of sizes first and second: from the log's own tiles when they
// cover second, else from Trillian.
func (p *publisher) consistency(ctx context.Context, first, second uint64) ([][]byte, error) {
	proof, err := p.l.tileConsistency(ctx, first, second)
	if !errors.Is(err, errNoTile) {
		return proof, err
	}
	return p.consistencyFromTrillian(ctx, first, second)
}

// consistencyFromTrillian fetches (without verifying) the consistency proof
// between two sizes.
func (p *publisher) consistencyFromTrillian(ctx context.Context, first, second uint64) ([][]byte, error) {
	if first == 0 || first == second {
		return nil, nil
	}
	resp, err := p.l.cfg.Trillian.GetConsistencyProof(ctx, &trillian.GetConsistencyProofRequest{
		LogId: p.l.cfg.TreeID, FirstTreeSize: int64(first), SecondTreeSize: int64(second)})
	if err != nil {
		return nil, fmt.Errorf("consistency proof %d→%d from Trillian: %w", first, second, err)
	}
	return resp.GetProof().GetHashes(), nil
}

// advance makes next the latest published checkpoint and wakes the waiters
// whose leaves it newly covers: with g, from the new leaves' hashes and
// proofs; without, looking each waiter up in Trillian.
func (p *publisher) advance(ctx context.Context, next *published, g *growth) {
	p.mu.Lock()
	old := p.cur
	p.cur = next
	waiting := len(p.waiters) > 0
	p.mu.Unlock()
	p.edge = nil
	if g != nil {
		p.edge = g.edge
	}
	p.l.metrics.size.Set(float64(next.size))
	p.l.metrics.backlog.Set(float64(p.backlog()))
	if !waiting {
		return
	}
	if g == nil {
		p.wakeByHash(ctx, next)
		return
	}
	for i, h := range g.leaves {
		p.mu.Lock()
		waiting := len(p.waiters[h]) > 0
		p.mu.Unlock()
		if !waiting {
			continue
		}
		f := found{index: old.size + uint64(i), cp: next}
		f.proof, _ = g.prover.inclusion(f.index) // nil: the waiter asks Trillian
		f.proven = f.proof != nil
		p.deliver(h, f)
	}
}

// maxScan is the largest growth for which advance reads the new leaves to
// wake waiters; beyond it (a log catching up on a long queue), each waiter
// is looked up by hash instead.
var maxScan uint64 = 100_000

// wakeByHash wakes the waiters whose leaves the tree of next covers,
// looking each up by hash.
func (p *publisher) wakeByHash(ctx context.Context, next *published) {
	p.mu.Lock()
	hashes := make([][32]byte, 0, len(p.waiters))
	for h := range p.waiters {
		hashes = append(hashes, h)
	}
	p.mu.Unlock()
	for _, h := range hashes {
		r, err := p.l.cfg.Trillian.GetInclusionProofByHash(ctx, &trillian.GetInclusionProofByHashRequest{
			LogId: p.l.cfg.TreeID, LeafHash: h[:], TreeSize: int64(next.size)})
		if err != nil || len(r.Proof) == 0 {
			continue // not covered yet, or the waiter times out
		}
		p.deliver(h, found{index: uint64(r.Proof[0].LeafIndex), cp: next, proof: nonNil(r.Proof[0].Hashes)})
	}
}

// deliver wakes the waiters for hash.
func (p *publisher) deliver(h [32]byte, f found) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.waiters[h] {
		select {
		case w.ch <- f:
		default:
		}
	}
	delete(p.waiters, h)
}

// readLeaves returns the leaf hashes of [start, end), computed here from the
// leaves Trillian returns.
func (p *publisher) readLeaves(ctx context.Context, start, end uint64) ([][32]byte, error) {
	out := make([][32]byte, 0, end-start)
	for next := start; next < end; {
		resp, err := p.l.cfg.Trillian.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{
			LogId: p.l.cfg.TreeID, StartIndex: int64(next), Count: int64(min(end-next, 1000))})
		if err != nil {
			return nil, err
		}
		if len(resp.Leaves) == 0 {
			return nil, fmt.Errorf("no leaves from %d", next)
		}
		for _, leaf := range resp.Leaves {
			if next == end {
				break
			}
			if uint64(leaf.LeafIndex) != next {
				return nil, fmt.Errorf("leaf %d where %d was expected", leaf.LeafIndex, next)
			}
			out = append(out, checkpoint.LeafHash(leaf.LeafValue))
			next++
		}
	}
	return out, nil
}

// register adds a waiter for hash, and returns it with the checkpoint that
// was the latest at that moment: a later checkpoint wakes it if it covers
// the leaf.
func (p *publisher) register(hash [32]byte) (*waiter, *published, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return nil, nil, ErrUnavailable
	default:
	}
	w := &waiter{hash: hash, ch: make(chan found, 1), failing: p.failing}
	p.waiters[hash] = append(p.waiters[hash], w)
	return w, p.cur, nil
}

// unregister removes w (a no-op when it was woken).
func (p *publisher) unregister(w *waiter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ws := p.waiters[w.hash]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(p.waiters, w.hash)
	} else {
		p.waiters[w.hash] = ws
	}
}

// closeWaiters fails every waiting request (the log is closing).
func (p *publisher) closeWaiters() { close(p.done) }

func (p *publisher) latest() *published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

func (p *publisher) stalledErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalled
}

// failingErr is a *notPublishingError when the publisher stalled or the
// last failFastRounds rounds or more failed, else nil. queued says whether
// the entry was queued.
func (p *publisher) failingErr(queued bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.stalled
	if err == nil {
		if p.failures < failFastRounds {
			return nil
		}
		err = p.lastErr
	}
	return &notPublishingError{queued: queued, reason: publishReason(err), retry: time.Until(p.nextRound)}
}

// failingChan returns the channel closed when publishing next starts
// failing for good (already closed if it is failing now).
func (p *publisher) failingChan() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failing
}

// health is nil when the publisher can publish, else why not.
func (p *publisher) health() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled != nil {
		return p.stalled
	}
	return p.lastErr
}

// logStall logs the evidence of a stall (finish has stopped publishing for
// good).
func (p *publisher) logStall(e *InconsistencyError) {
	p.l.metrics.stalled.Set(1)
	proof := make([]string, len(e.Proof))
	for i, h := range e.Proof {
		proof[i] = base64.StdEncoding.EncodeToString(h)
	}
	p.l.log.Error("STALLED: Trillian's tree is inconsistent with a published checkpoint; no further checkpoints will be signed",
		"published", string(e.Published), "trillian_size", e.Size, "trillian_root", base64.StdEncoding.EncodeToString(e.Root[:]),
		"proof", proof, "reason", e.Reason)
}

// accept counts a newly queued entry, for the backlog estimate.
func (p *publisher) accept() {
	p.mu.Lock()
	p.accepted++
	p.mu.Unlock()
}

// grown is how much the published tree grew since this server started.
func (p *publisher) grown() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur.size < p.startSize {
		return 0
	}
	return p.cur.size - p.startSize
}

// backlog estimates how many entries this server accepted that no published
// checkpoint covers yet.
func (p *publisher) backlog() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	grown := p.cur.size - p.startSize
	if grown >= p.accepted {
		return 0
	}
	return p.accepted - grown
}
