package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/monitor"
)

const monitorHelp = `
Follows a log's checkpoints. Each new checkpoint must carry a valid log
signature (and, with --policy, meet the witness quorum) and be consistent
with every checkpoint the monitor has seen before: the monitor keeps all of
them in --state_dir/checkpoints/, two checkpoints of one size must have the
same root, and a consistency proof fetched from the log must verify against
the nearest smaller and the nearest larger checkpoint kept (consistency is
transitive, so this covers every one). It also re-fetches the previous
checkpoint from the log's archive (/v1/checkpoints/{size}) and checks that
the log still serves the same root for it.

On a violation it writes an evidence file (both signed checkpoints and the
proof, JSON) into --state_dir, prints a SECURITY ERROR and exits 1. A log
that keeps refusing a consistency proof between two checkpoints it signed
(a 4xx answer other than 429, asked again every second for 3 s, which
covers a personality behind a load balancer that lags a round) is a
violation too: it hides a fork as well as a bad proof does.

With --once it checks once and exits (for cron); otherwise it polls every
--interval until interrupted (exit 130). Transport errors, 5xx and 429
answers exit 3 with --once and are retried otherwise; any other error
answer stops the monitor with exit 3. A --state_dir that cannot be used,
or that holds checkpoints of another log key, exits 2.`

func runMonitor(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "monitor", "--log URL --log_key VKEY [--policy FILE] --state_dir D [--once]", monitorHelp)
	logURL := fs.String("log", "", "the log's base URL")
	logKey := fs.String("log_key", "", "the log's verifier key, or a file holding it")
	policyFile := fs.String("policy", "", "witness policy file (tlog-policy) every checkpoint must meet")
	stateDir := fs.String("state_dir", "", "directory keeping every checkpoint seen and evidence files")
	once := fs.Bool("once", false, "check once and exit")
	interval := fs.Duration("interval", time.Minute, "time between polls")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	if *stateDir == "" {
		return usagef("--state_dir is required")
	}
	if *interval <= 0 {
		return usagef("--interval must be positive")
	}
	cfg := monitor.Config{StateDir: *stateDir}
	if cfg.Client, cfg.LogKey, cfg.Policy, err = openLog(ctx, *logURL, *logKey, *policyFile); err != nil {
		return err
	}
	defer cfg.Client.Close()
	m, err := monitor.New(ctx, cfg)
	if err != nil {
		return cliError(err, *stateDir, false)
	}
	// Polling reports only new checkpoints; --once reports every check.
	poll := func() error {
		res, err := m.Check(ctx)
		if err != nil {
			return cliError(err, *stateDir, true)
		}
		if res.Stale {
			fmt.Fprintf(e.stderr, "evident monitor: warning: the log served checkpoint size %d after size %d (stale, but consistent)\n", res.Checkpoint.Size, res.Newer)
		}
		if res.New || *once {
			reportCheck(e, res)
		}
		return nil
	}
	if *once {
		return poll()
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		err := poll()
		switch {
		case ctx.Err() != nil:
			return ctx.Err() // interrupted: exit 130
		case err != nil && passing(ctx, err):
			fmt.Fprintf(e.stderr, "evident monitor: %v (retrying in %v)\n", err, *interval)
		case err != nil:
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// passing reports whether the monitor loop should retry after err: a
// transport error, or an answer of 5xx or 429. Any other error answer (a
// wrong URL, say) will not pass by itself, and verification failures must
// not be retried away.
func passing(ctx context.Context, err error) bool {
	if exitCode(ctx, err) != exitNetwork {
		return false
	}
	var he *client.HTTPError
	if errors.As(err, &he) {
		return he.StatusCode/100 == 5 || he.StatusCode == http.StatusTooManyRequests
	}
	return !errors.Is(err, client.ErrBadResponse)
}

// reportCheck prints the result of one check.
func reportCheck(e *env, res *monitor.Result) {
	s := res.Checkpoint
	status := "unchanged"
	if res.New {
		status = "new"
	}
	out := map[string]any{"ok": true, "status": status, "origin": s.Origin, "tree_size": s.Size,
		"root_hash": fmt.Sprintf("%x", s.Hash), "cosigners": res.Cosigners, "checkpoints_kept": res.Kept}
	var with string
	switch others := res.Kept - 1; others {
	case 0:
		with = "the first checkpoint kept"
	case 1:
		with = "consistent with the 1 other checkpoint kept"
	default:
		with = fmt.Sprintf("consistent with the %d other checkpoints kept", others)
	}
	e.result(out, fmt.Sprintf("OK: %s checkpoint of %s, size %d, root %x, %s", status, s.Origin, s.Size, s.Hash[:8], with))
}

// cliError maps an error from package monitor to the CLI's error kinds: a
// violation writes its evidence file into dir (when writeEvidence) and
// becomes a SECURITY ERROR; a checkpoint that does not verify, or a log
// that shrank, a verification failure; an unusable state file a usage
// error. Other errors are returned as they are.
func cliError(err error, dir string, writeEvidence bool) error {
	if ev := monitor.EvidenceOf(err); ev != nil {
		msg, path := ev.Problem, ""
		if writeEvidence {
			var werr error
			if path, werr = ev.WriteFile(dir); werr != nil {
				msg += fmt.Sprintf(" (could not write the evidence file: %v)", werr)
			}
		}
		return &securityError{msg: msg, evidence: path}
	}
	var ve *monitor.VerifyError
	var se *monitor.ShrinkError
	var ue *monitor.UnservableError
	switch {
	case errors.As(err, &ue):
		return &failure{reason: "unservable", err: err}
	case errors.As(err, &ve):
		return verifyFailure(ve.What, ve.Err)
	case errors.As(err, &se):
		return &failure{reason: "consistency", err: err}
	case errors.Is(err, monitor.ErrBadState):
		return &usageError{err}
	}
	return err
}
