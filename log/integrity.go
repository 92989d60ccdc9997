package log

import (
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// integrity is the log's alarm for stored data that failed a check: a leaf
// whose hash is not its value's, a proof from Trillian that does not verify
// against a signed checkpoint, a root that disagrees with one, or storage
// that reports damage (gRPC DataLoss, e.g. sqlite.ErrCorrupt). Once raised
// it stays raised until the process restarts (after an operator repaired
// or restored the data): /healthz answers 503 with a short reason, the
// metric evident_integrity_failures_total counts every failure, and the
// first one is logged with its detail (the index, what did not verify).
type integrity struct {
	mu     sync.Mutex
	reason string // "" while nothing failed
	since  time.Time
}

// integrityReason is the short, public reason /healthz gives for err, or ""
// when err is not about damaged or untrustworthy stored data.
func integrityReason(err error) string {
	if errors.Is(err, errBadProof) {
		return "stored data failed verification against a signed checkpoint"
	}
	// FromError finds a status wrapped anywhere in err.
	if s, ok := status.FromError(err); ok && s.Code() == codes.DataLoss {
		return "storage reports damaged data"
	}
	return ""
}

// noteIntegrity raises the alarm if err is an integrity failure.
func (l *Log) noteIntegrity(route string, err error) {
	reason := integrityReason(err)
	if reason == "" {
		return
	}
	l.metrics.integrity.Inc()
	l.integrity.mu.Lock()
	first := l.integrity.reason == ""
	if first {
		l.integrity.reason, l.integrity.since = reason, time.Now()
	}
	l.integrity.mu.Unlock()
	if first {
		l.log.Error("INTEGRITY: stored data failed a check; /healthz stays red until an operator repairs or restores the data and restarts the server",
			"route", route, "error", err)
	}
}

// integrityErr is the alarm's reason, or "".
func (l *Log) integrityErr() string {
	l.integrity.mu.Lock()
	defer l.integrity.mu.Unlock()
	if l.integrity.reason == "" {
		return ""
	}
	return l.integrity.reason + " since " + l.integrity.since.UTC().Format(time.RFC3339)
}
