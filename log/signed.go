package log

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// A checkpoint shown to witnesses may never be published: when the quorum
// is not met, the witnesses that did cosign hold a checkpoint larger than
// the published one, and will only cosign a later one with a consistency
// proof from it. So, with witnesses, the log records every checkpoint it
// signs in the state database (shared by every server of the log) before
// any witness sees it, never signs two roots of one size, verifies every
// new tree against the largest one it signed (and does not sign a smaller
// tree than that), and proves consistency from
// any checkpoint it signed, published or not.

// errNeverSigned means a witness asked for a consistency proof from a size
// of which the log has no signed checkpoint.
var errNeverSigned = errors.New("a witness holds a checkpoint of a size this log never signed")

// errTrillianBehind means Trillian's tree is smaller than a checkpoint the
// log signed and showed witnesses: signing it would give witnesses two
// views. The log waits; if Trillian's database was restored from an older
// backup, the log stalls once the tree reaches that size with another root.
var errTrillianBehind = errors.New("Trillian's tree is smaller than a checkpoint the log signed and showed witnesses")

// errWitnessAhead means a witness holds a checkpoint of this log larger
// than any the log has a record of: the state database (and perhaps the
// tree) was restored from an older backup, or lost. The log does not sign
// until it knows that checkpoint's root and Trillian's tree extends it:
// restore the newer data, or let the witness serve its checkpoint.
var errWitnessAhead = errors.New("a witness holds a larger checkpoint of this log than the log has a record of")

