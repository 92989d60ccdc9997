package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// maxSwapAttempts bounds the re-checks after losing a compare-and-swap race.
const maxSwapAttempts = 4

// AddCheckpoint checks req against the state the witness holds for the
// checkpoint's log and, if every check of tlog-witness passes, stores the
// checkpoint as the new state and returns the witness's cosignature line
// ("— <name> <base64>\n"). The checkpoint the witness already holds is
// answered with the cosignature stored with it, without a write.
//
// Errors: checkpoint.ErrMalformed (400), checkpoint.ErrSignature (403),
// ErrUnknownOrigin (404), *ConflictError (409), ErrInconsistent (422),
// *RateLimitError (429), ErrBusy (503); anything else is internal.
func (w *Witness) AddCheckpoint(ctx context.Context, req *Request) ([]byte, error) {
	body, _, err := checkpoint.SplitNote(req.Checkpoint)
	if err != nil {
		return nil, err
	}
	origin, _, _ := bytes.Cut(body, []byte("\n"))
	keys := w.logs.Load().Verifiers(string(origin))
	if keys == nil {
		// SPEC(tlog-witness): an unknown origin is answered 404.
		return nil, fmt.Errorf("%q: %w", origin, ErrUnknownOrigin)
	}
	signed, err := open(req.Checkpoint, body, keys)
	if err != nil {
		return nil, err
	}
	// SPEC(tlog-witness): the old size MUST be equal to or lower than the
	// checkpoint size, or the answer is 400.
	if req.OldSize > signed.Size {
		return nil, fmt.Errorf("old size %d is greater than the checkpoint's size %d: %w", req.OldSize, signed.Size, checkpoint.ErrMalformed)
	}
	charged := false
	for range maxSwapAttempts {
		line, err := w.tryAdd(ctx, req, signed, body, keys, &charged)
		if !errors.Is(err, storage.ErrWitnessStateChanged) {
			return line, err
		}
		w.logger.Debug("witness state changed during add-checkpoint; checking again", "origin", signed.Origin)
	}
	return nil, ErrBusy
}

// open verifies the log's signature with any of keys. A checkpoint of size 0
// whose root is not the empty tree's, validly signed, is inconsistent
// rather than malformed.
func open(signedNote, body []byte, keys []note.Verifier) (*checkpoint.Signed, error) {
	var err error
	for _, k := range keys {
		var s *checkpoint.Signed
		s, err = checkpoint.Open(signedNote, k)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, checkpoint.ErrMalformed) {
			break
		}
	}
	if errors.Is(err, checkpoint.ErrMalformed) && nonEmptyZeroTree(body) {
		if _, nerr := note.Open(signedNote, note.VerifierList(keys...)); nerr == nil {
			// SPEC(tlog-checkpoint): a tree of size 0 has the empty root.
			return nil, fmt.Errorf("checkpoint of size 0 without the empty tree's root: %w", ErrInconsistent)
		}
		return nil, fmt.Errorf("no valid signature by a key of the log: %w", checkpoint.ErrSignature)
	}
	return nil, err
}

// nonEmptyZeroTree reports whether body looks like a checkpoint of size 0
// with a 32-byte root that is not the empty tree's.
func nonEmptyZeroTree(body []byte) bool {
	lines := bytes.Split(body, []byte("\n"))
	if len(lines) < 4 || string(lines[1]) != "0" {
		return false
	}
	h, err := base64.StdEncoding.DecodeString(string(lines[2]))
	return err == nil && len(h) == 32 && !bytes.Equal(h, checkpoint.EmptyRoot[:])
}

