package loadgen

import (
	"fmt"
	"math"
	"strings"
)

// Table describes a markdown table of medians and same-run ratios built
// from result lines.
type Table struct {
	// Row are the keys whose values identify one row group, e.g.
	// bench, case, rate.
	Row []string
	// Systems lists the systems' columns in order (values of key
	// "system").
	Systems []string
	// Ratios are pairs {a, b}: a column "a/b" holds the median over runs of
	// a's value divided by b's value from the same run (key "run").
	Ratios [][2]string
	// Metrics are the keys reported, one table row per group and metric.
	Metrics []string
}

// Markdown renders the table for lines.
func (t Table) Markdown(lines []Line) string {
	type key string
	var order []key
	groups := map[key][]Line{}
	for _, l := range lines {
		var parts []string
		for _, r := range t.Row {
			parts = append(parts, l.Get(r))
		}
		k := key(strings.Join(parts, " "))
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], l)
	}
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.Row, " | ") + " | metric | runs |")
	for _, s := range t.Systems {
		b.WriteString(" " + s + " |")
	}
	for _, r := range t.Ratios {
		b.WriteString(" " + r[0] + "/" + r[1] + " (same-run median) |")
	}
	b.WriteString("\n|")
	for range len(t.Row) + 2 + len(t.Systems) + len(t.Ratios) {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, k := range order {
		ls := groups[k]
		for _, m := range t.Metrics {
			runs := map[string]bool{}
			vals := map[string][]float64{}
			byRun := map[string]map[string]float64{} // system -> run -> value
			for _, l := range ls {
				v, ok := l.Float(m)
				if !ok {
					continue
				}
				s := l.Get("system")
				vals[s] = append(vals[s], v)
				if byRun[s] == nil {
					byRun[s] = map[string]float64{}
				}
				byRun[s][l.Get("run")] = v
				runs[l.Get("run")] = true
			}
			if len(vals) == 0 {
				continue
			}
			b.WriteString("| " + strings.ReplaceAll(string(k), " ", " | ") + " | " + m + fmt.Sprintf(" | %d |", len(runs)))
			for _, s := range t.Systems {
				if len(vals[s]) == 0 {
					b.WriteString(" — |")
					continue
				}
				b.WriteString(" " + formatNum(Median(vals[s])) + " |")
			}
			for _, r := range t.Ratios {
				var ratios []float64
				for run, a := range byRun[r[0]] {
					if bv, ok := byRun[r[1]][run]; ok && bv != 0 {
						ratios = append(ratios, a/bv)
					}
				}
				if len(ratios) == 0 {
					b.WriteString(" — |")
					continue
				}
				if m := Median(ratios); math.IsInf(m, 0) || math.IsNaN(m) {
					b.WriteString(" — |")
				} else {
					b.WriteString(fmt.Sprintf(" %.2f |", m))
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// formatNum prints a figure with three significant digits or as an
// integer when it is large.
func formatNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsInf(v, 0) || math.IsNaN(v):
		return "lost"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
