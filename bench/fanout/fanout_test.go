package main

import (
	"testing"

	"github.com/jetstreamproto/jsp/bench/loadgen"
)

func TestLostAsLate(t *testing.T) {
	tests := []struct {
		lost, expected       string
		p50, p99, p999       string
		want50, want99, want string
	}{
		{"0", "1000", "5", "9", "10", "5", "9", "10"},
		{"2", "1000", "5", "9", "10", "5", "9", "inf"},
		{"20", "1000", "5", "9", "10", "5", "inf", "inf"},
		{"1000", "1000", "0", "0", "0", "inf", "inf", "inf"},
	}
	for _, tt := range tests {
		l := loadgen.Line{{Key: "lost", Value: tt.lost}, {Key: "expected", Value: tt.expected},
			{Key: "p50-us", Value: tt.p50}, {Key: "p99-us", Value: tt.p99}, {Key: "p999-us", Value: tt.p999}}
		got := lostAsLate([]loadgen.Line{l})[0]
		if got.Get("p50-us") != tt.want50 || got.Get("p99-us") != tt.want99 || got.Get("p999-us") != tt.want {
			t.Errorf("lost %s/%s: %v", tt.lost, tt.expected, got)
		}
	}
}
