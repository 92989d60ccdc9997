// Package event defines Evident's typed business events: the JSON a writer
// submits, the canonical bytes the log stores as the entry, the salted
// commitment that stands in for erasable data, and the evidence bundle an
// auditor verifies offline. It is pure: no network, no storage, no clock
// (callers pass times in); only NewSalt reads crypto/rand.
//
// # Canonical JSON
//
// Entries are JSON in the canonical form of RFC 8785, the JSON
// Canonicalization Scheme (JCS, https://www.rfc-editor.org/rfc/rfc8785):
// I-JSON (RFC 7493) input, no whitespace, object members sorted by the
// UTF-16 code units of their names, strings with only the escapes JCS
// requires, numbers as ECMAScript's Number.prototype.toString writes them.
// Anyone can rebuild the exact bytes of an entry from its fields, with any
// JCS implementation, and so its RFC 6962 leaf hash.
//
// The parser ([ParseJSON]) is strict. It refuses, each with an error that
// names the field: invalid UTF-8, escaped lone surrogates, duplicate member
// names, nesting deeper than [MaxDepth], input larger than its cap, numbers
// that do not fit an IEEE 754 double, and (in events) numbers not written
// in their canonical form (1.0, 1E3, -0, 0.10000000000000001: write 1,
// 1000, 0, 0.1) and integers beyond ±(2^53-1) (send those as strings).
// Numbers are never silently rounded: what a writer sent is what the log
// holds.
//
// # Events
//
// A writer submits (POST /v1/events, see docs/api.md) a JSON object:
//
//	type         required string: what happened ("invoice.approved")
//	actor        required string: who did it ("alice@example.com", "model:credit-v7")
//	subject      required string: what it is about ("invoice/4711")
//	occurred_at  required RFC 3339 date-time, 1970-01-01 to 9999-12-31
//	data         required JSON value: the details
//	refs         optional array of at most MaxRefs leaf hashes (standard
//	             base64, 32 bytes) of earlier entries this one follows
//	id           optional string: the writer's unique name for the event;
//	             submitting an id again answers the stored event
//	private      optional boolean: keep data beside the log, erasable
//
// Strings are 1 to MaxTextSize bytes (MaxIDSize for id) without control
// characters. Unknown members are refused.
//
// The entry (the leaf) is the canonical JSON of an object with the members
//
//	format        "evident-event/v1"
//	type, actor, subject, id (when given)
//	occurred_at   normalized to UTC: "2026-12-04T09:30:00Z", fractional
//	              seconds only when not zero, without trailing zeros
//	received_at   when the log received it, in the same form
//	refs          when given, in the order given
//	data          the data, for a public event; or
//	data_commitment  for a private event: base64 of the commitment below
//
// # Commitments
//
// A private event's entry holds, instead of its data, the commitment
//
//	SHA-256(salt || JCS(data))
//
// where salt is 32 bytes from a cryptographically secure random source,
// unique to the event, and JCS(data) the canonical bytes of the data: the
// 32 salt bytes followed directly by the canonical JSON, no separator or
// length (the salt's length is fixed). Without the salt the commitment
// reveals nothing about the data, not even whether two events hold the
// same data; with it, the data is bound to the entry. The log keeps data
// and salt in its state database; erasing an event deletes both
// (crypto-shredding), after which nobody can show what the entry committed
// to, while every proof, receipt and checkpoint stays valid. Whoever holds
// the data and the salt proves them against the entry offline
// ([VerifyCommitment]).
//
// # Evidence bundles
//
// A [Bundle] is one JSON file ("evident-evidence/v1") that carries events,
// their receipts (C2SP tlog-proof), the checkpoints those receipts are
// against with a consistency proof from each to the latest checkpoint,
// the witness policy and a readable report; [VerifyBundle] checks all of it
// offline with the log's key and a witness policy.
package event

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Limits of events.
const (
	// MaxRequestSize is the largest event a writer may submit, in bytes.
	MaxRequestSize = 65535
	// MaxTextSize is the longest type, actor or subject, in bytes.
	MaxTextSize = 256
	// MaxIDSize is the longest id, in bytes.
	MaxIDSize = 128
	// MaxRefs is the most refs an event may carry.
	MaxRefs = 32
)

// Format is the value of an entry's "format" member.
const Format = "evident-event/v1"

