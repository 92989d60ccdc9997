package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const approval = `{
  "type": "invoice.approved",
  "actor": "alice@example.com",
  "subject": "invoice/4711",
  "occurred_at": "2026-12-04T10:30:00.500+01:00",
  "data": {"amount": 1250.5, "currency": "EUR", "approver": {"role": "cfo", "level": 2}},
  "id": "erp-approval-991"
}`

var received = time.Date(2026, 12, 4, 9, 31, 2, 123000000, time.UTC)

func TestEntryPublic(t *testing.T) {
	r, err := ParseRequest([]byte(approval))
	if err != nil {
		t.Fatal(err)
	}
	entry, e, err := r.Entry(received, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	// Written by hand from the rules in the package doc.
	want := `{"actor":"alice@example.com","data":{"amount":1250.5,"approver":{"level":2,"role":"cfo"},"currency":"EUR"},` +
		`"format":"evident-event/v1","id":"erp-approval-991","occurred_at":"2026-12-04T09:30:00.5Z",` +
		`"received_at":"2026-12-04T09:31:02.123Z","subject":"invoice/4711","type":"invoice.approved"}`
	if string(entry) != want {
		t.Errorf("entry\n got %s\nwant %s", entry, want)
	}
	got, err := ParseEntry(entry)
	if err != nil {
		t.Fatalf("ParseEntry: %v", err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("ParseEntry(Entry) differs (-built +parsed):\n%s", diff)
	}
	if got.Private() {
		t.Error("public event parsed as private")
	}
}

func TestEntryPrivate(t *testing.T) {
	r, err := ParseRequest([]byte(strings.Replace(approval, `"id"`, `"private": true, "refs": ["`+
		base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+`"], "id"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	salt, err := NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	entry, e, err := r.Entry(received, salt)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(entry, []byte("EUR")) || bytes.Contains(entry, []byte(`"data"`)) {
		t.Errorf("private entry holds the data: %s", entry)
	}
	// The commitment is SHA-256 over the 32 salt bytes then the canonical data.
	data := `{"amount":1250.5,"approver":{"level":2,"role":"cfo"},"currency":"EUR"}`
	want := sha256.Sum256(append(salt[:], data...))
	if e.Commitment == nil || *e.Commitment != want {
		t.Fatalf("commitment = %x, want %x", e.Commitment, want)
	}
	if !bytes.Contains(entry, []byte(`"data_commitment":"`+base64.StdEncoding.EncodeToString(want[:])+`"`)) {
		t.Errorf("entry lacks the commitment: %s", entry)
	}
	got, err := ParseEntry(entry)
	if err != nil {
		t.Fatalf("ParseEntry: %v", err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("ParseEntry(Entry) differs:\n%s", diff)
	}
	// The data opens the commitment in any JSON form; other data or salt
	// does not.
	if err := VerifyCommitment(want, salt, []byte(`{ "currency":"EUR","amount":12505e-1,"approver":{"role":"cfo","level":2.0}}`)); err != nil {
		t.Errorf("VerifyCommitment with the data reordered: %v", err)
	}
	if err := VerifyCommitment(want, salt, []byte(`{"amount":1250.6,"approver":{"level":2,"role":"cfo"},"currency":"EUR"}`)); !errors.Is(err, ErrCommitment) {
		t.Errorf("VerifyCommitment with other data = %v, want ErrCommitment", err)
	}
	salt[0] ^= 1
	if err := VerifyCommitment(want, salt, []byte(data)); !errors.Is(err, ErrCommitment) {
		t.Errorf("VerifyCommitment with another salt = %v, want ErrCommitment", err)
	}
	if err := VerifyCommitment(want, salt, []byte(`{"a":1,"a":1}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("VerifyCommitment with bad JSON = %v, want ErrInvalid", err)
	}
}

func TestSaltsDiffer(t *testing.T) {
	a, err1 := NewSalt()
	b, err2 := NewSalt()
	if err1 != nil || err2 != nil || a == b || a == [32]byte{} {
		t.Errorf("NewSalt: %x, %x, %v, %v", a, b, err1, err2)
	}
}

func TestParseRequestErrors(t *testing.T) {
	base := map[string]string{
		"type": `"t"`, "actor": `"a"`, "subject": `"s"`, "occurred_at": `"2026-01-02T03:04:05Z"`, "data": `{}`,
	}
	build := func(change map[string]string) string {
		var parts []string
		for _, k := range []string{"type", "actor", "subject", "occurred_at", "data", "refs", "private", "id", "extra"} {
			v, ok := change[k]
			if !ok {
				v = base[k]
			}
			if v != "" {
				parts = append(parts, fmt.Sprintf("%q:%s", k, v))
			}
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	if _, err := ParseRequest([]byte(build(nil))); err != nil {
		t.Fatalf("base request: %v", err)
	}
	long := `"` + strings.Repeat("x", MaxTextSize+1) + `"`
	hash := `"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"`
	for _, tc := range []struct {
		change map[string]string
		want   string
	}{
		{map[string]string{"type": ""}, "type: is required"},
		{map[string]string{"actor": `""`}, "actor: must not be empty"},
		{map[string]string{"subject": `7`}, "subject: must be a string"},
		{map[string]string{"subject": long}, "subject: is 257 bytes long, at most 256"},
		{map[string]string{"type": `"a\nb"`}, "type: must not contain control characters"},
		{map[string]string{"id": `"` + strings.Repeat("i", MaxIDSize+1) + `"`}, "id: is 129 bytes long"},
		{map[string]string{"occurred_at": ""}, "occurred_at: is required"},
		{map[string]string{"occurred_at": `"2026-02-30T00:00:00Z"`}, "occurred_at: \"2026-02-30T00:00:00Z\" is not an RFC 3339"},
		{map[string]string{"occurred_at": `"2026-01-02 03:04:05Z"`}, "occurred_at: "},
		{map[string]string{"occurred_at": `"1969-12-31T23:59:59Z"`}, "occurred_at: 1969-12-31T23:59:59Z is out of range"},
		{map[string]string{"occurred_at": `"10000-01-01T00:00:00Z"`}, "occurred_at: "},
		{map[string]string{"occurred_at": `1700000000`}, "occurred_at: must be an RFC 3339 date-time string"},
		{map[string]string{"data": ""}, "data: is required"},
		{map[string]string{"data": `{"x":[1,2,{"p":1.10}]}`}, "data.x[2].p: number 1.10 is not in canonical form"},
		{map[string]string{"data": `{"k":1,"k":2}`}, `data.k: duplicate key "k"`},
		{map[string]string{"data": strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)}, "nested deeper than 32"},
		{map[string]string{"refs": `"x"`}, "refs: must be an array"},
		{map[string]string{"refs": `["` + strings.Repeat("A", 42) + `=="]`}, "refs[0]: must be a leaf hash"},
		{map[string]string{"refs": `["zz"]`}, "refs[0]: must be a leaf hash"},
		{map[string]string{"refs": "[" + hash + "," + hash + "]"}, "refs[1]: repeats an earlier ref"},
		{map[string]string{"refs": "[" + strings.Repeat(hash+",", MaxRefs) + hash + "]"}, "refs: has 33 leaf hashes, at most 32"},
		{map[string]string{"private": `"yes"`}, "private: must be true or false"},
		{map[string]string{"extra": `1`}, "extra: unknown field"},
	} {
		in := build(tc.change)
		_, err := ParseRequest([]byte(in))
		if err == nil {
			t.Errorf("ParseRequest(%s) accepted it", in)
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRequest(%s): error %v is not a FieldError wrapping ErrInvalid", in, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRequest(%s) = %q, want it to contain %q", in, err, tc.want)
		}
	}
	for _, in := range []string{`[]`, `"event"`, "{\"type\":\"\xc3\x28\"}"} {
		if _, err := ParseRequest([]byte(in)); err == nil {
			t.Errorf("ParseRequest(%q) accepted it", in)
		}
	}
	big := `{"data":"` + strings.Repeat("x", MaxRequestSize) + `"}`
	if _, err := ParseRequest([]byte(big)); err == nil || !strings.Contains(err.Error(), "exceeds 65535") {
		t.Errorf("oversize request: %v", err)
	}
}

func TestParseEntryStrict(t *testing.T) {
	r, err := ParseRequest([]byte(approval))
	if err != nil {
		t.Fatal(err)
	}
	entry, _, err := r.Entry(received, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	s := string(entry)
	commit := `"data_commitment":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"`
	for _, tc := range []struct{ name, in, want string }{
		{"whitespace", strings.Replace(s, `":"`, `": "`, 1), "not in canonical form"},
		{"unsorted", `{"type":"t",` + s[1:], "duplicate key"},
		{"format", strings.Replace(s, "evident-event/v1", "evident-event/v2", 1), "format: must be"},
		{"both", strings.Replace(s, `"format"`, commit+`,"format"`, 1), "exactly one of data and data_commitment"},
		{"neither", `{"actor":"a","format":"evident-event/v1","occurred_at":"2026-01-01T00:00:00Z","received_at":"2026-01-01T00:00:00Z","subject":"s","type":"t"}`, "exactly one"},
		{"empty refs", `{"actor":"a","data":1,"format":"evident-event/v1","occurred_at":"2026-01-01T00:00:00Z","received_at":"2026-01-01T00:00:00Z","refs":[],"subject":"s","type":"t"}`, "empty refs array"},
		{"time form", strings.Replace(s, "09:31:02.123Z", "09:31:02.1230Z", 1), "received_at: is not in UTC"},
		{"unknown", strings.Replace(s, `"type"`, `"zzz":1,"type"`, 1), "unknown field"},
	} {
		_, err := ParseEntry([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ParseEntry = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestPure checks that the package stays pure (DESIGN.md): nothing it
// depends on does network or storage I/O, or links Trillian or gRPC.
func TestPure(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"net/http", "database/sql", "github.com/google/trillian", "google.golang.org/grpc", "os/exec"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("package event depends on %s", dep)
			}
		}
	}
}
