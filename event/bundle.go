package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
)

// BundleFormat is the value of a bundle's "format" member.
const BundleFormat = "evident-evidence/v1"

// MaxBundleSize is the largest bundle VerifyBundle reads, in bytes.
const MaxBundleSize = 256 << 20

// Bundle is an evidence bundle: one JSON file with the events an auditor
// asked for and everything needed to check them offline. Times are RFC
// 3339; hashes and salts standard base64; checkpoints and receipts are the
// signed notes and tlog-proof files verbatim.
type Bundle struct {
	Format string `json:"format"`
	// Origin is the log's origin; LogKey its verifier key as the exporter
	// saw it (informational: verifiers pin the key themselves).
	Origin string `json:"origin"`
	LogKey string `json:"log_key"`
	// CreatedAt is when the bundle was made.
	CreatedAt string `json:"created_at"`
	// Query selected the events.
	Query BundleQuery `json:"query"`
	// Checkpoint is the log's latest checkpoint when the bundle was made,
	// with its cosignatures.
	Checkpoint string `json:"checkpoint"`
	// Events are the selected events covered by a published checkpoint.
	Events []BundleEvent `json:"events"`
	// Consistency proves each receipt's checkpoint consistent with
	// Checkpoint.
	Consistency []BundleConsistency `json:"consistency"`
	// Pending counts selected events not yet covered by a checkpoint (left
	// out).
	Pending int `json:"pending,omitempty"`
	// Policy is the witness policy (tlog-policy) the exporter verified
	// with, if any.
	Policy string `json:"policy,omitempty"`
	// Report is a readable Markdown account of the bundle. It is not
	// evidence: VerifyBundle checks everything else and ignores it.
	Report string `json:"report"`
}

