// Command evident-server runs an Evident log: the personality (HTTP API,
// checkpoint publisher) in front of Trillian, in-process on SQLite files in
// the data directory by default.
//
//	go run ./cmd/evident-server
//
// starts a durable log in ./evident-data on http://127.0.0.1:8080. The first
// start creates the data directory (0700), the log's Ed25519 note signing
// key (log.key, 0600; its name is the origin), the verifier key (log.vkey)
// and a write token (write-token, 0600); later starts reuse them.
//
// On every start the stored write token is made to match write-token:
// deleting the file (or giving it a new token) and restarting rotates the
// token, and the old one stops working. A missing log.key is created only
// for a new log: if the data directory or state database already hold a
// log, the server refuses to start rather than sign that log under a new
// origin. Flags, files and the listening address are checked before
// anything is created. The first SIGINT or SIGTERM drains in-flight
// requests; a second one exits at once. See docs/deployment.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"syscall"
	"time"

	tprom "github.com/google/trillian/monitoring/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/evidentlog/evident/checkpoint"
	evlog "github.com/evidentlog/evident/log"
	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/storage/backend"
	"github.com/evidentlog/evident/witness"
)

// Files in the data directory.
const (
	keyFile   = "log.key"     // the log's note signing key (0600)
	vkeyFile  = "log.vkey"    // the log's verifier key, one line
	tokenFile = "write-token" // a write token (0600)
	stateDB   = "state.db"    // Evident's own state (SQLite mode)
	treeDB    = "trillian.db" // Trillian's tree (SQLite mode)
)

type options struct {
	listen             string
	dataDir            string
	origin             string
	checkpointInterval time.Duration
	maxEntrySize       int
	mysqlDSN           string
	trillianAddr       string
	treeID             int64
	sequencerInterval  time.Duration
	commitLinger       time.Duration
	batchSize          int
	maxBacklog         int
	waitTimeout        time.Duration
	shutdownTimeout    time.Duration
	witnessPolicyFile  string
	witnessFailOpen    bool
	witnessTimeout     time.Duration
	witnessInterval    time.Duration
	scrubRate          int
	bundleCacheMB      int
	skipIntegrity      bool
	privateEvents      bool
	rebuildState       bool
	privateLog         bool
	tenantRate         int
	tenantBurst        int
	tenantBacklogShare float64
	// limitMemory: the collector's soft limit follows the live heap
	// (limitMemory), GOMEMLIMIT being unset.
	limitMemory bool
}

