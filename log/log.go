// Package log is the Evident personality: the HTTP API of a transparency log
// for business evidence, in front of a Trillian log tree.
//
// Writers POST entries with a bearer token, one at a time or in batches;
// the log queues them in Trillian (the entries of concurrent writers
// together, in one durable commit, with [Config.QueueBatch]), whose
// sequencer integrates them into the Merkle tree. A publisher signs a
// checkpoint (C2SP tlog-checkpoint, https://c2sp.org/tlog-checkpoint) of the
// tree as soon as it grew ([Config.Grown]; without it, every
// [Config.CheckpointInterval]), after verifying that Trillian's new root
// extends the last checkpoint it signed: by recomputing the root from that
// checkpoint's compact range and the new leaves' hashes, or with a
// consistency proof. It never signs a smaller or inconsistent tree and
// stalls instead. Every
// published checkpoint is stored and kept. A writer that asks to wait gets,
// as soon as a published checkpoint covers its entry, a receipt (C2SP
// tlog-proof, https://c2sp.org/tlog-proof) that anyone can verify offline
// with the log's public key and the checkpoint package alone.
//
// With witnesses ([Config.Cosign]), a checkpoint is published only with
// their quorum, except the size-0 checkpoint of a new log, published at
// once with whatever cosignatures it got: the empty tree commits to
// nothing. Every checkpoint is recorded as signed in the state database
// before any witness sees it, so that a witness that cosigned a checkpoint
// whose quorum then failed can be given consistency proofs from it, and no
// two roots are ever signed at one size. Failed rounds are retried with
// exponential backoff up to [Config.MaxBackoff]; while they keep failing,
// writers waiting for receipts get ErrNotPublishing at once.
//
// A tiler (tiler.go) follows Trillian's tree, hashes every entry itself and
// stores the log's C2SP tlog-tiles (https://c2sp.org/tlog-tiles) in the
// state database before each checkpoint is signed; a checkpoint is signed
// only when the tiler's root equals Trillian's. The tiles are served at
// /tile/ (tilehttp.go), and receipts and proofs are built from them
// (tileproofs.go) without calling Trillian.
//
// The log trusts Trillian for nothing it can check: inclusion and
// consistency proofs are verified against signed roots before they are
// served, and so are entries. The API is documented in docs/api.md.
package log

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/storage"
)

// Defaults for Config.
const (
	// DefaultCheckpointInterval is how often the publisher looks for growth
	// when Trillian cannot say when its tree grew (Config.Grown is nil: a
	// remote Trillian), and the first wait after a failed round.
	DefaultCheckpointInterval = 100 * time.Millisecond
	// MaxEntrySize is the largest entry any log accepts: tlog-tiles entry
	// bundles carry uint16 lengths.
	MaxEntrySize = 65535
	// DefaultMaxBacklog is how many accepted entries may wait for a
	// checkpoint before new ones are refused with 503.
	DefaultMaxBacklog = 100_000
	// DefaultWaitTimeout is how long add-entry waits for a checkpoint that
	// covers the entry before it answers 504 (the entry stays queued).
	DefaultWaitTimeout = 30 * time.Second
	// DefaultTokenRefresh is how often API keys are reloaded from the
	// state database even when its key generation did not move.
	DefaultTokenRefresh = 10 * time.Second
	// DefaultKeyPoll is how often the state database's key generation is
	// read: a key revoked on any server sharing the database is refused
	// here within about this long (plus one reload).
	DefaultKeyPoll = 500 * time.Millisecond
	// MaxEntriesPerRequest is the most entries GET /v1/entries returns.
	MaxEntriesPerRequest = 1000
	// DefaultMaxBackoff is the longest wait between publisher rounds after
	// failed ones (the wait doubles from CheckpointInterval).
	DefaultMaxBackoff = 10 * time.Second
	// DefaultCosignInterval is the shortest time between two rounds that
	// ask the witnesses: at most 100 checkpoints a second reach them, half
	// evident-witness's default rate limit (witness.DefaultRateLimit). A
	// round (record, two witnesses, store: three fsyncs in a row) takes
	// about as long here, so it costs receipts little latency.
	DefaultCosignInterval = 10 * time.Millisecond
)

// CosignFunc asks witnesses to cosign a newly signed checkpoint. It returns
// the note with cosignature lines appended, or an error (then the checkpoint
// is not published; the publisher retries later and /healthz reports the
// error). proof returns the consistency proof from oldSize to the
// checkpoint's size, verified by the log; oldSize may be the size of any
// checkpoint the log signed, published or not. A CosignFunc bounds its own
// time (witness.Pool does, with its Timeout), unless Config.CosignTimeout
// is set.
type CosignFunc = func(ctx context.Context, signed []byte, proof func(ctx context.Context, oldSize uint64) ([][]byte, error)) ([]byte, error)

