package loadgen

import (
	"context"
	"math"
	"time"
)

// Schedule is a fixed-rate open-loop schedule: message i is due at
// Start + i/Rate seconds, whatever happened to earlier messages.
type Schedule struct {
	// Start is when message 0 is due.
	Start time.Time
	// Rate is messages per second.
	Rate float64
}

// NewSchedule returns the schedule for rate messages per second starting
// at start. rate must be positive.
func NewSchedule(start time.Time, rate float64) Schedule {
	return Schedule{Start: start, Rate: rate}
}

// Due returns when message i is due. It is computed from i rather than
// accumulated, so that rounding never drifts the schedule.
func (s Schedule) Due(i int64) time.Time {
	return s.Start.Add(time.Duration(math.Round(float64(i) * float64(time.Second) / s.Rate)))
}

// Count returns how many messages fall due in [Start, Start+d).
func (s Schedule) Count(d time.Duration) int64 {
	if d <= 0 || s.Rate <= 0 {
		return 0
	}
	// The epsilon keeps a due time that lands exactly on Start+d out.
	return int64(math.Ceil(d.Seconds()*s.Rate - 1e-9))
}

// Tick is one due message handed to a sender.
type Tick struct {
	// Seq is the message's index in the schedule.
	Seq int64
	// Due is its scheduled send time, the origin of its latency.
	Due time.Time
}

// Pace sends the ticks of s due before s.Start+d to out, each at its due
// time, and closes out when done or when ctx ends. It never waits for the
// receiver beyond handing the tick over: when out is full, the tick is
// counted in the returned value as not sent (the sender is saturated) and
// pacing goes on, so a slow system under test cannot slow the schedule.
// sleep waits until a time; nil means a timer-based sleep.
func Pace(ctx context.Context, s Schedule, d time.Duration, out chan<- Tick, sleep func(context.Context, time.Time)) (unsent int64) {
	defer close(out)
	if sleep == nil {
		sleep = sleepUntil
	}
	n := s.Count(d)
	for i := int64(0); i < n; i++ {
		due := s.Due(i)
		sleep(ctx, due)
		if ctx.Err() != nil {
			return unsent + n - i
		}
		select {
		case out <- Tick{Seq: i, Due: due}:
		default:
			unsent++
		}
	}
	return unsent
}

// sleepUntil waits until t or the end of ctx. Sub-millisecond waits are
// not slept: timers on a loaded machine overshoot by more than that, and
// the schedule catches up by sending the ticks that are due at once.
func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d < 500*time.Microsecond {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}
