package log

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"

	"github.com/evidentlog/evident/checkpoint"
)

// copyTrillian copies the SQLite files of Trillian's tree from dir to dst
// (a backup, taken while the log is stopped).
func copyTrillian(t *testing.T, dir, dst string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dst, "trillian.db"+suffix))
		in, err := os.Open(filepath.Join(dir, "trillian.db"+suffix))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, "trillian.db"+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStallOnRollback restores an old copy of Trillian's tree under a log
// that published more: the publisher must stall, keep serving the last good
// checkpoint, turn /healthz red, and never sign again, even when the
// rolled-back tree regrows to a different tree of the same size or larger.
func TestStallOnRollback(t *testing.T) {
	tl := newTestLog(t, nil)
	for i := 1; i <= 2; i++ {
		if code, r := tl.add(entryBytes(i), ""); code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	backup := t.TempDir()
	tl.stop()
	copyTrillian(t, tl.dir, backup)
	tl.start()
	for i := 3; i <= 5; i++ {
		if code, r := tl.add(entryBytes(i), ""); code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	good := tl.checkpoint()
	tl.stop()
	copyTrillian(t, backup, tl.dir)

	// The rolled-back tree (size 2) is smaller than the published one.
	tl.start()
	waitFor(t, "/healthz to report the stall", func() bool {
		code, body := tl.get("/healthz")
		return code == 503 && strings.Contains(string(body), "stalled")
	})
	// A stalled log refuses writes: no receipt could come.
	if code, r := tl.add(entryBytes(100), "?wait=false"); code != 503 {
		t.Errorf("add to a stalled log: %d %s, want 503", code, r.Error)
	}
	for i := 100; i < 104; i++ {
		if _, err := tl.be.Log.QueueLeaf(t.Context(), &trillian.QueueLeafRequest{LogId: tl.be.TreeID, Leaf: &trillian.LogLeaf{LeafValue: entryBytes(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "Trillian to regrow", func() bool { return tl.snapshot().trillian == 6 })
	time.Sleep(5 * tl.log.cfg.CheckpointInterval)
	if got := tl.checkpoint(); !bytes.Equal(got.Note, good.Note) {
		t.Errorf("a stalled log serves\n%s\nwant the last good checkpoint\n%s", got.Note, good.Note)
	}
	if latest, err := tl.state.LatestCheckpoint(t.Context(), tl.log.Origin()); err != nil || latest.Size != 5 {
		t.Errorf("a stalled log stored a checkpoint of size %d (%v), want 5", latest.Size, err)
	}
	tl.stop()

	// Same again, but Trillian regrows past the published size before the
	// publisher looks: the consistency proof must fail.
	copyTrillian(t, backup, tl.dir)
	tl.mod = func(c *Config) { c.CheckpointInterval = time.Hour }
	tl.start()
	for i := 200; i < 206; i++ {
		if code, r := tl.add(entryBytes(i), "?wait=false"); code != 202 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
	}
	waitFor(t, "Trillian to regrow", func() bool { return tl.snapshot().trillian == 8 })
	err := tl.log.pub.round(t.Context())
	var inc *InconsistencyError
	if !errors.As(err, &inc) || inc.Size != 8 || len(inc.Proof) == 0 || !bytes.Equal(inc.Published, good.Note) {
		t.Fatalf("publisher round on a forked tree: %v, want an InconsistencyError with the proof and the published note", err)
	}
	if got := tl.checkpoint(); !bytes.Equal(got.Note, good.Note) {
		t.Errorf("after a failed round /checkpoint changed")
	}
}

// TestCosign publishes through a Cosign hook that acts as a witness: it
// checks the log's consistency proofs and adds a cosignature/v1 line. While
// the hook fails, nothing is published and /healthz is red.
func TestCosign(t *testing.T) {
	cosigner, wv := newCosigner(t, "witness.example/w1")
	var (
		failing atomic.Bool
		mu      sync.Mutex
		held    checkpoint.Checkpoint // the witness's state
		calls   int
	)
	cosign := func(ctx context.Context, signed []byte, proof func(context.Context, uint64) ([][]byte, error)) ([]byte, error) {
		if failing.Load() {
			return nil, errors.New("witness unreachable")
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		body, _, err := checkpoint.SplitNote(signed)
		if err != nil {
			return nil, err
		}
		cp, err := checkpoint.Parse(body)
		if err != nil {
			return nil, err
		}
		if calls > 1 {
			p, err := proof(ctx, held.Size)
			if err != nil {
				return nil, err
			}
			if err := checkpoint.VerifyConsistency(held.Size, cp.Size, held.Hash, cp.Hash, p); err != nil {
				return nil, err
			}
		}
		held = cp
		line, err := checkpoint.SignatureLine(body, cosigner)
		if err != nil {
			return nil, err
		}
		return checkpoint.AppendSignatures(signed, line)
	}
	tl := newTestLog(t, func(c *Config) { c.Cosign = cosign })
	for i := 1; i <= 5; i++ {
		code, r := tl.add(entryBytes(i), "")
		if code != 200 {
			t.Fatalf("add: %d %s", code, r.Error)
		}
		rec, err := checkpoint.ParseReceipt([]byte(r.Receipt))
		if err != nil {
			t.Fatal(err)
		}
		s, err := checkpoint.Open(rec.Checkpoint, tl.verifier, wv)
		if err != nil || len(s.Cosignatures) != 1 {
			t.Fatalf("receipt's checkpoint: %v, %d cosignatures; want 1", err, len(s.Cosignatures))
		}
	}
	if s, err := checkpoint.Open(tl.checkpoint().Note, tl.verifier, wv); err != nil || len(s.Cosignatures) != 1 || s.Size != 5 {
		t.Fatalf("/checkpoint: %v, want size 5 with a cosignature", err)
	}

	failing.Store(true)
	if code, r := tl.add(entryBytes(6), "?wait=false"); code != 202 {
		t.Fatalf("add: %d %s", code, r.Error)
	}
	waitFor(t, "/healthz to report the witness", func() bool {
		code, body := tl.get("/healthz")
		return code == 503 && strings.Contains(string(body), "witness unreachable")
	})
	if s := tl.checkpoint(); s.Size != 5 {
		t.Errorf("published size %d while the cosigner fails, want 5", s.Size)
	}
	failing.Store(false)
	waitFor(t, "publication after the witness is back", func() bool { return tl.checkpoint().Size == 6 })
	if code, _ := tl.get("/healthz"); code != 200 {
		t.Errorf("/healthz after recovery: %d", code)
	}
	checkChain(t, tl)
}
