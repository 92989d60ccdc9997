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
	batchSize          int
	maxBacklog         int
	waitTimeout        time.Duration
	shutdownTimeout    time.Duration
	witnessPolicyFile  string
	witnessFailOpen    bool
	witnessTimeout     time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("evident-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: evident-server [flags]\n\nRuns an Evident transparency log. With no flags: a durable log in ./evident-data,\nTrillian in-process on SQLite, HTTP on 127.0.0.1:8080.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "`address` to serve HTTP on")
	fs.StringVar(&o.dataDir, "data_dir", "evident-data", "`directory` holding the log's keys, write token and (in SQLite mode) databases; created 0700 on first start")
	fs.StringVar(&o.origin, "origin", "", "the log's `origin` (its key name), set on first start only; default: host name plus a random suffix")
	fs.DurationVar(&o.checkpointInterval, "checkpoint_interval", evlog.DefaultCheckpointInterval, "how often to publish a checkpoint when the tree grew")
	fs.IntVar(&o.maxEntrySize, "max_entry_size", evlog.MaxEntrySize, fmt.Sprintf("largest accepted entry in `bytes` (at most %d)", evlog.MaxEntrySize))
	fs.StringVar(&o.mysqlDSN, "mysql_dsn", "", "keep the tree and state in this MySQL/MariaDB `dsn` (go-sql-driver form) instead of SQLite; load Trillian's storage/mysql/schema/storage.sql into it first")
	fs.StringVar(&o.trillianAddr, "trillian_addr", "", "use a remote Trillian log server at `host:port` (gRPC) instead of an in-process one, with its own sequencer (trillian_log_signer)")
	fs.Int64Var(&o.treeID, "tree_id", 0, "the log's Trillian tree `ID`; default: the tree this log created on first start (recorded in its state database)")
	fs.DurationVar(&o.sequencerInterval, "sequencer_interval", backend.DefaultSequencerInterval, "in-process Trillian: time between sequencer runs")
	fs.IntVar(&o.batchSize, "batch_size", backend.DefaultBatchSize, "in-process Trillian: most entries integrated per sequencer run")
	fs.IntVar(&o.maxBacklog, "max_backlog", evlog.DefaultMaxBacklog, "refuse new entries with 503 while this many wait for a checkpoint")
	fs.DurationVar(&o.waitTimeout, "wait_timeout", evlog.DefaultWaitTimeout, "how long add-entry waits for a checkpoint before answering 504")
	fs.DurationVar(&o.shutdownTimeout, "shutdown_timeout", 30*time.Second, "on SIGINT/SIGTERM, how long to wait for in-flight requests")
	fs.StringVar(&o.witnessPolicyFile, "witness_policy_file", "", "tlog-policy `file` naming the witnesses (with URLs) that cosign each checkpoint and the quorum that must, before it is published")
	fs.BoolVar(&o.witnessFailOpen, "witness_fail_open", false, "publish checkpoints even when the witness quorum is not met (with the cosignatures there are)")
	fs.DurationVar(&o.witnessTimeout, "witness_timeout", witness.DefaultPoolTimeout, "how long one round of asking the witnesses may take")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.maxEntrySize < 1 || o.maxEntrySize > evlog.MaxEntrySize {
		return nil, fmt.Errorf("--max_entry_size must be between 1 and %d", evlog.MaxEntrySize)
	}
	if o.witnessFailOpen && o.witnessPolicyFile == "" {
		return nil, errors.New("--witness_fail_open needs --witness_policy_file")
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "evident-server:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// Trillian logs through klog, chattily: keep its errors only.
	klog.SetSlogLogger(slog.New(minLevel{slog.LevelError, logger.Handler()}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, logger, os.Stdout); err != nil {
		logger.Error("evident-server failed", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options, logger *slog.Logger, stdout io.Writer) error {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	skey, vkey, err := loadOrCreateKey(o.dataDir, o.origin)
	if err != nil {
		return err
	}
	signer, err := checkpoint.NewSigner(skey)
	if err != nil {
		return fmt.Errorf("%s: %w", keyFile, err)
	}
	var pool *witness.Pool
	if o.witnessPolicyFile != "" {
		if pool, err = openWitnessPool(o, vkey, logger); err != nil {
			return err
		}
	}

	token, err := loadOrCreateToken(o.dataDir)
	if err != nil {
		return err
	}
	for _, f := range []string{keyFile, tokenFile} {
		if fi, err := os.Stat(filepath.Join(o.dataDir, f)); err == nil && fi.Mode().Perm()&0o077 != 0 {
			logger.Warn("secret file is readable by others; chmod 600 it", "file", filepath.Join(o.dataDir, f), "mode", fi.Mode().Perm().String())
		}
	}

	var state *storage.DB
	if o.mysqlDSN != "" {
		state, err = storage.OpenMySQL(ctx, o.mysqlDSN)
	} else {
		state, err = storage.OpenSQLite(ctx, filepath.Join(o.dataDir, stateDB))
	}
	if err != nil {
		return err
	}
	defer state.Close()
	if err := state.AddToken(ctx, tokenFile, token); err != nil {
		return err
	}

	bcfg := backend.Config{
		State:             state,
		TreeID:            o.treeID,
		BatchSize:         o.batchSize,
		SequencerInterval: o.sequencerInterval,
		MetricFactory:     tprom.MetricFactory{Prefix: "trillian_"},
		Logger:            logger,
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
	if err != nil {
		return err
	}
	defer be.Close()

	cfg := evlog.Config{
		Origin:             signer.Name(),
		Signer:             signer,
		VKey:               vkey,
		Trillian:           be.Log,
		TreeID:             be.TreeID,
		State:              state,
		Healthy:            be.Healthy,
		CheckpointInterval: o.checkpointInterval,
		MaxEntrySize:       o.maxEntrySize,
		MaxBacklog:         o.maxBacklog,
		WaitTimeout:        o.waitTimeout,
		Gatherer:           prometheus.DefaultGatherer,
		Logger:             logger,
	}
	if pool != nil {
		cfg.Cosign, cfg.CosignStatus = pool.Cosign, pool.StatusText
	}
	l, err := evlog.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer l.Close()

	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           l.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      o.waitTimeout + 15*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "origin: %s\nvkey: %s\nwrite token: %s\ntree: %d\nlistening: http://%s\n",
		signer.Name(), vkey, filepath.Join(o.dataDir, tokenFile), be.TreeID, lis.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("in-flight requests did not finish", "error", err)
	}
	// The deferred closes run in order: log (publisher), Trillian, state.
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

// loadOrCreateKey returns the log's signing and verifier keys, creating
// them on first start.
func loadOrCreateKey(dir, origin string) (skey, vkey string, err error) {
	kp, vp := filepath.Join(dir, keyFile), filepath.Join(dir, vkeyFile)
	b, err := os.ReadFile(kp)
	if err == nil {
		skey = strings.TrimSpace(string(b))
		v, err := os.ReadFile(vp)
		if err != nil {
			return "", "", fmt.Errorf("reading %s: %w", vkeyFile, err)
		}
		vkey = strings.TrimSpace(string(v))
		if name, _, _ := strings.Cut(vkey, "+"); origin != "" && name != origin {
			return "", "", fmt.Errorf("--origin %q differs from the log's origin %q (fixed at first start)", origin, name)
		}
		return skey, vkey, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("reading %s: %w", keyFile, err)
	}
	if origin == "" {
		origin = defaultOrigin()
	}
	skey, vkey, err = checkpoint.GenerateKey(origin)
	if err != nil {
		return "", "", fmt.Errorf("generating the log key for origin %q: %w", origin, err)
	}
	if err := os.WriteFile(vp, []byte(vkey+"\n"), 0o644); err != nil {
		return "", "", err
	}
	if err := writeSecret(kp, skey); err != nil {
		return "", "", err
	}
	return skey, vkey, nil
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

// loadOrCreateToken returns the write token, creating it on first start.
func loadOrCreateToken(dir string) (string, error) {
	p := filepath.Join(dir, tokenFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("%s is empty", p)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var r [32]byte
	rand.Read(r[:])
	t := hex.EncodeToString(r[:])
	return t, writeSecret(p, t)
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