// The range of occurred_at and received_at.
var (
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// Request is a parsed, checked event as a writer submitted it.
type Request struct {
	ID         string
	Type       string
	Actor      string
	Subject    string
	OccurredAt time.Time
	// Data is the canonical JSON of the event's data.
	Data    []byte
	Refs    [][32]byte
	Private bool
}

// ParseRequest parses and checks an event a writer submitted. Errors are
// *FieldError values that name the field and wrap ErrInvalid.
func ParseRequest(b []byte) (*Request, error) {
	if len(b) > MaxRequestSize {
		return nil, &FieldError{"", fmt.Sprintf("event of %d bytes exceeds %d", len(b), MaxRequestSize)}
	}
	v, err := ParseJSON(b, true)
	if err != nil {
		return nil, err
	}
	if v.Kind != Object {
		return nil, &FieldError{"", "the event must be a JSON object"}
	}
	r := &Request{}
	f := fields{v: v}
	r.Type = f.text("type", MaxTextSize, true)
	r.Actor = f.text("actor", MaxTextSize, true)
	r.Subject = f.text("subject", MaxTextSize, true)
	r.ID = f.text("id", MaxIDSize, false)
	r.OccurredAt = f.time("occurred_at")
	if d, ok := f.take("data"); ok {
		r.Data = d.Canonical()
	} else {
		f.fail("data", "is required")
	}
	r.Refs = f.refs("refs")
	if p, ok := f.take("private"); ok {
		if p.Kind != Bool {
			f.fail("private", "must be true or false")
		}
		r.Private = p.Bool
	}
	if err := f.done(); err != nil {
		return nil, err
	}
	return r, nil
}

// fields reads the members of an object, recording the first error.
type fields struct {
	v    *Value
	used map[string]bool
	err  *FieldError
}

func (f *fields) fail(path, msg string) {
	if f.err == nil {
		f.err = &FieldError{path, msg}
	}
}

func (f *fields) take(name string) (*Value, bool) {
	if f.used == nil {
		f.used = map[string]bool{}
	}
	f.used[name] = true
	return f.v.Get(name)
}

// done reports the first error, or the first unknown member.
func (f *fields) done() error {
	if f.err != nil {
		return f.err
	}
	for _, m := range f.v.Members {
		if !f.used[m.Key] {
			return &FieldError{joinPath("", m.Key), "unknown field"}
		}
	}
	return nil
}

func (f *fields) text(name string, max int, required bool) string {
	v, ok := f.take(name)
	if !ok {
		if required {
			f.fail(name, "is required")
		}
		return ""
	}
	if v.Kind != String {
		f.fail(name, "must be a string")
		return ""
	}
	if msg := checkText(v.Str, max); msg != "" {
		f.fail(name, msg)
	}
	return v.Str
}

// checkText says what is wrong with a type, actor, subject or id, or "".
func checkText(s string, max int) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > max:
		return fmt.Sprintf("is %d bytes long, at most %d", len(s), max)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "must not contain control characters"
	}
	return ""
}

func (f *fields) time(name string) time.Time {
	v, ok := f.take(name)
	if !ok {
		f.fail(name, "is required")
		return time.Time{}
	}
	if v.Kind != String {
		f.fail(name, "must be an RFC 3339 date-time string")
		return time.Time{}
	}
	t, msg := parseTime(v.Str)
	if msg != "" {
		f.fail(name, msg)
	}
	return t
}

// parseTime parses an RFC 3339 date-time in MinTime..MaxTime.
func parseTime(s string) (time.Time, string) {
	// SPEC(RFC 3339 section 5.6): date-time = full-date "T" full-time; Go
	// checks the ranges of every field, days of the month included.
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Sprintf("%q is not an RFC 3339 date-time like 2026-12-04T09:30:00Z", truncate(s))
	}
	if t.Before(MinTime) || t.After(MaxTime) {
		return time.Time{}, fmt.Sprintf("%s is out of range (1970-01-01 to 9999-12-31)", truncate(s))
	}
	return t.UTC(), ""
}

// ParseTime parses an RFC 3339 date-time in MinTime..MaxTime, as
// occurred_at is read, and returns it in UTC. Errors wrap ErrInvalid.
func ParseTime(s string) (time.Time, error) {
	t, msg := parseTime(s)
	if msg != "" {
		return t, &FieldError{"", msg}
	}
	return t, nil
}

// FormatTime writes t as entries do: RFC 3339 in UTC, fractional seconds
// only when not zero, without trailing zeros.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (f *fields) refs(name string) [][32]byte {
	v, ok := f.take(name)
	if !ok {
		return nil
	}
	if v.Kind != Array {
		f.fail(name, "must be an array of leaf hashes")
		return nil
	}
	if len(v.Elems) > MaxRefs {
		f.fail(name, fmt.Sprintf("has %d leaf hashes, at most %d", len(v.Elems), MaxRefs))
		return nil
	}
	var out [][32]byte
	seen := map[[32]byte]bool{}
	for i, e := range v.Elems {
		path := fmt.Sprintf("%s[%d]", name, i)
		h, ok := decodeHash(e)
		if !ok {
			f.fail(path, "must be a leaf hash: 32 bytes in standard, padded base64")
			return nil
		}
		if seen[h] {
			f.fail(path, "repeats an earlier ref")
			return nil
		}
		seen[h] = true
		out = append(out, h)
	}
	return out
}

