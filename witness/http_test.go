package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidentlog/evident/checkpoint"
)

func post(t *testing.T, url string, body []byte) (*http.Response, string) {
	t.Helper()
	return read(t)(http.Post(url+"/add-checkpoint", "text/plain", bytes.NewReader(body)))
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	return read(t)(http.Get(url))
}

// read returns a function that reads a whole answer, failing t on error.
func read(t *testing.T) func(*http.Response, error) (*http.Response, string) {
	return func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
}

// mustAdd submits l's current checkpoint from old and fails unless it is
// cosigned.
func mustAdd(t *testing.T, w *testWitness, l *testLog, old int64) {
	t.Helper()
	resp, body := post(t, w.url, l.request(old).Marshal())
	if resp.StatusCode != 200 {
		t.Fatalf("add-checkpoint %d -> %d: %d %s", old, l.size, resp.StatusCode, body)
	}
}

// signText signs arbitrary note text with l's key, bypassing the checks of
// checkpoint.Sign.
func signText(t *testing.T, l *testLog, text string) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAddCheckpointConformance runs every status code and body rule of
// tlog-witness add-checkpoint against the real handler on loopback.
func TestAddCheckpointConformance(t *testing.T) {
	proofLine := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name string
		// prep brings the witness (following l) into a state; l is at size 5
		// when body is called unless prep grows it.
		prep     func(t *testing.T, w *testWitness, l *testLog)
		body     func(t *testing.T, l *testLog) []byte
		code     int
		ctype    string // want Content-Type prefix, if set
		respBody string // want exact body, if set
		evidence int    // pieces of evidence kept afterwards
	}{
		{
			name: "first checkpoint from 0",
			body: func(t *testing.T, l *testLog) []byte { return l.request(0).Marshal() },
			code: 200, ctype: "text/plain",
		},
		{
			name: "grow with a valid proof",
			prep: func(t *testing.T, w *testWitness, l *testLog) { mustAdd(t, w, l, 0); l.grow(4) },
			body: func(t *testing.T, l *testLog) []byte { return l.request(5).Marshal() },
			code: 200,
		},
		{
			name: "same checkpoint again",
			prep: func(t *testing.T, w *testWitness, l *testLog) { mustAdd(t, w, l, 0) },
			body: func(t *testing.T, l *testLog) []byte { return l.request(5).Marshal() },
			code: 200,
		},
		{
			name: "a note with 100 signatures",
			prep: func(t *testing.T, w *testWitness, l *testLog) { mustAdd(t, w, l, 0); l.grow(4) },
			body: func(t *testing.T, l *testLog) []byte {
				r := l.request(5)
				r.Checkpoint = withSignatures(t, r.Checkpoint, checkpoint.MaxSignatures-1)
				return r.Marshal()
			},
			code: 200,
		},
		{
			name: "empty tree",
			body: func(t *testing.T, l *testLog) []byte {
				return (&Request{Checkpoint: l.checkpointAt(0)}).Marshal()
			},
			code: 200,
		},
		{
			name: "malformed: no blank line",
			body: func(t *testing.T, l *testLog) []byte { return []byte("old 0\n") },
			code: 400,
		},
		{
			name: "malformed: leading zero in old size",
			body: func(t *testing.T, l *testLog) []byte {
				return append([]byte("old 00\n\n"), l.checkpoint()...)
			},
			code: 400,
		},
		{
			name: "malformed: proof line not a hash",
			body: func(t *testing.T, l *testLog) []byte {
				return append([]byte("old 0\nAAAA\n\n"), l.checkpoint()...)
			},
			code: 400,
		},
		{
			name: "malformed: 64 proof lines",
			body: func(t *testing.T, l *testLog) []byte {
				return append([]byte("old 1\n"+strings.Repeat(proofLine+"\n", 64)+"\n"), l.checkpoint()...)
			},
			code: 400,
		},
		{
			name: "malformed: checkpoint body",
			body: func(t *testing.T, l *testLog) []byte {
				return append([]byte("old 0\n\n"), signText(t, l, l.origin+"\n05\n"+base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n")...)
			},
			code: 400,
		},
		{
			name: "old size greater than the checkpoint's",
			body: func(t *testing.T, l *testLog) []byte {
				return (&Request{OldSize: 6, Checkpoint: l.checkpoint()}).Marshal()
			},
			code: 400,
		},
		{
			name: "signed by another key of the same name",
			body: func(t *testing.T, l *testLog) []byte {
				other := newTestLog(t, l.origin).grow(5)
				return other.request(0).Marshal()
			},
			code: 403,
		},
		{
			name: "unknown origin",
			body: func(t *testing.T, l *testLog) []byte {
				return newTestLog(t, "example.com/unknown").grow(5).request(0).Marshal()
			},
			code: 404,
		},
		{
			name: "old size differs from the held size",
			prep: func(t *testing.T, w *testWitness, l *testLog) { mustAdd(t, w, l, 0); l.grow(4) },
			body: func(t *testing.T, l *testLog) []byte { return l.request(3).Marshal() },
			code: 409, ctype: SizeContentType, respBody: "5\n",
		},
		{
			name: "old size given but nothing held",
			body: func(t *testing.T, l *testLog) []byte { return l.request(3).Marshal() },
			code: 409, ctype: SizeContentType, respBody: "0\n",
		},
		{
			name: "consistency proof does not verify",
			prep: func(t *testing.T, w *testWitness, l *testLog) { mustAdd(t, w, l, 0); l.grow(4) },
			body: func(t *testing.T, l *testLog) []byte {
				r := l.request(5)
				r.Proof[0] = make([]byte, 32)
				return r.Marshal()
			},
			code: 422, // anyone can send a junk proof: not evidence
		},
		{
			name: "consistency proof missing",
			prep: func(t *testing.T, w *testWitness, l *testLog) { mustAdd(t, w, l, 0); l.grow(4) },
			body: func(t *testing.T, l *testLog) []byte {
				return (&Request{OldSize: 5, Checkpoint: l.checkpoint()}).Marshal()
			},
			code: 422,
		},
		{
			name: "same size, different root",
			prep: func(t *testing.T, w *testWitness, l *testLog) { mustAdd(t, w, l, 0) },
			body: func(t *testing.T, l *testLog) []byte {
				f := l.rewrite("evil").grow(5)
				return f.request(5).Marshal()
			},
			code: 422, evidence: 1,
		},
		{
			name: "same size, different root, stale old size",
			prep: func(t *testing.T, w *testWitness, l *testLog) { mustAdd(t, w, l, 0) },
			body: func(t *testing.T, l *testLog) []byte {
				f := l.rewrite("evil").grow(5)
				return f.request(0).Marshal()
			},
			code: 409, ctype: SizeContentType, respBody: "5\n", evidence: 1,
		},
		{
			name: "size 0 without the empty root",
			body: func(t *testing.T, l *testLog) []byte {
				return append([]byte("old 0\n\n"), signText(t, l, l.origin+"\n0\n"+base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n")...)
			},
			code: 422,
		},
		{
			name: "size 0 without the empty root, bad signature",
			body: func(t *testing.T, l *testLog) []byte {
				other := newTestLog(t, l.origin)
				return append([]byte("old 0\n\n"), signText(t, other, l.origin+"\n0\n"+base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n")...)
			},
			code: 403,
		},
		{
			name: "old size 0 with a proof",
			body: func(t *testing.T, l *testLog) []byte {
				return append([]byte("old 0\n"+proofLine+"\n\n"), l.checkpoint()...)
			},
			code: 422,
		},
		{
			name: "same size with a proof",
			prep: func(t *testing.T, w *testWitness, l *testLog) { mustAdd(t, w, l, 0) },
			body: func(t *testing.T, l *testLog) []byte {
				return append([]byte("old 5\n"+proofLine+"\n\n"), l.checkpoint()...)
			},
			code: 422,
		},
		{
			name: "body too large",
			body: func(t *testing.T, l *testLog) []byte {
				return append([]byte("old 0\n\n"), bytes.Repeat([]byte("x"), MaxRequestSize)...)
			},
			code: 413,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTestLog(t, "example.com/log").grow(5)
			w := newTestWitness(t, "example.com/witness", []*testLog{l})
			if tt.prep != nil {
				tt.prep(t, w, l)
			}
			before, _, err := w.db.WitnessState(t.Context(), l.origin)
			if err != nil {
				t.Fatal(err)
			}
			resp, body := post(t, w.url, tt.body(t, l))
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tt.code)
			}
			if ct := resp.Header.Get("Content-Type"); tt.ctype != "" && !strings.HasPrefix(ct, tt.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tt.ctype)
			}
			if tt.respBody != "" && body != tt.respBody {
				t.Errorf("body %q, want %q", body, tt.respBody)
			}
			after, _, err := w.db.WitnessState(t.Context(), l.origin)
			if err != nil {
				t.Fatal(err)
			}
			if tt.code == 200 {
				checkCosignature(t, w, body, after.Note)
				if _, lines, _ := checkpoint.SplitNote(after.Note); len(lines) != 2 {
					t.Errorf("stored note has %d signature lines, want the log's and the witness's", len(lines))
				}
			} else if after.Size != before.Size || after.Root != before.Root || !bytes.Equal(after.Note, before.Note) {
				t.Errorf("a refused request changed the state from %d to %d", before.Size, after.Size)
			}
			ev, err := w.ListEvidence(t.Context(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(ev) != tt.evidence {
				t.Errorf("%d pieces of evidence, want %d", len(ev), tt.evidence)
			}
		})
	}
}

// checkCosignature checks a 200 answer: exactly one cosignature line by the
// witness, valid over the stored checkpoint's body, which the stored note
// carries.
func checkCosignature(t *testing.T, w *testWitness, line string, stored []byte) {
	t.Helper()
	if !strings.HasPrefix(line, "— example.com/witness ") || strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("answer %q is not one cosignature line", line)
	}
	body, _, err := checkpoint.SplitNote(stored)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.VerifySignatureLine(body, []byte(line), w.verifier(t)); err != nil {
		t.Errorf("cosignature: %v", err)
	}
	if !bytes.HasSuffix(stored, []byte(line)) {
		t.Errorf("stored checkpoint does not end with the cosignature")
	}
}

// withSignatures returns signedNote with n more signature lines, by keys
// the witness does not know.
func withSignatures(t *testing.T, signedNote []byte, n int) []byte {
	t.Helper()
	body, _, err := checkpoint.SplitNote(signedNote)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for i := range n {
		skey, _, err := checkpoint.GenerateCosignerKey(fmt.Sprintf("other.example/w%d", i))
		if err != nil {
			t.Fatal(err)
		}
		s, err := checkpoint.NewCosigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		line, err := checkpoint.SignatureLine(body, s)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	out, err := checkpoint.AppendSignatures(signedNote, lines...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRateLimitReplays: anyone can replay a log's public checkpoints, the
// one the witness holds and older ones, and send them with a stale old size
// or a junk proof; none of that is charged to the log's budget or writes
// the state, so the log's next checkpoint is still cosigned. Only
// checkpoints that advance the state are charged.
func TestRateLimitReplays(t *testing.T) {
	l := newTestLog(t, "example.com/log").grow(3)
	w := newTestWitness(t, "example.com/witness", []*testLog{l}, func(c *Config) { c.RateLimit, c.RateBurst = 0.001, 2 })
	old := l.checkpoint()
	mustAdd(t, w, l, 0)
	l.grow(2)
	mustAdd(t, w, l, 3) // the second and last request of the budget
	held, _, err := w.db.WitnessState(t.Context(), l.origin)
	if err != nil {
		t.Fatal(err)
	}
	l.grow(4)
	junk := l.request(5)
	junk.Proof[0] = make([]byte, 32)
	replays := []struct {
		req  *Request
		code int
	}{
		{&Request{OldSize: 5, Checkpoint: held.Note}, 200}, // the held checkpoint, as served
		{&Request{OldSize: 5, Checkpoint: l.checkpointAt(5)}, 200},
		{&Request{OldSize: 0, Checkpoint: l.checkpointAt(5)}, 409},
		{&Request{OldSize: 3, Checkpoint: old}, 409},
		{&Request{OldSize: 0, Checkpoint: old}, 409},
		{junk, 422},
	}
	for range 30 {
		for _, r := range replays {
			if resp, body := post(t, w.url, r.req.Marshal()); resp.StatusCode != r.code {
				t.Fatalf("replay of size %d from %d: %d %q, want %d", 5, r.req.OldSize, resp.StatusCode, body, r.code)
			}
		}
	}
	after, _, err := w.db.WitnessState(t.Context(), l.origin)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(held, after); diff != "" {
		t.Errorf("replays wrote the state (-before +after):\n%s", diff)
	}
	// The budget is untouched but empty: the next advance is refused.
	resp, body := post(t, w.url, l.request(5).Marshal())
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third advance: %d %q Retry-After %q; want 429 with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	// Forged requests have no budget to use.
	other := newTestLog(t, "example.com/log").grow(5)
	if resp, _ := post(t, w.url, other.request(0).Marshal()); resp.StatusCode != 403 {
		t.Errorf("forged request while limited: %d, want 403", resp.StatusCode)
	}
}

// TestReplayNotCharged: 60 replays of a log's public checkpoint leave the
// log's budget to the log.
func TestReplayNotCharged(t *testing.T) {
	l := newTestLog(t, "example.com/log").grow(5)
	w := newTestWitness(t, "example.com/witness", []*testLog{l}, func(c *Config) { c.RateLimit, c.RateBurst = 0.001, 2 })
	mustAdd(t, w, l, 0)
	for range 60 {
		mustAdd(t, w, l, 5)
	}
	l.grow(1)
	mustAdd(t, w, l, 5)
}

func TestGetCheckpointEvidenceStatus(t *testing.T) {
	l := newTestLog(t, "example.com/log").grow(5)
	w := newTestWitness(t, "example.com/witness", []*testLog{l})
	sum := sha256.Sum256([]byte(l.origin))
	path := fmt.Sprintf("%s/%x/checkpoint", w.url, sum)
	if resp, _ := get(t, path); resp.StatusCode != 404 {
		t.Errorf("checkpoint before any: %d, want 404", resp.StatusCode)
	}
	mustAdd(t, w, l, 0)
	resp, body := get(t, path)
	if resp.StatusCode != 200 {
		t.Fatalf("GET checkpoint: %d %s", resp.StatusCode, body)
	}
	s, err := checkpoint.Open([]byte(body), mustVerifier(t, l.vkey), w.verifier(t))
	if err != nil || s.Size != 5 || len(s.Cosignatures) != 1 {
		t.Fatalf("served checkpoint: %+v, %v; want size 5 with our cosignature", s, err)
	}
	if resp, _ := get(t, fmt.Sprintf("%s/%x/checkpoint", w.url, sha256.Sum256([]byte("nope")))); resp.StatusCode != 404 {
		t.Errorf("unknown origin hash: %d, want 404", resp.StatusCode)
	}

	resp, body = get(t, w.url+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, "example.com/log") || !strings.Contains(body, w.VKey()) {
		t.Errorf("status page: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, w.url+"/nothing"); resp.StatusCode != 404 {
		t.Errorf("GET /nothing: %d, want 404", resp.StatusCode)
	}
	if resp, _ := get(t, w.url+"/add-checkpoint"); resp.StatusCode != 405 {
		t.Errorf("GET /add-checkpoint: %d, want 405", resp.StatusCode)
	}

	f := l.rewrite("evil").grow(5)
	if resp, _ := post(t, w.url, f.request(5).Marshal()); resp.StatusCode != 422 {
		t.Fatalf("fork: %d, want 422", resp.StatusCode)
	}
	resp, body = get(t, w.url+"/evidence")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /evidence: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got struct{ Evidence []Evidence }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Evidence) != 1 {
		t.Fatalf("evidence: %s", body)
	}
	proven, err := VerifyEvidence(&got.Evidence[0], mustVerifier(t, l.vkey))
	if err != nil || !proven {
		t.Errorf("VerifyEvidence of served evidence = %v, %v; want proven", proven, err)
	}
	if !strings.Contains(body, `"proof": [],`) {
		t.Errorf("evidence without a proof does not say \"proof\": []:\n%s", body)
	}
	if resp, body = get(t, fmt.Sprintf("%s/evidence?after=%d", w.url, got.Evidence[0].ID)); !strings.Contains(body, `"evidence": []`) {
		t.Errorf("evidence after the last: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, w.url+"/evidence?after=x"); resp.StatusCode != 400 {
		t.Errorf("evidence?after=x: %d, want 400", resp.StatusCode)
	}
}

func mustVerifier(t testing.TB, vkey string) note.Verifier {
	t.Helper()
	v, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
