package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseJSON checks the parser and canonicalizer on any input: no
// panics; every error wraps ErrInvalid; what it accepts is valid JSON to
// encoding/json too, canonicalizes to a fixed point that the strict parser
// accepts unchanged, and means the same as the input (encoding/json's
// reading of both agrees).
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x",true,null]}`, `"\ud83d\ude02"`, `1e21`, `{"a":1,"a":2}`,
		`[[[[[]]]]]`, `-0`, `0.1`, `"\u0000"`, `{"\u20ac":1,"\r":2}`, `333333333.33333329`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseJSON(b, false)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted %q, which encoding/json finds invalid", b)
		}
		c := v.Canonical()
		if !utf8.Valid(c) {
			t.Fatalf("canonical form %q is not UTF-8", c)
		}
		sv, err := ParseJSON(c, true)
		if err != nil && strings.Contains(err.Error(), "is beyond ±(2^53-1)") {
			// Canonical, but not I-JSON: check the fixed point leniently.
			sv, err = ParseJSON(c, false)
		}
		if err != nil {
			t.Fatalf("strict parse of canonical %q (from %q): %v", c, b, err)
		}
		if again := sv.Canonical(); !bytes.Equal(again, c) {
			t.Fatalf("canonical form is not a fixed point: %q then %q", c, again)
		}
		var x, y any
		// -0 canonicalizes to 0 (RFC 8785 section 3.2.2.3): numbers
		// compare with ==.
		if json.Unmarshal(b, &x) == nil && json.Unmarshal(c, &y) == nil &&
			!cmp.Equal(x, y, cmp.Comparer(func(a, b float64) bool { return a == b })) {
			t.Fatalf("canonical %q means something else than %q", c, b)
		}
	})
}

// FuzzParseRequest checks that any accepted event makes an entry that
// ParseEntry reads back as the same event, and that ParseEntry never
// panics.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(approval))
	f.Add([]byte(`{"type":"t","actor":"a","subject":"s","occurred_at":"2026-01-02T03:04:05.1+14:00","data":[1,{}],"private":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if _, perr := ParseEntry(b); perr != nil && !errors.Is(perr, ErrInvalid) {
			t.Fatalf("ParseEntry error %v does not wrap ErrInvalid", perr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		entry, e, err := r.Entry(time.Unix(1e9, 7), [32]byte{1})
		if err != nil {
			t.Fatalf("Entry of an accepted request: %v", err)
		}
		got, err := ParseEntry(entry)
		if err != nil {
			t.Fatalf("ParseEntry(%s): %v", entry, err)
		}
		again, err := got.Marshal()
		if err != nil || !bytes.Equal(again, entry) || got.Private() != e.Private() {
			t.Fatalf("entry %s read back as %s (%v)", entry, again, err)
		}
	})
}