// BundleQuery is what selected a bundle's events ("" for no bound).
type BundleQuery struct {
	Subject string `json:"subject,omitempty"`
	Type    string `json:"type,omitempty"`
	Actor   string `json:"actor,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// BundleEvent is one event of a bundle.
type BundleEvent struct {
	// Index is the entry's index in the log; LeafHash its leaf hash.
	Index    uint64 `json:"index"`
	LeafHash []byte `json:"leaf_hash"`
	// Entry is the entry, the event's canonical JSON, verbatim.
	Entry string `json:"entry"`
	// Receipt is the entry's receipt against the first published
	// checkpoint that covers it.
	Receipt string `json:"receipt"`
	// Data and Salt open a private event's commitment, when the exporter
	// could read them and they were not erased.
	Data json.RawMessage `json:"data,omitempty"`
	Salt []byte          `json:"salt,omitempty"`
	// Erased records the erasure of a private event's data.
	Erased *Erasure `json:"erased,omitempty"`
}

// Erasure says when, by whom and why a private event's data was erased.
type Erasure struct {
	At     string `json:"at"`
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// BundleConsistency is a consistency proof between two tree sizes.
type BundleConsistency struct {
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Hashes [][]byte `json:"hashes"`
}

// BundleResult is what VerifyBundle proved.
type BundleResult struct {
	// Latest is the bundle's latest checkpoint, verified.
	Latest *checkpoint.Signed
	// Events are the bundle's events, each proven included.
	Events []VerifiedEvent
	// QuorumChecked is set when a witness policy's quorum was checked.
	QuorumChecked bool
}

// VerifiedEvent is a bundle event that verified.
type VerifiedEvent struct {
	Event *Event
	Index uint64
	// Checkpoint is the receipt's checkpoint, verified, with the witness
	// cosignatures that prove when it existed.
	Checkpoint *checkpoint.Signed
	// DataVerified is set when data and salt open the commitment of a
	// private event.
	DataVerified bool
	// Erased is set for a private event whose data was erased.
	Erased *Erasure
}

// ErrBundle wraps every failure of VerifyBundle that is not one of the
// checkpoint package's (ErrSignature, ErrQuorum, ErrInclusion,
// ErrConsistency, ErrMalformed) or ErrCommitment.
var ErrBundle = errors.New("evidence bundle does not verify")

// ParseBundle reads a bundle's JSON strictly: unknown members are refused.
func ParseBundle(b []byte) (*Bundle, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("bundle of %d bytes exceeds %d: %w", len(b), MaxBundleSize, ErrBundle)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var bu Bundle
	if err := dec.Decode(&bu); err != nil {
		return nil, fmt.Errorf("bundle: %v: %w", err, ErrBundle)
	}
	if dec.More() {
		return nil, fmt.Errorf("bundle: data after the JSON object: %w", ErrBundle)
	}
	if bu.Format != BundleFormat {
		return nil, fmt.Errorf("bundle format %q, want %q: %w", bu.Format, BundleFormat, ErrBundle)
	}
	return &bu, nil
}

// VerifyBundle checks a bundle offline with the log's key and, unless
// policy is nil, a witness policy: the latest checkpoint's signature and
// quorum; every event's receipt (signature, quorum, inclusion of its
// entry); that every receipt's checkpoint is consistent with the latest;
// that every entry is an event entry that the bundle's query selects; and
// that the data and salt given for a private event open its commitment.
// It does not prove that the log holds no other event the query would
// select: only an audit of every entry does (evident audit).
func VerifyBundle(bu *Bundle, logKey note.Verifier, policy *checkpoint.Policy) (*BundleResult, error) {
	var witnesses []note.Verifier
	if policy != nil {
		witnesses = policy.Verifiers()
	}
	latest, err := checkpoint.Open([]byte(bu.Checkpoint), logKey, witnesses...)
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	if policy != nil {
		if cos := policy.Cosigners(latest); !policy.Satisfied(cos) {
			return nil, fmt.Errorf("latest checkpoint: %w", &checkpoint.QuorumError{Missing: policy.Missing(cos)})
		}
	}
	from, to, err := queryRange(bu.Query)
	if err != nil {
		return nil, err
	}
	res := &BundleResult{Latest: latest, QuorumChecked: policy != nil}
	for i, be := range bu.Events {
		ve, err := verifyBundleEvent(bu, &be, latest, logKey, policy)
		if err != nil {
			return nil, fmt.Errorf("event %d (index %d): %w", i, be.Index, err)
		}
		q, e := bu.Query, ve.Event
		if q.Subject != "" && e.Subject != q.Subject || q.Type != "" && e.Type != q.Type || q.Actor != "" && e.Actor != q.Actor ||
			!from.IsZero() && e.OccurredAt.Before(from) || !to.IsZero() && !e.OccurredAt.Before(to) {
			return nil, fmt.Errorf("event %d (index %d) is not one the bundle's query selects: %w", i, be.Index, ErrBundle)
		}
		res.Events = append(res.Events, *ve)
	}
	return res, nil
}

func queryRange(q BundleQuery) (from, to time.Time, err error) {
	for _, f := range []struct {
		s string
		t *time.Time
	}{{q.From, &from}, {q.To, &to}} {
		if f.s == "" {
			continue
		}
		t, msg := parseTime(f.s)
		if msg != "" {
			return from, to, fmt.Errorf("bundle query: %s: %w", msg, ErrBundle)
		}
		*f.t = t
	}
	return from, to, nil
}

func verifyBundleEvent(bu *Bundle, be *BundleEvent, latest *checkpoint.Signed, logKey note.Verifier, policy *checkpoint.Policy) (*VerifiedEvent, error) {
	entry := []byte(be.Entry)
	if lh := checkpoint.LeafHash(entry); be.LeafHash != nil && !bytes.Equal(be.LeafHash, lh[:]) {
		return nil, fmt.Errorf("leaf_hash is not the hash of the entry: %w", ErrBundle)
	}
	r, err := checkpoint.ParseReceipt([]byte(be.Receipt))
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	if r.Index != be.Index {
		return nil, fmt.Errorf("index %d differs from the receipt's %d: %w", be.Index, r.Index, ErrBundle)
	}
	s, err := checkpoint.VerifyReceipt(r, entry, logKey, policy)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	if err := consistentWithLatest(bu, s, latest); err != nil {
		return nil, err
	}
	e, err := ParseEntry(entry)
	if err != nil {
		return nil, fmt.Errorf("entry is not an event: %w", err)
	}
	ve := &VerifiedEvent{Event: e, Index: r.Index, Checkpoint: s, Erased: be.Erased}
	switch {
	case !e.Private() && (be.Data != nil || be.Salt != nil || be.Erased != nil):
		return nil, fmt.Errorf("a public event has data, a salt or an erasure beside its entry: %w", ErrBundle)
	case be.Erased != nil && (be.Data != nil || be.Salt != nil):
		return nil, fmt.Errorf("an erased event has data or a salt: %w", ErrBundle)
	case be.Data != nil || be.Salt != nil:
		if len(be.Salt) != SaltSize {
			return nil, fmt.Errorf("salt of %d bytes, want %d: %w", len(be.Salt), SaltSize, ErrBundle)
		}
		if err := VerifyCommitment(*e.Commitment, [SaltSize]byte(be.Salt), be.Data); err != nil {
			return nil, fmt.Errorf("private data: %w", err)
		}
		ve.DataVerified = true
	}
	return ve, nil
}

// consistentWithLatest checks that the receipt's checkpoint s is consistent
// with the latest, with the bundle's proof.
func consistentWithLatest(bu *Bundle, s, latest *checkpoint.Signed) error {
	if s.Size > latest.Size {
		return fmt.Errorf("receipt's checkpoint (size %d) is newer than the bundle's latest (size %d): %w", s.Size, latest.Size, ErrBundle)
	}
	if s.Size == latest.Size {
		if s.Hash != latest.Hash {
			return fmt.Errorf("two roots at size %d: %w", s.Size, checkpoint.ErrConsistency)
		}
		return nil
	}
	i := slices.IndexFunc(bu.Consistency, func(c BundleConsistency) bool { return c.From == s.Size && c.To == latest.Size })
	if i < 0 {
		return fmt.Errorf("no consistency proof from size %d to %d: %w", s.Size, latest.Size, ErrBundle)
	}
	if err := checkpoint.VerifyConsistency(s.Size, latest.Size, s.Hash, latest.Hash, bu.Consistency[i].Hashes); err != nil {
		return fmt.Errorf("checkpoint of size %d is not consistent with the latest (size %d): %w", s.Size, latest.Size, err)
	}
	return nil
}
