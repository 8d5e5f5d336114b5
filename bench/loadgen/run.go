package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Target is the system under test as the load generator sees it.
type Target interface {
	// Publish sends payload to channel ch (0 <= ch < RunConfig.Channels).
	// It may block; Run calls it from RunConfig.Workers goroutines.
	Publish(ctx context.Context, ch int, payload []byte) error
}

// Recorder receives deliveries from subscribers. Deliver is safe for
// concurrent use. The measurement window is set by Run; until then every
// delivery is ignored, which keeps set-up traffic out of the figures.
type Recorder struct {
	winStart, winEnd atomic.Int64 // Unix ns; both zero: no window yet

	// Latency holds the publish-to-deliver latency of every delivery of a
	// message due inside the window, measured from its due time.
	Latency Histogram
	arrived atomic.Uint64 // deliveries that arrived inside the window
	all     atomic.Uint64 // every delivery since the window was set
	foreign atomic.Uint64 // payloads without a stamp
}

// Deliver records one received payload.
func (r *Recorder) Deliver(payload []byte) { r.DeliverAt(time.Now(), payload) }

// DeliverAt records a payload received at now.
func (r *Recorder) DeliverAt(now time.Time, payload []byte) {
	_, due, err := ParseStamp(payload)
	if err != nil {
		r.foreign.Add(1)
		return
	}
	ws, we := r.winStart.Load(), r.winEnd.Load()
	if we == 0 {
		return
	}
	r.all.Add(1)
	if d := due.UnixNano(); d >= ws && d < we {
		r.Latency.Record(now.Sub(due))
	}
	if n := now.UnixNano(); n >= ws && n < we {
		r.arrived.Add(1)
	}
}

// setWindow opens the measurement window [start, end).
func (r *Recorder) setWindow(start, end time.Time) {
	r.winStart.Store(start.UnixNano())
	r.winEnd.Store(end.UnixNano())
}

// RunConfig describes one fixed-rate run.
type RunConfig struct {
	// Rate is the publish rate in messages per second, over all channels;
	// message i goes to channel i mod Channels.
	Rate float64
	// Channels is the number of channels. Default 1.
	Channels int
	// Subscribers is the number of subscribers per channel: each message
	// is expected Subscribers times. Default 1.
	Subscribers int
	// Warmup is published before the measurement window opens.
	// Default 1 s.
	Warmup time.Duration
	// Duration is the measurement window. Default 5 s.
	Duration time.Duration
	// Drain is how long Run waits after the last message for the window's
	// messages to arrive; those still missing then count as lost.
	// Default 5 s.
	Drain time.Duration
	// PayloadSize is the size of each message body. Default 64 bytes.
	PayloadSize int
	// Workers is the number of goroutines calling Target.Publish.
	// Default 4.
	Workers int
	// Backlog is how many due messages may wait for a worker; beyond it a
	// due message is not sent and counts as unsent. Default 65536.
	Backlog int
}

// Defaults of RunConfig.
const (
	DefaultWarmup      = time.Second
	DefaultDuration    = 5 * time.Second
	DefaultDrain       = 5 * time.Second
	DefaultPayloadSize = 64
	DefaultWorkers     = 4
	DefaultBacklog     = 1 << 16
)

