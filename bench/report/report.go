// Package report turns repeated `go test -bench` output of the side-by-side
// benchmarks into a markdown table: per JSP/raw pair and metric, the median
// of each side over the runs, the ratio of the medians, and the median of
// the ratios taken within each run, checked against the protocol's targets
// (JSP costs at most 5 % of raw throughput and at most 10 % of raw
// round-trip time).
//
// Benchmark names end in the stack: ".../jsp" or ".../raw" (any other last
// element is a JSP variant, also compared with raw). The k-th result of a
// name in the input belongs to run k, so that output of one process run with
// -count N and the concatenated output of N processes both pair up.
package report

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// RawStack is the name of the stack every other stack is compared with.
const RawStack = "raw"

// Result is one benchmark result line.
type Result struct {
	// Name is the benchmark name without the "Benchmark" prefix and the
	// GOMAXPROCS suffix, e.g. "Bulk/quic/jsp".
	Name string
	// Iterations is b.N.
	Iterations int64
	// Metrics maps a unit ("ns/op", "MB/s", "p50-µs", ...) to its value.
	Metrics map[string]float64
}

// Parse reads benchmark result lines from r and skips everything else.
func Parse(r io.Reader) ([]Result, error) {
	var out []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		res, ok, err := parseLine(sc.Text())
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, res)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("report: read benchmark output: %w", err)
	}
	return out, nil
}

// parseLine parses "BenchmarkName-2  10  123 ns/op  4.5 MB/s ...". Lines
// that are not results (headers, PASS, log output) return ok == false.
func parseLine(line string) (Result, bool, error) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return Result{}, false, nil
	}
	iters, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Result{}, false, nil // e.g. a log line starting with a benchmark name
	}
	res := Result{Name: trimProcs(strings.TrimPrefix(f[0], "Benchmark")), Iterations: iters, Metrics: map[string]float64{}}
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, false, fmt.Errorf("report: %s: value %q of %s: %w", f[0], f[i], f[i+1], err)
		}
		res.Metrics[f[i+1]] = v
	}
	return res, true, nil
}

// trimProcs removes the "-N" GOMAXPROCS suffix the testing package appends.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// Target is a bound on the JSP/raw ratio of one metric.
type Target struct {
	// Max is true when the ratio must not exceed Limit (costs such as
	// latency), false when it must not fall below it (rates).
	Max   bool
	Limit float64
}

// String renders the bound, e.g. "≥ 0.95".
func (t Target) String() string {
	if t.Max {
		return fmt.Sprintf("≤ %.2f", t.Limit)
	}
	return fmt.Sprintf("≥ %.2f", t.Limit)
}

// Met reports whether ratio satisfies the bound.
func (t Target) Met(ratio float64) bool {
	if t.Max {
		return ratio <= t.Limit
	}
	return ratio >= t.Limit
}

// Goal is a target that applies to one metric of the benchmarks whose
// names start with Prefix.
type Goal struct {
	Prefix string
	Metric string
	Target Target
}

// Goals are the protocol's performance targets: bulk throughput at least
// 95 % of raw, typical (median) round trip at most 110 % of raw. Tail
// latency and handshakes are reported without a target.
var Goals = []Goal{
	{Prefix: "Bulk/", Metric: "MB/s", Target: Target{Max: false, Limit: 0.95}},
	{Prefix: "RoundTrip/", Metric: "p50-µs", Target: Target{Max: true, Limit: 1.10}},
}

// goalFor returns the target for a metric of a benchmark, or nil.
func goalFor(bench, metric string) *Target {
	for _, g := range Goals {
		if g.Metric == metric && strings.HasPrefix(bench+"/", g.Prefix) {
			t := g.Target
			return &t
		}
	}
	return nil
}

// metricOrder lists the metrics shown first; others follow alphabetically.
// ns/op is left out: it restates MB/s and handshakes/s, and for round trips
// it is a mean that the quantiles describe better.
var metricOrder = []string{"MB/s", "handshakes/s", "p50-µs", "p99-µs", "cpu-µs/op"}

