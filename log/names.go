package log

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/evidentlog/evident/storage"
)

// Log names. A server may run several logs (docs/deployment.md, "Several
// logs on one server"): the default one at /, and each named log at
// /<name>/, its API unchanged below that prefix. A name is therefore a
// path segment that must never be one the default log's own API starts
// with, nor a file name that could leave the directory of logs.

// reservedNames are refused as log names beside the API's own first path
// segments (RoutePrefixes): "logs" (the data directory's folder of named
// logs) and a few kept for later.
var reservedNames = []string{"logs", "api", "admin", "static", "well-known", "favicon.ico", "robots.txt", "default"}

// RoutePrefixes returns the first path segments of the log's HTTP API
// ("v1", "checkpoint", "tile", ...), sorted: the names a named log may
// not take.
var RoutePrefixes = sync.OnceValue(func() []string {
	var out []string
	add := func(pattern string) {
		_, path, _ := strings.Cut(pattern, " ")
		first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if !slices.Contains(out, first) {
			out = append(out, first)
		}
	}
	// The handlers are only named, never called: a zero Log will do.
	(&Log{}).routes(func(pattern string, _ func(http.ResponseWriter, *http.Request) error) { add(pattern) })
	add("GET /metrics")
	slices.Sort(out)
	return out
})

// ReservedLogNames returns every name CheckLogName refuses by name (the
// API's first path segments, then the other reserved names); names
// starting with "evident." are refused too.
func ReservedLogNames() []string {
	return append(slices.Clone(RoutePrefixes()), reservedNames...)
}

// CheckLogName reports whether s may name a log of a server with several:
// the syntax of a tenant name (storage.CheckTenantName: 1 to 64
// lowercase letters, digits, '.', '_' and '-', starting with a letter or
// digit), and none of the names the API's paths use (RoutePrefixes) or
// that are reserved, nor one starting with "evident.".
func CheckLogName(s string) error {
	if err := storage.CheckTenantName(s); err != nil {
		return errors.New(strings.Replace(err.Error(), "tenant name", "log name", 1))
	}
	if slices.Contains(RoutePrefixes(), s) || slices.Contains(reservedNames, s) {
		return fmt.Errorf("log name %q is reserved: the server's own paths use it (reserved: %s)", s, strings.Join(ReservedLogNames(), ", "))
	}
	if strings.HasPrefix(s, "evident.") {
		return fmt.Errorf("log name %q: names starting with \"evident.\" are reserved for Evident", s)
	}
	return nil
}
