package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/evidentlog/evident/checkpoint"
)

// MaxEntriesPerRequest is the largest count GET /v1/entries accepts.
const MaxEntriesPerRequest = 1000

// MaxEntrySize is the largest entry a log holds: tlog-tiles entry bundles
// are uint16-length-prefixed. Larger answers to Entry and Entries are
// ErrBadResponse.
const MaxEntrySize = 65535

// maxEntryB64 is the length of MaxEntrySize bytes in base64, plus the JSON
// quotes and comma around it in an entries answer.
const maxEntryB64 = (MaxEntrySize+2)/3*4 + 3

// maxJSON caps JSON answers other than entries.
const maxJSON = 1 << 20

// AddResponse is the log's answer to an entry submitted with AddEntry.
type AddResponse struct {
	// Index is the entry's position in the log.
	Index uint64
	// LeafHash is the entry's RFC 6962 leaf hash (checked by the client).
	LeafHash [32]byte
	// Duplicate is true when the same bytes were already in the log; Index
	// is then the original one.
	Duplicate bool
	// Receipt is the entry's tlog-proof receipt, not yet verified.
	Receipt []byte
}

// AddEntry submits entry and waits until a published checkpoint covers it,
// then returns its index and receipt. Submitting identical bytes again is
// safe: the log answers with the original index. It needs Config.Token.
func (c *Client) AddEntry(ctx context.Context, entry []byte) (*AddResponse, error) {
	_, body, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/add-entry", body: entry, auth: true, limit: checkpoint.MaxNoteSize + maxJSON, idempotentWait: true})
	if err != nil {
		return nil, err
	}
	return decodeAdd(body, entry)
}

// QueueEntry submits entry without waiting for a checkpoint (?wait=false):
// it returns once the log has durably queued it. Fetch the receipt later
// with Receipt.
func (c *Client) QueueEntry(ctx context.Context, entry []byte) ([32]byte, error) {
	q := url.Values{"wait": {"false"}}
	_, body, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/add-entry", query: q, body: entry, auth: true, limit: maxJSON})
	if err != nil {
		return [32]byte{}, err
	}
	var r struct {
		LeafHash string `json:"leaf_hash"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return [32]byte{}, fmt.Errorf("add-entry answer: %v: %w", err, ErrBadResponse)
	}
	return decodeLeafHash(r.LeafHash, entry)
}

// decodeAdd parses an add-entry (wait=true) answer for entry.
func decodeAdd(body, entry []byte) (*AddResponse, error) {
	var r struct {
		Index     *uint64 `json:"index"`
		LeafHash  string  `json:"leaf_hash"`
		Duplicate bool    `json:"duplicate"`
		Receipt   string  `json:"receipt"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("add-entry answer: %v: %w", err, ErrBadResponse)
	}
	if r.Index == nil || r.Receipt == "" {
		return nil, fmt.Errorf("add-entry answer lacks index or receipt: %w", ErrBadResponse)
	}
	h, err := decodeLeafHash(r.LeafHash, entry)
	if err != nil {
		return nil, err
	}
	return &AddResponse{Index: *r.Index, LeafHash: h, Duplicate: r.Duplicate, Receipt: []byte(r.Receipt)}, nil
}

// decodeLeafHash decodes a base64 leaf hash from the log and checks that it
// is the hash of entry.
func decodeLeafHash(s string, entry []byte) ([32]byte, error) {
	h, err := decodeHash(s)
	if err != nil {
		return [32]byte{}, fmt.Errorf("add-entry leaf_hash: %w", err)
	}
	if h != checkpoint.LeafHash(entry) {
		return [32]byte{}, fmt.Errorf("add-entry leaf_hash %x is not the hash of the submitted entry: %w", h, ErrBadResponse)
	}
	return h, nil
}

// Checkpoint returns the latest published checkpoint, a signed note with
// its cosignatures, byte for byte as the log serves it (not verified).
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	_, b, err := c.do(ctx, request{method: http.MethodGet, path: "/checkpoint", limit: checkpoint.MaxNoteSize})
	return b, err
}

// CheckpointAt returns the checkpoint of tree size size that the log
// published earlier (not verified).
func (c *Client) CheckpointAt(ctx context.Context, size uint64) ([]byte, error) {
	if c.tiles {
		return nil, &HTTPError{StatusCode: http.StatusNotFound, Message: ErrNotInTiles.Error()}
	}
	path := "/v1/checkpoints/" + strconv.FormatUint(size, 10)
	_, b, err := c.do(ctx, request{method: http.MethodGet, path: path, limit: checkpoint.MaxNoteSize})
	return b, err
}

