package witness

import (
	"context"
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
	// a fork only if the log cannot produce a proof that does. The witness
	// no longer keeps such records (anyone can pair a genuine checkpoint
	// with a junk proof); older databases may hold some.
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
	// Reason is ReasonSameSize (ReasonProof in records kept by earlier
	// versions).
	Reason string `json:"reason"`
	// Held is the signed checkpoint the witness held (with its own
	// cosignature), verbatim.
	Held string `json:"held"`
	// New is the conflicting signed checkpoint, verbatim as received.
	New string `json:"new"`
	// Proof is the consistency proof that came with New (base64 in JSON,
	// [] when empty).
	Proof [][]byte `json:"proof"`
	// FoundAt is when the witness found it.
	FoundAt time.Time `json:"found_at"`
}

// keepEvidence stores a conflicting checkpoint as evidence and logs it at
// error level, the first time only: a conflict already stored (the same
// held and new checkpoint bodies, whatever their signature lines, even
// before a restart) is logged as a repeat at warning level and not stored
// again. Failing to store it is logged too; it does not change the answer.
func (w *Witness) keepEvidence(ctx context.Context, origin string, held []byte, req *Request, reason string) {
	e := storage.WitnessEvidence{Origin: origin, HeldNote: held, NewNote: req.Checkpoint, Proof: req.Proof, Reason: reason}
	// Store the evidence even if the client has gone away.
	id, added, err := w.db.AddWitnessEvidence(context.WithoutCancel(ctx), e)
	switch {
	case err != nil:
		w.logger.Error("POSSIBLE SPLIT VIEW: failed to store evidence", "origin", origin, "reason", reason, "err", err,
			"held", string(held), "new", string(req.Checkpoint))
	case !added:
		w.logger.Warn("conflicting checkpoint submitted again (evidence already kept)", "origin", origin, "reason", reason, "evidence_id", id)
	default:
		w.logger.Error("POSSIBLE SPLIT VIEW: log signed a checkpoint that conflicts with the one this witness cosigned",
			"origin", origin, "reason", reason, "evidence_id", id, "held", string(held), "new", string(req.Checkpoint))
	}
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
		if out[len(out)-1].Proof == nil {
			out[len(out)-1].Proof = [][]byte{} // JSON [], not null
		}
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
