//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

// Built with -tags pprof, the server serves net/http/pprof on the address
// in $EVIDENT_PPROF_LISTEN (for profiling benchmarks; never in releases).
func init() {
	if addr := os.Getenv("EVIDENT_PPROF_LISTEN"); addr != "" {
		go http.ListenAndServe(addr, nil)
	}
}
