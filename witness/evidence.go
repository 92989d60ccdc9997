package witness

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// Reasons for evidence.
const (
	// ReasonSameSize: two checkpoints of one size with different roots,
	// both signed by the log. This alone proves the log showed two
	// histories.
	ReasonSameSize = "same-size-different-root"
	// ReasonProof: a larger checkpoint signed by the log came with a
	// consistency proof from the held one that does not verify. This proves
	// a fork only if the log cannot produce a proof that does; ask it for
	// one (GET /v1/proof/consistency on an Evident log).
	ReasonProof = "consistency-proof-failed"
)

// MaxEvidencePage is the most evidence records one ListEvidence call
// returns.
const MaxEvidencePage = 100

// Evidence is a pair of checkpoints validly signed by one log that the
// witness found in conflict. Its JSON form is what GET /evidence serves.
type Evidence struct {
	// ID numbers evidence in the order it was found.
	ID int64 `json:"id"`
	// Origin is the log's origin.
	Origin string `json:"origin"`
	// Reason is ReasonSameSize or ReasonProof.
	Reason string `json:"reason"`
	// Held is the signed checkpoint the witness held (with its own
	// cosignature), verbatim.
	Held string `json:"held"`
	// New is the conflicting signed checkpoint, verbatim as received.
	New string `json:"new"`
	// Proof is the consistency proof that came with New (base64 in JSON).
	Proof [][]byte `json:"proof"`
	// FoundAt is when the witness found it.
	FoundAt time.Time `json:"found_at"`
}

// keepEvidence stores and logs, at error level, a conflicting checkpoint.
// Failing to store it is logged too; it does not change the answer.
func (w *Witness) keepEvidence(ctx context.Context, held []byte, req *Request, reason string) {
	if !w.firstSighting(held, req.Checkpoint) {
		w.logger.Error("POSSIBLE SPLIT VIEW: conflicting checkpoint submitted again (evidence already kept)", "reason", reason, "new", string(req.Checkpoint))
		return
	}
	e := storage.WitnessEvidence{HeldNote: held, NewNote: req.Checkpoint, Proof: req.Proof, Reason: reason}
	if body, _, err := checkpoint.SplitNote(held); err == nil {
		if c, err := checkpoint.Parse(body); err == nil {
			e.Origin = c.Origin
		}
	}
	// Store the evidence even if the client has gone away.
	id, err := w.db.AddWitnessEvidence(context.WithoutCancel(ctx), e)
	if err != nil {
		w.logger.Error("POSSIBLE SPLIT VIEW: failed to store evidence", "origin", e.Origin, "reason", reason, "err", err,
			"held", string(held), "new", string(req.Checkpoint))
		return
	}
	w.logger.Error("POSSIBLE SPLIT VIEW: log signed a checkpoint that conflicts with the one this witness cosigned",
		"origin", e.Origin, "reason", reason, "evidence_id", id, "held", string(held), "new", string(req.Checkpoint))
}

// maxSeenEvidence bounds the memory of evidence already stored.
const maxSeenEvidence = 1024

// firstSighting reports whether the pair (held, new) was not stored as
// evidence since the process started (or the memory was last cleared), so
// that a log resubmitting a conflicting checkpoint does not fill the table.
func (w *Witness) firstSighting(held, new []byte) bool {
	h := sha256.New()
	h.Write(held)
	h.Write([]byte{0})
	h.Write(new)
	var k [32]byte
	h.Sum(k[:0])
	w.seenMu.Lock()
	defer w.seenMu.Unlock()
	if w.seen[k] {
		return false
	}
	if len(w.seen) >= maxSeenEvidence {
		clear(w.seen)
	}
	w.seen[k] = true
	return true
}

// ListEvidence returns up to MaxEvidencePage records of evidence with an ID
// greater than after, oldest first.
func (w *Witness) ListEvidence(ctx context.Context, after int64) ([]Evidence, error) {
	rows, err := w.db.ListWitnessEvidence(ctx, after, MaxEvidencePage)
	if err != nil {
		return nil, err
	}
	out := make([]Evidence, 0, len(rows))
	for _, r := range rows {
		out = append(out, Evidence{
			ID: r.ID, Origin: r.Origin, Reason: r.Reason,
			Held: string(r.HeldNote), New: string(r.NewNote),
			Proof: r.Proof, FoundAt: r.FoundAt.UTC(),
		})
	}
	return out, nil
}

// ErrNotEvidence means a record does not show a conflict: a signature does
// not verify under the log's key, the origins differ, or the checkpoints
// are consistent after all.
var ErrNotEvidence = errors.New("not evidence of a split view")

// VerifyEvidence checks e offline against the log's public key. It returns
// proven=true when e alone proves that the log signed two histories: two
// checkpoints of one size with different roots. For a failed consistency
// proof between two sizes it returns proven=false and no error when both
// checkpoints are genuine and the proof indeed fails: that is a fork unless
// the log can produce a consistency proof between them. Other records fail
// with ErrNotEvidence (or checkpoint.ErrSignature / ErrMalformed).
func VerifyEvidence(e *Evidence, logKey note.Verifier) (proven bool, err error) {
	held, err := checkpoint.Open([]byte(e.Held), logKey)
	if err != nil {
		return false, fmt.Errorf("held checkpoint: %w", err)
	}
	nw, err := checkpoint.Open([]byte(e.New), logKey)
	if err != nil {
		return false, fmt.Errorf("new checkpoint: %w", err)
	}
	if held.Origin != nw.Origin {
		return false, fmt.Errorf("origins %q and %q differ: %w", held.Origin, nw.Origin, ErrNotEvidence)
	}
	if held.Size == nw.Size {
		if held.Hash == nw.Hash {
			return false, fmt.Errorf("same size %d and same root: %w", held.Size, ErrNotEvidence)
		}
		return true, nil
	}
	small, large := held, nw
	if small.Size > large.Size {
		small, large = large, small
	}
	if err := checkpoint.VerifyConsistency(small.Size, large.Size, small.Hash, large.Hash, e.Proof); err == nil {
		return false, fmt.Errorf("the proof from %d to %d verifies: %w", small.Size, large.Size, ErrNotEvidence)
	}
	return false, nil
}
