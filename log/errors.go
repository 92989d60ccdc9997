package log

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// Errors of the log's methods. Handlers map them (and Trillian's gRPC
// statuses) to HTTP answers in one place, httpStatus.
var (
	// ErrUnauthorized means the request carries no valid API key (none,
	// an unknown one, or a revoked one). The answer says nothing more.
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
	// ErrNotPublishing means the log has failed to publish checkpoints for
	// several rounds in a row (for example its witnesses' quorum is not
	// met), so add-entry does not wait for a receipt that cannot come soon.
	// An entry already queued stays queued: submit it again later for its
	// receipt. Retry after the Retry-After delay.
	ErrNotPublishing = errors.New("the log cannot publish checkpoints now; retry later")
)

// notPublishingError is ErrNotPublishing with why, in a few words, and when
// the publisher tries again.
type notPublishingError struct {
	queued bool // the entry was queued before the answer
	reason string
	retry  time.Duration
}

func (e *notPublishingError) Error() string {
	if e.queued {
		return fmt.Sprintf("the log cannot publish checkpoints now (%s); the entry is queued, submit it again later for its receipt", e.reason)
	}
	return fmt.Sprintf("the log cannot publish checkpoints now (%s); retry later", e.reason)
}

func (e *notPublishingError) Is(target error) bool { return target == ErrNotPublishing }

// cosignError is a round that failed because the witnesses did not cosign.
type cosignError struct {
	size uint64
	err  error
}

func (e *cosignError) Error() string {
	return fmt.Sprintf("cosigning checkpoint of size %d: %v", e.size, e.err)
}

func (e *cosignError) Unwrap() error { return e.err }

// publishReason says in a few words why the publisher cannot publish, for
// /healthz and 503 answers: it may name witnesses, never paths, addresses
// or storage errors (those are in the server's log).
func publishReason(err error) string {
	var inc *InconsistencyError
	var q *checkpoint.QuorumError
	var ce *cosignError
	switch {
	case errors.As(err, &inc):
		return "stalled: Trillian's tree is inconsistent with a checkpoint the log signed"
	case errors.Is(err, errNeverSigned):
		return errNeverSigned.Error()
	case errors.Is(err, errTrillianBehind):
		return errTrillianBehind.Error()
	case errors.Is(err, errWitnessAhead):
		return err.Error() // sizes and the witness's name: all public

	case errors.As(err, &q):
		return q.Error()
	case errors.As(err, &ce):
		return "the witnesses did not cosign"
	}
	return "Trillian or the state database failed"
}

// errMethod is a request with a method its path does not serve (405, with
// an Allow header).
var errMethod = errors.New("method not allowed")

// inputError is a request the log refuses (400); its text is for the client.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func badRequest(msg string) error { return &inputError{msg} }

// forbiddenError is a request with a valid API key that may not do what
// it asks (403): a role that does not allow it, or another tenant's data.
// Its text says which, and never names anything of another tenant.
type forbiddenError struct{ msg string }

func (e *forbiddenError) Error() string { return "forbidden: " + e.msg }

// retryAfter is the Retry-After delay (seconds) of 429 and 503 answers.
const retryAfter = "1"

// retryAfterFor is the Retry-After delay (seconds) of a 429 or 503 answer
// for err: when the publisher tries again, for ErrNotPublishing.
func retryAfterFor(err error) string {
	var np *notPublishingError
	if errors.As(err, &np) {
		return strconv.Itoa(max(1, int(math.Ceil(np.retry.Seconds()))))
	}
	var qe *quotaError
	if errors.As(err, &qe) {
		return strconv.Itoa(max(1, int(math.Ceil(qe.retry.Seconds()))))
	}
	return retryAfter
}

// httpStatus maps an error of the log's methods or of Trillian to an HTTP
// status and the message for the client. Only 4xx messages carry detail; the
// detail of a 5xx goes to the server's log, not to the client.
func httpStatus(err error) (int, string) {
	var in *inputError
	var fe *forbiddenError
	var ce *conflictError
	var qe *quotaError
	switch {
	case errors.As(err, &in):
		return http.StatusBadRequest, in.msg
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, errMethod.Error()
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.As(err, &fe):
		return http.StatusForbidden, fe.Error()
	case errors.As(err, &ce):
		return http.StatusConflict, ce.msg
	case errors.As(err, &qe):
		return http.StatusTooManyRequests, qe.msg
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge, ErrTooLarge.Error()
	case errors.Is(err, ErrNotFound), errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, ErrBacklog):
		return http.StatusServiceUnavailable, ErrBacklog.Error()
	case errors.Is(err, ErrTimeout):
		// Only add-entry's wait ends so: its entry is queued.
		return http.StatusGatewayTimeout, ErrTimeout.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timed out; retry later"
	case errors.Is(err, ErrNotPublishing):
		return http.StatusServiceUnavailable, err.Error()
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
			return http.StatusGatewayTimeout, "timed out; retry later"
		case codes.DataLoss:
			// Damaged storage (sqlite.ErrCorrupt): retrying will not help,
			// and the operator has the detail in the server's log.
			return http.StatusInternalServerError, "internal error"
		}
	}
	// Anything else is Trillian or storage failing: tell the client to
	// retry, and keep the detail for the server's log.
	return http.StatusServiceUnavailable, ErrUnavailable.Error()
}
