package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/event"
	"github.com/evidentlog/evident/internal/atomicfile"
)

const evidenceHelp = `
Evidence bundles: one JSON file (evident-evidence/v1) with a log's typed
events, their receipts, the checkpoints and witness cosignatures that
cover them, a consistency proof from each to the latest checkpoint, the
witness policy and a readable Markdown report (docs/api.md, GET
/v1/evidence).

  evident evidence export --log URL [--subject S] [--type T] [--actor A]
        [--from TIME] [--to TIME] [--token_file F] [--log_key K [--policy P]]
        [--out FILE] [--report FILE]
  evident evidence verify --log_key K [--policy P] [--report FILE] BUNDLE

export fetches the events the selection matches (occurred_at in
[--from, --to), RFC 3339); with a write token (--token_file or
$EVIDENT_TOKEN) private events carry their data and salt. With --log_key it
verifies the bundle before writing it (exit 1 if it does not verify), and
--policy is both checked and embedded. The report says what was verified.

verify checks a bundle offline: the latest checkpoint's signature by
--log_key and, with --policy, its witness quorum; every receipt
(signature, quorum, inclusion of the event's exact bytes); that every
receipt's checkpoint is consistent with the latest; that every event is
one the bundle's selection matches; that private data and salts open
their commitments. It trusts nothing in the bundle itself: not its key,
its policy or its report. Exit 0 when all of it verifies, 1 when anything
does not (the reason is printed), 2 on bad usage.`

func runEvidence(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "export":
			return runEvidenceExport(ctx, e, args[1:])
		case "verify":
			return runEvidenceVerify(e, args[1:])
		}
	}
	fs := newFlagSet(e, "evidence", "(export | verify) [flags]", evidenceHelp)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	return usagef("want a subcommand: export or verify (evident evidence --help)")
}

func runEvidenceExport(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "evidence export", "--log URL [--subject S] [--type T] [--actor A] [--from TIME] [--to TIME] [--out FILE]", evidenceHelp)
	logURL := fs.String("log", "", "the log's base URL")
	q := url.Values{}
	for _, name := range []string{"subject", "type", "actor", "from", "to"} {
		fs.Func(name, "select events by "+name+map[bool]string{true: " (RFC 3339 occurred_at bound)"}[name == "from" || name == "to"], func(s string) error {
			q.Set(name, s)
			return nil
		})
	}
	tokenFile := fs.String("token_file", "", "file holding the write token, to include private data (default: $EVIDENT_TOKEN; none: no private data)")
	logKey := fs.String("log_key", "", "verify the bundle with this log verifier key (or file) before writing it")
	policyFile := fs.String("policy", "", "with --log_key: witness policy to verify with and to embed")
	out := fs.String("out", "", "write the bundle to this file (default: stdout)")
	report := fs.String("report", "", "also write the Markdown report to this file")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	if *policyFile != "" && *logKey == "" {
		return usagef("--policy needs --log_key")
	}
	token := ""
	if *tokenFile != "" || os.Getenv("EVIDENT_TOKEN") != "" {
		if token, err = loadToken(*tokenFile, e); err != nil {
			return err
		}
	}
	c, err := newClient(ctx, *logURL, token)
	if err != nil {
		return err
	}
	defer c.Close()
	raw, err := c.Evidence(ctx, q)
	if err != nil {
		return err
	}
	bu, err := event.ParseBundle(raw)
	if err != nil {
		return fmt.Errorf("the log's bundle: %w", err)
	}
	var res *event.BundleResult
	if *logKey != "" {
		key, err := loadLogKey(*logKey)
		if err != nil {
			return err
		}
		policy, err := loadPolicy(*policyFile)
		if err != nil {
			return err
		}
		if *policyFile != "" {
			text, _ := readFileLimit(*policyFile, checkpoint.MaxNoteSize)
			bu.Policy = string(text)
		}
		if res, err = event.VerifyBundle(bu, key, policy); err != nil {
			return bundleFailure(err)
		}
	}
	bu.Report = event.Report(bu, res)
	b, err := jsonIndent(bu)
	if err != nil {
		return err
	}
	if err := writeOut(e, *out, b); err != nil {
		return err
	}
	if *report != "" {
		if err := atomicfile.WriteFile(*report, []byte(bu.Report), 0o644); err != nil {
			return err
		}
	}
	if *out != "" {
		verified := "not verified (no --log_key)"
		if res != nil {
			verified = "verified"
		}
		e.result(map[string]any{"ok": true, "events": len(bu.Events), "pending": bu.Pending, "verified": res != nil, "out": *out},
			fmt.Sprintf("wrote %s: %d events, %s", *out, len(bu.Events), verified))
	}
	return nil
}

// writeOut writes b to path, or to stdout when path is "".
func writeOut(e *env, path string, b []byte) error {
	if path == "" {
		_, err := e.stdout.Write(b)
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

func runEvidenceVerify(e *env, args []string) error {
	fs := newFlagSet(e, "evidence verify", "--log_key VKEY [--policy FILE] [--report FILE] BUNDLE", evidenceHelp)
	logKey := fs.String("log_key", "", "the log's verifier key, or a file holding it")
	policyFile := fs.String("policy", "", "witness policy file (tlog-policy); without it cosignatures are not required")
	report := fs.String("report", "", "write the report of what was verified (Markdown) to this file")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one BUNDLE argument, got %d", len(pos))
	}
	key, err := loadLogKey(*logKey)
	if err != nil {
		return err
	}
	policy, err := loadPolicy(*policyFile)
	if err != nil {
		return err
	}
	raw, err := e.readArg(pos[0], event.MaxBundleSize)
	if err != nil {
		return usagef("bundle: %v", err)
	}
	bu, err := event.ParseBundle(raw)
	if err != nil {
		return bundleFailure(err)
	}
	res, err := event.VerifyBundle(bu, key, policy)
	if err != nil {
		return bundleFailure(err)
	}
	if *report != "" {
		if err := atomicfile.WriteFile(*report, []byte(event.Report(bu, res)), 0o644); err != nil {
			return err
		}
	}
	opened, erased := 0, 0
	for _, ve := range res.Events {
		if ve.DataVerified {
			opened++
		}
		if ve.Erased != nil {
			erased++
		}
	}
	cos := cosignersOf(res.Latest, policy)
	e.result(map[string]any{"ok": true, "events": len(res.Events), "private_data_verified": opened, "erased": erased,
		"tree_size": res.Latest.Size, "origin": res.Latest.Origin, "cosignatures": cos},
		fmt.Sprintf("OK: %d events (%d private data verified, %d erased), latest checkpoint size %d of %s, %s",
			len(res.Events), opened, erased, res.Latest.Size, res.Latest.Origin, cosignedText(cos, policy != nil)))
	return nil
}

// bundleFailure turns an error of event.ParseBundle or VerifyBundle into a
// verification failure (exit 1) with a reason.
func bundleFailure(err error) error {
	reason := reasonOf(err)
	switch {
	case reason != "":
	case errors.Is(err, event.ErrCommitment):
		reason = "commitment"
	case errors.Is(err, event.ErrInvalid):
		reason = "malformed"
	default:
		reason = "bundle"
	}
	return &failure{reason: reason, err: fmt.Errorf("evidence bundle does not verify: %w", err)}
}