// dsnEnv is the environment variable that may hold the MySQL DSN, so that a
// password in it stays out of the process list.
const dsnEnv = "EVIDENT_SERVER_MYSQL_DSN"

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	var dsnFile string
	fs := flag.NewFlagSet("evident-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: evident-server [flags]
       evident-server check [--data_dir D] [--mysql_dsn DSN]   (verify a stopped log's store; check --help)
       evident-server tenant add|list|quota ...                 (tenants; tenant list --help)
       evident-server key issue|list|rotate|revoke ...          (tenants' API keys; key list --help)
       evident-server tenant grant|revoke-grant TENANT LOG     (a tenant's use of a named log)
       evident-server log add|list ...                          (several logs on one server; log list --help)

Runs an Evident transparency log. With no flags: a durable log in ./evident-data,
Trillian in-process on SQLite, HTTP on 127.0.0.1:8080.

The first SIGINT or SIGTERM stops accepting connections and lets in-flight
requests finish (up to --shutdown_timeout); a second one exits at once.
The MySQL DSN may come from the environment variable %s
instead of a flag, to keep a password out of the process list.

Flags:
`, dsnEnv)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "`address` to serve HTTP on")
	fs.StringVar(&o.dataDir, "data_dir", "evident-data", "`directory` holding the log's keys, write token and (in SQLite mode) databases; created 0700 on first start")
	fs.StringVar(&o.origin, "origin", "", "the log's `origin` (its key name), set on first start only; default: host name plus a random suffix")
	fs.DurationVar(&o.checkpointInterval, "checkpoint_interval", evlog.DefaultCheckpointInterval, "how often to publish a checkpoint when the tree grew")
	fs.IntVar(&o.maxEntrySize, "max_entry_size", evlog.MaxEntrySize, fmt.Sprintf("largest accepted entry in `bytes` (at most %d: a tlog-tiles entry bundle stores each entry's length in two bytes)", evlog.MaxEntrySize))
	fs.StringVar(&o.mysqlDSN, "mysql_dsn", "", "keep the tree and state in this MySQL/MariaDB `dsn` (go-sql-driver form) instead of SQLite; load Trillian's storage/mysql/schema/storage.sql into it first. A DSN with a password belongs in $"+dsnEnv+" or --mysql_dsn_file instead")
	fs.StringVar(&dsnFile, "mysql_dsn_file", "", "read the MySQL/MariaDB DSN from this `file` (one line; keep it 0600) instead of --mysql_dsn")
	fs.StringVar(&o.trillianAddr, "trillian_addr", "", "use a remote Trillian log server at `host:port` (gRPC) instead of an in-process one, with its own sequencer (trillian_log_signer)")
	fs.Int64Var(&o.treeID, "tree_id", 0, "the log's Trillian tree `ID`; default: the tree this log created on first start (recorded in its state database)")
	fs.DurationVar(&o.sequencerInterval, "sequencer_interval", 0, "in-process Trillian: also look for queued leaves this often (entries queued through this server are integrated at once; this is only for leaves another process queued in the same tree); 0: never poll")
	fs.DurationVar(&o.commitLinger, "commit_linger", evlog.DefaultQueueLinger, "in-process Trillian (SQLite or MySQL): under load (a commit of 48 entries or more), how long the next commit waits for 128 entries before writing; fewer, fuller commits cost less CPU an entry for at most this much latency. A lone writer never waits. 0: never wait")
	fs.IntVar(&o.batchSize, "batch_size", backend.DefaultBatchSize, "in-process Trillian: most entries integrated per sequencer run")
	fs.IntVar(&o.maxBacklog, "max_backlog", evlog.DefaultMaxBacklog, "refuse new entries with 503 while this many wait for a checkpoint")
	fs.DurationVar(&o.waitTimeout, "wait_timeout", evlog.DefaultWaitTimeout, "how long add-entry waits for a checkpoint before answering 504")
	fs.DurationVar(&o.shutdownTimeout, "shutdown_timeout", 30*time.Second, "on the first SIGINT/SIGTERM, how long to wait for in-flight requests (a second signal exits at once)")
	fs.StringVar(&o.witnessPolicyFile, "witness_policy_file", "", "tlog-policy `file` naming the witnesses (with URLs) that cosign each checkpoint and the quorum that must, before it is published")
	fs.BoolVar(&o.witnessFailOpen, "witness_fail_open", false, "publish checkpoints even when the witness quorum is not met (with the cosignatures there are)")
	fs.DurationVar(&o.witnessTimeout, "witness_timeout", witness.DefaultPoolTimeout, "how long one round of asking the witnesses may take")
	fs.IntVar(&o.bundleCacheMB, "bundle_cache_mb", evlog.DefaultBundleCacheBytes>>20, "MiB of full tlog-tiles entry bundles kept in memory for GET /tile/entries (a 1,000,000-entry log of 256-byte entries has 258 MiB of them; the rest is read from the state database)")
	fs.IntVar(&o.scrubRate, "scrub_rate", evlog.DefaultScrubRate, "entries per second the background scrubber re-reads and re-hashes, checking every published checkpoint's root (about 10 µs of CPU each: the default takes ~2% of a core); 0: no scrubber")
	fs.DurationVar(&o.witnessInterval, "witness_interval", evlog.DefaultCosignInterval, "the shortest time between two rounds that ask the witnesses (a witness limits how often a log may advance it: evident-witness's --rate_limit; set this to match stricter witnesses)")
	fs.BoolVar(&o.skipIntegrity, "skip_integrity_check", false, "SQLite mode: do not read the whole of trillian.db at start to check it (SQLite's quick_check: about 10 s for a 500 MB file read from disk). A damaged file is then found only by the requests that meet it")
	fs.BoolVar(&o.rebuildState, "rebuild_state", false, "rebuild a lost state database: record Trillian's only log tree with entries (or --tree_id) as the log's, and its latest checkpoint from the witnesses of --witness_policy_file, after checking the tree against it (docs/deployment.md, A lost state database)")
	fs.BoolVar(&o.privateEvents, "private_events", false, "make every typed event private (POST /v1/events): entries hold a commitment to the data, which stays erasable beside the log")
	fs.BoolVar(&o.privateLog, "private_log", false, "make the log private: reading entry contents (/v1/entries, typed events) needs a read or admin key, which reads its own tenant's entries only; checkpoints, proofs and receipts stay public")
	fs.IntVar(&o.tenantRate, "tenant_rate", 0, "entries a `second` each tenant may add through this server, on average (0: no limit); over it, 429 with Retry-After. A tenant's own quota (evident-server tenant quota) overrides it")
	fs.IntVar(&o.tenantBurst, "tenant_burst", 0, "entries a tenant may add `at once` above --tenant_rate (0: a second's worth)")
	fs.Float64Var(&o.tenantBacklogShare, "tenant_backlog_share", 0, "the `share` (0 to 1) of --max_backlog one tenant's entries may take (0: no limit); over it, 429")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.bundleCacheMB < 1 || o.bundleCacheMB > 1<<20 {
		return nil, fmt.Errorf("--bundle_cache_mb must be between 1 and %d", 1<<20)
	}
	if o.maxEntrySize < 1 || o.maxEntrySize > evlog.MaxEntrySize {
		return nil, fmt.Errorf("--max_entry_size must be between 1 and %d", evlog.MaxEntrySize)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"checkpoint_interval", o.checkpointInterval},
		{"wait_timeout", o.waitTimeout},
		{"shutdown_timeout", o.shutdownTimeout},
		{"witness_timeout", o.witnessTimeout},
		{"witness_interval", o.witnessInterval},
	} {
		if d.v <= 0 {
			return nil, fmt.Errorf("--%s must be positive, not %v", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"batch_size", o.batchSize}, {"max_backlog", o.maxBacklog}} {
		if n.v < 1 {
			return nil, fmt.Errorf("--%s must be at least 1, not %d", n.name, n.v)
		}
	}
	if o.tenantRate < 0 || o.tenantBurst < 0 || o.tenantBacklogShare < 0 || o.tenantBacklogShare > 1 {
		return nil, errors.New("--tenant_rate and --tenant_burst must not be negative, --tenant_backlog_share must be between 0 and 1")
	}
	if o.commitLinger < 0 || o.commitLinger > time.Second {
		return nil, fmt.Errorf("--commit_linger must be between 0 and 1s, not %v", o.commitLinger)
	}
	if o.sequencerInterval < 0 {
		return nil, fmt.Errorf("--sequencer_interval must not be negative, not %v", o.sequencerInterval)
	}
	if o.treeID < 0 {
		return nil, fmt.Errorf("--tree_id must not be negative")
	}
	if o.origin != "" {
		if _, _, err := checkpoint.GenerateKey(o.origin); err != nil {
			return nil, fmt.Errorf("--origin: %w", err)
		}
	}
	if o.witnessFailOpen && o.witnessPolicyFile == "" {
		return nil, errors.New("--witness_fail_open needs --witness_policy_file")
	}
	if o.rebuildState && o.witnessPolicyFile == "" {
		return nil, errors.New("--rebuild_state needs --witness_policy_file: the witnesses' checkpoints are what show that the tree is the published log")
	}
	if err := mysqlDSN(o, dsnFile, os.Getenv(dsnEnv)); err != nil {
		return nil, err
	}
	if o.dataDir == "" {
		return nil, errors.New("--data_dir must not be empty")
	}
	return o, nil
}

// mysqlDSN sets o.mysqlDSN from at most one of --mysql_dsn (already in it),
// --mysql_dsn_file and the environment. Its errors never quote the DSN.
func mysqlDSN(o *options, file, env string) error {
	n := 0
	for _, set := range []bool{o.mysqlDSN != "", file != "", env != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("give the MySQL DSN once: --mysql_dsn, --mysql_dsn_file or $%s", dsnEnv)
	}
	switch {
	case env != "":
		o.mysqlDSN = strings.TrimSpace(env)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--mysql_dsn_file: %w", err)
		}
		if o.mysqlDSN = strings.TrimSpace(string(b)); o.mysqlDSN == "" || strings.Contains(o.mysqlDSN, "\n") {
			return fmt.Errorf("--mysql_dsn_file %s must hold the DSN on one line", file)
		}
	}
	return nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runCheck(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if len(os.Args) > 1 && os.Args[1] == "log" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runLog(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if len(os.Args) > 1 && (os.Args[1] == "tenant" || os.Args[1] == "key") {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runAdmin(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "evident-server:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.limitMemory = tuneGC()
	// Trillian logs through klog, chattily: keep its errors only.
	klog.SetSlogLogger(slog.New(minLevel{slog.LevelError, logger.Handler()}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, stop, o, logger, os.Stdout); err != nil {
		logger.Error("evident-server failed", "error", err)
		os.Exit(1)
	}
}

// scrubRate maps --scrub_rate (0: off) to log.Config.ScrubRate (0: the
// default, negative: off).
func scrubRate(flag int) int {
	if flag <= 0 {
		return -1
	}
	return flag
}

// Garbage collector settings, unless GOGC or GOMEMLIMIT say otherwise. The
// server's live heap is small (tens of MB) and it allocates per request, so
// with Go's default (GOGC=100) it collects very often: at 256 waiting
// writers about a tenth of its CPU went to the collector. Collecting at 4×
// the live heap, with a soft limit that brings collections back before the
// heap reaches gcMemoryLimit, took that down by about 10% of the CPU per
// entry (docs/performance.md).
//
// The soft limit follows the live heap (limitMemory): it stays gcHeadroom
// above what the last collection left, and never below gcMemoryLimit. A
// fixed limit that the live heap fills makes the collector run without
// end: on a 10,000,000-entry log, whose leaf and tile caches and identity
// filter hold ~400 MB, a limit that counted only the tile caches gave the
// collector ~60% of the CPU and receipts 3-5× slower, until a restart
// emptied the caches. A limit that counted nothing let garbage take the
// caches' room (a peak of 730 MiB resident at the highest write rate).
const (
	gcPercent     = 400
	gcMemoryLimit = 256 << 20
	gcHeadroom    = 128 << 20
)

func tuneGC() (limit bool) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	debug.SetMemoryLimit(gcMemoryLimit)
	return true
}

// limitMemory keeps the collector's soft limit gcHeadroom above the live
// heap, and at least gcMemoryLimit, once a second, until ctx ends.
func limitMemory(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	last := int64(gcMemoryLimit)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(live)
		if live[0].Value.Kind() != metrics.KindUint64 {
			return // not measured by this runtime: keep the limit set
		}
		// Moved in steps of 8 MiB, not at every allocation.
		limit := max(int64(gcMemoryLimit), int64(live[0].Value.Uint64())+gcHeadroom) &^ (8<<20 - 1)
		if limit != last {
			debug.SetMemoryLimit(limit)
			last = limit
		}
	}
}

// run serves the log until ctx ends, then calls stop (so that a second
// signal ends the process at once) and shuts down gracefully.
//
// Everything that can be checked is checked before anything is created: the
// flags, the key and token files, the witness policy and the listening
// address; then whether the data directory or state database already hold
// a log whose key is missing.
func run(ctx context.Context, stop func(), o *options, logger *slog.Logger, stdout io.Writer) error {
	namedDirs, err := checkNamedLogsMode(o)
	if err != nil {
		return err
	}
	key, err := loadKey(o.dataDir, o.origin)
	if err != nil {
		return err
	}
	signer, err := checkpoint.NewSigner(key.skey)
	if err != nil {
		return fmt.Errorf("%s: %w", keyFile, err)
	}
	var pool *witness.Pool
	if o.witnessPolicyFile != "" {
		if pool, err = openWitnessPool(o, key.vkey, logger); err != nil {
			return err
		}
	}
	if key.isNew && o.treeID != 0 && o.mysqlDSN == "" && o.trillianAddr == "" {
		return fmt.Errorf("--tree_id: %s is missing, and a new SQLite log creates its own tree (drop --tree_id, or restore the key of the log that owns the tree)", keyFile)
	}
	token, newToken, err := loadToken(o.dataDir)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	defer lis.Close()

	state, err := openState(ctx, o, key.isNew)
	if err != nil {
		return err
	}
	defer state.Close()
	where := filepath.Join(o.dataDir, stateDB)
	if o.mysqlDSN != "" {
		where = "the MySQL database's state tables"
	}
	if !key.isNew {
		if err := checkStateOwner(ctx, state, signer.Name(), key.vkey, where); err != nil {
			return err
		}
	}
	if o.rebuildState {
		if key.isNew {
			return fmt.Errorf("--rebuild_state: %s is missing: there is no log to rebuild the state of (restore the key first)", filepath.Join(o.dataDir, keyFile))
		}
		if err := checkRebuildable(ctx, state, where); err != nil {
			return err
		}
	}
	if key.isNew && o.treeID == 0 {
		// Written before the tree is created, so that no tree exists
		// without its key.
		if err := key.write(o.dataDir); err != nil {
			return err
		}
	}

	bcfg := backend.Config{
		ExistingLog:        !key.isNew,
		AdoptTree:          o.rebuildState,
		State:              state,
		TreeID:             o.treeID,
		BatchSize:          o.batchSize,
		SequencerInterval:  o.sequencerInterval,
		SkipIntegrityCheck: o.skipIntegrity,
		MetricFactory:      tprom.MetricFactory{Prefix: "trillian_"},
		Logger:             logger,
	}
	switch {
	case o.trillianAddr != "":
		bcfg.Addr = o.trillianAddr
	case o.mysqlDSN != "":
		bcfg.MySQLDSN = o.mysqlDSN
	default:
		bcfg.SQLitePath = filepath.Join(o.dataDir, treeDB)
	}
	be, err := backend.New(ctx, bcfg)
	if errors.Is(err, backend.ErrStateLost) {
		return fmt.Errorf("%w. The log's key is in %s, but its state database (%s) does not record the log's tree: it was lost or replaced. "+
			"Restore it from a backup of the data directory (docs/deployment.md), or rebuild it from the tree and the witnesses' checkpoints with --rebuild_state; starting a new tree would fork this log's history under the same key", err, o.dataDir, where)
	}
	if err != nil {
		return err
	}
	defer be.Close()
	if key.isNew && o.treeID != 0 {
		// --tree_id names a tree this server did not create: a new key may
		// only start a log on an empty one.
		if err := checkTreeEmpty(ctx, be); err != nil {
			return err
		}
		if err := key.write(o.dataDir); err != nil {
			return err
		}
	}
	if key.isNew {
		// Now that the key is written: a state database of this log.
		if err := checkStateOwner(ctx, state, signer.Name(), key.vkey, where); err != nil {
			return err
		}
	}
	if o.rebuildState {
		verifier, err := checkpoint.NewVerifier(key.vkey)
		if err != nil {
			return err
		}
		if err := rebuildState(ctx, pool, state, be, signer.Name(), verifier, logger); err != nil {
			return err
		}
	}
	if err := installToken(ctx, o.dataDir, state, token, newToken, logger); err != nil {
		return err
	}
	for _, f := range []string{keyFile, tokenFile} {
		if fi, err := os.Stat(filepath.Join(o.dataDir, f)); err == nil && fi.Mode().Perm()&0o077 != 0 {
			logger.Warn("secret file is readable by others; chmod 600 it", "file", filepath.Join(o.dataDir, f), "mode", fi.Mode().Perm().String())
		}
	}

	cfg := evlog.Config{
		Origin:             signer.Name(),
		Signer:             signer,
		VKey:               key.vkey,
		State:              state,
		CheckpointInterval: o.checkpointInterval,
		MaxEntrySize:       o.maxEntrySize,
		MaxBacklog:         o.maxBacklog,
		QueueLinger:        o.commitLinger,
		WaitTimeout:        o.waitTimeout,
		CosignInterval:     o.witnessInterval,
		ScrubRate:          scrubRate(o.scrubRate),
		BundleCacheBytes:   o.bundleCacheMB << 20,
		PrivateEvents:      o.privateEvents,
		PrivateEntries:     o.privateLog,
		TenantRate:         o.tenantRate,
		TenantBurst:        o.tenantBurst,
		TenantBacklogShare: o.tenantBacklogShare,
		Gatherer:           prometheus.DefaultGatherer,
		Logger:             logger,
	}
	useBackend(&cfg, be)
	usePool(&cfg, pool)
	if err := notePolicy(ctx, state, pool, logger); err != nil {
		return err
	}
	l, err := evlog.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer l.Close()
	named, err := openNamedLogs(ctx, o, namedDirs, state, cfg, logger)
	if err != nil {
		return err
	}
	defer func() {
		for _, n := range named {
			n.close()
		}
	}()
	if o.limitMemory {
		go limitMemory(ctx)
	}
	handler := l.Handler()
	if len(named) > 0 {
		// The default log at /, each named log under its prefix: a
		// name is never one of the API's own first path segments
		// (evlog.CheckLogName), so no path of the default log is hidden.
		mux := http.NewServeMux()
		mux.Handle("/", handler)
		for _, n := range named {
			mux.Handle("/"+n.name+"/", http.StripPrefix("/"+n.name, n.log.Handler()))
		}
		handler = mux
	}

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      o.waitTimeout + 15*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "origin: %s\nvkey: %s\nwrite token: %s\ntree: %d\n",
		signer.Name(), key.vkey, filepath.Join(o.dataDir, tokenFile), be.TreeID)
	for _, n := range named {
		fmt.Fprintf(stdout, "log %s: prefix=/%s/ origin=%s vkey=%s tree=%d private=%v witnesses=%v\n",
			n.name, n.name, n.origin(), n.vkey, n.be.TreeID, n.private, n.policy != "")
	}
	fmt.Fprintf(stdout, "listening: http://%s\n", lis.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// From here on a second SIGINT or SIGTERM ends the process at once.
	stop()
	logger.Info("shutting down: finishing in-flight requests (a second signal exits at once)")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("in-flight requests did not finish", "error", err)
	}
	// The deferred closes run in order: log (publisher), Trillian, state.
	return nil
}

// useBackend sets the fields of cfg that come from the log's Trillian:
// one place for the default log and the named ones (logs.go), so that no
// log is ever wired to another's tree.
func useBackend(cfg *evlog.Config, be *backend.Backend) {
	cfg.Trillian, cfg.TreeID = be.Log, be.TreeID
	cfg.Healthy, cfg.Grown, cfg.Root = be.Healthy, be.Grown, be.Root
	cfg.LeafHashes, cfg.Leaves, cfg.LeafIndex, cfg.QueueBatch = be.LeafHashes, be.Leaves, be.LeafIndex, be.QueueBatch
}

// usePool sets the fields of cfg that come from the log's witness pool
// (none when pool is nil), for the default log and the named ones alike.
func usePool(cfg *evlog.Config, pool *witness.Pool) {
	cfg.Cosign, cfg.CosignStatus, cfg.WitnessPolicy, cfg.Held, cfg.HeldCheckpoint = nil, nil, nil, nil, nil
	if pool != nil {
		cfg.Cosign, cfg.CosignStatus, cfg.WitnessPolicy = pool.Cosign, pool.StatusText, pool.Policy()
		cfg.Held, cfg.HeldCheckpoint = pool.Held, pool.HeldCheckpoint
	}
}

// openState opens the state database: in MySQL, or state.db in the data
// directory, which it creates (0700) if needed. When the log's key is
// missing (isNew), it first makes sure that neither the data directory nor
// the state database hold a log whose key that was; see errKeyLost.
func openState(ctx context.Context, o *options, isNew bool) (*storage.DB, error) {
	if isNew {
		for _, f := range []string{stateDB, treeDB} {
			if _, err := os.Stat(filepath.Join(o.dataDir, f)); err == nil {
				return nil, errKeyLost(o.dataDir, fmt.Sprintf("the data directory holds %s", f))
			}
		}
	}
	var state *storage.DB
	var err error
	if o.mysqlDSN != "" {
		state, err = storage.OpenMySQL(ctx, o.mysqlDSN)
	} else {
		if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
		state, err = storage.OpenSQLite(ctx, filepath.Join(o.dataDir, stateDB))
	}
	if err != nil {
		return nil, err
	}
	if isNew {
		what, err := stateHoldsLog(ctx, state)
		if err == nil && what != "" {
			err = errKeyLost(o.dataDir, "the state database "+what)
		}
		if err != nil {
			state.Close()
			return nil, err
		}
		if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
			state.Close()
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	}
	return state, nil
}

// stateHoldsLog says what in state belongs to a log ("" for a new state
// database): it records a Trillian tree, or holds published
// checkpoints.
func stateHoldsLog(ctx context.Context, state *storage.DB) (string, error) {
	if _, err := state.Setting(ctx, backend.TreeIDSetting); err == nil {
		return "records a Trillian tree", nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	if has, err := state.HasCheckpoints(ctx); err != nil || !has {
		return "", err
	}
	return "holds published checkpoints", nil
}

// errKeyLost is the error for a log whose key file is missing while its data
// (what) is not: a new key would sign the existing tree under a new origin.
func errKeyLost(dir, what string) error {
	return fmt.Errorf("%s is missing from %s, but %s: this log exists and its signing key is lost. "+
		"Restore %s and %s from a backup of the data directory; a new key would sign the existing tree under a new origin, "+
		"which verifiers and witnesses would not accept", keyFile, dir, what, keyFile, vkeyFile)
}

// checkTreeEmpty returns errKeyLost-style advice if the log's Trillian
// tree already holds entries.
func checkTreeEmpty(ctx context.Context, be *backend.Backend) error {
	size, _, err := trillianRoot(ctx, be)
	if err != nil {
		return err
	}
	if size > 0 {
		return fmt.Errorf("%s is missing and Trillian tree %d already holds %d entries: "+
			"restore the key of the log that owns it (%s and %s), or give a new log a new tree",
			keyFile, be.TreeID, size, keyFile, vkeyFile)
	}
	return nil
}

// openWitnessPool reads the witness policy and makes the pool that asks its
// witnesses to cosign. A policy that names logs must name this one.
func openWitnessPool(o *options, vkey string, logger *slog.Logger) (*witness.Pool, error) {
	text, err := os.ReadFile(o.witnessPolicyFile)
	if err != nil {
		return nil, fmt.Errorf("--witness_policy_file: %w", err)
	}
	policy, err := checkpoint.ParsePolicy(text)
	if err != nil {
		return nil, fmt.Errorf("--witness_policy_file %s: %w", o.witnessPolicyFile, err)
	}
	if logs := policy.Logs(); len(logs) > 0 && !slices.ContainsFunc(logs, func(l checkpoint.PolicyLog) bool { return l.VKey == vkey }) {
		return nil, fmt.Errorf("--witness_policy_file %s names logs, but not this one (%s)", o.witnessPolicyFile, vkey)
	}
	pool, err := witness.NewPool(witness.PoolConfig{
		Policy:   policy,
		Timeout:  o.witnessTimeout,
		FailOpen: o.witnessFailOpen,
		Logger:   logger,
	})
	if err != nil {
		return nil, fmt.Errorf("--witness_policy_file %s: %w", o.witnessPolicyFile, err)
	}
	return pool, nil
}

// logKey is the log's note signing and verifier keys.
type logKey struct {
	skey, vkey string
	// isNew is true for keys generated by this start, not yet written.
	isNew bool
}

// loadKey reads the log's keys from dir or, when log.key is missing,
// generates new ones for origin (without writing them: see write).
func loadKey(dir, origin string) (logKey, error) {
	kp, vp := filepath.Join(dir, keyFile), filepath.Join(dir, vkeyFile)
	b, err := os.ReadFile(kp)
	if err == nil {
		v, err := os.ReadFile(vp)
		if err != nil {
			return logKey{}, fmt.Errorf("reading %s: %w", vkeyFile, err)
		}
		k := logKey{skey: strings.TrimSpace(string(b)), vkey: strings.TrimSpace(string(v))}
		if name := vkeyOrigin(k.vkey); origin != "" && name != origin {
			return logKey{}, fmt.Errorf("--origin %q differs from the log's origin %q (fixed at first start)", origin, name)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return logKey{}, fmt.Errorf("reading %s: %w", keyFile, err)
	}
	if origin == "" {
		origin = defaultOrigin()
	}
	k := logKey{isNew: true}
	if k.skey, k.vkey, err = checkpoint.GenerateKey(origin); err != nil {
		return logKey{}, fmt.Errorf("generating the log key for origin %q: %w", origin, err)
	}
	return k, nil
}

// write stores a new key in dir: log.vkey, then log.key (0600, never
// overwritten).
func (k logKey) write(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, vkeyFile), []byte(k.vkey+"\n"), 0o644); err != nil {
		return err
	}
	return writeSecret(filepath.Join(dir, keyFile), k.skey)
}

// defaultOrigin is the host name plus a random suffix, unique per log.
func defaultOrigin() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return -1
	}, host)
	if host == "" {
		host = "localhost"
	}
	return host + "/evident/" + rand.Text()[:8]
}

// loadToken returns the write token from the data directory or, when the
// file is missing, a new one (isNew) that installToken writes.
func loadToken(dir string) (token string, isNew bool, err error) {
	p := filepath.Join(dir, tokenFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, false, nil
		}
		return "", false, fmt.Errorf("%s is empty", p)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	var r [32]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:]), true, nil
}

// installToken writes a new token's file, then makes the token the only one
// stored under the file's name: a token replaced by a rotation (the file
// deleted, or given new contents) stops working at once on this server and
// within the token refresh on every other server sharing the state
// database. A stale copy of a replaced token is refused, so it cannot
// revoke its successor.
func installToken(ctx context.Context, dir string, state *storage.DB, token string, isNew bool, logger *slog.Logger) error {
	p := filepath.Join(dir, tokenFile)
	if isNew {
		if err := writeSecret(p, token); err != nil {
			return err
		}
	}
	revoked, err := state.ReplaceTokens(ctx, tokenFile, token)
	if errors.Is(err, storage.ErrTokenRevoked) {
		return fmt.Errorf("%s holds a write token that a rotation replaced: copy the current %s from a server that has it "+
			"(every server sharing the state database needs the same file), or delete %s to rotate again: %w", p, tokenFile, p, err)
	}
	if err != nil {
		return err
	}
	if revoked > 0 {
		logger.Warn("write token rotated: the previous token no longer works; give every server sharing the state database this file",
			"file", p, "revoked", revoked)
	}
	return nil
}

// writeSecret creates path (0600) with s and a newline, failing if it
// exists, and syncs it.
func writeSecret(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// minLevel is a slog.Handler that drops records below a level.
type minLevel struct {
	level slog.Level
	slog.Handler
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.level, h.Handler.WithAttrs(as)}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.level, h.Handler.WithGroup(name)}
}
