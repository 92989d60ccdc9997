package log

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/event"
	"github.com/evidentlog/evident/storage"
)

// handleEvidence answers GET /v1/evidence with an evidence bundle
// (event.Bundle) of the events the query selects.
func (l *Log) handleEvidence(w http.ResponseWriter, r *http.Request) error {
	withData, err := l.eventReader(r)
	if err != nil {
		return err
	}
	q, err := parseEventQuery(r.URL.Query(), MaxEventsPerPage)
	if err != nil {
		return err
	}
	if r.URL.Query().Has("after") || r.URL.Query().Has("limit") {
		return badRequest("evidence takes no after or limit: a bundle holds every selected event")
	}
	bu, err := l.EvidenceBundle(r.Context(), q, withData)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Disposition", `attachment; filename="evidence.json"`)
	return writeJSON(w, http.StatusOK, bu)
}

// EvidenceBundle makes an evidence bundle of the events q selects (its
// After and Limit are ignored): each published event with its receipt
// against the first published checkpoint that covers it, the latest
// checkpoint, a consistency proof from each receipt's checkpoint to the
// latest, and the log's witness policy (Config.WitnessPolicy). Private data
// and salts are included when withData. The bundle is verified (with the
// log's key and witness policy) before it is returned, and its report says
// what was verified. More than MaxBundleEvents events is a
// 400.
func (l *Log) EvidenceBundle(ctx context.Context, q storage.EventQuery, withData bool) (*event.Bundle, error) {
	latestNote := l.Checkpoint()
	latest, err := checkpoint.Open(latestNote, l.verifier)
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	rows, err := l.selectEvents(ctx, q)
	if err != nil {
		return nil, err
	}
	bu := &event.Bundle{Format: event.BundleFormat, Origin: l.cfg.Origin, LogKey: l.cfg.VKey,
		CreatedAt: event.FormatTime(time.Now().UTC().Truncate(time.Second)), Checkpoint: string(latestNote),
		Query: bundleQuery(q), Events: []event.BundleEvent{}, Consistency: []event.BundleConsistency{}}
	proven := map[uint64]bool{latest.Size: true}
	for i := range rows {
		be, size, err := l.bundleEvent(ctx, &rows[i], latest.Size, withData)
		if err != nil {
			return nil, err
		}
		if be == nil {
			bu.Pending++
			continue
		}
		bu.Events = append(bu.Events, *be)
		if !proven[size] {
			proven[size] = true
			p, err := l.ConsistencyProof(ctx, size, latest.Size)
			if err != nil {
				return nil, err
			}
			bu.Consistency = append(bu.Consistency, event.BundleConsistency{From: size, To: latest.Size, Hashes: p})
		}
	}
	// Verify before serving: a bundle that does not verify is never served.
	// Every checkpoint but the empty tree's is published with the
	// witnesses' quorum.
	var policy *checkpoint.Policy
	if p := l.cfg.WitnessPolicy; p != nil {
		bu.Policy = string(p.Text())
		if latest.Size > 0 {
			policy = p
		}
	}
	res, err := event.VerifyBundle(bu, l.verifier, policy)
	if err != nil {
		return nil, fmt.Errorf("the evidence bundle made does not verify: %w: %w", err, errBadProof)
	}
	bu.Report = event.Report(bu, res)
	return bu, nil
}

// selectEvents returns every event q selects, at most MaxBundleEvents.
func (l *Log) selectEvents(ctx context.Context, q storage.EventQuery) ([]storage.StoredEvent, error) {
	var rows []storage.StoredEvent
	q.After, q.Limit = 0, MaxEventsPerPage
	for {
		page, err := l.cfg.State.Events(ctx, q)
		if err != nil {
			return nil, err
		}
		rows = append(rows, page...)
		if len(rows) > MaxBundleEvents {
			return nil, badRequest(fmt.Sprintf("the query selects more than %d events; narrow it (subject, type, actor, from, to)", MaxBundleEvents))
		}
		if len(page) < q.Limit {
			return rows, nil
		}
		q.After = page[len(page)-1].Seq
	}
}

// bundleEvent makes the bundle's record of one event, with its receipt
// against the first published checkpoint (at most latest) that covers it,
// and returns that checkpoint's size. It returns nil for an event no
// published checkpoint covers yet.
func (l *Log) bundleEvent(ctx context.Context, s *storage.StoredEvent, latest uint64, withData bool) (*event.BundleEvent, uint64, error) {
	rc, err := l.Receipt(ctx, s.LeafHash, &latest)
	if err != nil {
		if errors.Is(err, ErrNotFound) || grpcNotFound(err) {
			return nil, 0, nil
		}
		return nil, 0, err
	}
	r, err := checkpoint.ParseReceipt(rc)
	if err != nil {
		return nil, 0, err
	}
	size := latest
	first, err := l.cfg.State.Checkpoints(ctx, l.cfg.Origin, r.Index+1, 1)
	if err != nil {
		return nil, 0, err
	}
	if len(first) == 1 && first[0].Size < latest {
		size = first[0].Size
		if rc, err = l.Receipt(ctx, s.LeafHash, &size); err != nil {
			return nil, 0, err
		}
	}
	be := &event.BundleEvent{Index: r.Index, LeafHash: s.LeafHash[:], Entry: string(s.Entry), Receipt: string(rc), Erased: erasure(s)}
	if withData && s.Private && s.Data != nil {
		be.Data, be.Salt = s.Data, s.Salt
	}
	return be, size, nil
}

func bundleQuery(q storage.EventQuery) event.BundleQuery {
	out := event.BundleQuery{Subject: q.Subject, Type: q.Type, Actor: q.Actor}
	if !q.From.IsZero() {
		out.From = event.FormatTime(q.From)
	}
	if !q.To.IsZero() {
		out.To = event.FormatTime(q.To)
	}
	return out
}
