package client

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/evidentlog/evident/checkpoint"
)

// Limits of one AddEntries call, as the log enforces them.
const (
	// MaxBatchEntries is the most entries in one batch.
	MaxBatchEntries = 1000
	// MaxBatchBytes is the largest batch body: each entry takes its length
	// plus two bytes.
	MaxBatchBytes = 8 << 20
)

// BatchResult is the log's answer for one entry of a batch: its
// AddResponse, or the *HTTPError (400, 413, 503, 504, ...) that failed this
// entry alone.
type BatchResult struct {
	*AddResponse
	Err error
}

// AddEntries submits entries in one request (POST /v1/add-entries) and
// waits until a published checkpoint covers them, then returns, per entry
// in order, its index and receipt or its own error. Submitting identical
// bytes again is safe. The error is for the batch as a whole (nothing of
// it was queued, or, for a 504 or a broken connection, it may have been:
// submit it again). It needs Config.Token.
func (c *Client) AddEntries(ctx context.Context, entries [][]byte) ([]BatchResult, error) {
	body, err := EncodeBatch(entries)
	if err != nil {
		return nil, err
	}
	limit := int64(len(entries)) * (checkpoint.MaxNoteSize + 8<<10)
	_, resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/add-entries", body: body, auth: true, limit: limit, idempotentWait: true})
	if err != nil {
		return nil, err
	}
	return decodeBatch(resp, entries)
}

// EncodeBatch frames entries for POST /v1/add-entries: each a big-endian
// uint16 length and its bytes.
func EncodeBatch(entries [][]byte) ([]byte, error) {
	if len(entries) == 0 || len(entries) > MaxBatchEntries {
		return nil, fmt.Errorf("a batch holds 1 to %d entries, not %d", MaxBatchEntries, len(entries))
	}
	n := 0
	for i, e := range entries {
		if len(e) > MaxEntrySize {
			return nil, fmt.Errorf("entry %d has %d bytes, more than %d", i, len(e), MaxEntrySize)
		}
		n += 2 + len(e)
	}
	if n > MaxBatchBytes {
		return nil, fmt.Errorf("the batch takes %d bytes, more than %d", n, MaxBatchBytes)
	}
	b := make([]byte, 0, n)
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b, nil
}

// decodeBatch parses an add-entries answer for entries.
func decodeBatch(body []byte, entries [][]byte) ([]BatchResult, error) {
	var r struct {
		Results []struct {
			Index     *uint64 `json:"index"`
			LeafHash  string  `json:"leaf_hash"`
			Duplicate bool    `json:"duplicate"`
			Receipt   string  `json:"receipt"`
			Error     string  `json:"error"`
			Status    int     `json:"status"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("add-entries answer: %v: %w", err, ErrBadResponse)
	}
	if len(r.Results) != len(entries) {
		return nil, fmt.Errorf("add-entries answered %d results for %d entries: %w", len(r.Results), len(entries), ErrBadResponse)
	}
	out := make([]BatchResult, len(entries))
	for i, x := range r.Results {
		if x.Error != "" || x.Status != 0 {
			if x.Status < 400 || x.Status > 599 {
				return nil, fmt.Errorf("add-entries result %d: error with status %d: %w", i, x.Status, ErrBadResponse)
			}
			out[i].Err = &HTTPError{Method: http.MethodPost, Path: "/v1/add-entries", StatusCode: x.Status, Message: sanitize(trunc(x.Error))}
			continue
		}
		if x.Index == nil || x.Receipt == "" {
			return nil, fmt.Errorf("add-entries result %d lacks index or receipt: %w", i, ErrBadResponse)
		}
		h, err := decodeLeafHash(x.LeafHash, entries[i])
		if err != nil {
			return nil, fmt.Errorf("add-entries result %d: %w", i, err)
		}
		out[i].AddResponse = &AddResponse{Index: *x.Index, LeafHash: h, Duplicate: x.Duplicate, Receipt: []byte(x.Receipt)}
	}
	return out, nil
}
