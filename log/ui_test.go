package log

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/witness"
)

// startMLDSAWitness starts a real witness that cosigns with ML-DSA-44, its
// state in a SQLite file, on loopback; it returns its URL and vkey.
func startMLDSAWitness(t *testing.T, logVKey, name string) (url, vkey string) {
	skey, vkey, err := checkpoint.GenerateMLDSACosignerKey(name)
	if err != nil {
		t.Fatal(err)
	}
	w := newWitnessWithKey(t, logVKey, skey)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	return srv.URL, vkey
}

// TestUIExplorer runs a log whose policy needs an Ed25519 and an ML-DSA-44
// witness (real ones, on loopback) and checks what the explorer is served:
// its embedded assets, the witness policy, the history of checkpoints. The
// log's quorum check accepts the ML-DSA-44 cosignatures: every checkpoint
// it publishes carries both.
func TestUIExplorer(t *testing.T) {
	var policyText string
	tl := newTestLogWith(t, func(tl *testLog) {
		var srvs []*httptest.Server
		edURL, edVKey := startWitness(t, tl.vkey, "witness.example/ed", &srvs)
		pqURL, pqVKey := startMLDSAWitness(t, tl.vkey, "witness.example/pq")
		policyText = fmt.Sprintf("log %s\nwitness ed %s %s\nwitness pq %s %s\ngroup both all ed pq\nquorum both\n", tl.vkey, edVKey, edURL, pqVKey, pqURL)
		p, err := checkpoint.ParsePolicy([]byte(policyText))
		if err != nil {
			t.Fatal(err)
		}
		pool, err := witness.NewPool(witness.PoolConfig{Policy: p})
		if err != nil {
			t.Fatal(err)
		}
		tl.policy = p
		tl.mod = func(c *Config) { c.Cosign, c.CosignStatus, c.WitnessPolicy = pool.Cosign, pool.StatusText, p }
	}, nil)
	for i := range 6 {
		if code, r := tl.add(fmt.Appendf(nil, `{"n":%d}`, i), ""); code != http.StatusOK {
			t.Fatalf("add-entry %d: %d %+v", i, code, r)
		} else if _, err := checkpoint.VerifyReceipt(mustReceipt(t, r.Receipt), fmt.Appendf(nil, `{"n":%d}`, i), tl.verifier, tl.policy); err != nil {
			t.Fatalf("receipt %d with the ML-DSA-44 witness in the quorum: %v", i, err)
		}
	}
	s, err := checkpoint.Open(tl.checkpoint().Note, tl.verifier, tl.policy.Verifiers()...)
	if err != nil || !tl.policy.Satisfied(tl.policy.Cosigners(s)) {
		t.Fatalf("latest checkpoint: %v, cosigners %v", err, tl.policy.Cosigners(s))
	}

	t.Run("assets", func(t *testing.T) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get(tl.srv.URL + "/ui")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "ui/" {
			t.Errorf("GET /ui: %d to %q, want 301 to ui/ (relative)", resp.StatusCode, resp.Header.Get("Location"))
		}
		external := regexp.MustCompile(`(src|href)="(https?:)?//|from "(https?:)?//|fetch\("(https?:)?//|@import|<script>`)
		for _, tc := range []struct{ path, ctype, want string }{
			{"/ui/", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
			{"/ui/index.html", "text/html; charset=utf-8", `<label for="receipt">`},
			{"/ui/app.js", "text/javascript; charset=utf-8", `from "./verify.js"`},
			{"/ui/verify.js", "text/javascript; charset=utf-8", "export async function verifyReceipt"},
			{"/ui/mldsa.js", "text/javascript; charset=utf-8", "export function mldsa44Verify"},
			{"/ui/ed25519.js", "text/javascript; charset=utf-8", "export function ed25519Verify"},
			{"/ui/style.css", "text/css; charset=utf-8", "ol.steps"},
			{"/ui/selftest.html", "text/html; charset=utf-8", `<script type="module" src="selftest.js">`},
			{"/ui/selftest.js", "text/javascript; charset=utf-8", "verifyReceipt(m, entry"},
		} {
			code, h := tl.getHeader(tc.path)
			_, body := tl.get(tc.path)
			if code != http.StatusOK || h.Get("Content-Type") != tc.ctype || !strings.Contains(string(body), tc.want) {
				t.Errorf("GET %s: %d %s, want 200 %s containing %q", tc.path, code, h.Get("Content-Type"), tc.ctype, tc.want)
			}
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
			}
			if m := external.Find(body); m != nil {
				t.Errorf("%s loads something from elsewhere or inline: %q", tc.path, m)
			}
		}
		for _, p := range []string{"/ui/nope.js", "/ui/ui.go", "/ui/ui/app.js", "/ui/%2e%2e/http.go"} {
			if code, body := tl.get(p); code != http.StatusNotFound || !strings.Contains(string(body), `"error"`) {
				t.Errorf("GET %s: %d %s, want 404 JSON", p, code, body)
			}
		}
		resp, err = http.Post(tl.srv.URL+"/ui/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /ui/: %d, want 405", resp.StatusCode)
		}
	})

	t.Run("witness policy", func(t *testing.T) {
		code, body := tl.get("/v1/witness-policy")
		if code != http.StatusOK || string(body) != policyText {
			t.Errorf("GET /v1/witness-policy: %d %q, want the policy", code, body)
		}
	})

	t.Run("history", func(t *testing.T) {
		var h struct {
			Origin      string
			Checkpoints []historyPoint
		}
		tl.getJSON("/v1/ui/history", &h)
		latest := tl.checkpoint()
		if h.Origin != latest.Origin || len(h.Checkpoints) < 2 || h.Checkpoints[len(h.Checkpoints)-1].Size != latest.Size {
			t.Fatalf("history %s with %d points, want the origin and the latest size %d last: %+v", h.Origin, len(h.Checkpoints), latest.Size, h.Checkpoints)
		}
		for i, p := range h.Checkpoints {
			s, err := checkpoint.Open([]byte(p.Note), tl.verifier, tl.policy.Verifiers()...)
			if err != nil || s.Size != p.Size {
				t.Errorf("point %d: %v, size %d vs %d", i, err, s.Size, p.Size)
			}
			if i > 0 && p.Size <= h.Checkpoints[i-1].Size {
				t.Errorf("point %d: size %d after %d", i, p.Size, h.Checkpoints[i-1].Size)
			}
			if p.Size > 0 && (p.SignedAt == nil || p.SignedAt.After(p.PublishedAt) || time.Since(*p.SignedAt) > time.Minute) {
				t.Errorf("point %d (size %d): signed at %v, published at %v", i, p.Size, p.SignedAt, p.PublishedAt)
			}
		}
		tl.getJSON("/v1/ui/history?points=2", &h)
		if len(h.Checkpoints) == 0 || len(h.Checkpoints) > 2 || h.Checkpoints[len(h.Checkpoints)-1].Size != latest.Size {
			t.Errorf("points=2: %+v", h.Checkpoints)
		}
		for _, q := range []string{"points=1", "points=501", "points=02", "points=x", "points=", "points=-3"} {
			if code, body := tl.get("/v1/ui/history?" + q); code != http.StatusBadRequest || !strings.Contains(string(body), "points") {
				t.Errorf("history?%s: %d %s, want 400 naming points", q, code, body)
			}
		}
	})
}

