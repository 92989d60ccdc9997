package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/client"
	"github.com/evidentlog/evident/internal/atomicfile"
	"golang.org/x/mod/sumdb/note"
)

const submitHelp = `
Submits entries to the log and keeps their receipts.

  evident submit --log URL --token_file F FILE...
      submits each file as one entry and writes FILE.tlog-proof next to it.
  evident submit --log URL --token_file F -
      reads one entry from stdin and writes its receipt to stdout.
  evident submit --log URL --token_file F --jsonl FILE
      submits each non-empty line of FILE (without its "\n" or "\r\n") as
      one entry, --batch lines per request (POST /v1/add-entries; 1 sends
      each line alone), --concurrency requests at a time, and appends one
      JSON record per line to FILE.receipts (or --receipts):
        {"line":N,"index":I,"leaf_hash":"<hex>","duplicate":false,"receipt":"<tlog-proof>"}
      Each record is written whole by one write and synced to disk at least
      every 100 records. Run the same command again after an interruption:
      lines that already have a record are skipped, so every line ends with
      exactly one receipt. A progress bar is drawn on stderr when it is a
      terminal, and a summary is printed at the end.

The write token is read from --token_file (keep it mode 0600) or, if that
is not given, from the EVIDENT_TOKEN environment variable. With --log_key
(and --policy) every receipt is verified before it is written.`

// submitter holds what every submission needs.
type submitter struct {
	c      *client.Client
	batch  int                // --jsonl lines per request
	key    note.Verifier      // nil: receipts are not verified
	policy *checkpoint.Policy // nil: no witness requirement

	// verified caches checkpoints (signed notes, verbatim) that passed
	// VerifyReceipt's checkpoint checks (log signature, policy): the log
	// publishes one checkpoint for many entries, and those checks depend
	// only on the note's bytes, the key and the policy.
	mu       sync.Mutex
	verified map[string]*checkpoint.Signed
}

// maxVerifiedCache bounds submitter.verified.
const maxVerifiedCache = 256

func runSubmit(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "submit", "--log URL --token_file F (FILE... | - | --jsonl FILE)", submitHelp)
	logURL := fs.String("log", "", "the log's base URL")
	tokenFile := fs.String("token_file", "", "file holding the write token (default: $EVIDENT_TOKEN)")
	jsonl := fs.String("jsonl", "", "submit each line of this file as an entry (resumable)")
	receipts := fs.String("receipts", "", "with --jsonl: the receipts file (default: <jsonl>.receipts)")
	concurrency := fs.Int("concurrency", 32, "with --jsonl: requests in flight")
	batch := fs.Int("batch", 100, fmt.Sprintf("with --jsonl: lines per request, 1 to %d (1: one /v1/add-entry request per line)", client.MaxBatchEntries))
	logKey := fs.String("log_key", "", "verify each receipt with this log verifier key (or file)")
	policyFile := fs.String("policy", "", "with --log_key: witness policy the receipts must meet")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if (*jsonl == "") == (len(pos) == 0) {
		return usagef("give either FILE arguments or --jsonl FILE")
	}
	if *jsonl == "-" {
		return usagef("--jsonl needs a file, not stdin: the run is resumable from FILE.receipts")
	}
	if *concurrency < 1 || *concurrency > 1024 {
		return usagef("--concurrency must be in 1..1024")
	}
	token, err := loadToken(*tokenFile, e)
	if err != nil {
		return err
	}
	s := &submitter{}
	if *logKey != "" {
		if s.key, err = loadLogKey(*logKey); err != nil {
			return err
		}
		if s.policy, err = loadPolicy(*policyFile); err != nil {
			return err
		}
	} else if *policyFile != "" {
		return usagef("--policy needs --log_key")
	}
	if s.c, err = newClient(ctx, *logURL, token); err != nil {
		return err
	}
	defer s.c.Close()
	if *jsonl != "" {
		path := *receipts
		if path == "" {
			path = *jsonl + ".receipts"
		}
		if *batch < 1 || *batch > client.MaxBatchEntries {
			return usagef("--batch must be between 1 and %d", client.MaxBatchEntries)
		}
		s.batch = *batch
		return s.jsonl(ctx, e, *jsonl, path, *concurrency)
	}
	for _, p := range pos {
		if err := s.file(ctx, e, p); err != nil {
			return err
		}
	}
	return nil
}

