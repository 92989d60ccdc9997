package witness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/storage"
)

// testLog is a log for tests: an in-memory Merkle tree kept with
// golang.org/x/mod/sumdb/tlog (an RFC 6962 implementation independent of the
// transparency-dev/merkle code the witness verifies with), whose root is
// cross-checked at every size against a transparency-dev/merkle compact
// range, and whose checkpoints are signed with a note key. fork copies it,
// so that a malicious log can grow two different histories under one key.
type testLog struct {
	t      testing.TB
	origin string
	signer note.Signer
	vkey   string
	tag    string      // makes the entries of forks differ
	hashes []tlog.Hash // tlog stored hashes
	size   int64
	cr     *compact.Range // the same tree, as a compact range
}

var rangeFactory = compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	skey, vkey, err := checkpoint.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{t: t, origin: origin, signer: s, vkey: vkey, tag: "main"}
}

func (l *testLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("hash %d not stored", x)
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// grow appends k entries.
func (l *testLog) grow(k int) *testLog {
	l.t.Helper()
	if l.cr == nil {
		l.cr = rangeFactory.NewEmptyRange(0)
	}
	for range k {
		entry := fmt.Appendf(nil, "%s entry %d", l.tag, l.size)
		hs, err := tlog.StoredHashes(l.size, entry, l.reader())
		if err != nil {
			l.t.Fatal(err)
		}
		l.hashes = append(l.hashes, hs...)
		l.size++
		if err := l.cr.Append(rfc6962.DefaultHasher.HashLeaf(entry), nil); err != nil {
			l.t.Fatal(err)
		}
	}
	want, err := l.cr.GetRootHash(nil)
	if err != nil {
		l.t.Fatal(err)
	}
	if got := l.root(l.size); l.size > 0 && !bytes.Equal(got[:], want) {
		l.t.Fatalf("sumdb/tlog root %x differs from merkle/compact root %x at size %d", got, want, l.size)
	}
	return l
}

// rewrite returns a log under l's key with an entirely different history
// (from size 0).
func (l *testLog) rewrite(tag string) *testLog {
	c := *l
	c.hashes, c.size, c.cr, c.tag = nil, 0, nil, tag
	return &c
}

// fork returns a copy of l whose future entries differ from l's.
func (l *testLog) fork(tag string) *testLog {
	c := *l
	c.hashes = append([]tlog.Hash(nil), l.hashes...)
	c.cr = nil
	if l.cr != nil {
		cr, err := rangeFactory.NewRange(l.cr.Begin(), l.cr.End(), append([][]byte(nil), l.cr.Hashes()...))
		if err != nil {
			l.t.Fatal(err)
		}
		c.cr = cr
	}
	c.tag = tag
	return &c
}

func (l *testLog) root(n int64) [32]byte {
	l.t.Helper()
	h, err := tlog.TreeHash(n, l.reader())
	if err != nil {
		l.t.Fatal(err)
	}
	return h
}

// checkpoint returns the signed checkpoint of the current size.
func (l *testLog) checkpoint() []byte {
	return l.checkpointAt(l.size)
}

func (l *testLog) checkpointAt(n int64) []byte {
	l.t.Helper()
	b, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: l.origin, Size: uint64(n), Hash: l.root(n)}, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

// proof returns the consistency proof from old to the current size.
func (l *testLog) proof(old int64) [][]byte {
	l.t.Helper()
	if old == 0 || old == l.size {
		return nil
	}
	p, err := tlog.ProveTree(l.size, old, l.reader())
	if err != nil {
		l.t.Fatal(err)
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// request returns the add-checkpoint request from old to the current size.
func (l *testLog) request(old int64) *Request {
	return &Request{OldSize: uint64(old), Proof: l.proof(old), Checkpoint: l.checkpoint()}
}

// proofFunc serves consistency proofs the way log.Config.Cosign's proof
// argument does.
func (l *testLog) proofFunc() func(context.Context, uint64) ([][]byte, error) {
	return func(_ context.Context, old uint64) ([][]byte, error) { return l.proof(int64(old)), nil }
}

// testWitness is a witness on a real SQLite file, served on loopback.
type testWitness struct {
	*Witness
	dir  string
	db   *storage.DB
	srv  *httptest.Server
	url  string // srv.URL, kept after close
	skey string
	// requests counts the HTTP requests the witness received.
	requests atomic.Int64
}

type witnessOpt func(*Config)

func newTestWitness(t testing.TB, name string, logs []*testLog, opts ...witnessOpt) *testWitness {
	t.Helper()
	dir := t.TempDir()
	skey, _, _, err := LoadOrCreateKey(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return openTestWitness(t, dir, skey, logs, opts...)
}

func openTestWitness(t testing.TB, dir, skey string, logs []*testLog, opts ...witnessOpt) *testWitness {
	t.Helper()
	db, err := storage.OpenSQLite(context.Background(), filepath.Join(dir, "witness.db"))
	if err != nil {
		t.Fatal(err)
	}
	return openTestWitnessDB(t, db, dir, skey, logs, opts...)
}

// backend opens a witness on one kind of database; the same dir and skey
// reopen the same state.
type backend struct {
	name string
	open func(t testing.TB, dir, skey string, logs []*testLog) *testWitness
}

// eachBackend runs f with witnesses on SQLite files and on MariaDB (the
// latter skips visibly without EVIDENT_MYSQL_DSN).
func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, backend{"sqlite", func(t testing.TB, dir, skey string, logs []*testLog) *testWitness {
			return openTestWitness(t, dir, skey, logs)
		}})
	})
	t.Run("mysql", func(t *testing.T) {
		dsn := testdb.MySQL(t)
		f(t, backend{"mysql", func(t testing.TB, dir, skey string, logs []*testLog) *testWitness {
			db, err := storage.OpenMySQL(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return openTestWitnessDB(t, db, dir, skey, logs)
		}})
	})
}

// newWitness makes a new witness key in a new directory and opens it on b.
func (b backend) newWitness(t testing.TB, name string, logs []*testLog) *testWitness {
	t.Helper()
	dir := t.TempDir()
	skey, _, _, err := LoadOrCreateKey(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return b.open(t, dir, skey, logs)
}

func openTestWitnessDB(t testing.TB, db *storage.DB, dir, skey string, logs []*testLog, opts ...witnessOpt) *testWitness {
	t.Helper()
	var text []byte
	for _, l := range logs {
		text = fmt.Appendf(text, "log %s\n", l.vkey)
	}
	parsed, err := ParseLogs(text)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DB: db, Key: skey, Logs: parsed, RateLimit: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	for _, o := range opts {
		o(&cfg)
	}
	w, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tw := &testWitness{Witness: w, dir: dir, db: db, skey: skey}
	h := w.Handler()
	tw.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		tw.requests.Add(1)
		h.ServeHTTP(rw, r)
	}))
	tw.url = tw.srv.URL
	t.Cleanup(tw.close)
	return tw
}

func (tw *testWitness) close() {
	if tw.srv != nil {
		tw.srv.Close()
		tw.srv = nil
		tw.Witness.Close()
		tw.db.Close()
	}
}

// verifier returns the witness's cosignature verifier.
func (tw *testWitness) verifier(t testing.TB) note.Verifier {
	v, err := checkpoint.NewCosignatureVerifier(tw.VKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
