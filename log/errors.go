package log

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidentlog/evident/storage"
)

// Errors of the log's methods. Handlers map them (and Trillian's gRPC
// statuses) to HTTP answers in one place, httpStatus.
var (
	// ErrUnauthorized means the request carries no valid write token. The
	// answer says nothing more.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrTooLarge means the entry is larger than the log accepts.
	ErrTooLarge = errors.New("entry too large")
	// ErrNotFound means no entry, proof or checkpoint matches the request.
	ErrNotFound = errors.New("not found")
	// ErrBacklog means too many entries wait for a checkpoint; retry after
	// the Retry-After delay.
	ErrBacklog = errors.New("the log is busy; retry later")
	// ErrUnavailable means Trillian, storage or the publisher cannot serve
	// the request now; retry later.
	ErrUnavailable = errors.New("the log is unavailable; retry later")
	// ErrTimeout means no checkpoint covered the entry in time. The entry
	// stays queued: submit it again to get its receipt (it is a duplicate
	// then, with its original index).
	ErrTimeout = errors.New("timed out waiting for a checkpoint; the entry is queued, submit it again for its receipt")
)

// inputError is a request the log refuses (400); its text is for the client.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func badRequest(msg string) error { return &inputError{msg} }

// retryAfter is the Retry-After delay (seconds) of 429 and 503 answers.
const retryAfter = "1"

// httpStatus maps an error of the log's methods or of Trillian to an HTTP
// status and the message for the client. Only 4xx messages carry detail; the
// detail of a 5xx goes to the server's log, not to the client.
func httpStatus(err error) (int, string) {
	var in *inputError
	switch {
	case errors.As(err, &in):
		return http.StatusBadRequest, in.msg
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge, ErrTooLarge.Error()
	case errors.Is(err, ErrNotFound), errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, ErrBacklog):
		return http.StatusServiceUnavailable, ErrBacklog.Error()
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, ErrTimeout.Error()
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, ErrUnavailable.Error()
	}
	if errors.Is(err, errBadProof) {
		// Trillian answered something that does not verify: never served.
		return http.StatusInternalServerError, "internal error"
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.NotFound:
			return http.StatusNotFound, "not found"
		case codes.ResourceExhausted:
			return http.StatusTooManyRequests, "too many requests; retry later"
		case codes.DeadlineExceeded:
			return http.StatusGatewayTimeout, "timed out"
		}
	}
	// Anything else is Trillian or storage failing: tell the client to
	// retry, and keep the detail for the server's log.
	return http.StatusServiceUnavailable, ErrUnavailable.Error()
}
