package main

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/jetstreamproto/jsp/bench/loadgen"
)

// Capacity mode (-find-max, decision D36). At a fixed offered rate that
// every system keeps up with, delivered/s is the offered rate for all of
// them and their ratio is 1.00 by construction; "1.5x Centrifugo's
// delivered messages per second at equal or better p99" needs each
// system's capacity. So for each case and run the orchestrator raises the
// offered rate from the first -deliveries level by the factor -step,
// measuring every system still keeping up at each level side by side (the
// order rotates as in fixed-rate mode), until no system keeps up or the
// level passes -max-deliveries. A system keeps up at a level when
//
//   - it lost at most maxLostFraction of the window's deliveries,
//   - it delivered at least minDeliveredFraction of the offered rate, and
//   - its p99 publish-to-deliver latency is at most -max-p99.
//
// Its capacity in that run is the delivered/s of the highest level it kept
// up with; the comparison rate is the highest level that both systems of
// a ratio kept up with, where their p99s are compared.

// Keep-up thresholds of the capacity mode; -max-p99 is the third.
const (
	// maxLostFraction is the share of expected deliveries that may be
	// lost: the p99 would already count more as late.
	maxLostFraction = 0.001
	// minDeliveredFraction is the share of the offered rate that must
	// arrive inside the window.
	minDeliveredFraction = 0.95
)

// keepsUp reports whether l's system kept up with its offered rate, with
// p99 at most maxP99us.
func keepsUp(l loadgen.Line, maxP99us float64) bool {
	lost, ok1 := l.Float("lost")
	exp, ok2 := l.Float("expected")
	got, ok3 := l.Float("delivered/s")
	offered, ok4 := l.Float("offered/s")
	p99, ok5 := l.Float("p99-us")
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || exp <= 0 || offered <= 0 {
		return false
	}
	return lost <= maxLostFraction*exp && got >= minDeliveredFraction*offered && p99 <= maxP99us
}

// findMax runs the capacity search for every case and run and prints the
// summary; every measurement's line goes to -out like fixed-rate mode's,
// labelled mode=find-max.
func (o *orchestrator) findMax(maxP99us, step, maxLevel float64) error {
	if step <= 1 {
		return fmt.Errorf("-step %v: want a factor above 1", step)
	}
	var all []loadgen.Line
	for _, c := range o.cases {
		if _, err := loadgen.ParseCase(c); err != nil {
			return err
		}
		for run := 1; run <= o.runs; run++ {
			alive := append([]string(nil), o.systems...)
			for lvl, k := o.levels[0], 0; len(alive) > 0 && lvl <= maxLevel; lvl, k = math.Round(lvl*step), k+1 {
				var next []string
				for i := range alive {
					sys := alive[(i+run+k-1)%len(alive)]
					l, err := o.measure(sys, c, lvl, run)
					if err != nil {
						fmt.Fprintf(os.Stderr, "fanout: %s %s %v run %d: %v\n", sys, c, lvl, run, err)
						continue
					}
					all = append(all, l)
					if keepsUp(l, maxP99us) {
						next = append(next, sys)
					}
				}
				// Keep the configured order for the next level's rotation.
				alive = alive[:0]
				for _, s := range o.systems {
					for _, n := range next {
						if n == s {
							alive = append(alive, s)
						}
					}
				}
			}
		}
	}
	fmt.Println()
	fmt.Print(capacitySummary(all, maxP99us))
	return nil
}

// capacityRun is one system's search in one run of one case.
type capacityRun struct {
	max    float64                  // highest level kept up with; 0: none
	lines  map[float64]loadgen.Line // by offered deliveries per second
	failed float64                  // lowest level not kept up with; 0: none
}