// Receipt returns the tlog-proof receipt of the entry with leaf hash
// leafHash, against the checkpoint of size treeSize, or the latest published
// one when treeSize is 0 (not verified).
func (c *Client) Receipt(ctx context.Context, leafHash [32]byte, treeSize uint64) ([]byte, error) {
	if c.tiles {
		return nil, ErrNotInTiles
	}
	q := url.Values{"leaf_hash": {hex.EncodeToString(leafHash[:])}}
	if treeSize > 0 {
		q.Set("tree_size", strconv.FormatUint(treeSize, 10))
	}
	_, b, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/receipt", query: q, limit: checkpoint.MaxNoteSize})
	return b, err
}

// InclusionProof is an inclusion proof as the log serves it.
type InclusionProof struct {
	Index    uint64
	TreeSize uint64
	Hashes   [][]byte
}

// InclusionProof returns the inclusion proof of the entry with leaf hash
// leafHash in the tree of size treeSize (not verified).
func (c *Client) InclusionProof(ctx context.Context, leafHash [32]byte, treeSize uint64) (*InclusionProof, error) {
	if c.tiles {
		return nil, ErrNotInTiles
	}
	q := url.Values{"leaf_hash": {hex.EncodeToString(leafHash[:])}, "tree_size": {strconv.FormatUint(treeSize, 10)}}
	return c.inclusion(ctx, q, treeSize)
}

// InclusionProofByIndex returns the inclusion proof of the entry at index in
// the tree of size treeSize (not verified).
func (c *Client) InclusionProofByIndex(ctx context.Context, index, treeSize uint64) (*InclusionProof, error) {
	if c.tiles {
		return c.tileInclusion(ctx, index, treeSize)
	}
	q := url.Values{"index": {strconv.FormatUint(index, 10)}, "tree_size": {strconv.FormatUint(treeSize, 10)}}
	p, err := c.inclusion(ctx, q, treeSize)
	if err == nil && p.Index != index {
		return nil, fmt.Errorf("inclusion proof for index %d answered for index %d: %w", index, p.Index, ErrBadResponse)
	}
	return p, err
}

func (c *Client) inclusion(ctx context.Context, q url.Values, treeSize uint64) (*InclusionProof, error) {
	_, body, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/proof/inclusion", query: q, limit: maxJSON})
	if err != nil {
		return nil, err
	}
	return decodeInclusion(body, treeSize)
}

// decodeInclusion parses an inclusion proof answer for a tree of treeSize.
func decodeInclusion(body []byte, treeSize uint64) (*InclusionProof, error) {
	var r struct {
		Index    uint64   `json:"index"`
		TreeSize uint64   `json:"tree_size"`
		Hashes   []string `json:"hashes"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("inclusion proof: %v: %w", err, ErrBadResponse)
	}
	if r.TreeSize != treeSize {
		return nil, fmt.Errorf("inclusion proof for tree size %d answered for size %d: %w", treeSize, r.TreeSize, ErrBadResponse)
	}
	hashes, err := decodeHashes(r.Hashes)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	return &InclusionProof{Index: r.Index, TreeSize: r.TreeSize, Hashes: hashes}, nil
}

// ConsistencyProof returns the consistency proof between the trees of sizes
// first and second (not verified).
func (c *Client) ConsistencyProof(ctx context.Context, first, second uint64) ([][]byte, error) {
	if c.tiles {
		return c.tileConsistency(ctx, first, second)
	}
	q := url.Values{"first": {strconv.FormatUint(first, 10)}, "second": {strconv.FormatUint(second, 10)}}
	_, body, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/proof/consistency", query: q, limit: maxJSON})
	if err != nil {
		return nil, err
	}
	return decodeConsistency(body)
}

// decodeConsistency parses a consistency proof answer.
func decodeConsistency(body []byte) ([][]byte, error) {
	var r struct {
		Hashes []string `json:"hashes"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("consistency proof: %v: %w", err, ErrBadResponse)
	}
	hashes, err := decodeHashes(r.Hashes)
	if err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	return hashes, nil
}

