// Package witness is Evident's transparency log witness and the client a log
// uses to ask witnesses for cosignatures.
//
// A [Witness] follows a set of logs (see [ParseLogs]). For each log it keeps
// the latest checkpoint it cosigned, and it cosigns a new checkpoint only if
// a consistency proof from that one verifies: it never cosigns a smaller
// tree or two conflicting trees of one log. Two checkpoints of one size
// with different roots, both validly signed by the log, are kept once as
// [Evidence] of a split view. [Witness.Handler]
// serves the C2SP tlog-witness protocol (https://c2sp.org/tlog-witness);
// cosignatures are C2SP tlog-cosignature cosignature/v1 signatures
// (https://c2sp.org/tlog-cosignature).
//
// On the log side, a [Client] speaks tlog-witness to one witness and a
// [Pool] asks every witness of a C2SP tlog-policy at once and checks the
// quorum.
package witness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// Defaults for Config.
const (
	// DefaultRateLimit is the sustained rate, per log, of add-checkpoint
	// requests that advance the witness's state (per second). Requests that
	// write nothing (the held checkpoint again, 409, 422...) are not
	// counted: anyone can replay a log's public checkpoints. An Evident log
	// asks at most 100 times a second by default (its --witness_interval),
	// so that writers get receipts within milliseconds; each advance costs
	// the witness one proof check, one signature and one fsync.
	DefaultRateLimit = 200
	// DefaultRateBurst is the number of such requests per log allowed at
	// once.
	DefaultRateBurst = 200
)

// Config configures a Witness.
type Config struct {
	// DB holds the witness's state and evidence. The caller owns it and
	// closes it after the Witness.
	DB *storage.DB
	// Key is the witness's private cosignature signer key, Ed25519 or
	// ML-DSA-44 (see checkpoint.GenerateCosignerKey and
	// checkpoint.GenerateMLDSACosignerKey).
	Key string
	// Logs are the logs the witness follows; nil follows none until
	// SetLogs.
	Logs *Logs
	// RateLimit is the sustained rate, per log, of add-checkpoint requests
	// that advance the state, per second (DefaultRateLimit if 0; negative
	// disables the limit).
	RateLimit float64
	// RateBurst is the number of requests per log allowed at once
	// (DefaultRateBurst if 0).
	RateBurst int
	// Logger receives the witness's logs (slog.Default() if nil).
	Logger *slog.Logger
}

// Witness checks checkpoints and cosigns them. It is safe for concurrent
// use.
type Witness struct {
	db     *storage.DB
	signer note.Signer
	vkey   string
	logs   atomic.Pointer[Logs]
	limit  *rateLimiter
	logger *slog.Logger

	writeMu sync.Mutex     // held while committing a batch of swaps
	pendMu  sync.Mutex     // guards pending
	pending []*pendingSwap // swaps waiting for the next commit (see swap)

	// beforeSwap, when set (by tests), runs between reading the state and
	// the compare-and-swap that writes the new one.
	beforeSwap func(origin string)
}

// Errors of AddCheckpoint. The HTTP handler maps each to its tlog-witness
// status code; a Client returns the same errors for those status codes.
var (
	// ErrUnknownOrigin means the witness follows no log with the
	// checkpoint's origin (404).
	ErrUnknownOrigin = errors.New("unknown log origin")
	// ErrInconsistent means the checkpoint is not consistent with the one
	// the witness holds, or the proof sent does not show that it is (422).
	// The witness will never cosign it. A validly signed checkpoint of the
	// held size with another root was kept as evidence; a failed proof is
	// not evidence (anyone can send a junk proof with a genuine checkpoint).
	ErrInconsistent = errors.New("checkpoint is not consistent with the witness's view of the log")
	// ErrBusy means concurrent requests for one log kept changing its
	// state; the client should retry (503).
	ErrBusy = errors.New("witness state is busy, retry")
)

// ConflictError means the old size of a request is not the size of the
// checkpoint the witness holds for that log (409). The client should
// resend a consistency proof from Size.
type ConflictError struct {
	// Size is the size of the latest checkpoint the witness cosigned for
	// the log (0 if none).
	Size uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness holds a checkpoint of size %d", e.Size)
}

// RateLimitError means the log exceeded the witness's rate limit (429).
type RateLimitError struct {
	// RetryAfter is how long to wait before the next request.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("rate limit exceeded, retry after %v", e.RetryAfter)
}

// New returns a Witness.
func New(ctx context.Context, cfg Config) (*Witness, error) {
	if cfg.DB == nil {
		return nil, errors.New("witness: Config.DB is nil")
	}
	signer, err := checkpoint.NewCosigner(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	vkey, err := cosignerVKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = DefaultRateBurst
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Witness{
		db:     cfg.DB,
		signer: signer,
		vkey:   vkey,
		limit:  newRateLimiter(cfg.RateLimit, cfg.RateBurst, time.Now),
		logger: cfg.Logger,
	}
	w.SetLogs(cfg.Logs)
	return w, nil
}

// Close releases the witness's resources. It does not close Config.DB.
func (w *Witness) Close() error { return nil }

// VKey returns the witness's public cosignature verifier key.
func (w *Witness) VKey() string { return w.vkey }

// Name returns the name of the witness's key.
func (w *Witness) Name() string { return w.signer.Name() }

// SetLogs replaces the set of logs the witness follows (on a reload of the
// logs file). Requests in flight finish with the set they started with.
func (w *Witness) SetLogs(l *Logs) {
	if l == nil {
		l = &Logs{}
	}
	w.logs.Store(l)
	w.limit.forget(func(origin string) bool { return l.Verifiers(origin) != nil })
}

// Logs returns the set of logs the witness follows.
func (w *Witness) Logs() *Logs { return w.logs.Load() }

// Checkpoint returns the latest checkpoint the witness cosigned for origin,
// with its cosignature, or ErrUnknownOrigin.
func (w *Witness) Checkpoint(ctx context.Context, origin string) ([]byte, error) {
	st, ok, err := w.db.WitnessState(ctx, origin)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no checkpoint of %q: %w", origin, ErrUnknownOrigin)
	}
	return st.Note, nil
}
