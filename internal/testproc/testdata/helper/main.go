// Command helper is a stand-in for the module's servers in testproc's own
// tests. With --mode serve it prints "key: value" lines, listens on
// loopback, prints "listening: <url>" and serves until SIGTERM; with --mode
// fail it complains on stderr and exits 2; with --mode stubborn it serves
// but ignores SIGTERM; with --mode stderr it announces its address on
// stderr only.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	mode := flag.String("mode", "serve", "serve, fail, stubborn or stderr")
	flag.Parse()
	if *mode == "fail" {
		fmt.Fprintln(os.Stderr, "helper: no such thing")
		os.Exit(2)
	}
	term := make(chan os.Signal, 1)
	if *mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM)
	}
	fmt.Fprintln(os.Stderr, "helper starting")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello")
	}))
	if *mode == "stderr" {
		fmt.Println("vkey: k")
		fmt.Fprintf(os.Stderr, "serving addr=%s\n", ln.Addr())
	} else {
		fmt.Printf("origin: example.com/helper\nnot a key value line\nvkey: k\nlistening: http://%s\nafter: listening\n", ln.Addr())
	}
	select {
	case <-term:
	case <-time.After(time.Hour):
	}
	fmt.Fprintln(os.Stderr, "helper stopping")
}