// checkHeld verifies that Trillian's tree (size, root) extends the largest
// checkpoint a witness holds (Config.Held) when that one is larger than the
// published size pub: the log's own records may be older than what it
// showed witnesses (restored from a backup), and signing a smaller or
// diverging tree would be a fork under the log's key, even if the witnesses
// refused it. The root of the witness's checkpoint comes from the log's
// records, or else from the witness itself, verified with the log's key; it
// is then recorded as signed, so that proofs from it can be given.
func (p *publisher) checkHeld(ctx context.Context, pub, size uint64, root [32]byte) error {
	held, name := p.l.cfg.Held()
	if held <= pub {
		return nil
	}
	hroot, known := [32]byte{}, false
	if s, err := p.l.cfg.State.Signed(ctx, p.l.cfg.Origin, held); err == nil {
		hroot, known = s.Root, true
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	var note []byte
	if !known && p.l.cfg.HeldCheckpoint != nil {
		n, err := p.l.cfg.HeldCheckpoint(ctx, name, p.l.cfg.Origin)
		if err == nil {
			if c, verr := checkpoint.Open(n, p.l.verifier); verr == nil && c.Size == held {
				hroot, known, note = c.Hash, true, n
			}
		}
	}
	if !known {
		return fmt.Errorf("%w: witness %s holds size %d, the log's latest checkpoint is %d, and neither the state database nor the witness gives that checkpoint's root. "+
			"Restore the newer state database (docs/deployment.md, Backups); the log signs nothing until then", errWitnessAhead, name, held, pub)
	}
	if size < held {
		return fmt.Errorf("%w: witness %s holds size %d; Trillian's tree has %d entries, and the log does not sign below what witnesses hold. "+
			"If Trillian's database was restored from an older backup, restore the newer one", errWitnessAhead, name, held, size)
	}
	if _, err := p.extends(ctx, held, hroot, note, size, root,
		fmt.Sprintf("witness %s holds another root of this size", name), fmt.Sprintf("from size %d held by witness %s", held, name)); err != nil {
		return err
	}
	if note != nil {
		// Learned from the witness: recorded, so that this and every other
		// server of the log can prove consistency from it.
		if err := p.l.cfg.State.AddSigned(ctx, p.l.cfg.Origin, held, hroot, note, time.Now()); err != nil && !errors.Is(err, storage.ErrConflict) {
			return err
		}
		p.l.log.Warn("a witness held a checkpoint of this log that the state database did not record; verified it with the log's key and Trillian's tree, and recorded it",
			"witness", name, "size", held, "published_size", pub)
	}
	return nil
}

// checkSigned verifies that Trillian's tree (size, root) extends the
// largest checkpoint the log signed, when that one is larger than the
// published size pub (the published one is checked by the caller). A tree
// smaller than that checkpoint is not signed (errTrillianBehind).
func (p *publisher) checkSigned(ctx context.Context, pub, size uint64, root [32]byte) error {
	s, err := p.l.cfg.State.LatestSigned(ctx, p.l.cfg.Origin, 1<<63-1)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.Size > size {
		return fmt.Errorf("%w (Trillian's size %d, signed size %d)", errTrillianBehind, size, s.Size)
	}
	if s.Size <= pub {
		return nil
	}
	_, err = p.extends(ctx, s.Size, s.Root, s.Note, size, root,
		"a different root of this size was signed and shown to witnesses", fmt.Sprintf("from the signed, unpublished size %d", s.Size))
	return err
}

// extends checks that the tree (size, root) extends the tree (oldSize,
// oldRoot) that the log signed (its note, for the evidence): the same
// root at the same size, or else a consistency proof that verifies, which
// it returns. Otherwise it returns an *InconsistencyError whose reason is
// sameSize, or the proof's failure after proofReason (if any).
func (p *publisher) extends(ctx context.Context, oldSize uint64, oldRoot [32]byte, note []byte, size uint64, root [32]byte, sameSize, proofReason string) ([][]byte, error) {
	if oldSize == size {
		if oldRoot != root {
			return nil, &InconsistencyError{Published: note, Size: size, Root: root, Reason: sameSize}
		}
		return [][]byte{}, nil
	}
	proof, err := p.consistency(ctx, oldSize, size)
	if err != nil {
		return nil, err
	}
	if err := checkpoint.VerifyConsistency(oldSize, size, oldRoot, root, proof); err != nil {
		reason := err.Error()
		if proofReason != "" {
			reason = proofReason + ": " + reason
		}
		return nil, &InconsistencyError{Published: note, Size: size, Root: root, Proof: proof, Reason: reason}
	}
	return proof, nil
}

// recordSigned durably records the signed checkpoint of (size, root)
// before witnesses see it. Another root already recorded at this size is
// an InconsistencyError.
func (p *publisher) recordSigned(ctx context.Context, size uint64, root [32]byte, signed []byte) error {
	err := p.l.cfg.State.AddSigned(ctx, p.l.cfg.Origin, size, root, signed, time.Now())
	if !errors.Is(err, storage.ErrConflict) {
		return err
	}
	other, gerr := p.l.cfg.State.Signed(ctx, p.l.cfg.Origin, size)
	if gerr != nil {
		return fmt.Errorf("%w (and reading the recorded one: %w)", err, gerr)
	}
	return &InconsistencyError{Published: other.Note, Size: size, Root: root, Reason: "a different root of this size was signed and shown to witnesses"}
}

// signedAt returns the checkpoint of the given size that the log signed: a
// published one, or else one recorded as shown to witnesses (its note
// without cosignatures). A size the log never signed is an alarm: a witness
// holds a checkpoint under the log's key that the log has no record of.
func (p *publisher) signedAt(ctx context.Context, size uint64) (*published, error) {
	if size <= p.latest().size {
		cp, err := p.l.publishedAt(ctx, size)
		if !errors.Is(err, storage.ErrNotFound) {
			return cp, err
		}
	}
	s, err := p.l.cfg.State.Signed(ctx, p.l.cfg.Origin, size)
	if errors.Is(err, storage.ErrNotFound) {
		p.l.log.Error("ALARM: a witness holds a checkpoint of this log at a size the log never signed: the signing key may be used elsewhere, the state database may have lost data, or the checkpoint was signed before this log recorded signed checkpoints",
			"origin", p.l.cfg.Origin, "size", size, "published_size", p.latest().size)
		return nil, fmt.Errorf("size %d: %w", size, errNeverSigned)
	}
	if err != nil {
		return nil, err
	}
	v, err := checkpoint.Open(s.Note, p.l.verifier)
	if err != nil || v.Size != size || v.Hash != s.Root {
		return nil, fmt.Errorf("the recorded signed checkpoint of size %d does not verify with the log's key: %v", size, err)
	}
	return &published{size: size, root: s.Root, note: s.Note}, nil
}

// proofFunc returns the consistency proofs to the checkpoint being cosigned
// (size, root) from an earlier checkpoint the log signed, verified.
func (p *publisher) proofFunc(size uint64, root [32]byte) func(context.Context, uint64) ([][]byte, error) {
	return func(ctx context.Context, oldSize uint64) ([][]byte, error) {
		if oldSize > size {
			return nil, fmt.Errorf("consistency proof from %d to the smaller %d", oldSize, size)
		}
		old, err := p.signedAt(ctx, oldSize)
		if err != nil {
			return nil, err
		}
		return p.extends(ctx, oldSize, old.root, old.note, size, root,
			fmt.Sprintf("from signed size %d: two different roots", oldSize), fmt.Sprintf("from signed size %d", oldSize))
	}
}
