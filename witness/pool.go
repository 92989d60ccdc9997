package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
)

// DefaultPoolTimeout bounds one round of cosignature requests.
const DefaultPoolTimeout = 10 * time.Second

// PoolConfig configures a Pool.
type PoolConfig struct {
	// Policy names the witnesses to ask (each must have a URL) and the
	// quorum their cosignatures must meet.
	Policy *checkpoint.Policy
	// Timeout bounds one Cosign round, all witnesses at once
	// (DefaultPoolTimeout if 0).
	Timeout time.Duration
	// FailOpen makes Cosign return the checkpoint with whatever
	// cosignatures it got when the quorum is not met, instead of an error.
	FailOpen bool
	// HTTPClient makes the requests (a client with keep-alive if nil).
	HTTPClient *http.Client
	// Logger receives the pool's logs (slog.Default() if nil).
	Logger *slog.Logger
}

// Pool asks the witnesses of a policy for cosignatures on a log's new
// checkpoints. It remembers, per witness, the size of the checkpoint the
// witness last cosigned, to send the right consistency proof, and when a
// witness asked (Retry-After on a 429 or 503) not to be asked before: until
// then that witness fails each round without a request. It is safe for
// concurrent use, but a log should cosign its checkpoints in order.
type Pool struct {
	policy   *checkpoint.Policy
	timeout  time.Duration
	failOpen bool
	logger   *slog.Logger
	members  []*member
}

// member is one witness of the pool and what the pool knows of it.
type member struct {
	name     string
	url      string
	verifier note.Verifier
	client   *Client

	mu        sync.Mutex
	size      uint64 // size of the checkpoint it holds, as far as we know
	lastErr   error
	lastOK    time.Time
	notBefore time.Time // it asked us (Retry-After) not to ask before then
	waitErr   error     // the answer that carried that Retry-After
	forkSeen  string    // the possible-fork error last logged (logged once)
}

// WitnessStatus is what a Pool knows of one witness, for health reports.
type WitnessStatus struct {
	// Name is the witness's name in the policy; URL its submission prefix.
	Name, URL string
	// Size is the size of the latest checkpoint it cosigned for the log
	// (as far as the pool knows; 0 before the first answer).
	Size uint64
	// LastSuccess is when it last returned a valid cosignature (zero if
	// never).
	LastSuccess time.Time
	// LastError is why the latest request failed, or why it was not asked
	// in the latest round; "" if it succeeded.
	LastError string
	// RetryAt is when the witness may be asked again, if it asked the pool
	// to wait (Retry-After on a 429 or 503); zero otherwise. Until then the
	// pool does not ask it and counts it as failed.
	RetryAt time.Time
}