func (c *RunConfig) setDefaults() {
	if c.Channels == 0 {
		c.Channels = 1
	}
	if c.Subscribers == 0 {
		c.Subscribers = 1
	}
	if c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Drain == 0 {
		c.Drain = DefaultDrain
	}
	if c.PayloadSize == 0 {
		c.PayloadSize = DefaultPayloadSize
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Backlog == 0 {
		c.Backlog = DefaultBacklog
	}
}

func (c *RunConfig) validate() error {
	if c.Rate <= 0 || c.Channels < 0 || c.Subscribers < 0 || c.Workers < 0 || c.Backlog < 0 ||
		c.Warmup < 0 || c.Duration < 0 || c.Drain < 0 || c.PayloadSize < 0 {
		return fmt.Errorf("loadgen: bad run configuration %+v", *c)
	}
	return nil
}

// Stats is what one run measured.
type Stats struct {
	// Offered is the delivery rate the schedule asked for: messages due
	// in the window times subscribers, per second.
	Offered float64
	// Delivered is the deliveries per second that arrived inside the
	// window.
	Delivered float64
	// P50, P99, P999 and Max are publish-to-deliver latencies of the
	// window's messages, from their due time; Never when the percentile
	// falls among the lost ones.
	P50, P99, P999, Max time.Duration
	// Expected is the number of deliveries of the window's messages.
	Expected uint64
	// Lost is how many of them had not arrived by the end of the drain.
	Lost uint64
	// Unsent counts due messages dropped because every worker was busy
	// and the backlog was full; PublishErrors counts failed publishes.
	Unsent, PublishErrors int64
	// Received counts every delivery during the run: warm-up, window
	// and drain.
	Received uint64
	// FirstError is the first failed publish's error, if any.
	FirstError string
}

// Run publishes to t on the schedule cfg describes, while subscribers
// report deliveries to rec, and returns what was measured. rec must not
// be shared between runs.
func Run(ctx context.Context, cfg RunConfig, t Target, rec *Recorder) (Stats, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return Stats{}, err
	}
	// The start is a little ahead so that the first ticks are not already
	// late when the workers start.
	sched := NewSchedule(time.Now().Add(20*time.Millisecond), cfg.Rate)
	winStart := sched.Start.Add(cfg.Warmup)
	winEnd := winStart.Add(cfg.Duration)
	rec.setWindow(winStart, winEnd)

	ticks := make(chan Tick, cfg.Backlog)
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Go(func() {
			for tk := range ticks {
				p := Stamp(cfg.PayloadSize, tk.Seq, tk.Due)
				if err := t.Publish(ctx, int(tk.Seq%int64(cfg.Channels)), p); err != nil {
					if errs.Add(1) == 1 {
						firstErr.Store(err)
					}
				}
			}
		})
	}
	unsent := Pace(ctx, sched, cfg.Warmup+cfg.Duration, ticks, nil)
	wg.Wait()

	inWindow := sched.Count(cfg.Warmup+cfg.Duration) - sched.Count(cfg.Warmup)
	st := Stats{
		Expected:      uint64(inWindow) * uint64(cfg.Subscribers),
		Unsent:        unsent,
		PublishErrors: errs.Load(),
	}
	// Drain: wait for the window's messages, but no longer than Drain
	// after the end of the schedule.
	deadline := winEnd.Add(cfg.Drain)
	for rec.Latency.Count() < st.Expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	secs := cfg.Duration.Seconds()
	st.Offered = float64(st.Expected) / secs
	st.Delivered = float64(rec.arrived.Load()) / secs
	// Percentiles over every expected delivery: a lost one is later than
	// any that arrived.
	st.P50 = rec.Latency.QuantileOf(0.50, max(st.Expected, rec.Latency.Count()))
	st.P99 = rec.Latency.QuantileOf(0.99, max(st.Expected, rec.Latency.Count()))
	st.P999 = rec.Latency.QuantileOf(0.999, max(st.Expected, rec.Latency.Count()))
	st.Max = rec.Latency.Max()
	st.Received = rec.all.Load()
	if got := rec.Latency.Count(); got < st.Expected {
		st.Lost = st.Expected - got
	}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("loadgen: run interrupted: %w", err)
	}
	if err, ok := firstErr.Load().(error); ok {
		st.FirstError = err.Error()
	}
	if st.PublishErrors > 0 && st.PublishErrors >= inWindow {
		err, _ := firstErr.Load().(error)
		return st, fmt.Errorf("loadgen: every publish failed: %w", errors.Join(err))
	}
	return st, nil
}

// TargetFunc adapts a function to Target.
type TargetFunc func(ctx context.Context, ch int, payload []byte) error

// Publish calls f.
func (f TargetFunc) Publish(ctx context.Context, ch int, payload []byte) error {
	return f(ctx, ch, payload)
}