// Config configures a Log. Origin, Signer, VKey, Trillian, TreeID and State
// are required.
type Config struct {
	// Origin is the log's origin line; it equals the signer's key name.
	Origin string
	// Signer signs checkpoints (an Ed25519 note key named Origin).
	Signer note.Signer
	// VKey is the verifier key of Signer, served by /v1/info and used to
	// check stored checkpoints.
	VKey string
	// Trillian is the client of the log's Trillian tree.
	Trillian trillian.TrillianLogClient
	// TreeID is the Trillian tree that holds the entries.
	TreeID int64
	// State stores published checkpoints, tiles, the tenants' entries
	// and the log's operations record; tenants and API keys too, unless
	// Auth is set.
	State *storage.DB
	// Auth, when set, is where tenants, API keys, quotas and grants are
	// read from instead of State: the default log's state database, for
	// the other logs of a server with several (LogName). Admin actions
	// recorded there are appended to that database's own log.
	Auth *storage.DB
	// LogName is the log's name on a server with several logs ("" for the
	// default log). A named log accepts the keys of the tenants granted it
	// (storage.DB.GrantLog) and of storage.DefaultTenant only; others get
	// 403. The default log accepts every tenant's keys.
	LogName string
	// Healthy, when set, reports whether Trillian's storage answers (for
	// /healthz).
	Healthy func(context.Context) error
	// Grown, when set, returns a channel that is closed when Trillian's
	// tree next grows (backend.Backend.Grown, in-process). The publisher
	// then starts a round as soon as the tree grew, and does nothing while
	// it does not; without it, it looks every CheckpointInterval.
	Grown func() <-chan struct{}
	// Root, when set (backend.Backend.Root, in-process), returns the size
	// and root hash of the tree as this process's sequencer last stored
	// them, so that a publishing round need not ask Trillian. A root
	// smaller than the latest published one (another process integrated
	// further) is not used: Trillian is asked then.
	Root func() (size uint64, hash [32]byte, ok bool)
	// LeafIndex, when set (backend.Backend.LeafIndex, in-process), finds
	// a leaf's index by its hash in Trillian's own index for receipts, and
	// the tiler keeps no second index of its own.
	LeafIndex func(ctx context.Context, hash [32]byte) (uint64, bool, error)
	// LeafHashes, when set, returns the Merkle leaf hashes of the entries
	// [start, end) if it has them at hand (backend.Backend.LeafHashes,
	// in-process), so that the publisher need not read new entries back
	// from Trillian. They are checked against Trillian's root before use.
	LeafHashes func(start, end uint64) ([][32]byte, bool)
	// Leaves, when set, returns the leaves [start, end) with their values
	// and extra data if it has them at hand (backend.Backend.Leaves,
	// in-process), so that the tiler and attribution need not read them
	// back from Trillian. The tiler checks them against Trillian's root,
	// attribution against the tiles.
	Leaves func(start, end uint64) ([]*trillian.LogLeaf, bool)
	// QueueBatch, when set, queues the entries of a batch in one durable
	// commit (backend.Backend.QueueBatch, in-process), and the entries of
	// concurrent add-entry requests are gathered into such batches too.
	// Without it every entry is queued with its own QueueLeaf call.
	QueueBatch QueueBatchFunc
	// QueueLinger, with QueueBatch, is how long a batch gathered under
	// load (after one of at least 48 entries) waits for 128 entries
	// before it is queued: fewer, fuller commits cost less CPU an entry,
	// for at most this much latency (DefaultQueueLinger is the server's
	// default). Zero never waits.
	QueueLinger time.Duration
	// queueLingerLoad and queueLingerBatch, for tests, replace the
	// constants of the same names when not zero.
	queueLingerLoad, queueLingerBatch int

	// CheckpointInterval is how often the publisher looks for growth
	// without Grown, and the first wait after a failed round
	// (DefaultCheckpointInterval when zero).
	CheckpointInterval time.Duration
	// MaxEntrySize is the largest accepted entry, at most MaxEntrySize
	// (MaxEntrySize when zero).
	MaxEntrySize int
	// MaxBacklog is how many accepted entries may wait for a checkpoint
	// before add-entry answers 503 (DefaultMaxBacklog when zero).
	MaxBacklog int
	// WaitTimeout is how long add-entry waits for its receipt
	// (DefaultWaitTimeout when zero).
	WaitTimeout time.Duration
	// TokenRefresh is how often API keys are reloaded from State when
	// nothing says they changed (DefaultTokenRefresh when zero).
	TokenRefresh time.Duration
	// KeyPoll is how often State's key generation is read; the keys are
	// reloaded as soon as it moved (DefaultKeyPoll when zero).
	KeyPoll time.Duration
	// MaxBackoff is the longest wait between publisher rounds after failed
	// ones (DefaultMaxBackoff when zero, at least CheckpointInterval).
	MaxBackoff time.Duration
	// TenantRate is the entries a second each tenant may add, on average,
	// through this server (0: no limit), and TenantBurst how many at once
	// (0: a second's worth). A tenant's own quota overrides both.
	TenantRate, TenantBurst int
	// TenantBacklogShare is the share (0 to 1) of MaxBacklog that one
	// tenant's entries may take (0: no limit), unless the tenant's own
	// quota says otherwise. See quota.go.
	TenantBacklogShare float64

	// Cosign, when set, is called with each newly signed checkpoint before
	// it is published (see CosignFunc). Each checkpoint is recorded in
	// State as signed before Cosign sees it.
	Cosign CosignFunc
	// CosignTimeout, when positive, bounds each Cosign call. Zero leaves
	// the bound to Cosign (witness.Pool's Timeout).
	CosignTimeout time.Duration
	// ScrubRate is how many entries a second the scrubber re-reads and
	// re-hashes in the background (DefaultScrubRate when zero; negative:
	// no scrubber). See scrub.go.
	ScrubRate int
	// CosignInterval is the shortest time between two rounds that ask the
	// witnesses (DefaultCosignInterval when zero): witnesses limit how
	// often one log may advance their state, and a round that waits
	// carries everything integrated meanwhile.
	CosignInterval time.Duration
	// Held, when set (witness.Pool.Held), returns the largest size of a
	// checkpoint of this log that a witness holds, and that witness. The
	// log never signs a tree smaller than it or diverging from it, even
	// when its own records are older (restored from a backup); at start,
	// it shows the witnesses its latest checkpoint again to learn it.
	Held func() (size uint64, witness string)
	// HeldCheckpoint, when set (witness.Pool.HeldCheckpoint), fetches the
	// checkpoint of origin that the named witness holds: the log verifies
	// it and learns its root when its own records lack it.
	HeldCheckpoint func(ctx context.Context, witness, origin string) ([]byte, error)
	// CosignStatus, when set, is called by /healthz and its text added to
	// the answer (for example the witnesses' last errors).
	CosignStatus func() string
	// WitnessPolicy, when set, is the witness policy the log publishes
	// by; GET /v1/witness-policy serves its text for the explorer (/ui),
	// which shows it as the log's claim until its user pins it.
	WitnessPolicy *checkpoint.Policy
	// TileCacheSize is how many hash tiles (with their inner nodes,
	// 16 KiB each) are kept in memory for serving tiles and proofs
	// (DefaultTileCacheSize when zero).
	TileCacheSize int
	// BundleCacheBytes is how many bytes of full entry bundles are kept in
	// memory (DefaultBundleCacheBytes when zero).
	BundleCacheBytes int
	// LeafCacheSize is how many of the most recently tiled leaves' indexes
	// are kept in memory for receipts (DefaultLeafCacheSize when zero;
	// negative: none).
	LeafCacheSize int

	// PrivateEntries makes the log private: entry contents (GET
	// /v1/entries, typed events) need a read or admin key, and a key
	// reads its own tenant's entries only; checkpoints, proofs and
	// receipts stay public (private.go).
	PrivateEntries bool
	// PrivateEvents makes every typed event (POST /v1/events) private:
	// its entry holds a commitment to its data, never the data.
	PrivateEvents bool

	// Gatherer, when set, is served by /metrics beside the log's own
	// metrics (for example prometheus.DefaultGatherer, where Trillian's
	// monitoring/prometheus factory registers).
	Gatherer prometheus.Gatherer
	// Logger receives the log's messages; nil means slog.Default().
	Logger *slog.Logger
}

