package log

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/event"
	"github.com/evidentlog/evident/storage"
)

// Typed events (package event): POST /v1/events, GET /v1/events,
// GET /v1/events/{leaf_hash}, POST /v1/events/{leaf_hash}/erase and
// GET /v1/evidence. docs/api.md documents them.

// Limits of the event endpoints.
const (
	// MaxEventsPerPage is the most events GET /v1/events returns at once.
	MaxEventsPerPage = 100
	// MaxBundleEvents is the most events an evidence bundle holds.
	MaxBundleEvents = 1000
	// MaxEventFuture is how far after its receipt an event may say it
	// occurred (the writers' clocks may run ahead).
	MaxEventFuture = time.Hour
)

// eventRoutes registers the event endpoints with handle.
func (l *Log) eventRoutes(handle func(string, func(http.ResponseWriter, *http.Request) error)) {
	// A conflict is a 409 with its message; httpStatus maps the rest.
	h := func(f func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
		return func(w http.ResponseWriter, r *http.Request) error {
			err := f(w, r)
			var c *conflictError
			if errors.As(err, &c) {
				return writeJSON(w, http.StatusConflict, map[string]string{"error": c.msg})
			}
			return err
		}
	}
	handle("POST /v1/events", h(l.handleAddEvent))
	handle("GET /v1/events", h(l.handleEvents))
	handle("GET /v1/events/{leaf_hash}", h(l.handleEvent))
	handle("POST /v1/events/{leaf_hash}/erase", h(l.handleErase))
	handle("GET /v1/evidence", h(l.handleEvidence))
}

// eventAnswer is the JSON answer of POST /v1/events.
type eventAnswer struct {
	Index     *uint64 `json:"index,omitempty"`
	LeafHash  []byte  `json:"leaf_hash"`
	Duplicate *bool   `json:"duplicate,omitempty"`
	Receipt   string  `json:"receipt,omitempty"`
	Entry     string  `json:"entry"`
	ID        string  `json:"id,omitempty"`
	// Salt opens a private event's commitment, with the data the writer
	// sent; the writer may keep both to prove them later.
	Salt []byte `json:"salt,omitempty"`
}

func (l *Log) handleAddEvent(w http.ResponseWriter, r *http.Request) error {
	body, wait, p, err := l.readWrite(r, "event", int64(l.cfg.MaxEntrySize))
	if err != nil {
		return err
	}
	if err := eventTenant(p); err != nil {
		return err
	}
	req, err := event.ParseRequest(body)
	if err != nil {
		return badRequest(err.Error())
	}
	// A log of private events commits to every event's data.
	req.Private = req.Private || l.cfg.PrivateEvents
	stored, err := l.storeEvent(r.Context(), req)
	if err != nil {
		return err
	}
	// The row is durable: queue its entry. A retry (the same id) queues
	// the same bytes, which the log answers as a duplicate.
	res, err := l.AddEntry(r.Context(), p.Tenant, stored.Entry, wait)
	if err != nil {
		return err
	}
	a := eventAnswer{LeafHash: res.LeafHash[:], Entry: string(stored.Entry), ID: stored.EventID, Salt: stored.Salt}
	if !wait {
		return writeJSON(w, http.StatusAccepted, a)
	}
	a.Index, a.Duplicate, a.Receipt = &res.Index, &res.Duplicate, string(res.Receipt)
	return writeJSON(w, http.StatusOK, a)
}

// storeEvent checks req against the log (its time, its refs), builds its
// entry and stores it with its data, or returns the event stored earlier
// under the same id if it is the same event.
func (l *Log) storeEvent(ctx context.Context, req *event.Request) (*storage.StoredEvent, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if req.OccurredAt.After(now.Add(MaxEventFuture)) {
		return nil, badRequest(fmt.Sprintf("occurred_at: %s is more than %v after the log's time %s", event.FormatTime(req.OccurredAt), MaxEventFuture, event.FormatTime(now)))
	}
	for i, ref := range req.Refs {
		ok, err := l.knownEntry(ctx, ref)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, badRequest(fmt.Sprintf("refs[%d]: the log holds no entry with leaf hash %x", i, ref))
		}
	}
	var salt [event.SaltSize]byte
	if req.Private {
		var err error
		if salt, err = event.NewSalt(); err != nil {
			return nil, err
		}
	}
	entry, e, err := req.Entry(now, salt)
	if err != nil {
		return nil, err
	}
	if len(entry) > l.cfg.MaxEntrySize {
		return nil, fmt.Errorf("%w: the event's entry is %d bytes, at most %d", ErrTooLarge, len(entry), l.cfg.MaxEntrySize)
	}
	row := &storage.StoredEvent{LeafHash: checkpoint.LeafHash(entry), Entry: entry, EventID: req.ID,
		Type: e.Type, Actor: e.Actor, Subject: e.Subject, OccurredAt: e.OccurredAt, ReceivedAt: e.ReceivedAt, Private: req.Private}
	if req.Private {
		row.Data, row.Salt = req.Data, salt[:]
	}
	stored, existing, err := l.cfg.State.AddEvent(ctx, row)
	if err != nil {
		return nil, err
	}
	switch {
	case existing && !stored.ErasedAt.IsZero():
		return nil, &conflictError{fmt.Sprintf("id: %q names an event whose data was erased (leaf hash %x); it cannot be submitted again", req.ID, stored.LeafHash)}
	case existing && !sameEvent(stored, req):
		return nil, &conflictError{fmt.Sprintf("id: %q names another event (leaf hash %x); an id names one event forever", req.ID, stored.LeafHash)}
	}
	return stored, nil
}

