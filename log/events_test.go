package log

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/event"
	"github.com/evidentlog/evident/internal/testdb"
	"github.com/evidentlog/evident/storage"
)

// eventReply is the JSON of the event endpoints' answers, all fields.
type eventReply struct {
	LeafHash   []byte          `json:"leaf_hash"`
	ID         string          `json:"id"`
	Entry      string          `json:"entry"`
	Index      *uint64         `json:"index"`
	Duplicate  *bool           `json:"duplicate"`
	Receipt    string          `json:"receipt"`
	Salt       []byte          `json:"salt"`
	Data       json.RawMessage `json:"data"`
	Private    bool            `json:"private"`
	Status     string          `json:"status"`
	Erased     *event.Erasure  `json:"erased"`
	Subject    string          `json:"subject"`
	OccurredAt string          `json:"occurred_at"`
	Error      string          `json:"error"`
}

// call makes a request to the log; auth "" sends no token.
func (tl *testLog) call(method, path, auth string, body []byte) (int, []byte) {
	tl.t.Helper()
	req, err := http.NewRequest(method, tl.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		tl.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tl.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tl.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// event calls an event endpoint and decodes the answer.
func (tl *testLog) event(method, path, auth string, body string) (int, eventReply) {
	tl.t.Helper()
	code, b := tl.call(method, path, auth, []byte(body))
	var r eventReply
	if err := json.Unmarshal(b, &r); err != nil {
		tl.t.Fatalf("%s %s answered %d with non-JSON %q", method, path, code, b)
	}
	return code, r
}

func evt(subject, typ, actor, occurred, data string, extra ...string) string {
	s := fmt.Sprintf(`{"type":%q,"actor":%q,"subject":%q,"occurred_at":%q,"data":%s`, typ, actor, subject, occurred, data)
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

// checkReceipt verifies a receipt of entry offline.
func (tl *testLog) checkReceipt(entry []byte, receipt string) *checkpoint.Receipt {
	tl.t.Helper()
	r, err := checkpoint.ParseReceipt([]byte(receipt))
	if err != nil {
		tl.t.Fatalf("receipt: %v", err)
	}
	if _, err := checkpoint.VerifyReceipt(r, entry, tl.verifier, nil); err != nil {
		tl.t.Fatalf("receipt does not verify: %v", err)
	}
	return r
}

func TestEventsEndToEnd(t *testing.T) { runEvents(t, newTestLog(t, nil)) }

// TestEventsMySQL runs the same on MariaDB (Trillian and the state).
func TestEventsMySQL(t *testing.T) {
	dsn := testdb.MySQL(t)
	loadTrillianSchema(t, dsn)
	runEvents(t, newTestLogWith(t, func(tl *testLog) { tl.mysqlDSN = dsn }, nil))
}

func runEvents(t *testing.T, tl *testLog) {
	// A public event: its entry is its canonical JSON, with received_at.
	code, pub := tl.event("POST", "/v1/events", tl.token, evt("invoice/4711", "invoice.approved", "alice",
		"2026-01-05T10:00:00+01:00", `{"amount":1250.5,"currency":"EUR"}`))
	if code != 200 || pub.Index == nil || *pub.Duplicate {
		t.Fatalf("POST public event: %d %+v", code, pub)
	}
	e, err := event.ParseEntry([]byte(pub.Entry))
	if err != nil || e.Private() || string(e.Data) != `{"amount":1250.5,"currency":"EUR"}` || event.FormatTime(e.OccurredAt) != "2026-01-05T09:00:00Z" {
		t.Fatalf("public entry %s: %+v, %v", pub.Entry, e, err)
	}
	if h := checkpoint.LeafHash([]byte(pub.Entry)); !bytes.Equal(pub.LeafHash, h[:]) {
		t.Errorf("leaf_hash is not the entry's")
	}
	tl.checkReceipt([]byte(pub.Entry), pub.Receipt)
	if entries := tl.entries(*pub.Index + 1); string(entries[*pub.Index]) != pub.Entry {
		t.Errorf("the log's entry %d is %q, want %q", *pub.Index, entries[*pub.Index], pub.Entry)
	}

	// A private event referring to it: the entry holds a commitment; the
	// writer gets the salt.
	ref := base64.StdEncoding.EncodeToString(pub.LeafHash)
	code, priv := tl.event("POST", "/v1/events", tl.token, evt("invoice/4711", "payment.sent", "bob",
		"2026-01-06T12:00:00Z", `{"iban":"DE89 3704 0044 0532 0130 00","payee":"Erika Mustermann"}`,
		`"private":true`, `"refs":["`+ref+`"]`))
	if code != 200 || len(priv.Salt) != 32 || strings.Contains(priv.Entry, "Mustermann") {
		t.Fatalf("POST private event: %d %+v", code, priv)
	}
	pe, err := event.ParseEntry([]byte(priv.Entry))
	if err != nil || !pe.Private() || len(pe.Refs) != 1 || !bytes.Equal(pe.Refs[0][:], pub.LeafHash) {
		t.Fatalf("private entry %s: %+v, %v", priv.Entry, pe, err)
	}
	tl.checkReceipt([]byte(priv.Entry), priv.Receipt)
	hash := hex.EncodeToString(priv.LeafHash)

	// Reading it: data and salt only with the token.
	_, anon := tl.event("GET", "/v1/events/"+hash, "", "")
	if anon.Data != nil || anon.Salt != nil || anon.Status != "published" || !anon.Private {
		t.Errorf("GET without token: %+v", anon)
	}
	_, mine := tl.event("GET", "/v1/events/"+hash, tl.token, "")
	if err := event.VerifyCommitment(*pe.Commitment, [32]byte(mine.Salt), mine.Data); err != nil {
		t.Errorf("data and salt from GET with token do not open the commitment: %v (%+v)", err, mine)
	}

	// Queries, with paging; each result has a verifying receipt.
	tl.event("POST", "/v1/events", tl.token, evt("invoice/4712", "invoice.approved", "alice", "2026-01-07T00:00:00Z", `null`))
	for _, tc := range []struct {
		query string
		want  []string // subjects, in order
	}{
		{"subject=invoice%2F4711", []string{"invoice/4711", "invoice/4711"}},
		{"type=invoice.approved", []string{"invoice/4711", "invoice/4712"}},
		{"actor=bob", []string{"invoice/4711"}},
		{"from=2026-01-06T00:00:00Z&to=2026-01-07T00:00:00Z", []string{"invoice/4711"}},
		{"from=2026-01-06T00:00:00Z", []string{"invoice/4711", "invoice/4712"}},
		{"subject=nothing", nil},
	} {
		var got []string
		for next := ""; ; {
			var page struct {
				Events []eventReply
				Next   string
			}
			tl.getJSON("/v1/events?limit=1&"+tc.query+next, &page)
			for _, ev := range page.Events {
				got = append(got, ev.Subject)
				tl.checkReceipt([]byte(ev.Entry), ev.Receipt)
			}
			if page.Next == "" {
				break
			}
			next = "&after=" + page.Next
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("GET /v1/events?%s: %v, want %v", tc.query, got, tc.want)
		}
	}

	// Erasure: needs the token; only private events; once.
	body := `{"by":"dpo@example.com","reason":"GDPR art. 17, request 42"}`
	if code, _ := tl.event("POST", "/v1/events/"+hash+"/erase", "", body); code != 401 {
		t.Errorf("erase without token: %d", code)
	}
	code, er := tl.event("POST", "/v1/events/"+hash+"/erase", tl.token, body)
	if code != 200 || er.Erased == nil || !strings.HasPrefix(er.Erased.By, "dpo@example.com (write token") || er.Data != nil {
		t.Fatalf("erase: %d %+v", code, er)
	}
	_, after := tl.event("GET", "/v1/events/"+hash, tl.token, "")
	if after.Data != nil || after.Salt != nil || after.Erased == nil || after.Erased.Reason != "GDPR art. 17, request 42" {
		t.Errorf("after erasure: %+v", after)
	}
	// Every proof stays valid.
	tl.checkReceipt([]byte(after.Entry), after.Receipt)
	if code, r := tl.event("POST", "/v1/events/"+hash+"/erase", tl.token, body); code != 409 || !strings.Contains(r.Error, "erased already") {
		t.Errorf("erase again: %d %+v", code, r)
	}
	if code, r := tl.event("POST", "/v1/events/"+hex.EncodeToString(pub.LeafHash)+"/erase", tl.token, body); code != 409 || !strings.Contains(r.Error, "public") {
		t.Errorf("erase a public event: %d %+v", code, r)
	}
	if code, _ := tl.event("POST", "/v1/events/"+strings.Repeat("ab", 32)+"/erase", tl.token, body); code != 404 {
		t.Errorf("erase an unknown event: %d", code)
	}
	if code, r := tl.event("POST", "/v1/events/"+hash+"/erase", tl.token, `{"reason":"x"}`); code != 400 || !strings.Contains(r.Error, "by:") {
		t.Errorf("erase without by: %d %+v", code, r)
	}
}

func TestEventsBadInput(t *testing.T) {
	tl := newTestLog(t, nil)
	good := evt("s", "t", "a", "2026-01-01T00:00:00Z", `{}`)
	if code, _ := tl.event("POST", "/v1/events", "", good); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := tl.event("POST", "/v1/events", "wrong", good); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	unknown := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	future := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct{ body, want string }{
		{`{"type":"t","type":"t"}`, `type: duplicate key "type"`},
		{evt("s", "t", "a", "2026-01-01T00:00:00Z", `{"n":1.0}`), "data.n: number 1.0 is not in canonical form"},
		{evt("s", "t", "a", "2026-01-01T00:00:00Z", `{"n":12345678901234567890}`), "data.n: integer"},
		{"{\"type\":\"\xff\"}", "invalid UTF-8"},
		{evt("s", "t", "a", "2026-13-01T00:00:00Z", `{}`), "occurred_at:"},
		{evt("s", "t", "a", "1900-01-01T00:00:00Z", `{}`), "occurred_at: 1900-01-01T00:00:00Z is out of range"},
		{evt("s", "t", "a", future, `{}`), "occurred_at: " + future + " is more than 1h0m0s after"},
		{evt("s", "t", "a", "2026-01-01T00:00:00Z", strings.Repeat("[", 40)+strings.Repeat("]", 40)), "nested deeper than 32"},
		{evt("s", "t", "a", "2026-01-01T00:00:00Z", `{}`, `"refs":["`+unknown+`"]`), "refs[0]: the log holds no entry with leaf hash 0101"},
		{evt("s", "", "a", "2026-01-01T00:00:00Z", `{}`), "type: must not be empty"},
		{evt("s", "t", "a", "2026-01-01T00:00:00Z", `{}`, `"colour":"red"`), "colour: unknown field"},
		{`[]`, "the event must be a JSON object"},
	} {
		code, r := tl.event("POST", "/v1/events", tl.token, tc.body)
		if code != 400 || !strings.Contains(r.Error, tc.want) {
			t.Errorf("POST %q: %d %q, want 400 containing %q", tc.body, code, r.Error, tc.want)
		}
	}
	code, _ := tl.call("POST", "/v1/events", tl.token, []byte(`{"data":"`+strings.Repeat("x", MaxEntrySize)+`"}`))
	if code != 413 {
		t.Errorf("oversize event: %d, want 413", code)
	}
	// Nothing was stored, nothing logged.
	if rows, err := tl.state.Events(t.Context(), storage.EventQuery{Limit: 10}); err != nil || len(rows) != 0 {
		t.Errorf("events stored after bad input: %d, %v", len(rows), err)
	}
	time.Sleep(200 * time.Millisecond) // a sequencer run and a checkpoint
	if s := tl.checkpoint(); s.Size != 0 {
		t.Errorf("tree size %d after bad input, want 0", s.Size)
	}
	for _, q := range []string{"from=yesterday", "limit=0", "limit=101", "after=-1", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "subject=a&subject=b"} {
		if code, _ := tl.get("/v1/events?" + q); code != 400 {
			t.Errorf("GET /v1/events?%s: %d, want 400", q, code)
		}
	}
	if code, _ := tl.get("/v1/events/" + strings.Repeat("AB", 32)); code != 400 {
		t.Errorf("GET an uppercase hash: %d, want 400", code)
	}
	if code, _ := tl.call("DELETE", "/v1/events", tl.token, nil); code != 405 {
		t.Errorf("DELETE /v1/events: %d, want 405", code)
	}
}

// TestEventIDIdempotent checks that an id names one event: resubmitting it
// answers the same entry, another event under it is a 409.
func TestEventIDIdempotent(t *testing.T) {
	tl := newTestLog(t, nil)
	body := evt("s", "t", "a", "2026-01-01T00:00:00Z", `{"k":"v"}`, `"id":"erp-1"`, `"private":true`)
	code, first := tl.event("POST", "/v1/events", tl.token, body)
	if code != 200 || *first.Duplicate {
		t.Fatalf("first: %d %+v", code, first)
	}
	// Same event, written differently: the same entry, a duplicate.
	code, again := tl.event("POST", "/v1/events", tl.token, ` {"private":true,"id":"erp-1","data":{"k":"v"},"occurred_at":"2026-01-01T01:00:00+01:00","actor":"a","subject":"s","type":"t"}`)
	if code != 200 || !*again.Duplicate || again.Entry != first.Entry || *again.Index != *first.Index || !bytes.Equal(again.Salt, first.Salt) {
		t.Errorf("resubmitted: %d %+v, want the first entry as a duplicate", code, again)
	}
	code, other := tl.event("POST", "/v1/events", tl.token, evt("s", "t", "a", "2026-01-01T00:00:00Z", `{"k":"w"}`, `"id":"erp-1"`, `"private":true`))
	if code != 409 || !strings.Contains(other.Error, `id: "erp-1" names another event`) {
		t.Errorf("another event under the id: %d %+v", code, other)
	}
	if rows, _ := tl.state.Events(t.Context(), storage.EventQuery{Limit: 10}); len(rows) != 1 {
		t.Errorf("%d events stored, want 1", len(rows))
	}
	// An erased event's id cannot be submitted again.
	if code, _ := tl.event("POST", "/v1/events/"+hex.EncodeToString(first.LeafHash)+"/erase", tl.token, `{"by":"dpo"}`); code != 200 {
		t.Fatalf("erase: %d", code)
	}
	if code, r := tl.event("POST", "/v1/events", tl.token, body); code != 409 || !strings.Contains(r.Error, "erased") {
		t.Errorf("an erased event's id again: %d %+v", code, r)
	}
	// A server that stopped after storing an event but before queueing its
	// entry never answered; the writer retries with the same id, and the
	// stored entry (with its salt) is what gets logged.
	req, err := event.ParseRequest([]byte(evt("s", "t", "a", "2026-01-02T00:00:00Z", `{"k":"crash"}`, `"id":"erp-2"`, `"private":true`)))
	if err != nil {
		t.Fatal(err)
	}
	salt := [32]byte{7}
	entry, e, err := req.Entry(time.Now().Add(-time.Minute), salt)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tl.state.AddEvent(t.Context(), &storage.StoredEvent{LeafHash: checkpoint.LeafHash(entry), Entry: entry, EventID: "erp-2",
		Type: "t", Actor: "a", Subject: "s", OccurredAt: e.OccurredAt, ReceivedAt: e.ReceivedAt, Private: true, Data: req.Data, Salt: salt[:]}); err != nil {
		t.Fatal(err)
	}
	h := checkpoint.LeafHash(entry)
	if _, v := tl.event("GET", "/v1/events/"+hex.EncodeToString(h[:]), "", ""); v.Status != "pending" {
		t.Errorf("an event whose entry was never queued: status %q, want pending", v.Status)
	}
	code, retried := tl.event("POST", "/v1/events", tl.token, evt("s", "t", "a", "2026-01-02T00:00:00Z", `{"k":"crash"}`, `"id":"erp-2"`, `"private":true`))
	if code != 200 || retried.Entry != string(entry) || !bytes.Equal(retried.Salt, salt[:]) || retried.Index == nil {
		t.Fatalf("retry after a crash: %d %+v, want the stored entry logged", code, retried)
	}
	tl.checkReceipt(entry, retried.Receipt)

	// Without waiting: 202 and the entry.
	code, q := tl.event("POST", "/v1/events?wait=false", tl.token, evt("s", "t", "a", "2026-01-01T00:00:00Z", `1`))
	if code != 202 || q.Entry == "" || q.Index != nil {
		t.Errorf("wait=false: %d %+v", code, q)
	}
}

func TestEvidenceBundle(t *testing.T) {
	tl := newTestLog(t, nil)
	var hashes []string
	for i := range 4 {
		private := ""
		if i%2 == 1 {
			private = `"private":true`
		}
		extra := []string{`"id":"e` + fmt.Sprint(i) + `"`}
		if private != "" {
			extra = append(extra, private)
		}
		code, r := tl.event("POST", "/v1/events", tl.token, evt("case/7", "decision", "model:v1",
			fmt.Sprintf("2026-03-0%dT00:00:00Z", i+1), fmt.Sprintf(`{"score":%d}`, i), extra...))
		if code != 200 {
			t.Fatalf("POST: %d %+v", code, r)
		}
		hashes = append(hashes, hex.EncodeToString(r.LeafHash))
	}
	tl.event("POST", "/v1/events", tl.token, evt("case/8", "decision", "model:v1", "2026-03-01T00:00:00Z", `{}`))
	if code, _ := tl.event("POST", "/v1/events/"+hashes[3]+"/erase", tl.token, `{"by":"dpo"}`); code != 200 {
		t.Fatalf("erase: %d", code)
	}

	fetch := func(auth, query string) (*event.Bundle, []byte) {
		code, b := tl.call("GET", "/v1/evidence?"+query, auth, nil)
		if code != 200 {
			t.Fatalf("GET /v1/evidence?%s: %d %s", query, code, b)
		}
		bu, err := event.ParseBundle(b)
		if err != nil {
			t.Fatal(err)
		}
		return bu, b
	}
	q := url.Values{"subject": {"case/7"}, "from": {"2026-03-01T00:00:00Z"}, "to": {"2026-03-05T00:00:00Z"}}.Encode()
	bu, raw := fetch(tl.token, q)
	res, err := event.VerifyBundle(bu, tl.verifier, nil)
	if err != nil {
		t.Fatalf("VerifyBundle: %v", err)
	}
	if len(res.Events) != 4 || !res.Events[1].DataVerified || res.Events[3].Erased == nil || res.Events[3].DataVerified {
		t.Errorf("verified events: %+v", res.Events)
	}
	// Events were published in different checkpoints: the early ones need
	// consistency proofs to the latest.
	if len(bu.Consistency) == 0 {
		t.Errorf("no consistency proofs in the bundle")
	}
	if !strings.Contains(bu.Report, "## What was verified") || !strings.Contains(bu.Report, "erased at") {
		t.Errorf("report:\n%s", bu.Report)
	}
	// Without the token: no private data, still verifies.
	anon, _ := fetch("", q)
	if _, err := event.VerifyBundle(anon, tl.verifier, nil); err != nil || anon.Events[1].Data != nil {
		t.Errorf("anonymous bundle: %v, data %s", err, anon.Events[1].Data)
	}

	// Any change is caught.
	for name, tamper := range map[string]func(b *event.Bundle){
		"entry": func(b *event.Bundle) {
			b.Events[0].Entry = strings.Replace(b.Events[0].Entry, `"score":0`, `"score":9`, 1)
		},
		"data":        func(b *event.Bundle) { b.Events[1].Data = json.RawMessage(`{"score":2}`) },
		"salt":        func(b *event.Bundle) { b.Events[1].Salt[0] ^= 1 },
		"consistency": func(b *event.Bundle) { b.Consistency = nil },
		"query":       func(b *event.Bundle) { b.Query.Subject = "case/8" },
		"index":       func(b *event.Bundle) { b.Events[0].Index++ },
		"checkpoint":  func(b *event.Bundle) { b.Checkpoint = strings.Replace(b.Checkpoint, "\n\n", "\nextra\n\n", 1) },
		"erased data": func(b *event.Bundle) { b.Events[3].Data, b.Events[3].Salt = b.Events[1].Data, b.Events[1].Salt },
	} {
		b, err := event.ParseBundle(raw)
		if err != nil {
			t.Fatal(err)
		}
		tamper(b)
		if _, err := event.VerifyBundle(b, tl.verifier, nil); err == nil {
			t.Errorf("tampered %s: the bundle still verifies", name)
		}
	}
	_, otherKey := newCosigner(t, "other")
	if _, err := event.VerifyBundle(bu, otherKey, nil); err == nil {
		t.Errorf("verified with another key")
	}
	if code, _ := tl.get("/v1/evidence?limit=5"); code != 400 {
		t.Errorf("evidence with limit: %d, want 400", code)
	}
}

// TestPrivateEventsLog checks Config.PrivateEvents: every event is
// private, whatever the writer asked.
func TestPrivateEventsLog(t *testing.T) {
	tl := newTestLog(t, func(c *Config) { c.PrivateEvents = true })
	code, r := tl.event("POST", "/v1/events", tl.token, evt("s", "t", "a", "2026-01-01T00:00:00Z", `{"name":"Erika"}`, `"private":false`))
	if code != 200 || strings.Contains(r.Entry, "Erika") || len(r.Salt) != 32 {
		t.Fatalf("POST to a private-events log: %d %+v", code, r)
	}
	e, err := event.ParseEntry([]byte(r.Entry))
	if err != nil || !e.Private() {
		t.Fatalf("entry %s: %v", r.Entry, err)
	}
	if err := event.VerifyCommitment(*e.Commitment, [32]byte(r.Salt), []byte(`{"name":"Erika"}`)); err != nil {
		t.Errorf("commitment: %v", err)
	}
}
