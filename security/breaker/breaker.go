// Package breaker is a circuit breaker for calls to storage, the bus and
// upstream services (ARCHITECTURE §5): when a dependency keeps failing,
// callers get CIRCUIT_OPEN at once instead of piling up behind timeouts.
//
// States:
//
//	closed ──(ConsecutiveFailures in a row, or FailureRatio over Window)──▶ open
//	open ──(CoolDown passed; checked on the next call)──▶ half-open
//	half-open ──(SuccessesToClose probes succeed)──▶ closed
//	half-open ──(a probe fails)──▶ open (a new CoolDown)
//
// In half-open at most HalfOpenProbes calls run at a time; the rest are
// refused like in open. A caller reports each admitted call's outcome
// exactly once through its [Ticket]; outcomes of calls admitted before the
// last state change are counted in Stats but do not move the state, so a
// slow call started while closed cannot close a breaker that has since
// opened.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// State is a breaker state.
type State uint8

// States.
const (
	Closed State = iota
	Open
	HalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Defaults for a zero [Config] field.
const (
	DefaultConsecutiveFailures = 5
	DefaultWindow              = 10 * time.Second
	DefaultMinRequests         = 20
	DefaultCoolDown            = 5 * time.Second
	DefaultHalfOpenProbes      = 1
)

// windowBuckets is how many slices the failure-ratio window is cut into;
// the window slides by one slice at a time.
const windowBuckets = 10

// Config configures a Breaker.
type Config struct {
	// Name identifies the dependency in errors and in OnStateChange.
	Name string
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row. Zero means DefaultConsecutiveFailures (5); negative disables
	// this trigger.
	ConsecutiveFailures int
	// FailureRatio trips the breaker when failures/calls within Window
	// reaches it, once at least MinRequests calls were seen. Zero disables
	// this trigger; otherwise in (0, 1].
	FailureRatio float64
	// Window for FailureRatio. Zero means DefaultWindow (10 s).
	Window time.Duration
	// MinRequests within Window before FailureRatio applies. Zero means
	// DefaultMinRequests (20).
	MinRequests int
	// CoolDown is how long the breaker stays open. Zero means
	// DefaultCoolDown (5 s).
	CoolDown time.Duration
	// HalfOpenProbes caps concurrent calls in half-open. Zero means
	// DefaultHalfOpenProbes (1).
	HalfOpenProbes int
	// SuccessesToClose is how many probes must succeed to close again.
	// Zero means HalfOpenProbes.
	SuccessesToClose int
	// IsFailure says whether an outcome counts against the dependency.
	// Zero means err != nil, except context.Canceled (the caller gave up,
	// the dependency did not fail). An outcome that is not a failure but
	// not nil counts as neither success nor failure.
	IsFailure func(error) bool
	// OnStateChange, if set, is called after each transition, outside the
	// breaker's lock and in transition order. It may call any method of
	// the breaker.
	OnStateChange func(name string, from, to State)
	// Now is the clock. Zero means time.Now.
	Now func() time.Time
}

func (c *Config) validate() error {
	var errs []error
	if c.FailureRatio < 0 || c.FailureRatio > 1 {
		errs = append(errs, fmt.Errorf("FailureRatio %v outside (0, 1]", c.FailureRatio))
	}
	if c.ConsecutiveFailures < 0 && c.FailureRatio == 0 {
		errs = append(errs, errors.New("both triggers disabled"))
	}
	for _, v := range []struct {
		name string
		v    int64
	}{
		{"Window", int64(c.Window)}, {"MinRequests", int64(c.MinRequests)}, {"CoolDown", int64(c.CoolDown)},
		{"HalfOpenProbes", int64(c.HalfOpenProbes)}, {"SuccessesToClose", int64(c.SuccessesToClose)},
	} {
		if v.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", v.name, v.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("breaker: invalid config %q: %w", c.Name, err)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.ConsecutiveFailures == 0 {
		c.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.MinRequests == 0 {
		c.MinRequests = DefaultMinRequests
	}
	if c.CoolDown == 0 {
		c.CoolDown = DefaultCoolDown
	}
	if c.HalfOpenProbes == 0 {
		c.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if c.SuccessesToClose == 0 {
		c.SuccessesToClose = c.HalfOpenProbes
	}
	if c.IsFailure == nil {
		c.IsFailure = func(err error) bool { return err != nil && !errors.Is(err, context.Canceled) }
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Stats counts a breaker's work.
type Stats struct {
	State State
	// Admitted calls, Successes and Failures among their outcomes, and
	// Rejected calls (CIRCUIT_OPEN).
	Admitted, Successes, Failures, Rejected uint64
	// Opened counts transitions to open.
	Opened uint64
}

type slice struct {
	epoch               int64 // window slice number; stale when too old
	successes, failures int
}

type transition struct{ from, to State }

// Breaker is a circuit breaker. It is safe for concurrent use.
type Breaker struct {
	cfg        Config
	sliceWidth time.Duration

	mu             sync.Mutex
	state          State                // guarded by mu
	generation     uint64               // guarded by mu; bumped on every transition
	openedAt       time.Time            // guarded by mu
	consecutive    int                  // guarded by mu
	window         [windowBuckets]slice // guarded by mu
	probes         int                  // guarded by mu; half-open calls in flight
	probeSuccesses int                  // guarded by mu
	stats          Stats                // guarded by mu
	pending        []transition         // guarded by mu; waiting for OnStateChange
	notifying      bool                 // guarded by mu; a goroutine is calling OnStateChange
}

// New returns a closed Breaker.
func New(cfg Config) (*Breaker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Breaker{cfg: cfg, sliceWidth: max(cfg.Window/windowBuckets, 1)}, nil
}

// Ticket is an admitted call. Report its outcome exactly once with Done.
type Ticket struct {
	b          *Breaker
	generation uint64
	probe      bool
}

// Allow admits a call or refuses it with a CIRCUIT_OPEN *jsperr.Error.
// While open, RetryAfter is the rest of the cool-down; in half-open with
// all probe slots busy it is zero (unknown: it depends on the probes).
func (b *Breaker) Allow() (Ticket, error) {
	b.mu.Lock()
	now := b.cfg.Now()
	b.advanceLocked(now)
	var t Ticket
	var err error
	switch b.state {
	case Closed:
		t = Ticket{b: b, generation: b.generation}
	case HalfOpen:
		if b.probes < b.cfg.HalfOpenProbes {
			b.probes++
			t = Ticket{b: b, generation: b.generation, probe: true}
		} else {
			err = jsperr.Newf(jsperr.CircuitOpen, "%s: circuit half-open, probe in progress", b.cfg.Name)
		}
	case Open:
		e := jsperr.Newf(jsperr.CircuitOpen, "%s: circuit open after repeated failures", b.cfg.Name)
		e.RetryAfter = b.openedAt.Add(b.cfg.CoolDown).Sub(now)
		err = e
	}
	if err != nil {
		b.stats.Rejected++
	} else {
		b.stats.Admitted++
	}
	b.mu.Unlock()
	b.notify()
	return t, err
}

// Done reports the call's outcome.
func (t Ticket) Done(err error) {
	if t.b != nil {
		t.b.done(t, err)
	}
}

// Do runs fn if the breaker admits it and reports its outcome.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	t, err := b.Allow()
	if err != nil {
		return err
	}
	err = fn(ctx)
	t.Done(err)
	return err
}

func (b *Breaker) done(t Ticket, err error) {
	failure := b.cfg.IsFailure(err)
	success := err == nil
	b.mu.Lock()
	now := b.cfg.Now()
	switch {
	case failure:
		b.stats.Failures++
	case success:
		b.stats.Successes++
	}
	// An outcome from before the last transition says nothing about the
	// dependency's state now.
	if t.generation == b.generation {
		switch b.state {
		case Closed:
			b.recordLocked(now, success, failure)
		case HalfOpen:
			if t.probe {
				b.probes--
				switch {
				case failure:
					b.setStateLocked(Open, now)
				case success:
					b.probeSuccesses++
					if b.probeSuccesses >= b.cfg.SuccessesToClose {
						b.setStateLocked(Closed, now)
					}
				}
			}
		}
	}
	b.mu.Unlock()
	b.notify()
}

// recordLocked adds a closed-state outcome and trips the breaker when a
// trigger fires.
func (b *Breaker) recordLocked(now time.Time, success, failure bool) {
	if !success && !failure {
		return
	}
	epoch := now.UnixNano() / int64(b.sliceWidth)
	i := epoch % windowBuckets
	if i < 0 { // a clock before 1970
		i += windowBuckets
	}
	s := &b.window[i]
	if s.epoch != epoch {
		*s = slice{epoch: epoch}
	}
	if success {
		s.successes++
		b.consecutive = 0
		return
	}
	s.failures++
	b.consecutive++
	if b.cfg.ConsecutiveFailures > 0 && b.consecutive >= b.cfg.ConsecutiveFailures {
		b.setStateLocked(Open, now)
		return
	}
	if b.cfg.FailureRatio > 0 {
		var calls, failures int
		for _, s := range b.window {
			if epoch-s.epoch < windowBuckets {
				calls += s.successes + s.failures
				failures += s.failures
			}
		}
		if calls >= b.cfg.MinRequests && float64(failures) >= b.cfg.FailureRatio*float64(calls) {
			b.setStateLocked(Open, now)
		}
	}
}

// advanceLocked moves open to half-open once the cool-down has passed.
func (b *Breaker) advanceLocked(now time.Time) {
	if b.state == Open && !now.Before(b.openedAt.Add(b.cfg.CoolDown)) {
		b.setStateLocked(HalfOpen, now)
	}
}

func (b *Breaker) setStateLocked(to State, now time.Time) {
	from := b.state
	b.state = to
	b.generation++
	b.probes, b.probeSuccesses = 0, 0
	switch to {
	case Open:
		b.openedAt = now
		b.stats.Opened++
	case Closed:
		b.consecutive = 0
		b.window = [windowBuckets]slice{}
	}
	if b.cfg.OnStateChange != nil {
		b.pending = append(b.pending, transition{from, to})
	}
}

// notify delivers pending transitions to OnStateChange. One goroutine at a
// time delivers, so the hook sees transitions in order; a transition
// caused from inside the hook is queued and delivered by the same loop
// instead of deadlocking.
func (b *Breaker) notify() {
	b.mu.Lock()
	if b.notifying || len(b.pending) == 0 {
		b.mu.Unlock()
		return
	}
	b.notifying = true
	defer func() {
		b.mu.Lock()
		b.notifying = false
		b.mu.Unlock()
	}()
	for len(b.pending) > 0 {
		ev := b.pending[0]
		b.pending = b.pending[1:]
		b.mu.Unlock()
		b.cfg.OnStateChange(b.cfg.Name, ev.from, ev.to)
		b.mu.Lock()
	}
	b.mu.Unlock()
}

// State returns the current state, moving open to half-open when the
// cool-down has passed.
func (b *Breaker) State() State {
	b.mu.Lock()
	b.advanceLocked(b.cfg.Now())
	s := b.state
	b.mu.Unlock()
	b.notify()
	return s
}

// Stats returns the counters and the state.
func (b *Breaker) Stats() Stats {
	b.mu.Lock()
	b.advanceLocked(b.cfg.Now())
	s := b.stats
	s.State = b.state
	b.mu.Unlock()
	b.notify()
	return s
}

// Name returns the configured name.
func (b *Breaker) Name() string { return b.cfg.Name }