// decodeHash decodes a 32-byte hash in canonical standard base64.
func decodeHash(v Value) ([32]byte, bool) {
	var h [32]byte
	if v.Kind != String {
		return h, false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(v.Str)
	if err != nil || len(b) != 32 || base64.StdEncoding.EncodeToString(b) != v.Str {
		return h, false
	}
	return [32]byte(b), true
}

// Event is an event as its entry states it.
type Event struct {
	ID         string
	Type       string
	Actor      string
	Subject    string
	OccurredAt time.Time
	ReceivedAt time.Time
	Refs       [][32]byte
	// Data is the canonical data of a public event (nil for a private one).
	Data []byte
	// Commitment is set for a private event: SHA-256(salt || Data).
	Commitment *[32]byte
}

// Private reports whether the entry holds a commitment instead of data.
func (e *Event) Private() bool { return e.Commitment != nil }

// Entry builds the event's entry, received at receivedAt. For a private
// request salt must be a fresh NewSalt; for a public one it is ignored. It
// returns the entry and, for a private request, the commitment.
func (r *Request) Entry(receivedAt time.Time, salt [32]byte) ([]byte, *Event, error) {
	if receivedAt.Before(MinTime) || receivedAt.After(MaxTime) {
		return nil, nil, fmt.Errorf("received_at %v is out of range", receivedAt)
	}
	e := &Event{ID: r.ID, Type: r.Type, Actor: r.Actor, Subject: r.Subject,
		OccurredAt: r.OccurredAt.UTC(), ReceivedAt: receivedAt.UTC(), Refs: r.Refs}
	if r.Private {
		c := Commit(salt, r.Data)
		e.Commitment = &c
	} else {
		e.Data = r.Data
	}
	b, err := e.Marshal()
	return b, e, err
}

// Marshal returns e's entry: its canonical JSON.
func (e *Event) Marshal() ([]byte, error) {
	str := func(s string) Value { return Value{Kind: String, Str: s} }
	o := Value{Kind: Object, Members: []Member{
		{"format", str(Format)},
		{"type", str(e.Type)},
		{"actor", str(e.Actor)},
		{"subject", str(e.Subject)},
		{"occurred_at", str(FormatTime(e.OccurredAt))},
		{"received_at", str(FormatTime(e.ReceivedAt))},
	}}
	if e.ID != "" {
		o.Members = append(o.Members, Member{"id", str(e.ID)})
	}
	if len(e.Refs) > 0 {
		refs := Value{Kind: Array}
		for _, h := range e.Refs {
			refs.Elems = append(refs.Elems, str(base64.StdEncoding.EncodeToString(h[:])))
		}
		o.Members = append(o.Members, Member{"refs", refs})
	}
	if e.Commitment != nil {
		o.Members = append(o.Members, Member{"data_commitment", str(base64.StdEncoding.EncodeToString(e.Commitment[:]))})
	} else {
		d, err := ParseJSON(e.Data, true)
		if err != nil {
			return nil, fmt.Errorf("event data: %w", err)
		}
		o.Members = append(o.Members, Member{"data", *d})
	}
	return o.Canonical(), nil
}

// ParseEntry parses an event's entry strictly: canonical JSON, the format
// "evident-event/v1", every required member with a valid value, no unknown
// member, and exactly one of data and data_commitment. Errors name the
// field and wrap ErrInvalid.
func ParseEntry(b []byte) (*Event, error) {
	if len(b) > MaxJSONSize {
		return nil, &FieldError{"", "entry too large"}
	}
	v, err := ParseJSON(b, true)
	if err != nil {
		return nil, err
	}
	if v.Kind != Object {
		return nil, &FieldError{"", "an event entry is a JSON object"}
	}
	f := fields{v: v}
	if fv, ok := f.take("format"); !ok || fv.Kind != String || fv.Str != Format {
		return nil, &FieldError{"format", fmt.Sprintf("must be %q", Format)}
	}
	e := &Event{}
	e.Type = f.text("type", MaxTextSize, true)
	e.Actor = f.text("actor", MaxTextSize, true)
	e.Subject = f.text("subject", MaxTextSize, true)
	e.ID = f.text("id", MaxIDSize, false)
	e.OccurredAt = f.time("occurred_at")
	e.ReceivedAt = f.time("received_at")
	e.Refs = f.refs("refs")
	d, hasData := f.take("data")
	c, hasCommit := f.take("data_commitment")
	switch {
	case hasData == hasCommit:
		f.fail("data", "an entry holds exactly one of data and data_commitment")
	case hasData:
		e.Data = d.Canonical()
	default:
		h, ok := decodeHash(*c)
		if !ok {
			f.fail("data_commitment", "must be 32 bytes in standard, padded base64")
		}
		e.Commitment = &h
	}
	if err := f.done(); err != nil {
		return nil, err
	}
	if !bytes.Equal(v.Canonical(), b) {
		return nil, &FieldError{"", "the entry is not in canonical form (RFC 8785)"}
	}
	for _, tf := range []struct {
		name string
		t    time.Time
	}{{"occurred_at", e.OccurredAt}, {"received_at", e.ReceivedAt}} {
		if tv, _ := v.Get(tf.name); tv.Str != FormatTime(tf.t) {
			return nil, &FieldError{tf.name, "is not in UTC with the shortest fractional seconds"}
		}
	}
	// Anything else canonical but not as Marshal writes it (an empty refs
	// array).
	if m, err := e.Marshal(); err != nil || !bytes.Equal(m, b) {
		return nil, &FieldError{"", "the entry is not written as " + Format + " entries are (an empty refs array?)"}
	}
	return e, nil
}
