package log

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/google/trillian"

	"github.com/evidentlog/evident/checkpoint"
)

// DefaultScrubRate is how many entries a second the scrubber re-reads.
// Each costs about 10 µs of CPU (reading it back from SQLite, hashing it,
// adding it to a compact range), so the default takes about 2% of a core,
// and a full pass of 1,000,000 entries about 8 minutes
// (docs/performance.md).
const DefaultScrubRate = 2000

// scrubChunk is how many entries the scrubber reads at a time.
const scrubChunk = 256

// scrubPause is how long the scrubber waits after the log starts before its
// first pass, and at least from the start of a pass to the start of the
// next (a pass over a small log is quick).
var scrubPause = time.Minute

// scrub re-reads the whole log in the background, over and over, at
// Config.ScrubRate entries a second: it checks that every entry's stored
// leaf hash is the hash of its value, and recomputes the tree's root at the
// size of every published checkpoint, comparing it with that checkpoint's
// root. A failure raises the integrity alarm (/healthz red, logged once
// with the index). Progress is the metric evident_scrub_index.
func (l *Log) scrub(ctx context.Context) {
	if !sleepCtx(ctx, scrubPause) {
		return
	}
	for ctx.Err() == nil {
		start := time.Now()
		end := l.pub.latest().size
		err := l.scrubPass(ctx, end)
		switch {
		case ctx.Err() != nil:
			return
		case integrityReason(err) != "":
			l.noteIntegrity("scrubber", err)
			return // the alarm stays; nothing more to learn until repaired
		case err != nil:
			l.log.Warn("scrubbing the log", "error", err)
		default:
			l.metrics.scrubPasses.Inc()
			l.log.Debug("scrubbed the log", "entries", end, "took", time.Since(start).Round(time.Millisecond))
		}
		if !sleepCtx(ctx, time.Until(start.Add(scrubPause))) {
			return
		}
	}
}

// scrubPass checks the entries [0, end) against every published checkpoint
// of at most that size.
func (l *Log) scrubPass(ctx context.Context, end uint64) error {
	r := rangeFactory.NewEmptyRange(0)
	var cps []*checkpoint.Signed // published checkpoints not yet compared, by size
	nextFrom, exhausted := uint64(1), false
	loadMore := func() error {
		page, err := l.cfg.State.Checkpoints(ctx, l.cfg.Origin, nextFrom, 1000)
		if err != nil {
			return err
		}
		exhausted = len(page) < 1000
		for _, c := range page {
			if c.Size > end {
				exhausted = true
				break
			}
			s, err := checkpoint.Open(c.Note, l.verifier)
			if err != nil {
				return fmt.Errorf("the published checkpoint of size %d does not verify: %v: %w", c.Size, err, errBadProof)
			}
			cps = append(cps, s)
			nextFrom = c.Size + 1
		}
		return nil
	}
	if err := loadMore(); err != nil {
		return err
	}
	per := time.Second * scrubChunk / time.Duration(l.cfg.ScrubRate)
	for index := uint64(0); index < end; {
		t0 := time.Now()
		resp, err := l.cfg.Trillian.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{
			LogId: l.cfg.TreeID, StartIndex: int64(index), Count: int64(min(end-index, scrubChunk))})
		if err != nil {
			return fmt.Errorf("reading entries from %d: %w", index, err)
		}
		if len(resp.Leaves) == 0 {
			return fmt.Errorf("entry %d, below the published size %d, is missing: %w", index, end, errBadProof)
		}
		for _, leaf := range resp.Leaves {
			if leaf.LeafIndex != int64(index) {
				return fmt.Errorf("Trillian returned entry %d for %d: %w", leaf.LeafIndex, index, errBadProof)
			}
			h := checkpoint.LeafHash(leaf.LeafValue)
			if !bytes.Equal(h[:], leaf.MerkleLeafHash) {
				return fmt.Errorf("entry %d: its value does not hash to its stored leaf hash: %w", index, errBadProof)
			}
			if err := r.Append(h[:], nil); err != nil {
				return err
			}
			index++
			for len(cps) > 0 && cps[0].Size == index {
				root, err := r.GetRootHash(nil)
				if err != nil {
					return err
				}
				if !bytes.Equal(root, cps[0].Hash[:]) {
					return fmt.Errorf("the entries up to %d hash to root %x, not the published checkpoint's %x: an entry below %d was changed: %w",
						index-1, root, cps[0].Hash, index, errBadProof)
				}
				cps = cps[1:]
				if len(cps) == 0 && !exhausted {
					if err := loadMore(); err != nil {
						return err
					}
				}
			}
		}
		l.metrics.scrubIndex.Set(float64(index))
		if !sleepCtx(ctx, per-time.Since(t0)) {
			return ctx.Err()
		}
	}
	return nil
}

// sleepCtx waits d (nothing when d ≤ 0), or until ctx ends (then false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
