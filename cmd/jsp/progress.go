package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progressRedraw is the minimum time between two redraws of a progress bar:
// often enough to look live, rarely enough to cost nothing.
const progressRedraw = 100 * time.Millisecond

// progressWidth is the number of cells in the bar.
const progressWidth = 30

// progressBar draws a one-line transfer progress bar on a terminal, redrawn
// in place with a carriage return:
//
//	upload   [=============>                ]  45%  4.5 MiB / 10.0 MiB  12.3 MiB/s
//
// It is an io.Writer that counts what is written to it, so it plugs into an
// io.TeeReader or io.MultiWriter. A nil *progressBar counts nothing and
// draws nothing (--quiet).
type progressBar struct {
	w     io.Writer
	label string
	total int64
	now   func() time.Time

	mu       sync.Mutex
	done     int64     // guarded by mu
	start    time.Time // guarded by mu
	lastDraw time.Time // guarded by mu
	lastLen  int       // guarded by mu; length of the last line drawn
	finished bool      // guarded by mu
}

// newProgressBar returns a bar for a transfer of total bytes, drawn on w.
// now is the clock (time.Now outside tests).
func newProgressBar(w io.Writer, label string, total int64, now func() time.Time) *progressBar {
	return &progressBar{w: w, label: label, total: total, now: now, start: now()}
}

// Write counts len(b) transferred bytes and redraws when due.
func (p *progressBar) Write(b []byte) (int, error) {
	if p == nil {
		return len(b), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(len(b))
	if t := p.now(); t.Sub(p.lastDraw) >= progressRedraw {
		p.lastDraw = t
		p.drawLocked(t)
	}
	return len(b), nil
}

// Finish draws the final state and ends the line. It is idempotent.
func (p *progressBar) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	p.drawLocked(p.now())
	fmt.Fprintln(p.w)
}

func (p *progressBar) drawLocked(t time.Time) {
	line := p.render(t)
	// Pad over the remains of a longer previous line.
	pad := max(p.lastLen-len(line), 0)
	p.lastLen = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
}

// render formats the bar for the current count at time t.
func (p *progressBar) render(t time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s [", p.label)
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(p.done)/float64(p.total), 1)
	}
	filled := int(frac * progressWidth)
	for i := range progressWidth {
		switch {
		case i < filled:
			b.WriteByte('=')
		case i == filled && frac < 1:
			b.WriteByte('>')
		default:
			b.WriteByte(' ')
		}
	}
	fmt.Fprintf(&b, "] %3d%%  %s / %s", int(frac*100), formatBytes(float64(p.done)), formatBytes(float64(p.total)))
	if el := t.Sub(p.start); el > 0 {
		fmt.Fprintf(&b, "  %s/s", formatBytes(float64(p.done)/el.Seconds()))
	}
	return b.String()
}

// formatBytes formats a byte count with a binary unit.
func formatBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", int64(n))
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
