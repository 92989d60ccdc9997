// Package client is a Go client for an Evident log's HTTP API: submitting
// entries, and fetching checkpoints, receipts, proofs and entries (the wire
// contract is in docs and DESIGN.md: POST /v1/add-entry, GET /checkpoint,
// /v1/receipt, /v1/proof/inclusion, /v1/proof/consistency, /v1/entries,
// /v1/checkpoints/{size}, /v1/info, /healthz).
//
// The client checks the shape of every answer (hash lengths, proof lengths,
// that a returned leaf hash is the hash of the submitted entry) but verifies
// nothing cryptographic: callers verify checkpoints, receipts and proofs with
// package checkpoint, and so trust the log for nothing.
//
// Requests answered 429 or 503 are retried with exponential backoff,
// honouring the server's Retry-After header (up to Config.MaxBackoff, five
// minutes by default, and never past the context's deadline), up to
// Config.MaxRetries times;
// so is an add-entry answered 504 (no checkpoint in time: the entry stays
// queued, and submitting the same bytes again answers its original index).
// Every other failure is returned at once: an *HTTPError when the server
// answered with an error status (it carries the status and the server's
// message), ErrBadResponse when an answer does not parse, and the transport's
// error otherwise.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxRetries is how many times a request answered 429 or 503 is
// retried when Config.MaxRetries is zero.
const DefaultMaxRetries = 8

// DefaultMaxBackoff caps the wait between two attempts, including a wait
// asked for by Retry-After, when Config.MaxBackoff is zero. It is long
// enough that a server asking for a few minutes gets them: retrying sooner
// only earns another 429. The context bounds the total wait.
const DefaultMaxBackoff = 5 * time.Minute

// DefaultTimeout bounds one HTTP attempt when Config.HTTPClient is nil. An
// add-entry request waits for a checkpoint that covers the entry, so it is
// generous.
const DefaultTimeout = 2 * time.Minute

// initialBackoff is the first wait when the server gives no Retry-After.
const initialBackoff = 200 * time.Millisecond

// ErrBadResponse means the server answered 2xx with a body that does not
// parse or breaks the API contract (a hash of the wrong length, a leaf hash
// that is not the hash of the submitted entry). The log is broken or lying;
// do not retry blindly.
var ErrBadResponse = errors.New("bad response from log")

// HTTPError is returned when the log answers with an error status. Message
// is the server's "error" field (or the start of the body when it is not
// JSON).
type HTTPError struct {
	Method     string
	Path       string
	StatusCode int
	Message    string
	// RetryAfter is the wait the server asked for (429, 503), or zero.
	RetryAfter time.Duration
}

// Error implements error.
func (e *HTTPError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.StatusCode, msg)
}

// IsNotFound reports whether err is an HTTPError with status 404.
func IsNotFound(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.StatusCode == http.StatusNotFound
}

// Config configures a Client.
type Config struct {
	// URL is the log's base URL, e.g. "https://log.example.com" or
	// "http://127.0.0.1:8080". Paths of the API are appended to it.
	URL string
	// Token is the bearer token sent with add-entry requests. Read-only
	// clients leave it empty.
	Token string
	// HTTPClient makes the requests; nil means a client with DefaultTimeout.
	HTTPClient *http.Client
	// MaxRetries is how many times a request answered 429 or 503 is
	// retried: 0 means DefaultMaxRetries, negative means never.
	MaxRetries int
	// MaxBackoff caps the wait between attempts, including one asked for
	// by Retry-After; 0 means DefaultMaxBackoff. A wait that would end
	// after the context's deadline is not started: the error is returned
	// at once.
	MaxBackoff time.Duration
	// UserAgent is sent with every request; empty means "evident-client".
	UserAgent string
	// Logger receives a debug record for every retry; nil discards.
	Logger *slog.Logger
	// Tiles makes the client read the log through the tlog-tiles API
	// alone, as a static copy of the log serves it (tiles.go): proofs by
	// index, consistency proofs and entries come from tiles; what needs
	// the log's own API answers ErrNotInTiles.
	Tiles bool
}

