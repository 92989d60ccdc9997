package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
)

// oneEventBundle makes a bundle of one private event in a log of one entry
// (whose root is the entry's leaf hash and whose inclusion proof is
// empty), signed by a fresh log key and cosigned by a fresh witness.
func oneEventBundle(t testing.TB) (bundle []byte, logKey note.Verifier, policy *checkpoint.Policy) {
	t.Helper()
	r, err := ParseRequest([]byte(`{"type":"t","actor":"a","subject":"s","occurred_at":"2026-05-01T00:00:00Z","data":{"x":1},"private":true}`))
	if err != nil {
		t.Fatal(err)
	}
	salt := [SaltSize]byte{42}
	entry, _, err := r.Entry(time.Date(2026, 5, 1, 0, 0, 1, 0, time.UTC), salt)
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := checkpoint.GenerateKey("example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := checkpoint.NewSigner(skey)
	logKey, _ = checkpoint.NewVerifier(vkey)
	wskey, wvkey, err := checkpoint.GenerateCosignerKey("witness.example")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, _ := checkpoint.NewCosigner(wskey)
	signed, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: "example.com/log", Size: 1, Hash: checkpoint.LeafHash(entry)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	body, _, _ := checkpoint.SplitNote(signed)
	line, err := checkpoint.SignatureLine(body, cosigner)
	if err != nil {
		t.Fatal(err)
	}
	if signed, err = checkpoint.AppendSignatures(signed, line); err != nil {
		t.Fatal(err)
	}
	policyText := "log " + vkey + "\nwitness w " + wvkey + "\nquorum w\n"
	if policy, err = checkpoint.ParsePolicy([]byte(policyText)); err != nil {
		t.Fatal(err)
	}
	lh := checkpoint.LeafHash(entry)
	bu := &Bundle{Format: BundleFormat, Origin: "example.com/log", LogKey: vkey, CreatedAt: "2026-05-02T00:00:00Z",
		Query: BundleQuery{Subject: "s"}, Checkpoint: string(signed), Policy: policyText,
		Events: []BundleEvent{{Index: 0, LeafHash: lh[:], Entry: string(entry),
			Receipt: string((&checkpoint.Receipt{Index: 0, Proof: [][]byte{}, Checkpoint: signed}).Marshal()),
			Data:    json.RawMessage(`{"x":1}`), Salt: salt[:]}}}
	if bundle, err = json.Marshal(bu); err != nil {
		t.Fatal(err)
	}
	return bundle, logKey, policy
}

func TestVerifyBundle(t *testing.T) {
	raw, key, policy := oneEventBundle(t)
	bu, err := ParseBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	res, err := VerifyBundle(bu, key, policy)
	if err != nil {
		t.Fatalf("VerifyBundle: %v", err)
	}
	if len(res.Events) != 1 || !res.Events[0].DataVerified || len(res.Latest.Cosignatures) != 1 {
		t.Errorf("result: %+v", res)
	}
	rep := Report(bu, res)
	for _, want := range []string{"private, opened and verified", "cosigned by witness.example at", "| 0 | 2026-05-01T00:00:00Z | t | a | s |"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	if !strings.Contains(Report(bu, nil), "has not been verified") {
		t.Errorf("an unverified report does not say so")
	}
	for _, tc := range []struct {
		name   string
		change func(*Bundle)
		want   error
	}{
		{"data", func(b *Bundle) { b.Events[0].Data = json.RawMessage(`{"x":2}`) }, ErrCommitment},
		{"salt length", func(b *Bundle) { b.Events[0].Salt = b.Events[0].Salt[:31] }, ErrBundle},
		{"erased with data", func(b *Bundle) { b.Events[0].Erased = &Erasure{At: "x", By: "y"} }, ErrBundle},
		{"outside the query", func(b *Bundle) { b.Query.From = "2026-06-01T00:00:00Z" }, ErrBundle},
		{"bad query time", func(b *Bundle) { b.Query.To = "June" }, ErrBundle},
		{"leaf hash", func(b *Bundle) { b.Events[0].LeafHash[0] ^= 1 }, ErrBundle},
		{"newer receipt", func(b *Bundle) { b.Checkpoint = "x" }, checkpoint.ErrMalformed},
	} {
		b, _ := ParseBundle(raw)
		tc.change(b)
		if _, err := VerifyBundle(b, key, policy); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Without the witness's cosignature the quorum fails.
	b, _ := ParseBundle(raw)
	b.Checkpoint = b.Checkpoint[:strings.Index(b.Checkpoint, "— witness")]
	if _, err := VerifyBundle(b, key, policy); !errors.Is(err, checkpoint.ErrQuorum) {
		t.Errorf("no cosignature: %v, want ErrQuorum", err)
	}
	for _, bad := range []string{`{"format":"other"}`, `{"format":"evident-evidence/v1","extra":1}`, `{"format":"evident-evidence/v1"} {}`} {
		if _, err := ParseBundle([]byte(bad)); !errors.Is(err, ErrBundle) {
			t.Errorf("ParseBundle(%s): %v, want ErrBundle", bad, err)
		}
	}
}

// FuzzVerifyBundle checks that no bundle makes ParseBundle, VerifyBundle
// or Report panic, and that whatever verifies has its entries' events.
func FuzzVerifyBundle(f *testing.F) {
	raw, key, policy := oneEventBundle(f)
	f.Add(raw)
	f.Add([]byte(`{"format":"evident-evidence/v1","events":[{"entry":"{}","receipt":""}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bu, err := ParseBundle(b)
		if err != nil {
			return
		}
		res, err := VerifyBundle(bu, key, policy)
		_ = Report(bu, res)
		if err == nil && len(res.Events) != len(bu.Events) {
			t.Fatalf("verified %d of %d events", len(res.Events), len(bu.Events))
		}
	})
}