// sameEvent reports whether the stored event is what req asks to log.
func sameEvent(s *storage.StoredEvent, req *event.Request) bool {
	e, err := event.ParseEntry(s.Entry)
	if err != nil {
		return false
	}
	data := e.Data
	if e.Private() {
		data = s.Data
	}
	return e.ID == req.ID && e.Type == req.Type && e.Actor == req.Actor && e.Subject == req.Subject &&
		e.OccurredAt.Equal(req.OccurredAt) && slices.Equal(e.Refs, req.Refs) && e.Private() == req.Private &&
		bytes.Equal(data, req.Data)
}

// conflictError is a request that contradicts what the log holds (409).
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// knownEntry reports whether the log holds (or has durably accepted, as an
// event) an entry with this leaf hash.
func (l *Log) knownEntry(ctx context.Context, hash [32]byte) (bool, error) {
	if _, err := l.cfg.State.Event(ctx, hash); err == nil {
		return true, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	_, err := l.Receipt(ctx, hash, nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound) || grpcNotFound(err):
		return false, nil
	}
	return false, err
}

// eventView is an event as the read endpoints show it.
type eventView struct {
	LeafHash   []byte `json:"leaf_hash"`
	ID         string `json:"id,omitempty"`
	Entry      string `json:"entry"`
	Type       string `json:"type"`
	Actor      string `json:"actor"`
	Subject    string `json:"subject"`
	OccurredAt string `json:"occurred_at"`
	ReceivedAt string `json:"received_at"`
	Private    bool   `json:"private"`
	// Data is a private event's data, with Salt, for writers (the token);
	// a public event's data is in Entry.
	Data   json.RawMessage `json:"data,omitempty"`
	Salt   []byte          `json:"salt,omitempty"`
	Erased *event.Erasure  `json:"erased,omitempty"`
	// Status is "published" (Index and Receipt are set) or "pending" (no
	// published checkpoint covers the entry yet).
	Status  string  `json:"status"`
	Index   *uint64 `json:"index,omitempty"`
	Receipt string  `json:"receipt,omitempty"`
}

// view makes the view of a stored event, with its receipt against the
// latest checkpoint; private data only when withData.
func (l *Log) view(ctx context.Context, s *storage.StoredEvent, withData bool) (*eventView, error) {
	v := &eventView{LeafHash: s.LeafHash[:], ID: s.EventID, Entry: string(s.Entry), Type: s.Type, Actor: s.Actor,
		Subject: s.Subject, Private: s.Private, Erased: erasure(s), Status: "pending"}
	if e, err := event.ParseEntry(s.Entry); err == nil {
		v.OccurredAt, v.ReceivedAt = event.FormatTime(e.OccurredAt), event.FormatTime(e.ReceivedAt)
	}
	if withData && s.Private && s.Data != nil {
		v.Data, v.Salt = s.Data, s.Salt
	}
	rc, err := l.Receipt(ctx, s.LeafHash, nil)
	switch {
	case err == nil:
		r, perr := checkpoint.ParseReceipt(rc)
		if perr != nil {
			return nil, perr
		}
		v.Status, v.Index, v.Receipt = "published", &r.Index, string(rc)
	case !errors.Is(err, ErrNotFound) && !grpcNotFound(err):
		return nil, err
	}
	return v, nil
}

func erasure(s *storage.StoredEvent) *event.Erasure {
	if s.ErasedAt.IsZero() {
		return nil
	}
	return &event.Erasure{At: event.FormatTime(s.ErasedAt), By: s.ErasedBy, Reason: s.EraseReason}
}

