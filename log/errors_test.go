package log

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidentlog/evident/storage"
)

func TestHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		err      error
		code     int
		msg      string
		internal string // must not appear in msg
	}{
		{badRequest("count must be between 1 and 1000"), 400, "count must be between 1 and 1000", ""},
		{fmt.Errorf("x: %w", ErrUnauthorized), 401, "unauthorized", "x:"},
		{ErrTooLarge, 413, "entry too large", ""},
		{fmt.Errorf("reading: %w", storage.ErrNotFound), 404, "not found", "reading"},
		{status.Error(codes.NotFound, "leaf hash 1234 in tree 99"), 404, "not found", "tree 99"},
		{status.Error(codes.ResourceExhausted, "quota of tree 99"), 429, "too many requests; retry later", "tree 99"},
		{ErrBacklog, 503, ErrBacklog.Error(), ""},
		{fmt.Errorf("queueing leaf: %w", status.Error(codes.Unavailable, "sqlite storage: closed")), 503, ErrUnavailable.Error(), "sqlite"},
		{status.Error(codes.Unknown, "database is locked at /data/trillian.db"), 503, ErrUnavailable.Error(), "/data"},
		{errors.New("SELECT failed: table checkpoints"), 503, ErrUnavailable.Error(), "SELECT"},
		{ErrTimeout, 504, ErrTimeout.Error(), ""},
		{context.DeadlineExceeded, 504, "timed out; retry later", ""},
		{fmt.Errorf("inclusion proof: %w", context.DeadlineExceeded), 504, "timed out; retry later", "inclusion"},
		{status.Error(codes.DeadlineExceeded, "deadline at tree 99"), 504, "timed out; retry later", "tree 99"},
		{fmt.Errorf("reading leaves: %w", status.Error(codes.DataLoss, "sqlite storage: /data/trillian.db is damaged")), 500, "internal error", "/data"},
		{&notPublishingError{reason: "witness quorum not satisfied"}, 503, "the log cannot publish checkpoints now (witness quorum not satisfied); retry later", ""},
		{&notPublishingError{queued: true, reason: "x"}, 503, "the log cannot publish checkpoints now (x); the entry is queued, submit it again later for its receipt", ""},
		{errMethod, 405, "method not allowed", ""},
		{fmt.Errorf("proof for 3 at 9: %w", errBadProof), 500, "internal error", "proof for"},
	} {
		code, msg := httpStatus(tc.err)
		if code != tc.code || msg != tc.msg {
			t.Errorf("httpStatus(%v) = %d %q, want %d %q", tc.err, code, msg, tc.code, tc.msg)
		}
		if tc.internal != "" && strings.Contains(msg, tc.internal) {
			t.Errorf("httpStatus(%v) = %q shows %q", tc.err, msg, tc.internal)
		}
	}
	// A 503 for a log that cannot publish says when it tries again.
	for _, tc := range []struct {
		retry time.Duration
		want  string
	}{{0, "1"}, {-time.Second, "1"}, {300 * time.Millisecond, "1"}, {2500 * time.Millisecond, "3"}} {
		if got := retryAfterFor(fmt.Errorf("x: %w", &notPublishingError{retry: tc.retry})); got != tc.want {
			t.Errorf("retryAfterFor(retry in %v) = %q, want %q", tc.retry, got, tc.want)
		}
	}
	if got := retryAfterFor(ErrBacklog); got != retryAfter {
		t.Errorf("retryAfterFor(ErrBacklog) = %q, want %q", got, retryAfter)
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"bEaReR   abc", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearerabc", "", false},
		{"Basic abc", "", false},
		{"abc", "", false},
		{"", "", false},
	} {
		token, ok := bearerToken(tc.header)
		if token != tc.token || ok != tc.ok {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", tc.header, token, ok, tc.token, tc.ok)
		}
	}
}

// TestTokenRefresh adds and revokes a write token in the state database of
// a running log.
func TestTokenRefresh(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.TokenRefresh = 20 * time.Millisecond })
	const tok = "second-token-abcdef"
	if code, _ := tl.addAs(tok, []byte("x"), "?wait=false"); code != 401 {
		t.Fatalf("unknown token: %d, want 401", code)
	}
	if err := tl.state.AddToken(t.Context(), "second", tok); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new token to be accepted", func() bool {
		code, _ := tl.addAs(tok, []byte("x"), "?wait=false")
		return code == 202
	})
	if err := tl.state.DeleteToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revoked token to be refused", func() bool {
		code, _ := tl.addAs(tok, []byte("y"), "?wait=false")
		return code == 401
	})
	if code, _ := tl.add([]byte("z"), "?wait=false"); code != 202 {
		t.Errorf("the first token after revoking the second: %d", code)
	}
	// SPEC(RFC 9110 §11.1): the scheme is case-insensitive.
	if code, _, r := tl.addAuth("bearer "+tl.token, []byte("lower"), "?wait=false"); code != 202 {
		t.Errorf("Authorization: bearer …: %d %s, want 202", code, r.Error)
	}
}