// NewPool returns a Pool for the witnesses of cfg.Policy.
func NewPool(cfg PoolConfig) (*Pool, error) {
	if cfg.Policy == nil {
		return nil, errors.New("witness pool: no policy")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultPoolTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	p := &Pool{policy: cfg.Policy, timeout: cfg.Timeout, failOpen: cfg.FailOpen, logger: cfg.Logger}
	for _, w := range cfg.Policy.Witnesses() {
		if w.URL == "" {
			return nil, fmt.Errorf("witness pool: witness %s has no URL in the policy, so the log cannot ask it", w.Name)
		}
		p.members = append(p.members, &member{
			name: w.Name, url: w.URL, verifier: w.Verifier,
			client: &Client{URL: w.URL, HTTPClient: cfg.HTTPClient},
		})
	}
	return p, nil
}

// Policy returns the witness policy the pool asks witnesses by.
func (p *Pool) Policy() *checkpoint.Policy { return p.policy }

// Status reports what the pool knows of each witness, in policy order.
func (p *Pool) Status() []WitnessStatus {
	out := make([]WitnessStatus, 0, len(p.members))
	for _, m := range p.members {
		m.mu.Lock()
		s := WitnessStatus{Name: m.name, URL: m.url, Size: m.size, LastSuccess: m.lastOK}
		if time.Now().Before(m.notBefore) {
			s.RetryAt = m.notBefore
		}
		if m.lastErr != nil {
			s.LastError = m.lastErr.Error()
		}
		m.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// StatusText reports Status as text, one line per witness, for a health
// page (log.Config.CosignStatus).
func (p *Pool) StatusText() string {
	var b strings.Builder
	for _, s := range p.Status() {
		state := "ok"
		switch {
		case s.LastError != "":
			state = "FAILING: " + s.LastError
		case s.LastSuccess.IsZero():
			state = "not asked yet"
		}
		fmt.Fprintf(&b, "witness %s (%s): size %d: %s\n", s.Name, s.URL, s.Size, state)
	}
	return b.String()
}

// Cosign asks every witness of the policy at once, within the pool's
// timeout, to cosign the signed checkpoint, sending each the consistency
// proof (from proof) from the size it holds. It returns the checkpoint with
// the valid cosignature lines appended when they meet the policy's quorum.
// Otherwise it returns an error that matches checkpoint.ErrQuorum (a
// *checkpoint.QuorumError naming the missing witnesses, joined with each
// witness's error), unless the pool fails open. It has the signature of
// log.Config.Cosign.
func (p *Pool) Cosign(ctx context.Context, signed []byte, proof func(ctx context.Context, oldSize uint64) ([][]byte, error)) ([]byte, error) {
	body, _, err := checkpoint.SplitNote(signed)
	if err != nil {
		return nil, err
	}
	c, err := checkpoint.Parse(body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	lines := make([][][]byte, len(p.members))
	errs := make([]error, len(p.members))
	var wg sync.WaitGroup
	for i, m := range p.members {
		wg.Go(func() {
			lines[i], errs[i] = p.ask(ctx, m, signed, body, c, proof)
		})
	}
	wg.Wait()
	var all [][]byte
	var names []string
	for i, m := range p.members {
		if errs[i] == nil {
			names = append(names, m.name)
			all = append(all, lines[i]...)
		}
	}
	if !p.policy.Satisfied(names) {
		qerr := &checkpoint.QuorumError{Missing: p.policy.Missing(names)}
		var failed []error
		for i, m := range p.members {
			if errs[i] != nil {
				failed = append(failed, fmt.Errorf("witness %s: %w", m.name, errs[i]))
			}
		}
		if !p.failOpen {
			return nil, fmt.Errorf("checkpoint %d: %w", c.Size, errors.Join(append([]error{qerr}, failed...)...))
		}
		p.logger.Warn("witness quorum not met; publishing anyway (fail open)",
			"origin", c.Origin, "size", c.Size, "cosigned_by", names, "missing", qerr.Missing)
	}
	return checkpoint.AppendSignatures(signed, all...)
}

// ask gets m's cosignature lines for the checkpoint c, retrying once from
// the size m says it holds. A witness that asked to be left alone for a
// while (Retry-After) is not asked before then: it fails the round at once.
func (p *Pool) ask(ctx context.Context, m *member, signed, body []byte, c checkpoint.Checkpoint, proof func(context.Context, uint64) ([][]byte, error)) ([][]byte, error) {
	m.mu.Lock()
	old := m.size
	if now := time.Now(); now.Before(m.notBefore) {
		// SPEC(RFC 9110, Retry-After): do not ask again before it says.
		err := fmt.Errorf("not asked: it asked not to be asked again before %s (Retry-After), answering: %w",
			m.notBefore.UTC().Format(time.RFC3339), m.waitErr)
		m.lastErr = err
		m.mu.Unlock()
		return nil, err
	}
	m.mu.Unlock()
	if old > c.Size {
		// We believed it holds a larger tree than this one; learn again.
		old = 0
	}
	lines, err := p.try(ctx, m, signed, body, c, old, proof)
	var conflict *ConflictError
	if errors.As(err, &conflict) {
		switch {
		case conflict.Size > c.Size:
			// Remembered: the log must not sign below it (Held).
			m.setSize(conflict.Size)
			if m.firstFork(fmt.Sprintf("rollback %d", conflict.Size)) {
				p.logger.Error("POSSIBLE FORK OR ROLLBACK: witness holds a larger checkpoint of this log than the one being published",
					"witness", m.name, "origin", c.Origin, "witness_size", conflict.Size, "size", c.Size)
			}
		case conflict.Size != old:
			// SPEC(tlog-witness): on 409 the client retries with a proof from
			// the size the witness holds. Once: a witness that keeps moving
			// is answered next round.
			m.setSize(conflict.Size)
			lines, err = p.try(ctx, m, signed, body, c, conflict.Size, proof)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if m.lastErr == nil || m.lastErr.Error() != err.Error() {
			p.logger.Warn("witness did not cosign", "witness", m.name, "url", m.url, "origin", c.Origin, "size", c.Size, "err", err)
		}
		m.lastErr = err
		if wait := waitOf(err); wait > 0 {
			m.notBefore, m.waitErr = time.Now().Add(wait), err
		}
		return nil, err
	}
	m.size, m.lastErr, m.lastOK, m.forkSeen = c.Size, nil, time.Now(), ""
	return lines, nil
}

// waitOf returns how long a witness asked to be left alone in its answer
// err (a 429, or a 503 with Retry-After), or 0.
func waitOf(err error) time.Duration {
	var limited *RateLimitError
	var herr *HTTPError
	switch {
	case errors.As(err, &limited):
		return min(limited.RetryAfter, MaxRetryAfter)
	case errors.As(err, &herr) && herr.Code == http.StatusServiceUnavailable:
		return min(herr.RetryAfter, MaxRetryAfter)
	}
	return 0
}

// firstFork reports whether key (a possible fork seen at this witness) is
// not the one last logged, and remembers it: a witness that keeps showing
// the same conflict round after round is logged at error level once, until
// it cosigns again.
func (m *member) firstFork(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.forkSeen == key {
		return false
	}
	m.forkSeen = key
	return true
}

// try sends one add-checkpoint request from old and verifies the answer.
func (p *Pool) try(ctx context.Context, m *member, signed, body []byte, c checkpoint.Checkpoint, old uint64, proof func(context.Context, uint64) ([][]byte, error)) ([][]byte, error) {
	var pr [][]byte
	if old > 0 && old < c.Size {
		var err error
		if pr, err = proof(ctx, old); err != nil {
			return nil, fmt.Errorf("consistency proof from %d to %d: %w", old, c.Size, err)
		}
	}
	answer, err := m.client.AddCheckpoint(ctx, &Request{OldSize: old, Proof: pr, Checkpoint: signed})
	if err != nil {
		// A same-size refusal means the witness cosigned another tree of
		// this size: someone showed it another history under our key.
		if (errors.Is(err, ErrPossibleFork) || (errors.Is(err, ErrInconsistent) && old == c.Size)) && m.firstFork(err.Error()) {
			p.logger.Error("POSSIBLE FORK: witness holds a different checkpoint of the same size",
				"witness", m.name, "url", m.url, "origin", c.Origin, "size", c.Size, "err", err)
		}
		return nil, err
	}
	// SPEC(tlog-witness): the client MUST ignore cosignatures from unknown
	// keys; keep only the lines by this witness's key that verify.
	var lines [][]byte
	for _, l := range bytes.SplitAfter(answer, []byte("\n")) {
		if len(l) > 0 && checkpoint.VerifySignatureLine(body, l, m.verifier) == nil {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("answer %q carries no valid cosignature by %s", truncate(answer), m.verifier.Name())
	}
	return lines, nil
}

func (m *member) setSize(n uint64) {
	m.mu.Lock()
	m.size = n
	m.mu.Unlock()
}

// Held returns the largest size of a checkpoint of the log that a witness
// of the pool holds, as far as the pool knows (from cosignatures and 409
// answers), and that witness's name. A log whose latest checkpoint is
// smaller lost state (say, it was restored from an older backup): it must
// not sign a checkpoint that is smaller than, or inconsistent with, the
// witness's.
func (p *Pool) Held() (size uint64, name string) {
	for _, m := range p.members {
		m.mu.Lock()
		if m.size > size {
			size, name = m.size, m.name
		}
		m.mu.Unlock()
	}
	return size, name
}

// HeldCheckpoint fetches the checkpoint of origin that the witness named
// by name holds (GET <URL>/<hex SHA-256 of origin>/checkpoint, which
// evident-witness serves; the tlog-witness protocol has no such request,
// so other witnesses may answer 404). The note is returned as the witness
// served it, unverified.
func (p *Pool) HeldCheckpoint(ctx context.Context, name, origin string) ([]byte, error) {
	for _, m := range p.members {
		if m.name == name {
			return m.client.Checkpoint(ctx, origin)
		}
	}
	return nil, fmt.Errorf("witness pool: no witness named %q", name)
}

// Checkpoints fetches from every witness of the pool, at once, the
// checkpoint of origin it holds (see HeldCheckpoint). notes[i] and errs[i]
// belong to the i-th witness of the policy, named names[i].
func (p *Pool) Checkpoints(ctx context.Context, origin string) (names []string, notes [][]byte, errs []error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	names = make([]string, len(p.members))
	notes = make([][]byte, len(p.members))
	errs = make([]error, len(p.members))
	var wg sync.WaitGroup
	for i, m := range p.members {
		names[i] = m.name
		wg.Go(func() { notes[i], errs[i] = m.client.Checkpoint(ctx, origin) })
	}
	wg.Wait()
	return names, notes, errs
}