// Row is one line of the table: one metric of one stack against raw.
type Row struct {
	// Benchmark is the name without the stack, e.g. "Bulk/quic".
	Benchmark string
	// Stack is the compared stack, usually "jsp".
	Stack  string
	Metric string
	// Runs is the number of runs that had both the stack and raw.
	Runs int
	// JSP and Raw are the medians over the runs.
	JSP, Raw float64
	// Ratio is JSP / Raw.
	Ratio float64
	// RunRatio is the median over runs of the ratio within each run.
	RunRatio float64
	// MinRunRatio and MaxRunRatio bound the ratios within the runs.
	MinRunRatio, MaxRunRatio float64
	// Target is the bound that applies, if any.
	Target *Target
}

// Met reports whether the row meets its target, judged on the same-run
// ratio, which machine-wide drift between runs affects least. Rows without
// a target always meet it.
func (r Row) Met() bool { return r.Target == nil || r.Target.Met(r.RunRatio) }

// Rows pairs every stack with raw and summarises each metric.
func Rows(results []Result) []Row {
	// series[name] holds the results of one benchmark in run order.
	series := map[string][]Result{}
	var names []string
	for _, r := range results {
		if _, seen := series[r.Name]; !seen {
			names = append(names, r.Name)
		}
		series[r.Name] = append(series[r.Name], r)
	}
	var rows []Row
	for _, name := range names {
		bench, stack := split(name)
		if stack == RawStack {
			continue
		}
		raw, ok := series[bench+"/"+RawStack]
		if !ok {
			continue
		}
		cur := series[name]
		runs := min(len(cur), len(raw))
		for _, m := range metrics(cur, raw) {
			row := Row{Benchmark: bench, Stack: stack, Metric: m}
			var js, rs, ratios []float64
			for i := range runs {
				jv, jok := cur[i].Metrics[m]
				rv, rok := raw[i].Metrics[m]
				if !jok || !rok {
					continue
				}
				js, rs = append(js, jv), append(rs, rv)
				if rv != 0 {
					ratios = append(ratios, jv/rv)
				}
			}
			if len(js) == 0 {
				continue
			}
			row.Runs = len(js)
			row.JSP, row.Raw = Median(js), Median(rs)
			row.Ratio = math.NaN()
			if row.Raw != 0 {
				row.Ratio = row.JSP / row.Raw
			}
			row.RunRatio, row.MinRunRatio, row.MaxRunRatio = math.NaN(), math.NaN(), math.NaN()
			if len(ratios) > 0 {
				row.RunRatio = Median(ratios)
				row.MinRunRatio, row.MaxRunRatio = slices.Min(ratios), slices.Max(ratios)
			}
			row.Target = goalFor(bench, m)
			rows = append(rows, row)
		}
	}
	return rows
}

// split separates "Bulk/quic/jsp" into "Bulk/quic" and "jsp".
func split(name string) (bench, stack string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return name, ""
	}
	return name[:i], name[i+1:]
}

// metrics lists the units both series report, in display order.
func metrics(a, b []Result) []string {
	has := func(rs []Result, m string) bool {
		for _, r := range rs {
			if _, ok := r.Metrics[m]; ok {
				return true
			}
		}
		return false
	}
	var rest []string
	seen := map[string]bool{"ns/op": true}
	for _, m := range metricOrder {
		seen[m] = true
	}
	for _, r := range a {
		for m := range r.Metrics {
			if !seen[m] {
				seen[m] = true
				rest = append(rest, m)
			}
		}
	}
	slices.Sort(rest)
	var out []string
	for _, m := range append(slices.Clone(metricOrder), rest...) {
		if has(a, m) && has(b, m) {
			out = append(out, m)
		}
	}
	return out
}

// Median returns the median of v (the mean of the middle two for an even
// count), NaN for none. v is not modified.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Markdown writes rows as a markdown table.
func Markdown(w io.Writer, rows []Row) error {
	var b strings.Builder
	b.WriteString("| benchmark | metric | runs | JSP (median) | raw (median) | JSP/raw (medians) | JSP/raw (same-run median) | same-run range | target | met |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|---|---|\n")
	for _, r := range rows {
		name := r.Benchmark
		if r.Stack != "jsp" {
			name += " (" + r.Stack + ")"
		}
		target, met := "—", "—"
		if r.Target != nil {
			target = r.Target.String()
			met = "yes"
			if !r.Met() {
				met = "**no**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %.3f | %.3f | %.3f–%.3f | %s | %s |\n",
			name, r.Metric, r.Runs, num(r.JSP), num(r.Raw), r.Ratio, r.RunRatio, r.MinRunRatio, r.MaxRunRatio, target, met)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// num prints a value with precision suited to its size.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
