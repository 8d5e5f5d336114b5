package loadgen

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// LinePrefix starts every result line, so that results can be picked out
// of a program's other output.
const LinePrefix = "result"

// Field is one key=value pair of a result line.
type Field struct{ Key, Value string }

// Line is one result: ordered key=value fields, printed on one line as
//
//	result bench=fanout system=jsp case=1x100 rate=200 run=1 delivered/s=19990 ...
//
// Keys and values contain no spaces or '='.
type Line []Field

// Add appends a field, with floats in a short fixed form.
func (l Line) Add(key string, v any) Line {
	var s string
	switch x := v.(type) {
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
		if x >= 100 || x <= -100 {
			s = strconv.FormatFloat(x, 'f', 0, 64)
		} else if len(s) > 8 {
			s = strconv.FormatFloat(x, 'f', 3, 64)
		}
	case time.Duration:
		// Microseconds with one decimal: the histogram's precision.
		s = strconv.FormatFloat(float64(x)/1e3, 'f', 1, 64)
		if x == Never {
			s = "inf"
		}
	default:
		s = fmt.Sprint(x)
	}
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '=' || r == '\t' || r == '\n' {
			return '_'
		}
		return r
	}, s)
	return append(l, Field{Key: key, Value: s})
}

// Get returns the value of key, or "".
func (l Line) Get(key string) string {
	for _, f := range l {
		if f.Key == key {
			return f.Value
		}
	}
	return ""
}

// Float returns the value of key as a number.
func (l Line) Float(key string) (float64, bool) {
	v, err := strconv.ParseFloat(l.Get(key), 64)
	return v, err == nil
}

// String formats the line.
func (l Line) String() string {
	var b strings.Builder
	b.WriteString(LinePrefix)
	for _, f := range l {
		b.WriteByte(' ')
		b.WriteString(f.Key)
		b.WriteByte('=')
		b.WriteString(f.Value)
	}
	return b.String()
}

// ParseLine parses a result line; ok is false for any other text.
func ParseLine(s string) (l Line, ok bool) {
	parts := strings.Fields(s)
	if len(parts) < 2 || parts[0] != LinePrefix {
		return nil, false
	}
	for _, p := range parts[1:] {
		k, v, found := strings.Cut(p, "=")
		if !found || k == "" {
			return nil, false
		}
		l = append(l, Field{Key: k, Value: v})
	}
	return l, true
}

// ParseLines returns the result lines found in text.
func ParseLines(text string) []Line {
	var out []Line
	for _, s := range strings.Split(text, "\n") {
		if l, ok := ParseLine(strings.TrimSpace(s)); ok {
			out = append(out, l)
		}
	}
	return out
}

// StatsLine appends a run's statistics to l.
func StatsLine(l Line, st Stats) Line {
	return l.Add("offered/s", st.Offered).
		Add("delivered/s", st.Delivered).
		Add("p50-us", st.P50).
		Add("p99-us", st.P99).
		Add("p999-us", st.P999).
		Add("max-us", st.Max).
		Add("lost", st.Lost).
		Add("expected", st.Expected).
		Add("received", st.Received).
		Add("unsent", st.Unsent).
		Add("errors", st.PublishErrors).
		Add("first-error", firstWords(st.FirstError, 12))
}

// firstWords shortens an error message for a result line.
func firstWords(s string, n int) string {
	if s == "" {
		return "-"
	}
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, "_")
}

// Median returns the median of xs (the mean of the middle two for an even
// count); NaN-free input is assumed, and 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