// Log is a running log: its publisher, write path and HTTP API.
type Log struct {
	cfg      Config
	verifier note.Verifier
	log      *slog.Logger
	metrics  *metrics

	pub     *publisher
	tiler   *tiler     // only the publisher calls it
	tiles   *tileStore // the tiles, for serving and proofs
	leaves  *leafCache // recently tiled leaves' indexes
	keys    *keyring
	quota   *quotas
	opsKick chan struct{} // wakes the operations record appender (ops.go)
	attr    attributer    // copies entries' tenants to the state database (attribute.go)
	queuer  *queuer       // nil without Config.QueueBatch

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	healthMu  sync.Mutex
	healthErr string // the last storage error /healthz logged

	integrity integrity // the alarm for stored data that failed a check
}

// New checks cfg, loads the log's state, publishes the size-0 checkpoint of
// a new log, and starts the publisher. Call Close to stop it.
func New(ctx context.Context, cfg Config) (*Log, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	v, err := checkpoint.NewVerifier(cfg.VKey)
	if err != nil {
		return nil, fmt.Errorf("log: verifier key: %w", err)
	}
	if v.Name() != cfg.Origin || cfg.Signer.Name() != cfg.Origin || v.KeyHash() != cfg.Signer.KeyHash() {
		return nil, fmt.Errorf("log: the signing key %q, the verifier key %q and the origin %q do not match", cfg.Signer.Name(), v.Name(), cfg.Origin)
	}
	l := &Log{cfg: cfg, verifier: v, log: cfg.Logger, metrics: newMetrics(), opsKick: make(chan struct{}, 1)}
	l.quota = newQuotas(&l.cfg)
	if l.keys, err = loadKeys(ctx, l.cfg.Auth, cfg.LogName, l.quota); err != nil {
		return nil, err
	}
	l.tiles = newTileStore(cfg.State, cfg.Origin, cfg.TileCacheSize, cfg.BundleCacheBytes)
	l.tiles.rebuild = l.edgeFromEntries
	l.tiler = &tiler{l: l}
	l.leaves = newLeafCache(cfg.LeafCacheSize)
	if l.pub, err = newPublisher(ctx, l); err != nil {
		return nil, err
	}
	if cfg.QueueBatch != nil {
		load, full := cmp.Or(cfg.queueLingerLoad, queueLingerLoad), cmp.Or(cfg.queueLingerBatch, queueLingerBatch)
		l.queuer = newQueuer(cfg.QueueBatch, cfg.QueueLinger, load, full)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	l.wg.Go(func() { l.pub.run(runCtx) })
	l.wg.Go(func() { l.refreshKeys(runCtx) })
	l.wg.Go(func() { l.appendOps(runCtx) })
	l.wg.Go(func() { l.attribute(runCtx) })
	l.wg.Go(func() { l.warmLeaves(runCtx) })
	if cfg.ScrubRate > 0 {
		l.wg.Go(func() { l.scrub(runCtx) })
	}
	return l, nil
}

func (c *Config) setDefaults() error {
	switch {
	case c.Origin == "" || c.Signer == nil || c.VKey == "":
		return errors.New("log: Origin, Signer and VKey are required")
	case c.Trillian == nil || c.TreeID == 0:
		return errors.New("log: Trillian and TreeID are required")
	case c.State == nil:
		return errors.New("log: State is required")
	case c.LogName != "" && CheckLogName(c.LogName) != nil:
		return fmt.Errorf("log: LogName: %w", CheckLogName(c.LogName))
	case c.MaxEntrySize < 0 || c.MaxEntrySize > MaxEntrySize:
		return fmt.Errorf("log: MaxEntrySize %d is not in 1..%d", c.MaxEntrySize, MaxEntrySize)
	case c.TenantRate < 0 || c.TenantBurst < 0 || c.TenantBacklogShare < 0 || c.TenantBacklogShare > 1:
		return fmt.Errorf("log: TenantRate %d, TenantBurst %d must not be negative, TenantBacklogShare %v must be in 0..1", c.TenantRate, c.TenantBurst, c.TenantBacklogShare)
	}
	if c.Auth == nil {
		c.Auth = c.State
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.MaxEntrySize == 0 {
		c.MaxEntrySize = MaxEntrySize
	}
	if c.MaxBacklog <= 0 {
		c.MaxBacklog = DefaultMaxBacklog
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	if c.TokenRefresh <= 0 {
		c.TokenRefresh = DefaultTokenRefresh
	}
	if c.KeyPoll <= 0 {
		c.KeyPoll = DefaultKeyPoll
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.ScrubRate == 0 {
		c.ScrubRate = DefaultScrubRate
	}
	if c.TileCacheSize <= 0 {
		c.TileCacheSize = DefaultTileCacheSize
	}
	if c.BundleCacheBytes <= 0 {
		c.BundleCacheBytes = DefaultBundleCacheBytes
	}
	if c.LeafCacheSize == 0 {
		c.LeafCacheSize = DefaultLeafCacheSize
	}
	if c.CosignInterval <= 0 {
		c.CosignInterval = DefaultCosignInterval
	}
	c.MaxBackoff = max(c.MaxBackoff, c.CheckpointInterval)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Close stops the publisher. Waiting add-entry requests get 503. Close
// neither closes Trillian nor the state database: their owner does.
func (l *Log) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
		l.pub.closeWaiters()
		if l.queuer != nil {
			l.queuer.close()
		}
	})
	return nil
}

// Origin returns the log's origin.
func (l *Log) Origin() string { return l.cfg.Origin }