// Entry returns the entry at index.
func (c *Client) Entry(ctx context.Context, index uint64) ([]byte, error) {
	if c.tiles {
		es, err := c.tileEntries(ctx, index, 1)
		if err == nil && len(es) == 0 {
			err = &HTTPError{StatusCode: http.StatusNotFound, Message: fmt.Sprintf("entry %d is beyond the tree", index)}
		}
		if err != nil {
			return nil, err
		}
		return es[0], nil
	}
	path := "/v1/entries/" + strconv.FormatUint(index, 10)
	_, b, err := c.do(ctx, request{method: http.MethodGet, path: path, limit: MaxEntrySize})
	if err == nil && len(b) == 0 {
		return nil, fmt.Errorf("entry %d: empty answer: %w", index, ErrBadResponse)
	}
	return b, err
}

// Entries returns up to count (1..MaxEntriesPerRequest) entries starting at
// start; fewer at the end of the published tree, and an empty slice past it.
func (c *Client) Entries(ctx context.Context, start uint64, count int) ([][]byte, error) {
	if count < 1 || count > MaxEntriesPerRequest {
		return nil, fmt.Errorf("entries count %d not in 1..%d", count, MaxEntriesPerRequest)
	}
	if c.tiles {
		return c.tileEntries(ctx, start, count)
	}
	q := url.Values{"start": {strconv.FormatUint(start, 10)}, "count": {strconv.Itoa(count)}}
	// The answer is {"entries":[...]}: at most count base64 entries of
	// MaxEntrySize bytes each.
	limit := int64(count)*maxEntryB64 + 1024
	_, body, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/entries", query: q, limit: limit})
	if err != nil {
		return nil, err
	}
	return decodeEntries(body, count)
}

// decodeEntries parses an entries answer for a request of count entries.
func decodeEntries(body []byte, count int) ([][]byte, error) {
	var r struct {
		Entries [][]byte `json:"entries"` // encoding/json decodes std base64 into []byte
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("entries: %v: %w", err, ErrBadResponse)
	}
	if len(r.Entries) > count {
		return nil, fmt.Errorf("entries: asked for %d, got %d: %w", count, len(r.Entries), ErrBadResponse)
	}
	for i, e := range r.Entries {
		if len(e) == 0 || len(e) > MaxEntrySize {
			return nil, fmt.Errorf("entries: entry %d of the answer is %d bytes, not 1 to %d: %w", i, len(e), MaxEntrySize, ErrBadResponse)
		}
	}
	return r.Entries, nil
}

// Info is the log's self-description.
type Info struct {
	Origin string `json:"origin"`
	VKey   string `json:"vkey"`
}

// Info returns the log's origin and verifier key. An auditor must get the
// key from a trusted source, not from the log; Info is for display and for
// checking configuration.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	if c.tiles {
		return nil, ErrNotInTiles
	}
	_, body, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/info", limit: maxJSON})
	if err != nil {
		return nil, err
	}
	return decodeInfo(body)
}

// decodeInfo parses an info answer: both fields must be present.
func decodeInfo(body []byte) (*Info, error) {
	var i Info
	if err := json.Unmarshal(body, &i); err != nil {
		return nil, fmt.Errorf("info: %v: %w", err, ErrBadResponse)
	}
	if i.Origin == "" || i.VKey == "" {
		return nil, fmt.Errorf("info answer lacks origin or vkey: %w", ErrBadResponse)
	}
	return &i, nil
}

// Health returns nil when the log answers /healthz with 200, and an
// *HTTPError carrying the reason otherwise. It is not retried.
func (c *Client) Health(ctx context.Context) error {
	_, _, err := c.once(ctx, request{method: http.MethodGet, path: "/healthz", limit: maxJSON})
	return err
}

func decodeHash(s string) ([32]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return [32]byte{}, fmt.Errorf("hash %q: %v: %w", trunc(s), err, ErrBadResponse)
	}
	if len(b) != 32 {
		return [32]byte{}, fmt.Errorf("hash is %d bytes, want 32: %w", len(b), ErrBadResponse)
	}
	return [32]byte(b), nil
}

func decodeHashes(ss []string) ([][]byte, error) {
	if len(ss) > checkpoint.MaxProofHashes {
		return nil, fmt.Errorf("%d hashes, more than %d: %w", len(ss), checkpoint.MaxProofHashes, ErrBadResponse)
	}
	out := make([][]byte, 0, len(ss))
	for _, s := range ss {
		h, err := decodeHash(s)
		if err != nil {
			return nil, err
		}
		out = append(out, h[:])
	}
	return out, nil
}

// errorMessage extracts the server's message from an error body: the
// "error" field of a JSON body, or else the body's start, printable only.
func errorMessage(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return sanitize(e.Error)
	}
	return sanitize(string(bytes.TrimSpace(b)))
}

// sanitize makes server text safe to print on a terminal.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	return trunc(s)
}

func trunc(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
