package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/evidentlog/evident/checkpoint"
)

// Typed events (POST /v1/events and the endpoints beside it; package event
// defines the format). Bodies and answers are JSON; the client checks that
// a returned leaf hash is the hash of the returned entry, and verifies
// nothing else.

// maxBundle caps an evidence bundle answer.
const maxBundle = 256 << 20

// EventResponse is the log's answer to a submitted event.
type EventResponse struct {
	// Index and Receipt are set once a published checkpoint covers the
	// entry (AddEvent waits for it).
	Index   *uint64
	Receipt []byte
	// LeafHash is the entry's leaf hash (checked); Entry is the entry, the
	// event's canonical JSON.
	LeafHash  [32]byte
	Entry     []byte
	Duplicate bool
	ID        string
	// Salt opens a private event's commitment with its data.
	Salt []byte
}

// AddEvent submits an event (the JSON of package event's requests) and
// waits until a published checkpoint covers its entry. Submitting an event
// with an id again is safe: the log answers the same entry. It needs
// Config.Token.
func (c *Client) AddEvent(ctx context.Context, eventJSON []byte) (*EventResponse, error) {
	_, body, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/events", body: eventJSON, auth: true,
		limit: checkpoint.MaxNoteSize + maxJSON, idempotentWait: true})
	if err != nil {
		return nil, err
	}
	var r struct {
		Index     *uint64 `json:"index"`
		LeafHash  []byte  `json:"leaf_hash"`
		Duplicate bool    `json:"duplicate"`
		Receipt   string  `json:"receipt"`
		Entry     string  `json:"entry"`
		ID        string  `json:"id"`
		Salt      []byte  `json:"salt"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("events answer: %v: %w", err, ErrBadResponse)
	}
	h := checkpoint.LeafHash([]byte(r.Entry))
	if !bytes.Equal(r.LeafHash, h[:]) {
		return nil, fmt.Errorf("events answer: leaf_hash is not the hash of the entry: %w", ErrBadResponse)
	}
	return &EventResponse{Index: r.Index, Receipt: []byte(r.Receipt), LeafHash: h, Entry: []byte(r.Entry),
		Duplicate: r.Duplicate, ID: r.ID, Salt: r.Salt}, nil
}

// Event returns the JSON view of the event with the given leaf hash
// (docs/api.md), with its data and salt when the client has the token and
// the event is private and not erased.
func (c *Client) Event(ctx context.Context, leafHash [32]byte) ([]byte, error) {
	_, b, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/events/" + hex.EncodeToString(leafHash[:]),
		auth: true, limit: checkpoint.MaxNoteSize + maxJSON})
	return b, err
}

// EraseEvent erases a private event's data and salt, recording who (by)
// and why. It needs Config.Token.
func (c *Client) EraseEvent(ctx context.Context, leafHash [32]byte, by, reason string) ([]byte, error) {
	body, err := json.Marshal(map[string]string{"by": by, "reason": reason})
	if err != nil {
		return nil, err
	}
	_, b, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/events/" + hex.EncodeToString(leafHash[:]) + "/erase",
		body: body, auth: true, limit: checkpoint.MaxNoteSize + maxJSON})
	return b, err
}

// Evidence returns the evidence bundle (package event's Bundle, JSON) of the
// events the query selects (subject, type, actor, from, to), with private
// data when the client has the token. It is not verified: use
// event.VerifyBundle.
func (c *Client) Evidence(ctx context.Context, query url.Values) ([]byte, error) {
	_, b, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/evidence", query: query, auth: true, limit: maxBundle})
	return b, err
}