// capacitySummary is the markdown report of capacity-mode lines: per case,
// each system's capacity (median over runs of the delivered/s at its
// highest level kept up with), and for each ratio pair the same-run median
// of the capacity ratio and the p99s at the highest level both kept up
// with.
func capacitySummary(lines []loadgen.Line, maxP99us float64) string {
	// case -> run -> system -> search
	type key struct{ c, run string }
	runs := map[key]map[string]*capacityRun{}
	var cases []string
	seenCase := map[string]bool{}
	for _, l := range lines {
		if l.Get("mode") != "find-max" {
			continue
		}
		c, run, sys := l.Get("case"), l.Get("run"), l.Get("system")
		lvl, ok := l.Float("deliveries")
		if !ok {
			continue
		}
		if !seenCase[c] {
			seenCase[c] = true
			cases = append(cases, c)
		}
		k := key{c, run}
		if runs[k] == nil {
			runs[k] = map[string]*capacityRun{}
		}
		r := runs[k][sys]
		if r == nil {
			r = &capacityRun{lines: map[float64]loadgen.Line{}}
			runs[k][sys] = r
		}
		r.lines[lvl] = l
	}
	// A system's capacity is the highest level it kept up with below the
	// first it did not, as the search itself stops (a report with a
	// tighter -max-p99 than the search's reads the same lines).
	for _, sys := range runs {
		for _, r := range sys {
			levels := make([]float64, 0, len(r.lines))
			for lvl := range r.lines {
				levels = append(levels, lvl)
			}
			sort.Float64s(levels)
			for _, lvl := range levels {
				if !keepsUp(r.lines[lvl], maxP99us) {
					r.failed = lvl
					break
				}
				r.max = lvl
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Capacity (keeps up: lost <= %.1f%%, delivered >= %.0f%% of offered, p99 <= %.0f ms)\n\n",
		maxLostFraction*100, minDeliveredFraction*100, maxP99us/1000)
	b.WriteString("| case | system | runs | capacity delivered/s (median) | per run | p99 at capacity (ms, median) |\n|---|---|---|---|---|---|\n")
	for _, c := range cases {
		var keys []key
		for k := range runs {
			if k.c == c {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].run < keys[j].run })
		for _, sys := range fanoutTable.Systems {
			var caps, p99s []float64
			var per []string
			for _, k := range keys {
				r := runs[k][sys]
				if r == nil {
					continue
				}
				d, p := capacityAt(r)
				caps, p99s = append(caps, d), append(p99s, p)
				s := fmt.Sprintf("%.0f", d)
				if r.failed == 0 {
					s += "+" // never failed: the search stopped at -max-deliveries
				}
				per = append(per, s)
			}
			if len(caps) == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %s | %s |\n", c, sys, len(caps), loadgen.Median(caps), strings.Join(per, ", "), fmtMS(loadgen.Median(p99s)))
		}
	}
	b.WriteString("\n| case | ratio | runs | capacity ratio (same-run median) | per run | common rate (median) | p99 ms at common rate, first / second (medians) | p99 ratio (same-run median) |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range cases {
		for _, pair := range fanoutTable.Ratios {
			var ratios, commons, p1s, p2s, pr []float64
			var per []string
			for k, sys := range runs {
				if k.c != c {
					continue
				}
				a, b2 := sys[pair[0]], sys[pair[1]]
				if a == nil || b2 == nil {
					continue
				}
				da, _ := capacityAt(a)
				db, _ := capacityAt(b2)
				if db > 0 {
					ratios = append(ratios, da/db)
					per = append(per, k.run+": "+strconv.FormatFloat(da/db, 'f', 2, 64))
				}
				common := min(a.max, b2.max)
				if common == 0 {
					continue
				}
				pa, _ := a.lines[common].Float("p99-us")
				pb, _ := b2.lines[common].Float("p99-us")
				commons, p1s, p2s = append(commons, common), append(p1s, pa), append(p2s, pb)
				if pb > 0 {
					pr = append(pr, pa/pb)
				}
			}
			if len(ratios) == 0 {
				continue
			}
			sort.Strings(per)
			fmt.Fprintf(&b, "| %s | %s/%s | %d | %.2f | %s | %s | %s / %s | %s |\n", c, pair[0], pair[1], len(ratios),
				loadgen.Median(ratios), strings.Join(per, ", "), fmtNum(commons), fmtMS(medianOr(p1s)), fmtMS(medianOr(p2s)), fmtRatio(pr))
		}
	}
	return b.String()
}

// capacityAt returns the delivered/s and p99 (µs) of r's highest level
// kept up with, or zeros.
func capacityAt(r *capacityRun) (delivered, p99 float64) {
	if r.max == 0 {
		return 0, 0
	}
	l := r.lines[r.max]
	delivered, _ = l.Float("delivered/s")
	p99, _ = l.Float("p99-us")
	return delivered, p99
}

func medianOr(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return loadgen.Median(xs)
}

func fmtMS(us float64) string {
	if math.IsNaN(us) || us == 0 {
		return "—"
	}
	return strconv.FormatFloat(us/1000, 'f', 1, 64)
}

func fmtNum(xs []float64) string {
	if len(xs) == 0 {
		return "—"
	}
	return strconv.FormatFloat(loadgen.Median(xs), 'f', 0, 64)
}

func fmtRatio(xs []float64) string {
	if len(xs) == 0 {
		return "—"
	}
	return strconv.FormatFloat(loadgen.Median(xs), 'f', 2, 64)
}
