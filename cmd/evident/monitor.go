package main

import (
	"context"
	"errors"
	"fmt"
	"time"

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
proof, JSON) into --state_dir, prints a SECURITY ERROR and exits 1. With
--once it checks once and exits (for cron); otherwise it polls every
--interval until interrupted. Network errors exit 3 with --once and are
retried otherwise.`

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
		return err
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
			return nil
		case err != nil && exitCode(ctx, err) == exitNetwork:
			fmt.Fprintf(e.stderr, "evident monitor: %v (retrying in %v)\n", err, *interval)
		case err != nil:
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
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
	e.result(out, fmt.Sprintf("OK: %s checkpoint of %s, size %d, root %x, consistent with %d kept checkpoints", status, s.Origin, s.Size, s.Hash[:8], res.Kept))
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
	switch {
	case errors.As(err, &ve):
		return verifyFailure(ve.What, ve.Err)
	case errors.As(err, &se):
		return &failure{reason: "consistency", err: err}
	case errors.Is(err, monitor.ErrBadState):
		return &usageError{err}
	}
	return err
}
