package main

import (
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/bench/loadgen"
)

func capLine(sys, run, level, delivered, p99, lost string) loadgen.Line {
	l, _ := loadgen.ParseLine("result bench=fanout system=" + sys + " case=1x100 deliveries=" + level + " run=" + run +
		" mode=find-max offered/s=" + level + " delivered/s=" + delivered + " p99-us=" + p99 + " lost=" + lost + " expected=20000")
	return l
}

func TestKeepsUp(t *testing.T) {
	tests := []struct {
		delivered, p99, lost string
		want                 bool
	}{
		{"1000", "5000", "0", true},
		{"960", "5000", "20", true},   // 0.1 % lost, 96 % delivered
		{"1000", "5000", "21", false}, // over 0.1 % lost
		{"940", "5000", "0", false},   // under 95 % delivered
		{"1000", "1000001", "0", false},
		{"1000", "inf", "0", false},
	}
	for _, tt := range tests {
		l := capLine("jsp", "1", "1000", tt.delivered, tt.p99, tt.lost)
		if got := keepsUp(l, 1e6); got != tt.want {
			t.Errorf("%v: keepsUp = %v, want %v", l, got, tt.want)
		}
	}
}

// TestCapacitySummary checks the capacity and the p99 at the common rate:
// JSP keeps up to 4,000/s, Centrifugo to 2,000/s, so the ratio is 2 and
// the p99s are compared at 2,000/s.
func TestCapacitySummary(t *testing.T) {
	lines := []loadgen.Line{
		capLine("jsp", "1", "1000", "1000", "3000", "0"),
		capLine("centrifugo", "1", "1000", "1000", "2000", "0"),
		capLine("jsp", "1", "2000", "2000", "4000", "0"),
		capLine("centrifugo", "1", "2000", "2000", "8000", "0"),
		capLine("jsp", "1", "4000", "4000", "9000", "0"),
		capLine("centrifugo", "1", "4000", "2500", "inf", "9000"),
		capLine("jsp", "1", "8000", "5000", "2000000", "0"),
	}
	s := capacitySummary(lines, 1e6)
	for _, want := range []string{
		"| 1x100 | jsp | 1 | 4000 | 4000 | 9.0 |",
		"| 1x100 | centrifugo | 1 | 2000 | 2000 | 8.0 |",
		"| 1x100 | jsp/centrifugo | 1 | 2.00 | 1: 2.00 | 2000 | 4.0 / 8.0 | 0.50 |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

// TestCapacityFirstFailure checks that a level kept up with above one that
// was not does not count.
func TestCapacityFirstFailure(t *testing.T) {
	lines := []loadgen.Line{
		capLine("jsp", "1", "1000", "1000", "3000", "0"),
		capLine("jsp", "1", "2000", "2000", "900000", "0"),
		capLine("jsp", "1", "4000", "4000", "9000", "0"),
	}
	if s := capacitySummary(lines, 1e5); !strings.Contains(s, "| 1x100 | jsp | 1 | 1000 | 1000 | 3.0 |") {
		t.Errorf("capacity not cut at the first failure:\n%s", s)
	}
}
