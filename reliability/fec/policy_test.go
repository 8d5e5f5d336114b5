package fec

import "testing"

// TestPolicyTable holds the loss steady until the estimate settles and
// checks the row chosen, which pins the documented DefaultTable.
func TestPolicyTable(t *testing.T) {
	tests := []struct {
		loss float64
		want Params
	}{
		{0, Params{}},
		{0.004, Params{}},
		{0.005, Params{K: 10, M: 1}},
		{0.01, Params{K: 10, M: 1}},
		{0.02, Params{K: 10, M: 2}},
		{0.049, Params{K: 10, M: 2}},
		{0.05, Params{K: 8, M: 3}},
		{0.10, Params{K: 6, M: 3}},
		{0.15, Params{K: 5, M: 4}},
		{0.20, Params{K: 5, M: 4}},
		{0.25, Params{K: 4, M: 4}},
		{0.60, Params{K: 4, M: 4}},
		{1, Params{K: 4, M: 4}},
	}
	for _, tt := range tests {
		p, err := NewPolicy(PolicyConfig{})
		if err != nil {
			t.Fatal(err)
		}
		lost := uint64(tt.loss * 100_000)
		for i := 0; i < 100; i++ {
			p.Observe(lost, 100_000)
		}
		if got := p.Params(); got != tt.want {
			t.Errorf("loss %v: Params = %v, want %v (estimate %v)", tt.loss, got, tt.want, p.Loss())
		}
	}
}

func TestPolicyEWMAAndHysteresis(t *testing.T) {
	p, _ := NewPolicy(PolicyConfig{})
	if p.Params().Enabled() {
		t.Fatal("FEC on before any report")
	}
	p.Observe(0, 0) // empty report: ignored
	p.Observe(10, 100)
	if p.Loss() != 0.1 || p.Params() != (Params{K: 6, M: 3}) {
		t.Fatalf("first report sets the estimate: %v %v", p.Loss(), p.Params())
	}
	// One clean report moves the estimate by Alpha only: 0.1 -> 0.08,
	// inside 8+3's range and above 6+3's hysteresis floor (0.075), so
	// the policy stays at 6+3.
	p.Observe(0, 100)
	if got := p.Loss(); got < 0.0799 || got > 0.0801 {
		t.Fatalf("estimate after a clean report = %v, want 0.08", got)
	}
	if p.Params() != (Params{K: 6, M: 3}) {
		t.Fatalf("stepped down inside the hysteresis band: %v", p.Params())
	}
	// Next clean report: 0.064, below the floor: one row down.
	p.Observe(0, 100)
	if p.Params() != (Params{K: 8, M: 3}) {
		t.Fatalf("estimate %v: Params %v, want 8+3", p.Loss(), p.Params())
	}
	// A long clean stretch turns FEC off.
	for i := 0; i < 60; i++ {
		p.Observe(0, 100)
	}
	if p.Params().Enabled() {
		t.Fatalf("estimate %v still gives %v", p.Loss(), p.Params())
	}
	// Reports over 100% (a confused reporter) are clamped.
	p.Observe(500, 100)
	if p.Loss() > 1 {
		t.Fatalf("estimate %v over 1", p.Loss())
	}
}

func TestPolicyConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  PolicyConfig
		ok   bool
	}{
		{"zero", PolicyConfig{}, true},
		{"custom", PolicyConfig{Table: []Step{{0, Params{K: 2, M: 1}}, {0.5, Params{K: 1, M: 1}}}}, true},
		{"empty table", PolicyConfig{Table: []Step{}}, false},
		{"table not from zero", PolicyConfig{Table: []Step{{0.1, Params{}}}}, false},
		{"not increasing", PolicyConfig{Table: []Step{{0, Params{}}, {0.2, Params{K: 1, M: 1}}, {0.2, Params{K: 1, M: 2}}}}, false},
		{"bad params", PolicyConfig{Table: []Step{{0, Params{K: 100, M: 1}}}}, false},
		{"alpha over 1", PolicyConfig{Alpha: 1.5}, false},
		{"hysteresis 1", PolicyConfig{Hysteresis: 1}, false},
	}
	for _, tt := range tests {
		if _, err := NewPolicy(tt.cfg); (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
}
