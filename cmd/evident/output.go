package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"golang.org/x/mod/sumdb/note"
)

// env is what a subcommand reads and writes, so that it never touches the
// process's globals.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// json is set by a subcommand's --json flag.
	json bool
}

// errReported matches errors that the subcommand already printed.
var errReported = errors.New("reported")

// reported wraps an error that was already printed; it keeps its exit code.
type reported struct{ error }

func (r reported) Unwrap() error        { return r.error }
func (r reported) Is(target error) bool { return target == errReported }

// usageError marks bad invocations (exit 2).
type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }
func (u *usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

// securityError is a proven or suspected misbehaviour of the log (exit 1).
type securityError struct {
	msg      string
	evidence string // path of the evidence file, if any
}

func (s *securityError) Error() string { return s.msg }

// failure is a verification failure with a machine-readable reason (exit 1).
type failure struct {
	// reason is malformed, signature, quorum, inclusion, consistency,
	// receipt_altered, entry_mismatch, not_found or unservable.
	reason string
	err    error
	// msg, if set, is the message (err then only supplies data).
	msg string
}

func (f *failure) Error() string {
	if f.msg != "" {
		return f.msg
	}
	return f.err.Error()
}
func (f *failure) Unwrap() error { return f.err }

// exitCode maps an error to the documented exit codes.
func exitCode(ctx context.Context, err error) int {
	var ue *usageError
	var se *securityError
	var fe *failure
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &se), errors.As(err, &fe), errors.Is(err, errVerify):
		return exitFailed
	case ctx.Err() != nil:
		return exitInterrupted
	default:
		return exitNetwork
	}
}

// errVerify marks failures already reported as verification failures.
var errVerify = errors.New("verification failed")

// reasonOf names the kind of verification failure for --json output.
func reasonOf(err error) string {
	var fe *failure
	if errors.As(err, &fe) {
		return fe.reason
	}
	switch {
	case errors.Is(err, checkpoint.ErrMalformed):
		return "malformed"
	case errors.Is(err, checkpoint.ErrSignature):
		return "signature"
	case errors.Is(err, checkpoint.ErrQuorum):
		return "quorum"
	case errors.Is(err, checkpoint.ErrInclusion):
		return "inclusion"
	case errors.Is(err, checkpoint.ErrConsistency):
		return "consistency"
	}
	return ""
}

// verifyFailure wraps a checkpoint verification error as a failure.
func verifyFailure(what string, err error) error {
	return &failure{reason: reasonOf(err), err: fmt.Errorf("%s: %w", what, err)}
}

// fail prints a subcommand's error: JSON on stdout with --json, else text
// on stderr. A SECURITY ERROR is always printed on stderr too, so that it is
// seen whatever reads stdout.
func (e *env) fail(cmd string, code int, err error) {
	err = oneLine{err}
	var se *securityError
	isSec := errors.As(err, &se)
	if isSec {
		fmt.Fprintf(e.stderr, "SECURITY ERROR: %s\n", strings.Join(strings.Fields(se.msg), " "))
		if se.evidence != "" {
			fmt.Fprintf(e.stderr, "evidence written to %s\n", se.evidence)
		}
	}
	if e.json {
		out := map[string]any{"ok": false, "exit_code": code, "error": err.Error()}
		if r := reasonOf(err); r != "" {
			out["reason"] = r
		}
		var qe *checkpoint.QuorumError
		if errors.As(err, &qe) {
			out["missing_witnesses"] = qe.Missing
		}
		if isSec {
			out["security_error"] = true
			out["evidence"] = se.evidence
		}
		var he *client.HTTPError
		if errors.As(err, &he) {
			out["http_status"] = he.StatusCode
		}
		e.emitJSON(out)
		return
	}
	switch {
	case isSec:
		// printed above
	case code == exitFailed:
		fmt.Fprintf(e.stderr, "evident %s: FAILED: %v\n", cmd, err)
	case code == exitUsage:
		fmt.Fprintf(e.stderr, "evident %s: %v\n(see evident %s --help)\n", cmd, err, cmd)
	case code == exitInterrupted:
		fmt.Fprintf(e.stderr, "evident %s: interrupted\n", cmd)
	default:
		fmt.Fprintf(e.stderr, "evident %s: %v\n", cmd, err)
	}
}

// oneLine prints an error on one line (some wrapped errors span several).
type oneLine struct{ error }

