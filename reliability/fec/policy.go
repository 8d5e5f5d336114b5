package fec

import (
	"fmt"
	"math"
	"slices"
)

// Step is one row of a [Policy] table: from MinLoss (a fraction, 0..1) of
// measured loss upward, use Params.
type Step struct {
	MinLoss float64
	Params  Params
}

// DefaultTable maps measured loss to group shape. Each row is picked so
// that, with independent losses at the top of its range, FEC alone repairs
// about 90% of the losses (the residual column: the share of lost source
// packets a group cannot rebuild, p * P(at least M of the other K+M-1 lost)
// / p), leaving the rest to NACK; K stays at 10 or below so that a group
// adds at most ten packet intervals of repair latency.
//
//	measured loss   K+M    parity overhead   residual at the top of the range
//	< 0.5%          none   0                 (NACK alone)
//	0.5% - 2%       10+1   10%               18% at 2%
//	2% - 5%         10+2   20%               10% at 5%
//	5% - 10%        8+3    37.5%             7% at 10%
//	10% - 15%       6+3    50%               10.5% at 15%
//	15% - 25%       5+4    80%               11% at 25%
//	>= 25%          4+4    100%              13% at 30%, 29% at 40%
//
// Bursts longer than M defeat any row; NACK covers them.
var DefaultTable = []Step{
	{MinLoss: 0, Params: Params{}},
	{MinLoss: 0.005, Params: Params{K: 10, M: 1}},
	{MinLoss: 0.02, Params: Params{K: 10, M: 2}},
	{MinLoss: 0.05, Params: Params{K: 8, M: 3}},
	{MinLoss: 0.10, Params: Params{K: 6, M: 3}},
	{MinLoss: 0.15, Params: Params{K: 5, M: 4}},
	{MinLoss: 0.25, Params: Params{K: 4, M: 4}},
}

// Policy defaults, used for zero [PolicyConfig] fields.
const (
	// DefaultAlpha is the EWMA weight of each new loss report.
	DefaultAlpha = 0.2
	// DefaultHysteresis is how far (as a fraction of a row's MinLoss) the
	// estimate must fall below a row before the policy steps down from
	// it.
	DefaultHysteresis = 0.25
)

// PolicyConfig configures a [Policy]. Zero fields take their defaults.
type PolicyConfig struct {
	// Table maps loss to group shape; rows sorted by MinLoss, the first
	// at 0. Default DefaultTable.
	Table []Step
	// Alpha is the weight of each report in the loss EWMA, in (0, 1].
	// Default DefaultAlpha: an estimate that moves most of the way to a
	// new loss level in about ten reports.
	Alpha float64
	// Hysteresis keeps the policy from flapping between two rows when the
	// loss sits at their boundary: it moves up as soon as the estimate
	// reaches a row, but down only when the estimate falls below
	// MinLoss * (1 - Hysteresis) of the row it is in. Default
	// DefaultHysteresis, in [0, 1).
	Hysteresis float64
}

func (c *PolicyConfig) setDefaults() {
	if c.Table == nil {
		c.Table = DefaultTable
	}
	if c.Alpha == 0 {
		c.Alpha = DefaultAlpha
	}
	if c.Hysteresis == 0 {
		c.Hysteresis = DefaultHysteresis
	}
}

func (c *PolicyConfig) validate() error {
	if len(c.Table) == 0 || c.Table[0].MinLoss != 0 {
		return fmt.Errorf("fec: policy table must start at 0 loss")
	}
	for i, s := range c.Table {
		if err := s.Params.Validate(); err != nil {
			return fmt.Errorf("fec: policy table row %d: %w", i, err)
		}
		if i > 0 && !(s.MinLoss > c.Table[i-1].MinLoss && s.MinLoss <= 1) {
			return fmt.Errorf("fec: policy table row %d: MinLoss %v not increasing within (0, 1]", i, s.MinLoss)
		}
	}
	if !(c.Alpha > 0 && c.Alpha <= 1) {
		return fmt.Errorf("fec: policy Alpha %v outside (0, 1]", c.Alpha)
	}
	if !(c.Hysteresis >= 0 && c.Hysteresis < 1) {
		return fmt.Errorf("fec: policy Hysteresis %v outside [0, 1)", c.Hysteresis)
	}
	return nil
}

// Policy chooses the FEC group shape from measured loss: an exponentially
// weighted moving average of the loss the receiver reports (before any
// repair), mapped through a table with hysteresis. It is not safe for
// concurrent use.
type Policy struct {
	cfg  PolicyConfig
	loss float64
	row  int
	seen bool
}

// NewPolicy returns a policy with the given configuration. It starts with
// an estimate of zero loss, so with the default table there is no FEC until
// loss is reported.
func NewPolicy(cfg PolicyConfig) (*Policy, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Table = slices.Clone(cfg.Table)
	return &Policy{cfg: cfg}, nil
}

// Observe feeds one loss report: lost of total source packets were missing
// on first arrival during the reporting interval. An empty report is
// ignored. The first report sets the estimate outright.
func (p *Policy) Observe(lost, total uint64) {
	if total == 0 {
		return
	}
	sample := math.Min(float64(lost)/float64(total), 1)
	if !p.seen {
		p.loss, p.seen = sample, true
	} else {
		p.loss += p.cfg.Alpha * (sample - p.loss)
	}
	t := p.cfg.Table
	for p.row+1 < len(t) && p.loss >= t[p.row+1].MinLoss {
		p.row++
	}
	for p.row > 0 && p.loss < t[p.row].MinLoss*(1-p.cfg.Hysteresis) {
		p.row--
	}
}

// Loss returns the current loss estimate, a fraction.
func (p *Policy) Loss() float64 { return p.loss }

// Params returns the group shape for the current estimate.
func (p *Policy) Params() Params { return p.cfg.Table[p.row].Params }
