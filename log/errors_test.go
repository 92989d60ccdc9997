package log

import (
	"context"
	"errors"
	"fmt"
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
		{context.DeadlineExceeded, 504, ErrTimeout.Error(), ""},
		{status.Error(codes.DeadlineExceeded, "deadline at tree 99"), 504, "timed out", "tree 99"},
		{fmt.Errorf("proof for 3 at 9: %w", errBadProof), 500, "internal error", "proof for"},
	} {
		code, msg := httpStatus(tc.err)
		if code != tc.code || msg != tc.msg {
			t.Errorf("httpStatus(%v) = %d %q, want %d %q", tc.err, code, msg, tc.code, tc.msg)
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
}
