// Package testlog is a deliberately controllable C2SP log for the tests of
// log clients, monitors and auditors. It serves the log HTTP API (add-entry,
// checkpoint, archived checkpoints, receipts, consistency proofs, entries,
// info) on loopback, built with package checkpoint and
// transparency-dev/merkle's in-memory tree, and its switches make it
// misbehave: rewrite history (a fork), re-sign a size over another root,
// serve an old checkpoint as the latest, serve entries that do not match its
// root, fail entry reads, alter receipt proofs, refuse consistency proofs,
// hold add-entry at a gate, or answer entry reads after a delay. It counts
// the requests of each route and the most it had in flight at once.
//
// It is test code: only _test.go files may import it (TestNotImported
// checks).
package testlog

import (
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

// Origin is the origin line of every test log's checkpoints.
const Origin = "test.example/log"

// Token is the bearer token add-entry requires.
const Token = "write-token"

// Log is a running test log. Its exported fields are set by New and must
// not be changed; its switches are set with the Set methods, safe to call
// while the server is handling requests.
type Log struct {
	// URL is the base URL of the log's HTTP API.
	URL string
	// Origin is the checkpoints' origin line (the constant Origin).
	Origin string
	// VKey is the log's note verifier key and Verifier the verifier.
	VKey     string
	Verifier note.Verifier
	// Token is the bearer token add-entry requires (the constant Token).
	Token string
	// WitnessVKeys are the verifier keys of the witnesses that cosign every
	// checkpoint; Policy names them w0, w1, ...
	WitnessVKeys []string

	t         testing.TB
	signer    note.Signer
	witnesses []note.Signer

	mu      sync.Mutex
	entries [][]byte
	tree    *testonly.Tree
	byHash  map[[32]byte]uint64
	latest  []byte            // the checkpoint note served as latest
	archive map[uint64][]byte // published checkpoints by size
	// tamperEntry, when set, changes entries as they are served.
	tamperEntry func(index uint64, e []byte) []byte
	// failEntriesFrom, when > 0, makes /v1/entries answer 500 from there.
	failEntriesFrom uint64
	// badProof, when it returns true for an index, makes add-entry answer
	// with a receipt whose first proof hash is altered.
	badProof func(index uint64) bool
	// gate, when set, is received from before each add-entry is handled.
	gate chan struct{}
	// refuseConsistency, when not 0, is the status of every answer to
	// /v1/proof/consistency.
	refuseConsistency int
	// entriesDelay is how long /v1/entries waits before it answers.
	entriesDelay time.Duration
	// requests and inFlight count requests by route pattern; maxInFlight
	// is the most in flight at once.
	requests, inFlight, maxInFlight map[string]int
	// stop is closed when the test ends.
	stop chan struct{}
}

// New starts an empty log, cosigned by the given number of witnesses
// (named witness0.example, witness1.example, ...), with its empty
// checkpoint published. It is closed when the test ends.
func New(t testing.TB, witnesses int) *Log {
	t.Helper()
	l := &Log{t: t, Origin: Origin, Token: Token, byHash: map[[32]byte]uint64{}, archive: map[uint64][]byte{},
		requests: map[string]int{}, inFlight: map[string]int{}, maxInFlight: map[string]int{}}
	skey, vkey, err := checkpoint.GenerateKey(l.Origin)
	if err != nil {
		t.Fatal(err)
	}
	l.VKey = vkey
	if l.signer, err = checkpoint.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if l.Verifier, err = checkpoint.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	for i := range witnesses {
		ws, wv, err := checkpoint.GenerateCosignerKey(fmt.Sprintf("witness%d.example", i))
		if err != nil {
			t.Fatal(err)
		}
		s, err := checkpoint.NewCosigner(ws)
		if err != nil {
			t.Fatal(err)
		}
		l.witnesses = append(l.witnesses, s)
		l.WitnessVKeys = append(l.WitnessVKeys, wv)
	}
	l.tree = testonly.New(rfc6962.DefaultHasher)
	l.mu.Lock()
	l.publish()
	l.mu.Unlock()
	l.stop = make(chan struct{})
	srv := httptest.NewServer(l.handler())
	l.URL = srv.URL
	t.Cleanup(srv.Close)
	// Runs before srv.Close: requests still held at the gate end, so that
	// Close, which waits for them, cannot hang the test.
	t.Cleanup(func() { close(l.stop) })
	return l
}

// Policy returns a tlog-policy text for the log requiring all witnesses.
func (l *Log) Policy() string {
	s := "log " + l.VKey + "\n"
	var names string
	for i, v := range l.WitnessVKeys {
		s += fmt.Sprintf("witness w%d %s\n", i, v)
		names += fmt.Sprintf(" w%d", i)
	}
	if len(l.WitnessVKeys) == 0 {
		return s + "quorum none\n"
	}
	return s + "group all-witnesses all" + names + "\nquorum all-witnesses\n"
}

// Size returns the size of the current tree (published or not).
func (l *Log) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tree.Size()
}

