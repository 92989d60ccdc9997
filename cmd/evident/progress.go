package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress draws a one-line progress bar (done, rate, ETA) on stderr when
// stderr is a terminal, and nothing otherwise. Safe for concurrent use.
type progress struct {
	w       io.Writer
	label   string
	total   int64
	initial int64
	done    atomic.Int64
	start   time.Time
	mu      sync.Mutex // serialises drawing and Log
	stop    chan struct{}
	stopped chan struct{}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newProgress starts a bar for total units of which initial are done.
func newProgress(w io.Writer, label string, total, initial int64) *progress {
	p := &progress{w: w, label: label, total: total, initial: initial, start: time.Now()}
	p.done.Store(initial)
	if !isTerminal(w) {
		return p
	}
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw(false)
			}
		}
	}()
	return p
}

// Add records n more units done.
func (p *progress) Add(n int64) { p.done.Add(n) }

// SetTotal changes the total (when it is learnt late).
func (p *progress) SetTotal(total int64) {
	p.mu.Lock()
	p.total = total
	p.mu.Unlock()
}

// Log prints a message line without garbling the bar.
func (p *progress) Log(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, msg)
}

// Finish draws the final state and stops the bar.
func (p *progress) Finish() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.stopped
	p.draw(true)
}

// Rate returns units per second since the start, counting only this run.
func (p *progress) Rate() float64 {
	el := time.Since(p.start).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(p.done.Load()-p.initial) / el
}

func (p *progress) draw(final bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\033[K"+p.line())
	if final {
		fmt.Fprintln(p.w)
	}
}

// line renders the bar: label [=====>    ] done/total pct rate ETA.
func (p *progress) line() string {
	done, total := p.done.Load(), p.total
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	fill := int(frac * width)
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	rate := p.Rate()
	eta := "--"
	if rate > 0 && total > done {
		eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
	} else if total <= done {
		eta = "0s"
	}
	return fmt.Sprintf("%s [%s] %d/%d %3.0f%% %.0f/s ETA %s", p.label, bar, done, total, frac*100, rate, eta)
}
