package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/evidentlog/evident/checkpoint"
)

// maxResponseSize caps what a Client reads from a witness.
const maxResponseSize = 64 << 10

// ErrPossibleFork is returned by Client.AddCheckpoint for a 409 answer
// without the text/x.tlog.size content type: some deployed witnesses answer
// so when they hold a checkpoint of the same size with another root.
var ErrPossibleFork = errors.New("witness reports a conflicting checkpoint of the same size (possible fork)")

// HTTPError is an answer of a witness with an unexpected status code.
type HTTPError struct {
	// Code is the HTTP status code.
	Code int
	// Body is the start of the answer's body.
	Body string
	// RetryAfter is how long the witness asked the client to wait before
	// the next request (a 503 with a Retry-After header), 0 if it did not.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("witness answered %d %s, retry after %v: %q", e.Code, http.StatusText(e.Code), e.RetryAfter, e.Body)
	}
	return fmt.Sprintf("witness answered %d %s: %q", e.Code, http.StatusText(e.Code), e.Body)
}

// Client speaks the tlog-witness protocol to one witness.
type Client struct {
	// URL is the witness's submission prefix: requests go to
	// URL + "/add-checkpoint".
	URL string
	// HTTPClient makes the requests (http.DefaultClient if nil).
	HTTPClient *http.Client
}

// AddCheckpoint sends req and returns the body of a 200 answer: the
// witness's cosignature lines, not yet verified. The tlog-witness status
// codes come back as the errors AddCheckpoint of a Witness returns:
// checkpoint.ErrMalformed (400), checkpoint.ErrSignature (403),
// ErrUnknownOrigin (404), *ConflictError (409 with the size content type),
// ErrPossibleFork (409 without it), ErrInconsistent (422), *RateLimitError
// (429, with its Retry-After, 1 s if it has none); others are *HTTPError
// (with the Retry-After of a 503).
func (c *Client) AddCheckpoint(ctx context.Context, req *Request) ([]byte, error) {
	return c.do(ctx, http.MethodPost, "/add-checkpoint", req.Marshal())
}

// Checkpoint fetches the latest checkpoint of origin that the witness
// cosigned, from GET URL/<lowercase hex SHA-256 of origin>/checkpoint (an
// evident-witness request; not part of tlog-witness). It returns the note
// unverified; a witness that does not follow the log, or does not serve
// its checkpoints, answers 404 (ErrUnknownOrigin).
func (c *Client) Checkpoint(ctx context.Context, origin string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/"+originID(origin)+"/checkpoint", nil)
}

// do makes one request to the witness and returns the body of a 200
// answer, or the answer as an error (answerError).
func (c *Client) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, rd)
	if err != nil {
		return nil, fmt.Errorf("witness %s: %w", c.URL, err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("witness %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return nil, fmt.Errorf("witness %s: reading answer: %w", c.URL, err)
	}
	if resp.StatusCode == http.StatusOK {
		return answer, nil
	}
	return nil, answerError(resp, answer)
}

// answerError turns a non-200 tlog-witness answer into an error.
func answerError(resp *http.Response, body []byte) error {
	short := string(body)
	if len(short) > 200 {
		short = short[:200]
	}
	switch resp.StatusCode {
	case http.StatusBadRequest:
		return fmt.Errorf("witness refused the request as malformed: %q: %w", short, checkpoint.ErrMalformed)
	case http.StatusForbidden:
		return fmt.Errorf("witness found no valid signature by a key it trusts: %q: %w", short, checkpoint.ErrSignature)
	case http.StatusNotFound:
		return fmt.Errorf("witness does not follow this log: %q: %w", short, ErrUnknownOrigin)
	case http.StatusConflict:
		// SPEC(tlog-witness): a size conflict is answered 409 with
		// Content-Type text/x.tlog.size and the held size; a 409 without
		// it may be an older witness's same-size root mismatch.
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt != SizeContentType {
			return fmt.Errorf("409 %q: %w", short, ErrPossibleFork)
		}
		s, ok := bytes.CutSuffix(body, []byte("\n"))
		if !ok {
			return fmt.Errorf("witness 409 size %q does not end in a newline: %w", short, checkpoint.ErrMalformed)
		}
		n, err := parseSize(s)
		if err != nil {
			return fmt.Errorf("witness 409: %w", err)
		}
		return &ConflictError{Size: n}
	case http.StatusUnprocessableEntity:
		return fmt.Errorf("witness: %q: %w", short, ErrInconsistent)
	case http.StatusTooManyRequests:
		wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if !ok {
			wait = time.Second
		}
		return &RateLimitError{RetryAfter: wait}
	case http.StatusServiceUnavailable:
		wait, _ := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		return &HTTPError{Code: resp.StatusCode, Body: short, RetryAfter: wait}
	}
	return &HTTPError{Code: resp.StatusCode, Body: short}
}

// MaxRetryAfter caps the wait a witness's Retry-After can ask of a client.
const MaxRetryAfter = time.Hour

// retryAfter parses a Retry-After header (RFC 9110: delay-seconds or an
// HTTP date) into a wait of at least 1 s and at most MaxRetryAfter. It
// returns false if h is empty or neither form.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(h, 10, 64); err == nil {
		d = time.Duration(min(secs, uint64(MaxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, time.Second), MaxRetryAfter), true
}