// Client talks to one log. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	token      string
	hc         *http.Client
	ownHC      bool
	maxRetries int
	maxBackoff time.Duration
	userAgent  string
	logger     *slog.Logger
	tiles      bool
	// sleep waits d or until ctx is done; tests replace it to observe the
	// waits without waiting.
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns a client for the log at cfg.URL. It makes no request.
func New(ctx context.Context, cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(cfg.URL, "/"))
	if err != nil {
		return nil, fmt.Errorf("log URL %q: %w", cfg.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("log URL %q: want http:// or https:// and a host", cfg.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("log URL %q: must not have a query or fragment", cfg.URL)
	}
	c := &Client{
		base:       u,
		token:      cfg.Token,
		hc:         cfg.HTTPClient,
		maxRetries: cfg.MaxRetries,
		maxBackoff: cfg.MaxBackoff,
		userAgent:  cfg.UserAgent,
		logger:     cfg.Logger,
		tiles:      cfg.Tiles,
		sleep:      sleep,
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: DefaultTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}
		c.ownHC = true
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = DefaultMaxBackoff
	}
	if c.userAgent == "" {
		c.userAgent = "evident-client"
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Close releases idle connections of a client-owned HTTP client.
func (c *Client) Close() error {
	if c.ownHC {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// URL returns the log's base URL.
func (c *Client) URL() string { return c.base.String() }

// request is one API call: it is re-sent as is on retry.
type request struct {
	method string
	path   string // API path, e.g. "/v1/receipt"
	query  url.Values
	body   []byte
	auth   bool
	// limit caps the response body; a longer body is ErrBadResponse.
	limit int64
	// idempotentWait marks add-entry with wait: a 504 (no checkpoint in
	// time; the entry stays queued) is retried too, since submitting the
	// same bytes again answers with the original index.
	idempotentWait bool
}

// do sends req, retrying on 429 and 503, and returns the status and body of
// a 2xx answer.
func (c *Client) do(ctx context.Context, req request) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		status, body, err := c.once(ctx, req)
		var he *HTTPError
		if err == nil || !errors.As(err, &he) || !(retryable(he.StatusCode) || req.idempotentWait && he.StatusCode == http.StatusGatewayTimeout) || attempt >= c.maxRetries {
			return status, body, err
		}
		wait := c.backoff(attempt, he.RetryAfter)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return status, body, fmt.Errorf("%w (the log asked to retry in %v, after the deadline)", err, wait)
		}
		c.logger.DebugContext(ctx, "retrying log request", "path", req.path, "status", he.StatusCode, "wait", wait, "attempt", attempt+1)
		if serr := c.sleep(ctx, wait); serr != nil {
			return 0, nil, fmt.Errorf("%w (while waiting to retry after %v)", serr, err)
		}
	}
}

// sleep waits d, or until ctx is done (then it returns the context's cause).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// backoff returns the wait before retry number attempt+1: the server's
// Retry-After when given, else exponential with jitter; capped.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := retryAfter
	if d <= 0 {
		d = initialBackoff << min(attempt, 20)
		d = d/2 + rand.N(d/2+1) // jitter, so that many clients do not retry in step
	}
	return min(d, c.maxBackoff)
}

// once makes one attempt.
func (c *Client) once(ctx context.Context, req request) (int, []byte, error) {
	u := *c.base
	u.Path = c.base.Path + req.path
	u.RawQuery = req.query.Encode()
	var body io.Reader
	if req.body != nil {
		body = strings.NewReader(string(req.body))
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	hr.Header.Set("User-Agent", c.userAgent)
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/octet-stream")
	}
	if req.auth && c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	defer resp.Body.Close()
	limit := req.limit
	if resp.StatusCode/100 != 2 {
		limit = 64 << 10
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: reading response: %w", req.method, req.path, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, nil, &HTTPError{
			Method:     req.method,
			Path:       req.path,
			StatusCode: resp.StatusCode,
			Message:    errorMessage(b),
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	}
	if int64(len(b)) > limit {
		return 0, nil, fmt.Errorf("%s %s: response longer than %d bytes: %w", req.method, req.path, limit, ErrBadResponse)
	}
	return resp.StatusCode, b, nil
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
// SPEC(RFC 9110 section 10.2.3): Retry-After = HTTP-date / delay-seconds.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
