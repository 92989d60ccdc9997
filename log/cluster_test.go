package log

import (
	"context"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/evidentlog/evident/checkpoint"
)

// TestTwoServersOneLog runs two personalities on one Trillian tree and one
// state database (the topology of several stateless servers behind a load
// balancer), with witness-like cosignatures that differ between servers, and
// writes through both at once: every receipt verifies, and the stored
// checkpoints form one consistent chain.
func TestTwoServersOneLog(t *testing.T) {
	cosigner, wv := newCosigner(t, "witness.example/w")
	cosign := func(_ context.Context, signed []byte, _ func(context.Context, uint64) ([][]byte, error)) ([]byte, error) {
		body, _, err := checkpoint.SplitNote(signed)
		if err != nil {
			return nil, err
		}
		line, err := checkpoint.SignatureLine(body, cosigner)
		if err != nil {
			return nil, err
		}
		return checkpoint.AppendSignatures(signed, line)
	}
	a := newTestLog(t, func(c *Config) { c.Cosign = cosign })
	cfg := a.log.cfg
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bsrv := httptest.NewServer(b.Handler())
	defer bsrv.Close()
	bl := *a
	bl.log, bl.srv = b, bsrv

	j := &journal{index: map[string]uint64{}}
	var receipts sync.Map
	var wg sync.WaitGroup
	var dups atomic.Int64
	for k, tl := range []*testLog{a, &bl} {
		var entries [][]byte
		for i := range 150 {
			entries = append(entries, entryBytes(1000*(k+1)+i))
		}
		entries = append(entries, entryBytes(7)) // the same entry through both
		wg.Go(func() { dups.Add(int64(submitAll(t, tl, j, &receipts, entries, 8))) })
	}
	wg.Wait()
	if got := dups.Load(); got != 1 {
		t.Errorf("%d answers with \"duplicate\": true, want 1 (entry 7 through both)", got)
	}
	n := uint64(len(j.index))
	waitFor(t, "both servers to publish everything", func() bool {
		return a.checkpoint().Size == n && bl.checkpoint().Size == n
	})
	checkWholeLog(t, a, j, &receipts)
	checkWholeLog(t, &bl, j, &receipts)
	for _, tl := range []*testLog{a, &bl} {
		if _, err := checkpoint.Open(tl.log.Checkpoint(), a.verifier, wv); err != nil {
			t.Errorf("checkpoint: %v", err)
		}
	}
}
