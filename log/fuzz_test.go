package log

import (
	"net/url"
	"strconv"
	"testing"
)

// The request parsers take untrusted query strings and path segments.

func FuzzParseUint(f *testing.F) {
	for _, s := range []string{"0", "1", "42", "01", "-1", "+1", "1e3", "0x10", " 1", "9223372036854775807", "9223372036854775808", "99999999999999999999", "", "١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseUint(s, "n")
		if err != nil {
			return
		}
		// Accepted means canonical: it formats back to the same text.
		if got := strconv.FormatUint(n, 10); got != s || n > 1<<63-1 {
			t.Errorf("parseUint(%q) = %d, which formats as %q", s, n, got)
		}
	})
}

func FuzzParseHash(f *testing.F) {
	for _, s := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
		"zz", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHash(s, "h")
		if err != nil {
			return
		}
		if got := strconv.Quote(string(s)); len(s) != 64 {
			t.Errorf("parseHash accepted %s", got)
		}
		const hexdigits = "0123456789abcdef"
		for i, b := range h {
			if s[2*i] != hexdigits[b>>4] || s[2*i+1] != hexdigits[b&15] {
				t.Fatalf("parseHash(%q) = %x", s, h)
			}
		}
	})
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"leaf_hash=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855&tree_size=3",
		"index=2&tree_size=3", "index=2&index=3&tree_size=3", "first=1&second=2", "first=2&second=1",
		"start=0&count=1000", "start=0&count=1001", "wait=false", "wait=true&wait=false", "%zz", "a=1;b=2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if in, err := parseInclusionQuery(q); err == nil {
			if (in.hash == nil) == q.Has("leaf_hash") || in.size == 0 && q.Get("tree_size") != "0" {
				t.Errorf("parseInclusionQuery(%q) = %+v", raw, in)
			}
		}
		if first, second, err := parseConsistencyQuery(q); err == nil && first > second {
			t.Errorf("parseConsistencyQuery(%q) = %d, %d", raw, first, second)
		}
		if _, count, err := parseEntriesQuery(q); err == nil && (count == 0 || count > MaxEntriesPerRequest) {
			t.Errorf("parseEntriesQuery(%q) count %d", raw, count)
		}
		if wait, err := parseWait(q); err == nil && !wait && q.Get("wait") != "false" {
			t.Errorf("parseWait(%q) = false", raw)
		}
	})
}

// FuzzTenantInputs feeds the tenant endpoints' parsers: the query of GET
// /v1/tenant/entries (its cursor among it) and a bearer header. None
// panics; what they accept is canonical.
func FuzzTenantInputs(f *testing.F) {
	for _, s := range []string{
		"", "limit=1", "limit=100", "limit=101", "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
		"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "after=AAYF_2J4RmMAAAAAAAAAKg", "after=AAYF", "tenant=acme",
		"from=0000-01-01T00:00:00Z", "limit=1&limit=2", "Bearer evk_x", "bearer  evk_x", "Basic x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if q, err := url.ParseQuery(s); err == nil {
			if eq, err := parseTenantEntriesQuery(q); err == nil {
				if eq.Limit < 1 || eq.Limit > MaxTenantEntriesPerPage || !eq.From.IsZero() && !eq.To.IsZero() && !eq.From.Before(eq.To) {
					t.Errorf("parseTenantEntriesQuery(%q) = %+v", s, eq)
				}
				if eq.After != nil && formatCursor(*eq.After) != q.Get("after") {
					t.Errorf("cursor %q reads as %+v, which formats as %q", q.Get("after"), eq.After, formatCursor(*eq.After))
				}
			}
		}
		if tok, ok := bearerToken(s); ok && (tok == "" || tok[0] == ' ') {
			t.Errorf("bearerToken(%q) = %q", s, tok)
		}
	})
}
