// Command evident-witness runs a transparency log witness (C2SP
// tlog-witness): it follows the logs listed in its logs file, cosigns each
// new checkpoint that is consistent with the last one it cosigned, and keeps
// conflicting checkpoints as evidence of a split view.
//
//	evident-witness --name witness.example.com/w1 --logs_file logs.txt
//
// The first start creates the witness key in the data directory and prints
// its public key ("vkey: ..."), which log operators put in their witness
// policies. SIGHUP reloads the logs file; SIGINT or SIGTERM shut down.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/evidentlog/evident/storage"
	"github.com/evidentlog/evident/witness"
)

func main() {
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), `Usage: evident-witness [flags]

Runs a transparency log witness (C2SP tlog-witness): it cosigns each new
checkpoint of the logs in --logs_file that is consistent with the last one
it cosigned, and keeps conflicting checkpoints as evidence (GET /evidence).
The first start needs --name; it creates witness.key (0600, Ed25519 or,
with --key_type mldsa44, ML-DSA-44) and witness.vkey in --data_dir and prints "vkey: <vkey>" for log operators'
witness policies. SIGHUP reloads --logs_file; SIGINT/SIGTERM shut down.

Flags:
`)
		flag.PrintDefaults()
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "evident-witness:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ error }

func run() error {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve the witness API on")
	dataDir := flag.String("data_dir", "./evident-witness-data", "directory for the witness key and state (created 0700)")
	logsFile := flag.String("logs_file", "", `file listing the logs to follow, one "log <vkey> [url]" line each (reloaded on SIGHUP)`)
	name := flag.String("name", "", "name of the witness key, e.g. witness.example.com/w1 (required on first start)")
	keyType := flag.String("key_type", string(witness.KeyEd25519), `type of the key the first start creates: "ed25519" or "mldsa44" (ML-DSA-44, post-quantum); later starts use the key they find`)
	rateLimit := flag.Float64("rate_limit", witness.DefaultRateLimit, "checkpoints per second per log that advance the witness's state (burst 200; replays are not counted; negative: no limit)")
	flag.Parse()
	if flag.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", flag.Args())}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx := context.Background()

	// Listen and read the logs file before creating anything, so that a
	// mistake there leaves no key or database behind.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer ln.Close()
	logs, err := loadLogs(*logsFile, logger)
	if err != nil {
		return err
	}
	if kt := witness.KeyType(*keyType); kt != witness.KeyEd25519 && kt != witness.KeyMLDSA44 {
		return usageError{fmt.Errorf("--key_type %q: want %s or %s", *keyType, witness.KeyEd25519, witness.KeyMLDSA44)}
	}
	if *name == "" {
		if _, err := os.Stat(filepath.Join(*dataDir, witness.KeyFile)); errors.Is(err, fs.ErrNotExist) {
			return noName(*dataDir)
		}
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	if fi, err := os.Stat(*dataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		logger.Warn("data directory is accessible to other users; chmod 700 it", "dir", *dataDir, "mode", fi.Mode().Perm().String())
	}
	skey, vkey, created, err := witness.LoadOrCreateKeyOfType(*dataDir, *name, witness.KeyType(*keyType))
	if errors.Is(err, witness.ErrNoKeyName) {
		return noName(*dataDir)
	}
	if err != nil {
		return err
	}
	if created {
		logger.Info("created witness key", "file", filepath.Join(*dataDir, witness.KeyFile))
	}
	fmt.Printf("vkey: %s\n", vkey)

	db, err := storage.OpenSQLite(ctx, filepath.Join(*dataDir, "witness.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	w, err := witness.New(ctx, witness.Config{DB: db, Key: skey, Logs: logs, RateLimit: *rateLimit, Logger: logger})
	if err != nil {
		return err
	}
	defer w.Close()

	srv := &http.Server{
		Handler:           w.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Signals are caught before the first request is served: a SIGTERM
	// that follows it must shut down gracefully, not kill the process.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	logger.Info("evident-witness serving", "addr", ln.Addr().String(), "name", w.Name(), "logs", len(logs.List()))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	for {
		select {
		case err := <-served:
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if l, err := loadLogs(*logsFile, logger); err != nil {
					logger.Error("reloading logs file failed; keeping the previous list", "err", err)
				} else {
					w.SetLogs(l)
					logger.Info("reloaded logs file", "logs", len(l.List()))
				}
				continue
			}
			logger.Info("shutting down", "signal", sig.String())
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := srv.Shutdown(sctx)
			cancel()
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("shutting down: %w", err)
			}
			return nil
		}
	}
}

// noName is the error of a first start without --name.
func noName(dataDir string) error {
	return usageError{fmt.Errorf("no witness key in %s yet: name the witness with --name (e.g. --name witness.example.com/w1) to create one", dataDir)}
}

// loadLogs reads the logs file ("" follows no logs).
func loadLogs(path string, logger *slog.Logger) (*witness.Logs, error) {
	if path == "" {
		logger.Warn("no --logs_file: following no logs")
		return witness.ParseLogs(nil)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading logs file: %w", err)
	}
	l, err := witness.ParseLogs(b)
	if err != nil {
		return nil, fmt.Errorf("logs file %s: %w", path, err)
	}
	return l, nil
}
