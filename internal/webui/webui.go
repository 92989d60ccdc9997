// Package webui holds what the log's explorer (/ui) and the witness's
// status page share: one stylesheet, embedded in the binaries, so that
// neither page loads anything from the network.
package webui

import (
	_ "embed"
	"net/http"
)

// CSS is the shared stylesheet.
//
//go:embed style.css
var CSS []byte

// ServeCSS writes CSS with a content type and a short cache lifetime.
func ServeCSS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(CSS)
}

// SecurityHeaders sets the headers every page of ours carries: a content
// security policy that allows only our own scripts, styles and fetches (no
// inline scripts, nothing from elsewhere), and no framing.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
