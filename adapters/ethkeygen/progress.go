package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// progress shows "label done/total (rate/s)" on stderr for runs longer than a
// second, only when stderr is a terminal.
type progress struct {
	e       *env
	label   string
	total   int
	start   time.Time
	mu      sync.Mutex
	shown   bool
	lastOut time.Time
}

func newProgress(e *env, label string, total int) *progress {
	e.status.mu.Lock()
	e.status.total, e.status.done = total, 0
	if strings.HasSuffix(label, " stored") {
		e.status.label = "stored"
	}
	e.status.mu.Unlock()
	return &progress{e: e, label: label, total: total, start: time.Now()}
}

func (p *progress) update(done int) {
	if p == nil {
		return
	}
	p.e.status.mu.Lock()
	if done > p.e.status.done {
		p.e.status.done = done
	}
	p.e.status.mu.Unlock()
	if !p.e.isTerminal {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	elapsed := now.Sub(p.start)
	if elapsed < time.Second || (now.Sub(p.lastOut) < 200*time.Millisecond && done < p.total) {
		return
	}
	p.lastOut, p.shown = now, true
	rate := float64(done) / elapsed.Seconds()
	fmt.Fprintf(p.e.stderr, "\r%s %d/%d (%.1f/s)   ", p.label, done, p.total, rate)
}

func (p *progress) finish() {
	if p != nil && p.shown {
		fmt.Fprintln(p.e.stderr)
	}
}