func (l *Log) handleEvent(w http.ResponseWriter, r *http.Request) error {
	withData, err := l.eventReader(r)
	if err != nil {
		return err
	}
	hash, err := parseHash(r.PathValue("leaf_hash"), "leaf_hash")
	if err != nil {
		return err
	}
	s, err := l.cfg.State.Event(r.Context(), hash)
	if err != nil {
		return err
	}
	v, err := l.view(r.Context(), s, withData)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (l *Log) handleEvents(w http.ResponseWriter, r *http.Request) error {
	withData, err := l.eventReader(r)
	if err != nil {
		return err
	}
	q, err := parseEventQuery(r.URL.Query(), MaxEventsPerPage)
	if err != nil {
		return err
	}
	list, err := l.cfg.State.Events(r.Context(), q)
	if err != nil {
		return err
	}
	out := struct {
		Events []*eventView `json:"events"`
		Next   string       `json:"next,omitempty"`
	}{Events: []*eventView{}}
	for i := range list {
		v, err := l.view(r.Context(), &list[i], withData)
		if err != nil {
			return err
		}
		out.Events = append(out.Events, v)
	}
	if len(list) == q.Limit {
		out.Next = strconv.FormatInt(list[len(list)-1].Seq, 10)
	}
	return writeJSON(w, http.StatusOK, out)
}

// parseEventQuery reads ?subject=&type=&actor=&from=&to=&after=&limit=.
func parseEventQuery(q url.Values, maxLimit int) (storage.EventQuery, error) {
	out := storage.EventQuery{Subject: q.Get("subject"), Type: q.Get("type"), Actor: q.Get("actor"), Limit: maxLimit}
	for _, name := range []string{"subject", "type", "actor", "from", "to", "after", "limit"} {
		if len(q[name]) > 1 {
			return out, badRequest(name + " is given more than once")
		}
	}
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"from", &out.From}, {"to", &out.To}} {
		if s := q.Get(f.name); s != "" {
			t, err := event.ParseTime(s)
			if err != nil {
				return out, badRequest(f.name + ": " + err.Error())
			}
			*f.t = t
		}
	}
	if !out.From.IsZero() && !out.To.IsZero() && !out.From.Before(out.To) {
		return out, badRequest("from must be before to")
	}
	if s := q.Get("after"); s != "" {
		n, err := parseUint(s, "after")
		if err != nil {
			return out, err
		}
		out.After = int64(n)
	}
	if s := q.Get("limit"); s != "" {
		n, err := parseUint(s, "limit")
		if err != nil {
			return out, err
		}
		if n == 0 || n > uint64(maxLimit) {
			return out, badRequest(fmt.Sprintf("limit must be between 1 and %d", maxLimit))
		}
		out.Limit = int(n)
	}
	return out, nil
}

// eraseRequest is the body of POST /v1/events/{leaf_hash}/erase.
type eraseRequest struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
}

func (l *Log) handleErase(w http.ResponseWriter, r *http.Request) error {
	p, err := l.authorize(r, storage.RoleSubmit)
	if err != nil {
		return err
	}
	if err := eventTenant(p); err != nil {
		return err
	}
	hash, err := parseHash(r.PathValue("leaf_hash"), "leaf_hash")
	if err != nil {
		return err
	}
	var req eraseRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return badRequest("the body must be a JSON object {\"by\": \"...\", \"reason\": \"...\"}: " + err.Error())
	}
	if req.By == "" || len(req.By) > event.MaxTextSize {
		return badRequest(fmt.Sprintf("by: who erases (1 to %d bytes) is required", event.MaxTextSize))
	}
	if len(req.Reason) > 1024 {
		return badRequest("reason: at most 1024 bytes")
	}
	by := req.By + " (key " + p.KeyID + ")"
	if p.KeyID == storage.LegacyKeyID {
		by = req.By + " (write token \"" + storage.LegacyKeyID + "\")"
	}
	s, err := l.cfg.State.EraseEvent(r.Context(), hash, time.Now().UTC(), by, req.Reason)
	switch {
	case errors.Is(err, storage.ErrNotPrivate):
		return &conflictError{storage.ErrNotPrivate.Error()}
	case errors.Is(err, storage.ErrErased):
		return &conflictError{storage.ErrErased.Error()}
	case err != nil:
		return err
	}
	l.log.Info("event data erased", "leaf_hash", fmt.Sprintf("%x", hash), "by", by)
	v, err := l.view(r.Context(), s, false)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// eventTenant refuses typed events to keys of tenants other than the
// default one: event rows carry no tenant yet, so only the default
// tenant's keys may write, erase or read their private data.
func eventTenant(p Principal) error {
	if p.Tenant != storage.DefaultTenant {
		return &forbiddenError{"typed events (/v1/events) are the default tenant's only; add entries with /v1/add-entry"}
	}
	return nil
}

// grpcNotFound reports whether err wraps Trillian's NotFound.
func grpcNotFound(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if s, ok := status.FromError(err); ok && s.Code() == codes.NotFound {
			return true
		}
	}
	return false
}