func (o oneLine) Error() string { return strings.Join(strings.Fields(o.error.Error()), " ") }
func (o oneLine) Unwrap() error { return o.error }

// emitJSON writes v as one JSON line on stdout.
func (e *env) emitJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs and maps are marshalled
	}
	e.stdout.Write(append(b, '\n'))
}

// result prints a success: v as JSON with --json, else the text line.
func (e *env) result(v any, text string) {
	if e.json {
		e.emitJSON(v)
		return
	}
	fmt.Fprintln(e.stdout, text)
}

// newFlagSet returns a flag set whose --help prints usage, a description and
// the flags, and which has --json.
func newFlagSet(e *env, name, usage, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("evident "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage:\n  evident %s %s\n\n%s\n\nFlags:\n", name, usage, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
	fs.BoolVar(&e.json, "json", false, "print machine-readable JSON on stdout")
	return fs
}

// parseArgs parses flags anywhere among the arguments (flag stops at the
// first positional argument; we continue after it) and returns the
// positional arguments. "-" is a positional argument.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// loadLogKey reads a log verifier key given as a vkey or as the path of a
// file holding one, and says which of the two went wrong.
func loadLogKey(s string) (note.Verifier, error) {
	if s == "" {
		return nil, usagef("--log_key is required (the log's verifier key, or a file holding it)")
	}
	vkey, what := s, fmt.Sprintf("--log_key %q", s)
	if fileExists(s) {
		b, err := readFileLimit(s, 4096)
		if err != nil {
			return nil, usagef("--log_key: %v", err)
		}
		vkey, what = strings.TrimSpace(string(b)), fmt.Sprintf("--log_key file %s", s)
	}
	// Never quote a private key.
	if strings.HasPrefix(vkey, "PRIVATE+KEY+") {
		if vkey == s {
			what = "--log_key"
		}
		return nil, usagef("%s is a private signing key: give the log's verifier key instead (keygen writes it to <key file>.pub)", what)
	}
	v, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		if vkey == s && strings.Count(s, "+") < 2 {
			return nil, usagef("%s: no such file, and not a verifier key (name+id+key)", what)
		}
		return nil, usagef("%s is not a log verifier key (name+id+key, Ed25519): %v", what, err)
	}
	return v, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// loadPolicy reads a witness policy file; "" means none.
func loadPolicy(path string) (*checkpoint.Policy, error) {
	if path == "" {
		return nil, nil
	}
	b, err := readFileLimit(path, checkpoint.MaxNoteSize)
	if err != nil {
		return nil, usagef("--policy: %v", err)
	}
	p, err := checkpoint.ParsePolicy(b)
	if err != nil {
		return nil, usagef("--policy %s: %v", path, err)
	}
	return p, nil
}

// readFileLimit reads at most limit bytes of path ("-" is not accepted).
func readFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimit(f, limit, path)
}

func readLimit(r io.Reader, limit int64, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

// openLog loads --log_key and --policy and makes a reading client for
// --log: what monitor and audit need to follow a log.
func openLog(ctx context.Context, logURL, logKey, policyFile string) (*client.Client, note.Verifier, *checkpoint.Policy, error) {
	key, err := loadLogKey(logKey)
	if err != nil {
		return nil, nil, nil, err
	}
	policy, err := loadPolicy(policyFile)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := newClient(ctx, logURL, "")
	if err != nil {
		return nil, nil, nil, err
	}
	// A log without Evident's own API (a static export-tiles copy, or
	// another tile-based log) is read through its tiles.
	if _, err := c.Info(ctx); client.IsNotFound(err) {
		c.Close()
		if c, err = client.New(ctx, client.Config{URL: logURL, Tiles: true, UserAgent: "evident-cli"}); err != nil {
			return nil, nil, nil, usagef("--log: %v", err)
		}
	}
	return c, key, policy, nil
}

// newClient makes a log client for --log.
func newClient(ctx context.Context, logURL, token string) (*client.Client, error) {
	if logURL == "" {
		return nil, usagef("--log is required (the log's base URL)")
	}
	c, err := client.New(ctx, client.Config{URL: logURL, Token: token, UserAgent: "evident-cli"})
	if err != nil {
		return nil, usagef("--log: %v", err)
	}
	return c, nil
}

// jsonIndent marshals v for files people read.
func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