// loadToken reads the write token from a file, or from $EVIDENT_TOKEN.
func loadToken(path string, e *env) (string, error) {
	if path == "" {
		if t := os.Getenv("EVIDENT_TOKEN"); t != "" {
			return t, nil
		}
		return "", usagef("--token_file is required (or set EVIDENT_TOKEN)")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", usagef("--token_file: %v", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(e.stderr, "evident: warning: %s is readable by others (mode %v); chmod 600 it\n", path, fi.Mode().Perm())
	}
	b, err := readFileLimit(path, 4096)
	if err != nil {
		return "", usagef("--token_file: %v", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", usagef("--token_file %s is empty", path)
	}
	return t, nil
}

// add submits one entry and, when a key is set, verifies its receipt.
func (s *submitter) add(ctx context.Context, entry []byte) (*client.AddResponse, error) {
	r, err := s.c.AddEntry(ctx, entry)
	if err != nil {
		return nil, err
	}
	return r, s.check(r, entry)
}

// addBatch submits entries in one request; per entry, its answer (with
// the receipt verified when a key is set) or its own error.
func (s *submitter) addBatch(ctx context.Context, entries [][]byte) ([]client.BatchResult, error) {
	if len(entries) == 1 && s.batch == 1 {
		r, err := s.add(ctx, entries[0])
		var he *client.HTTPError
		if err != nil && !errors.As(err, &he) {
			return nil, err
		}
		return []client.BatchResult{{AddResponse: r, Err: err}}, nil
	}
	// An entry the log cannot hold fails alone, as the log would fail it.
	out := make([]client.BatchResult, len(entries))
	var send [][]byte
	var at []int
	for i, e := range entries {
		if len(e) > client.MaxEntrySize {
			out[i].Err = &client.HTTPError{Method: http.MethodPost, Path: "/v1/add-entries", StatusCode: http.StatusRequestEntityTooLarge,
				Message: fmt.Sprintf("entry of %d bytes is larger than %d", len(e), client.MaxEntrySize)}
			continue
		}
		send, at = append(send, e), append(at, i)
	}
	if len(send) == 0 {
		return out, nil
	}
	rs, err := s.c.AddEntries(ctx, send)
	if err != nil {
		return nil, err
	}
	for k, i := range at {
		out[i] = rs[k]
		if rs[k].Err == nil {
			if err := s.check(rs[k].AddResponse, entries[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// check verifies r's receipt for entry, when a key is set.
func (s *submitter) check(r *client.AddResponse, entry []byte) error {
	if s.key == nil {
		return nil
	}
	rc, err := checkpoint.ParseReceipt(r.Receipt)
	if err != nil {
		return verifyFailure("the log returned a malformed receipt", err)
	}
	if rc.Index != r.Index {
		return &failure{reason: "inclusion", err: fmt.Errorf("the log answered index %d but its receipt is for index %d", r.Index, rc.Index)}
	}
	if err := s.verifyReceipt(rc, entry); err != nil {
		return receiptFailure("the log returned a receipt that does not verify: ", rc, entry, s.key, err)
	}
	return nil
}

// verifyReceipt is checkpoint.VerifyReceipt, with the checkpoint checks
// done once per distinct checkpoint.
func (s *submitter) verifyReceipt(rc *checkpoint.Receipt, entry []byte) error {
	s.mu.Lock()
	signed := s.verified[string(rc.Checkpoint)]
	s.mu.Unlock()
	if signed != nil {
		return checkpoint.VerifyInclusion(rc.Index, signed.Size, checkpoint.LeafHash(entry), rc.Proof, signed.Hash)
	}
	signed, err := checkpoint.VerifyReceipt(rc, entry, s.key, s.policy)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.verified == nil || len(s.verified) >= maxVerifiedCache {
		s.verified = make(map[string]*checkpoint.Signed)
	}
	s.verified[string(rc.Checkpoint)] = signed
	s.mu.Unlock()
	return nil
}

// file submits one file ("-": stdin, receipt to stdout).
func (s *submitter) file(ctx context.Context, e *env, path string) error {
	entry, err := e.readArg(path, maxEntryFile)
	if err != nil {
		return usagef("%v", err)
	}
	if len(entry) == 0 {
		return usagef("%s is empty; entries are 1 to 65535 bytes", path)
	}
	r, err := s.add(ctx, entry)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]any{"ok": true, "file": path, "index": r.Index, "leaf_hash": hex.EncodeToString(r.LeafHash[:]), "duplicate": r.Duplicate, "verified": s.key != nil}
	if path == "-" {
		if e.json {
			out["receipt"] = string(r.Receipt)
			e.emitJSON(out)
			return nil
		}
		_, err := e.stdout.Write(r.Receipt)
		return err
	}
	proofPath := path + ".tlog-proof"
	if err := atomicfile.WriteFile(proofPath, r.Receipt, 0o644); err != nil {
		return fmt.Errorf("writing receipt: %w", err)
	}
	out["receipt_file"] = proofPath
	dup := ""
	if r.Duplicate {
		dup = " (already in the log)"
	}
	e.result(out, fmt.Sprintf("%s: index %d%s, receipt %s", path, r.Index, dup, proofPath))
	return nil
}

// scanLines calls f with each non-empty line of path (1-based numbers,
// without "\n" or "\r\n").
func scanLines(path string, f func(n int, line []byte) error) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxEntryFile+2)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(line) == 0 {
			continue
		}
		if err := f(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// jsonlStats counts what a --jsonl run did.
type jsonlStats struct {
	total, skipped          int
	submitted, dups, failed atomic.Int64

	mu sync.Mutex
	// firstErr is the failure of the first line, in input order, that
	// failed on its own (firstLine is its number).
	firstErr  error
	firstLine int
	// stopErr stopped the run: an answer not about one entry.
	stopErr error
}

// fail counts line n as failed with err.
func (st *jsonlStats) fail(n int, err error) {
	st.failed.Add(1)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.firstErr == nil || n < st.firstLine {
		st.firstErr, st.firstLine = err, n
	}
}

// stop records the first error that stops the run, with its message, and
// cancels the run; later ones are consequences, not news. The cancel is
// made under the lock, so that a worker that saw the run stopped sends no
// other request.
func (st *jsonlStats) stop(err, msg error, cancel context.CancelCauseFunc) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.stopErr == nil {
		st.stopErr = msg
		cancel(err)
	}
}

// entryError reports whether err is the log's answer about one entry (it
// fails that line only): 400 (the entry is refused) or 413 (too large).
// Anything else (a bad token, a wrong URL, a receipt that does not verify,
// the log unreachable or failing after retries) would fail every line the
// same way, so it stops the run.
func entryError(err error) bool {
	var he *client.HTTPError
	return errors.As(err, &he) && (he.StatusCode == http.StatusBadRequest || he.StatusCode == http.StatusRequestEntityTooLarge)
}

// stopHint says what to check when the log's answer stops the run.
func stopHint(err error) string {
	var he *client.HTTPError
	if !errors.As(err, &he) {
		return ""
	}
	switch he.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return " (check the write token: --token_file or EVIDENT_TOKEN)"
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return " (check --log: it must be the log's base URL)"
	}
	return ""
}

func (s *submitter) jsonl(ctx context.Context, e *env, inPath, outPath string, concurrency int) error {
	done, err := client.ReadJournal(outPath)
	if err != nil {
		return usagef("receipts file: %v", err)
	}
	st := &jsonlStats{}
	// First pass: count lines, and check that lines with receipts did not
	// change since.
	err = scanLines(inPath, func(n int, line []byte) error {
		st.total++
		if h, ok := done[n]; ok {
			st.skipped++
			lh := checkpoint.LeafHash(line)
			if h != hex.EncodeToString(lh[:]) {
				return fmt.Errorf("line %d of %s changed since its receipt was written to %s", n, inPath, outPath)
			}
		}
		return nil
	})
	if err != nil {
		return usagef("--jsonl: %v", err)
	}
	out, err := client.OpenJournal(outPath)
	if err != nil {
		return fmt.Errorf("opening receipts file: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	prog := newProgress(e.stderr, "submit", int64(st.total), int64(st.skipped))
	type job struct {
		n    int
		line []byte
	}
	jobs := make(chan []job, concurrency)
	recs := make(chan client.JournalRecord, concurrency*s.batch)
	var workers sync.WaitGroup
	for range concurrency {
		workers.Go(func() {
			for b := range jobs {
				entries := make([][]byte, len(b))
				for i, j := range b {
					entries[i] = j.line
				}
				rs, err := s.addBatch(ctx, entries)
				switch {
				case err == nil:
				case ctx.Err() != nil:
					continue // stopped or interrupted: the lines stay to do
				default:
					// The log is unreachable, failing, refusing us, or
					// lying: stop at once, with one message.
					st.stop(err, fmt.Errorf("line %d: %w%s; stopped the run", b[0].n, err, stopHint(err)), cancel)
					continue
				}
				for i, j := range b {
					r, err := rs[i].AddResponse, rs[i].Err
					switch {
					case err == nil:
						recs <- client.JournalRecord{Line: j.n, Index: r.Index, LeafHash: hex.EncodeToString(r.LeafHash[:]), Duplicate: r.Duplicate, Receipt: string(r.Receipt)}
					case entryError(err):
						st.fail(j.n, fmt.Errorf("line %d: %w", j.n, err))
						prog.Log(fmt.Sprintf("evident submit: line %d: %v", j.n, err))
					default:
						st.stop(err, fmt.Errorf("line %d: %w%s; stopped the run", j.n, err, stopHint(err)), cancel)
					}
				}
			}
		})
	}
	writeErr := make(chan error, 1)
	go func() { writeErr <- writeRecords(out, recs, prog, st, cancel) }()
	var pending []job
	size := 0
	send := func() error {
		if len(pending) == 0 {
			return nil
		}
		select {
		case jobs <- pending:
			pending, size = nil, 0
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	scanErr := scanLines(inPath, func(n int, line []byte) error {
		if _, ok := done[n]; ok {
			return nil
		}
		if len(pending) > 0 && size+2+len(line) > client.MaxBatchBytes {
			if err := send(); err != nil {
				return err
			}
		}
		pending = append(pending, job{n, bytes.Clone(line)})
		size += 2 + len(line)
		if len(pending) == s.batch {
			return send()
		}
		return nil
	})
	if scanErr == nil {
		scanErr = send()
	}
	close(jobs)
	workers.Wait()
	close(recs)
	werr := <-writeErr
	prog.Finish()
	if cerr := out.Close(); werr == nil {
		werr = cerr
	}
	var result error
	switch {
	case werr != nil:
		result = fmt.Errorf("writing receipts to %s: %w; stopped the run", outPath, werr)
	case st.stopErr != nil:
		result = st.stopErr
	case ctx.Err() != nil:
		result = ctx.Err() // interrupted
	case st.firstErr != nil:
		result = fmt.Errorf("%d lines failed; first: %w", st.failed.Load(), st.firstErr)
	case scanErr != nil:
		result = scanErr
	}
	return e.jsonlSummary(st, outPath, result)
}

// writeRecords appends each record to the journal, and syncs it whenever
// the queue is drained (the journal itself syncs at least every 100
// records). A line counts as submitted once its record is written. An
// error cancels the run at once (a receipt that cannot be kept must not be
// sought); then it only drains the queue, so that the workers never block.
func writeRecords(j *client.Journal, recs <-chan client.JournalRecord, prog *progress, st *jsonlStats, cancel context.CancelCauseFunc) error {
	var err error
	for r := range recs {
		if err != nil {
			continue
		}
		if err = j.Append(r); err != nil {
			cancel(err)
			continue
		}
		st.submitted.Add(1)
		if r.Duplicate {
			st.dups.Add(1)
		}
		prog.Add(1)
		if len(recs) == 0 {
			if err = j.Sync(); err != nil {
				cancel(err)
			}
		}
	}
	if err == nil {
		err = j.Sync()
	}
	return err
}

// jsonlSummary prints the summary; with --json the error, if any, goes in
// the same JSON object.
func (e *env) jsonlSummary(st *jsonlStats, outPath string, err error) error {
	have := st.skipped + int(st.submitted.Load())
	out := map[string]any{
		"ok": have == st.total, "lines": st.total, "already_had_receipts": st.skipped,
		"submitted": st.submitted.Load(), "duplicates": st.dups.Load(), "failed": st.failed.Load(),
		"remaining": st.total - have, "receipts_file": outPath,
	}
	text := fmt.Sprintf("%d lines: %d submitted now (%d were already in the log), %d had receipts before, %d failed, %d remaining; receipts in %s",
		st.total, st.submitted.Load(), st.dups.Load(), st.skipped, st.failed.Load(), st.total-have, outPath)
	if e.json {
		if err != nil {
			out["ok"] = false
			out["error"] = err.Error()
			if r := reasonOf(err); r != "" {
				out["reason"] = r
			}
			err = reported{err}
		}
		e.emitJSON(out)
		return err
	}
	fmt.Fprintln(e.stderr, text)
	return err
}