func mustReceipt(t *testing.T, s string) *checkpoint.Receipt {
	t.Helper()
	r, err := checkpoint.ParseReceipt([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestUINoWitnesses: a log without witnesses answers 404 for the policy,
// and its history has no signing times.
func TestUINoWitnesses(t *testing.T) {
	tl := newTestLog(t, nil)
	if code, _ := tl.add([]byte("one"), ""); code != http.StatusOK {
		t.Fatalf("add-entry: %d", code)
	}
	if code, body := tl.get("/v1/witness-policy"); code != http.StatusNotFound {
		t.Errorf("GET /v1/witness-policy without witnesses: %d %s, want 404", code, body)
	}
	_, body := tl.get("/v1/ui/history")
	var h struct{ Checkpoints []map[string]json.RawMessage }
	if err := json.Unmarshal(body, &h); err != nil || len(h.Checkpoints) != 2 {
		t.Fatalf("history: %v %s, want the size-0 and size-1 checkpoints", err, body)
	}
	for _, p := range h.Checkpoints {
		if _, ok := p["signed_at"]; ok {
			t.Errorf("history point %s has signed_at without witnesses", p["size"])
		}
	}
}

// TestUIAccessible checks the explorer's markup for what keyboard and
// screen-reader users need: every form control has a label (a label for
// its id, an enclosing label, or aria-label), results are announced (live
// regions), the page has a language and a skip link, and nothing takes
// focus away with tabindex > 0.
func TestUIAccessible(t *testing.T) {
	for _, name := range []string{"ui/index.html", "ui/selftest.html"} {
		b, err := uiFiles.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		page := string(b)
		controls := regexp.MustCompile(`<(input|textarea|select)\b[^>]*>`).FindAllStringIndex(page, -1)
		for _, loc := range controls {
			tag := page[loc[0]:loc[1]]
			id := regexp.MustCompile(`\bid="([^"]+)"`).FindStringSubmatch(tag)
			labelled := strings.Contains(tag, "aria-label=") ||
				id != nil && strings.Contains(page, `for="`+id[1]+`"`) ||
				strings.LastIndex(page[:loc[0]], "<label") > strings.LastIndex(page[:loc[0]], "</label>")
			if !labelled {
				t.Errorf("%s: control without a label: %s", name, tag)
			}
		}
		if regexp.MustCompile(`tabindex="[1-9]`).MatchString(page) {
			t.Errorf("%s: a positive tabindex", name)
		}
		if !strings.Contains(page, `<html lang="en">`) || !strings.Contains(page, `aria-live="polite"`) {
			t.Errorf("%s: no language or no live region", name)
		}
	}
	b, _ := uiFiles.ReadFile("ui/index.html")
	if n := strings.Count(string(b), "<input") + strings.Count(string(b), "<textarea"); n < 8 {
		t.Errorf("index.html has %d controls; the check above saw too few to mean anything", n)
	}
	if !strings.Contains(string(b), `class="skip" href="#main"`) {
		t.Error("index.html has no skip link")
	}
}

// TestUIPathsRelative: the explorer names the API with relative paths
// only, so that a log served under a prefix (/<name>/ on a server with
// several logs) shows its own data, not the default log's.
func TestUIPathsRelative(t *testing.T) {
	absolute := regexp.MustCompile("(fetch|fetchText)\\([\"`]/|(src|href)=\"/")
	for name := range uiAssets {
		b, err := uiFiles.ReadFile("ui/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if m := absolute.Find(b); m != nil {
			t.Errorf("ui/%s names a path from the root: %s", name, m)
		}
	}
}