// tryAdd does the state-dependent checks against one read of the state and
// writes the new state with a compare-and-swap. It returns
// storage.ErrWitnessStateChanged when it lost a race. *charged records
// whether the request was counted against the log's rate limit (once, on
// its first attempt to write).
func (w *Witness) tryAdd(ctx context.Context, req *Request, signed *checkpoint.Signed, body []byte, keys []note.Verifier, charged *bool) ([]byte, error) {
	st, ok, err := w.db.WitnessState(ctx, signed.Origin)
	if err != nil {
		return nil, err
	}
	held, heldRoot := uint64(0), checkpoint.EmptyRoot
	var prev *storage.WitnessState
	if ok {
		held, heldRoot, prev = st.Size, st.Root, &st
	}
	if ok && signed.Size == held && signed.Hash != heldRoot {
		// Two checkpoints of one size with different roots, both signed by
		// the log: a split view, whatever old size the client sent.
		w.keepEvidence(ctx, signed.Origin, st.Note, req, ReasonSameSize)
		if req.OldSize == held {
			// SPEC(tlog-witness): same size, different root is refused.
			return nil, fmt.Errorf("size %d with a root other than the one cosigned: %w", held, ErrInconsistent)
		}
	}
	// SPEC(tlog-witness): the old size must be the size of the latest
	// cosigned checkpoint (0 if none), or the answer is 409 with that size.
	if req.OldSize != held {
		return nil, &ConflictError{Size: held}
	}
	// SPEC(tlog-witness): the proof MUST be empty if the old size is zero.
	if req.OldSize == 0 && len(req.Proof) > 0 {
		return nil, fmt.Errorf("old size 0 with %d proof lines: %w", len(req.Proof), ErrInconsistent)
	}
	if err := checkpoint.VerifyConsistency(held, signed.Size, heldRoot, signed.Hash, req.Proof); err != nil {
		if held < signed.Size {
			// Anyone can send a genuine checkpoint with a junk proof: this
			// proves nothing about the log, so it is not evidence.
			w.logger.Warn("invalid consistency proof", "origin", signed.Origin, "old_size", held, "size", signed.Size, "err", err)
		}
		return nil, fmt.Errorf("from size %d to %d: %v: %w", held, signed.Size, err, ErrInconsistent)
	}
	if ok && signed.Size == held {
		// The checkpoint the witness holds: answer from the stored
		// cosignature, without a write and without charging the log's
		// budget, since anyone can replay a log's public checkpoint.
		if line := ownLine(st.Note, body, w.signer); line != nil {
			return line, nil
		}
	}
	// The rate limit counts only requests that would write a new state:
	// others cannot use up a log's budget by replaying its checkpoints.
	if !*charged {
		if ok, wait := w.limit.allow(signed.Origin); !ok {
			return nil, &RateLimitError{RetryAfter: wait}
		}
		*charged = true
	}
	line, err := checkpoint.SignatureLine(body, w.signer)
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	// Keep only the log's signatures: the stored note then always has room
	// for the cosignature, however many lines the request carried.
	cosigned, err := checkpoint.AppendSignatures(logSigned(req.Checkpoint, body, keys), line)
	if err != nil {
		return nil, fmt.Errorf("appending cosignature: %w", err)
	}
	if w.beforeSwap != nil {
		w.beforeSwap(signed.Origin)
	}
	next := storage.WitnessState{Origin: signed.Origin, Size: signed.Size, Root: signed.Hash, Note: cosigned, UpdatedAt: time.Now()}
	// The compare-and-swap makes the check above and this write one atomic
	// step: if another request changed the state since we read it, nothing
	// is written and the caller checks again.
	if err := w.swap(ctx, prev, next); err != nil {
		return nil, err
	}
	w.logger.Info("cosigned checkpoint", "origin", signed.Origin, "size", signed.Size, "old_size", held)
	return line, nil
}

// logSigned returns the signed note with only the signature lines by keys:
// the checkpoint body, verbatim, and the log's signature lines, verbatim.
func logSigned(signedNote, body []byte, keys []note.Verifier) []byte {
	_, lines, _ := checkpoint.SplitNote(signedNote) // checked by the caller
	out := append(bytes.Clone(body), '\n')
	for _, l := range lines {
		for _, k := range keys {
			if name, hash, ok := lineKey(l); ok && name == k.Name() && hash == k.KeyHash() {
				out = append(out, l...)
				break
			}
		}
	}
	return out
}

// ownLine returns the signature line by s in the signed note, or nil if
// it has none or its body is not body.
func ownLine(signedNote, body []byte, s note.Signer) []byte {
	b, lines, err := checkpoint.SplitNote(signedNote)
	if err != nil || !bytes.Equal(b, body) {
		return nil
	}
	for _, l := range lines {
		if name, hash, ok := lineKey(l); ok && name == s.Name() && hash == s.KeyHash() {
			return bytes.Clone(l)
		}
	}
	return nil
}

// lineKey returns the key name and key ID of a signature line
// ("— <name> <base64(keyID || signature)>\n") that checkpoint.SplitNote
// accepted.
func lineKey(line []byte) (name string, hash uint32, ok bool) {
	rest, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte("\n")), []byte("— "))
	if !ok {
		return "", 0, false
	}
	n, b64, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		return "", 0, false
	}
	raw, err := base64.StdEncoding.DecodeString(string(b64))
	if err != nil || len(raw) < 4 {
		return "", 0, false
	}
	return string(n), binary.BigEndian.Uint32(raw), true
}

// swap writes the new state with a compare-and-swap, committed together
// with those of concurrent requests (group commit): each request queues its
// swap, and whoever holds the write lock commits everything queued in one
// transaction, so that many requests share one fsync. Each swap keeps its
// own compare-and-swap outcome.
func (w *Witness) swap(ctx context.Context, prev *storage.WitnessState, next storage.WitnessState) error {
	p := &pendingSwap{swap: storage.WitnessSwap{Prev: prev, Next: next}, done: make(chan error, 1)}
	w.pendMu.Lock()
	w.pending = append(w.pending, p)
	w.pendMu.Unlock()

	w.writeMu.Lock()
	w.pendMu.Lock()
	batch := w.pending
	w.pending = nil
	w.pendMu.Unlock()
	if len(batch) > 0 {
		// Not ctx: the batch carries other requests' swaps.
		w.commit(context.WithoutCancel(ctx), batch)
	}
	w.writeMu.Unlock()
	// Ours was in this batch or in an earlier one, committed before we got
	// the lock.
	return <-p.done
}

type pendingSwap struct {
	swap storage.WitnessSwap
	done chan error
}

func (w *Witness) commit(ctx context.Context, batch []*pendingSwap) {
	swaps := make([]storage.WitnessSwap, len(batch))
	for i, p := range batch {
		swaps[i] = p.swap
	}
	errs, err := w.db.SwapWitnessStates(ctx, swaps)
	for i, p := range batch {
		if err != nil {
			p.done <- err
		} else {
			p.done <- errs[i]
		}
	}
}
