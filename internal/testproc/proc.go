package testproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTimeout is how long Start waits for a process to be ready: generous,
// because the machines that run these tests are often busy.
const StartTimeout = 60 * time.Second

// ErrNotStopped is returned (wrapped) by Stop when the process did not exit
// in time after SIGTERM; Stop has then killed it.
var ErrNotStopped = errors.New("testproc: the process did not stop")

// Ready reports whether a starting process is ready, given the "key: value"
// lines it has printed on stdout so far and everything it has written to
// stderr. It runs with the Proc's lock held and must not keep lines.
type Ready func(lines map[string]string, stderr string) bool

// Listening is the Ready of Start: the process printed "listening: <url>".
func Listening(lines map[string]string, _ string) bool {
	_, ok := lines["listening"]
	return ok
}

// Proc is a running process started by Start.
type Proc struct {
	// URL is the value of the "listening" line, if the process printed one.
	URL string
	// Lines holds the "key: value" lines the process printed on stdout up
	// to and including the one that made it ready (the later value wins
	// for a repeated key).
	Lines map[string]string

	name    string
	cmd     *exec.Cmd
	ready   Ready
	readyc  chan struct{} // closed when ready first holds
	exited  chan struct{} // closed when the process has exited and its output is read
	waitErr error         // the exit status; set before exited is closed

	mu      sync.Mutex
	isReady bool
	lines   map[string]string
	stderr  bytes.Buffer
}

// Start runs bin with args and waits until it prints a "listening" line.
// See StartReady.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return StartReady(t, Listening, bin, args...)
}

// StartReady runs bin with args and waits until ready holds. If the process
// exits first, or is not ready within StartTimeout (it is then killed),
// the test fails with the process's stderr. A cleanup kills the process
// when the test ends, if it still runs.
func StartReady(t testing.TB, ready Ready, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{
		name:   filepath.Base(bin),
		cmd:    exec.Command(bin, args...),
		ready:  ready,
		readyc: make(chan struct{}),
		exited: make(chan struct{}),
		lines:  map[string]string{},
	}
	p.cmd.Stderr = stderrWriter{p}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	go p.read(stdout)
	timeout := time.NewTimer(StartTimeout)
	defer timeout.Stop()
	select {
	case <-p.readyc:
		return p
	case <-p.exited:
		select {
		case <-p.readyc: // ready, and already gone: a test may want that
			return p
		default:
		}
		t.Fatalf("%s exited before it was ready (%v):\n%s", p.name, p.waitErr, p.Stderr())
	case <-timeout.C:
		p.Kill()
		t.Fatalf("%s was not ready after %v:\n%s", p.name, StartTimeout, p.Stderr())
	}
	return nil
}

// read records stdout's "key: value" lines until it ends, then waits for
// the process.
func (p *Proc) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		p.mu.Lock()
		if ok && !p.isReady {
			p.lines[k] = v
		}
		p.check()
		p.mu.Unlock()
	}
	io.Copy(io.Discard, stdout) // a line too long for the scanner
	p.waitErr = p.cmd.Wait()
	close(p.exited)
}

// check sets Lines and URL and closes readyc when ready first holds. The
// caller holds mu.
func (p *Proc) check() {
	if p.isReady || !p.ready(p.lines, p.stderr.String()) {
		return
	}
	p.isReady = true
	p.Lines = maps.Clone(p.lines)
	p.URL = p.Lines["listening"]
	close(p.readyc)
}

// stderrWriter keeps the process's stderr and checks readiness on it.
type stderrWriter struct{ p *Proc }

func (w stderrWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.stderr.Write(b)
	w.p.check()
	return len(b), nil
}

// Stderr returns what the process has written to stderr so far.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Wait waits for the process to exit and returns its exit status, as
// exec.Cmd.Wait does. It may be called any number of times.
func (p *Proc) Wait() error {
	<-p.exited
	return p.waitErr
}

// Kill sends SIGKILL, unless the process has exited, and waits for it to go.
func (p *Proc) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// Stop sends SIGTERM, unless the process has exited, and returns its exit
// status. If it has not exited after timeout, Stop kills it and returns an
// error wrapping ErrNotStopped.
func (p *Proc) Stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return p.waitErr
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return p.waitErr
	case <-t.C:
		p.Kill()
		return fmt.Errorf("%w: %s was still running %v after SIGTERM", ErrNotStopped, p.name, timeout)
	}
}

// SelfCPU returns the CPU time (user and system) the calling process has
// used so far: a benchmark's server and clients together, when they run
// in it.
func SelfCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
