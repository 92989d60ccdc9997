// Command evident is the command-line client of an Evident transparency
// log: it generates note keys, submits entries and keeps their receipts,
// verifies receipts offline, monitors a log's checkpoints for forks, and
// audits a log by recomputing its Merkle tree from every entry.
//
// Exit codes (every subcommand):
//
//	0  success
//	1  verification failed (a receipt, signature, quorum, proof or audit did
//	   not check out; SECURITY ERROR lines also exit 1), or the log holds
//	   no such entry (receipt: the log answered 404)
//	2  usage: bad flags or arguments, an input file that cannot be read, or
//	   a state directory that cannot be used or belongs to another log
//	3  network or server error (the log could not be reached or answered
//	   with an error), or a local write failed
//	130 interrupted (Ctrl-C, SIGTERM; also ends "monitor" without --once);
//	   resumable commands keep their progress
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes; see the package comment.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitNetwork     = 3
	exitInterrupted = 130
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands = []command{
	{"keygen", "generate a note key pair (log or witness)", runKeygen},
	{"submit", "submit files or JSONL lines as entries and keep their receipts", runSubmit},
	{"receipt", "fetch the receipt of an entry already in the log", runReceipt},
	{"verify", "verify a receipt offline: signature, witness quorum, inclusion", runVerify},
	{"monitor", "follow a log's checkpoints and raise a SECURITY ERROR on a fork", runMonitor},
	{"audit", "download every entry and recompute the log's Merkle root", runAudit},
	{"export-tiles", "write the log as static tlog-tiles files any web server can serve", runExportTiles},
	{"evidence", "export or verify an evidence bundle of typed events", runEvidence},
}

const topUsage = `evident: the command-line client of an Evident transparency log.

Usage:
  evident <command> [flags] [arguments]

Commands:
%s
Run "evident <command> --help" for a command's flags.
Every command takes --json for machine-readable output on stdout.

Exit codes:
  0    success
  1    verification failed (SECURITY ERROR lines also exit 1), or the log
       holds no such entry (receipt)
  2    usage: bad flags or arguments, unreadable input files, an unusable
       state directory or one of another log
  3    network or server error, or a local write failed
  130  interrupted (also how "monitor" ends); resumable commands
       (submit --jsonl, audit) keep progress
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(run(ctx, e, os.Args[1:]))
}

// run dispatches to a subcommand and maps its error to an exit code.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := e.stderr
		code := exitUsage
		if len(args) > 0 {
			w, code = e.stdout, exitOK
		}
		printTopUsage(w)
		return code
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		if err == nil {
			return exitOK
		}
		code := exitCode(ctx, err)
		if !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errReported) {
			e.fail(c.name, code, err)
		}
		return code
	}
	fmt.Fprintf(e.stderr, "evident: unknown command %q\n\n", args[0])
	printTopUsage(e.stderr)
	return exitUsage
}

func printTopUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, topUsage, b.String())
}
