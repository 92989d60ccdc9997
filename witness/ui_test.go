package witness

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/evidentlog/evident/checkpoint"
)

func getHTML(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	resp, err := http.DefaultClient.Do(req)
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

// TestStatusPage: a browser gets the HTML page (logs, sizes, the time in
// the witness's own last cosignature, evidence), with a strict content
// security policy and its stylesheet; other clients keep the text page.
// The witness here cosigns with ML-DSA-44, so the page's checks of its own
// cosignature go through the post-quantum path.
func TestStatusPage(t *testing.T) {
	l := newTestLog(t, "example.com/log").grow(5)
	quiet := newTestLog(t, "example.com/quiet")
	dir := t.TempDir()
	skey, vkey, created, err := LoadOrCreateKeyOfType(dir, "example.com/pq", KeyMLDSA44)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKeyOfType: %v, %v", created, err)
	}
	if alg, _ := checkpoint.CosignatureAlgorithm(vkey); alg != "ML-DSA-44" {
		t.Fatalf("created a %s key, want ML-DSA-44", alg)
	}
	// A second load finds the key, whatever type is asked for.
	if _, vkey2, created, err := LoadOrCreateKeyOfType(dir, "example.com/pq", KeyEd25519); err != nil || created || vkey2 != vkey {
		t.Fatalf("reload: %v, created %v, same key %v", err, created, vkey2 == vkey)
	}
	if _, _, _, err := LoadOrCreateKeyOfType(t.TempDir(), "x", "rsa"); err == nil {
		t.Error("key type rsa accepted")
	}
	w := openTestWitness(t, dir, skey, []*testLog{l, quiet})

	resp, body := getHTML(t, w.url+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / as a browser: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, want := range []string{"example.com/pq", strings.ReplaceAll(vkey, "+", "&#43;"), "ML-DSA-44", "example.com/log", "example.com/quiet", "never", "No log has shown"} {
		if !strings.Contains(body, want) {
			t.Errorf("page before any cosignature lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the witness page has a script")
	}

	before := time.Now().Add(-time.Second).UTC().Truncate(time.Second)
	mustAdd(t, w, l, 0)
	l.grow(3)
	mustAdd(t, w, l, 5)
	_, body = getHTML(t, w.url+"/")
	if !strings.Contains(body, `<td class="num">8</td>`) {
		t.Errorf("page does not show size 8 for the log:\n%s", body)
	}
	// The last cosignature's time, read from the witness's own ML-DSA-44
	// cosignature (checked), between before and now.
	i := strings.Index(body, `<td class="num">8</td>`)
	row := body[i:min(len(body), i+400)]
	found := false
	for s := before; !s.After(time.Now().UTC()); s = s.Add(time.Second) {
		if strings.Contains(row, "<td>"+s.Format(time.RFC3339)+"</td>") {
			found = true
		}
	}
	if !found {
		t.Errorf("row %q has no cosignature time since %v", row, before)
	}

	// Split view: shown as evidence, escaped.
	f := l.rewrite("evil").grow(8)
	if resp, _ := post(t, w.url, f.request(8).Marshal()); resp.StatusCode != 422 {
		t.Fatalf("fork: %d, want 422", resp.StatusCode)
	}
	_, body = getHTML(t, w.url+"/")
	for _, want := range []string{"1 record(s)", "same-size-different-root", "#1"} {
		if !strings.Contains(body, want) {
			t.Errorf("page after a fork lacks %q", want)
		}
	}

	resp, css := getHTML(t, w.url+"/style.css")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(css, "ol.steps") {
		t.Errorf("GET /style.css: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// curl and scripts keep the text page.
	resp, body = get(t, w.url+"/")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !strings.Contains(body, "algorithm ML-DSA-44") {
		t.Errorf("text status: %s\n%s", resp.Header.Get("Content-Type"), body)
	}
}