// Add appends entries (as a writer would; an entry already in the log is
// not added again) and publishes a checkpoint of the new tree.
func (l *Log) Add(entries ...[]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range entries {
		l.appendLocked(e)
	}
	l.publish()
}

// Rewrite replaces entry i and rebuilds the tree, so that history changes,
// without publishing: call Republish to sign and serve the new tree.
func (l *Log) Rewrite(i int, e []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[i] = e
	l.tree = testonly.New(rfc6962.DefaultHasher)
	l.byHash = map[[32]byte]uint64{}
	for j, e := range l.entries {
		h := checkpoint.LeafHash(e)
		l.tree.Append(h[:])
		l.byHash[h] = uint64(j)
	}
}

// Republish signs the current (possibly rewritten) tree and serves it as
// the latest checkpoint and in the archive.
func (l *Log) Republish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.publish()
}

// ServeOld serves the archived checkpoint of size as the latest.
func (l *Log) ServeOld(size uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.latest = l.archive[size]
}

// SetArchive replaces the archived checkpoint of size with a fresh
// signature over root.
func (l *Log) SetArchive(size uint64, root [32]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.archive[size] = l.sign(size, root[:])
}

// SetTamperEntry makes /v1/entries serve f(index, entry) instead of each
// entry; nil serves the entries as they are.
func (l *Log) SetTamperEntry(f func(index uint64, e []byte) []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tamperEntry = f
}

// SetFailEntriesFrom makes /v1/entries answer 500 for a range that reaches
// index n or beyond; 0 turns it off.
func (l *Log) SetFailEntriesFrom(n uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failEntriesFrom = n
}

// SetBadProof makes add-entry answer, for an index where f returns true,
// with a receipt whose first proof hash is altered; nil turns it off.
func (l *Log) SetBadProof(f func(index uint64) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.badProof = f
}

// SetGate makes each add-entry, after reading its body, wait to receive from
// gate (or for its client to go away, or for the test to end, when it
// answers 503); nil turns the gate off.
func (l *Log) SetGate(gate chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gate = gate
}

// SetRefuseConsistency makes /v1/proof/consistency answer every request with
// status code (e.g. 400); 0 turns it off.
func (l *Log) SetRefuseConsistency(code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refuseConsistency = code
}

// SetEntriesDelay makes /v1/entries wait d before it answers (as a distant
// log would), without holding the log's lock; 0 turns it off.
func (l *Log) SetEntriesDelay(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entriesDelay = d
}

// Requests returns how many requests the route (a pattern such as
// "GET /v1/entries") has received.
func (l *Log) Requests(route string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests[route]
}

// MaxInFlight returns the largest number of requests to route that the log
// was handling at the same time.
func (l *Log) MaxInFlight(route string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxInFlight[route]
}

// sign signs a checkpoint of size and root with the log key and every
// witness. Callers hold mu.
func (l *Log) sign(size uint64, root []byte) []byte {
	c := checkpoint.Checkpoint{Origin: l.Origin, Size: size, Hash: [32]byte(root)}
	n, err := checkpoint.Sign(c, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, w := range l.witnesses {
		line, err := checkpoint.SignatureLine(c.Marshal(), w)
		if err != nil {
			l.t.Fatal(err)
		}
		if n, err = checkpoint.AppendSignatures(n, line); err != nil {
			l.t.Fatal(err)
		}
	}
	return n
}

// publish signs the current tree and serves it as latest and archived.
// Callers hold mu.
func (l *Log) publish() {
	n := l.sign(l.tree.Size(), l.tree.Hash())
	l.latest = n
	l.archive[l.tree.Size()] = n
}

// appendLocked appends e unless it is in the log already, and returns its
// index. Callers hold mu.
func (l *Log) appendLocked(e []byte) uint64 {
	h := checkpoint.LeafHash(e)
	if i, ok := l.byHash[h]; ok {
		return i
	}
	i := uint64(len(l.entries))
	l.entries = append(l.entries, e)
	l.tree.Append(h[:])
	l.byHash[h] = i
	return i
}

// receiptLocked returns the receipt of entry i under the archived
// checkpoint of size. Callers hold mu.
func (l *Log) receiptLocked(i, size uint64) []byte {
	p, err := l.tree.InclusionProof(i, size)
	if err != nil {
		l.t.Error(err)
	}
	r := &checkpoint.Receipt{Index: i, Proof: p, Checkpoint: l.archive[size]}
	return r.Marshal()
}
