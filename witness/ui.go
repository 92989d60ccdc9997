package witness

import (
	"encoding/base64"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/evidentlog/evident/checkpoint"
	"github.com/evidentlog/evident/internal/webui"
)

// The witness's status page for people (GET / from a browser): the logs it
// follows, the size and time of its last cosignature of each, and any
// split-view evidence. Rendered on the server with html/template: the page
// runs no script. Clients that do not ask for HTML get the text status.

// maxUIEvidence is the most evidence records the page lists.
const maxUIEvidence = 100

// wantsHTML reports whether the client prefers an HTML page (a browser).
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// uiLog is one row of the page's table of logs.
type uiLog struct {
	Origin     string
	Keys       int
	Size       string
	Root       string
	CosignedAt string // the witness's own cosignature timestamp
	UpdatedAt  string
	Path       string // of its latest cosigned checkpoint
}

type uiPage struct {
	Name, VKey, Algorithm string
	Now                   string
	Logs                  []uiLog
	Evidence              []Evidence
	More                  bool
}

func (w *Witness) serveUI(rw http.ResponseWriter, r *http.Request) {
	states, err := w.db.WitnessStates(r.Context())
	if err != nil {
		w.writeError(rw, err)
		return
	}
	ev, err := w.ListEvidence(r.Context(), 0)
	if err != nil {
		w.writeError(rw, err)
		return
	}
	alg, _ := checkpoint.CosignatureAlgorithm(w.vkey)
	page := uiPage{Name: w.Name(), VKey: w.vkey, Algorithm: alg, Now: time.Now().UTC().Format(time.RFC3339)}
	if len(ev) > maxUIEvidence {
		ev, page.More = ev[:maxUIEvidence], true
	}
	page.Evidence = ev
	own, _ := checkpoint.NewCosignatureVerifier(w.vkey)
	logs := w.logs.Load()
	for _, o := range logs.Origins() {
		row := uiLog{Origin: o, Keys: len(logs.Verifiers(o)), Size: "-", Root: "-", CosignedAt: "never", UpdatedAt: "never", Path: "/" + originID(o) + "/checkpoint"}
		for _, st := range states {
			if st.Origin != o {
				continue
			}
			row.Size = formatUint(st.Size)
			row.Root = base64.StdEncoding.EncodeToString(st.Root[:])
			row.UpdatedAt = st.UpdatedAt.UTC().Format(time.RFC3339)
			// The time the witness put in its own cosignature, checked.
			for _, v := range logs.Verifiers(o) {
				if s, err := checkpoint.Open(st.Note, v, own); err == nil && len(s.Cosignatures) == 1 {
					row.CosignedAt = s.Cosignatures[0].Time.UTC().Format(time.RFC3339)
					break
				}
			}
		}
		page.Logs = append(page.Logs, row)
	}
	h := rw.Header()
	webui.SecurityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if err := uiTemplate.Execute(rw, page); err != nil {
		w.logger.Warn("writing the status page failed", "err", err)
	}
}

func formatUint(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}

var uiTemplate = template.Must(template.New("witness").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Witness {{.Name}}</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<h1>Witness {{.Name}}</h1>
<p>evident-witness: cosigns checkpoints of the logs it follows only when they extend what it cosigned before (C2SP tlog-witness).</p>
</header>
<main id="main">
<section aria-labelledby="key-h">
<h2 id="key-h">Key</h2>
<p>Cosigns with <strong>{{.Algorithm}}</strong> (C2SP tlog-cosignature). Verifier key, for witness policies:</p>
<pre id="vkey" class="break">{{.VKey}}</pre>
</section>
<section aria-labelledby="logs-h">
<h2 id="logs-h">Logs followed</h2>
{{if .Logs}}
<table>
<caption class="hint">Per log: the checkpoint this witness last cosigned, when (the time in its cosignature) and when its state last changed.</caption>
<thead><tr><th scope="col">log (origin)</th><th scope="col">size</th><th scope="col">root hash</th><th scope="col">last cosignature</th><th scope="col">state updated</th><th scope="col">checkpoint</th></tr></thead>
<tbody>
{{range .Logs}}<tr><td class="break">{{.Origin}}{{if gt .Keys 1}} <span class="hint">({{.Keys}} keys)</span>{{end}}</td><td class="num">{{.Size}}</td><td class="mono break">{{.Root}}</td><td>{{.CosignedAt}}</td><td>{{.UpdatedAt}}</td><td>{{if ne .Size "-"}}<a href="{{.Path}}">signed note</a>{{else}}-{{end}}</td></tr>
{{end}}</tbody>
</table>
{{else}}<p>This witness follows no logs (see its --logs_file).</p>{{end}}
</section>
<section aria-labelledby="ev-h">
<h2 id="ev-h">Split-view evidence</h2>
{{if .Evidence}}
<p><span class="status bad" role="status">{{len .Evidence}}{{if .More}}+{{end}} record(s)</span> Two checkpoints a log signed that cannot both be true. Download all as JSON: <a href="/evidence">/evidence</a>.</p>
{{range .Evidence}}<details>
<summary><strong>#{{.ID}}</strong> {{.Origin}}: {{.Reason}}, found {{.FoundAt.UTC.Format "2006-01-02T15:04:05Z07:00"}}</summary>
<div class="row">
<div><h3>Held (cosigned by this witness)</h3><pre>{{.Held}}</pre></div>
<div><h3>Conflicting</h3><pre>{{.New}}</pre></div>
</div>
</details>
{{end}}
{{else}}<p><span class="status ok" role="status">none</span> No log has shown this witness two conflicting checkpoints.</p>{{end}}
</section>
</main>
<footer>Rendered {{.Now}} · <a href="/evidence">evidence (JSON)</a></footer>
</body>
</html>
`))
