//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
	"strings"
)

// Built with -tags pprof, the server serves net/http/pprof on the address
// in $EVIDENT_PPROF_LISTEN (for profiling benchmarks; never in releases).
// The package's test binary, built with the same tag so that the servers
// it starts serve profiles, leaves the address to them.
func init() {
	if addr := os.Getenv("EVIDENT_PPROF_LISTEN"); addr != "" && !strings.HasSuffix(os.Args[0], ".test") {
		go http.ListenAndServe(addr, nil)
	}
}
