package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/storage"
)

// CursorStore keeps each durable consumer's position: the sequence number
// of the last event it finished.
type CursorStore interface {
	// Load returns the consumer's position, 0 when it has none.
	Load(ctx context.Context, consumer string) (uint64, error)
	// Save stores the consumer's position.
	Save(ctx context.Context, consumer string, seq uint64) error
}

// CursorNamespace is the storage key/value namespace of StorageCursors.
const CursorNamespace = "events.cursor"

// StorageCursors keeps cursors in the store's key/value table, namespace
// CursorNamespace, key the consumer's name.
func StorageCursors(kv storage.KVStore) CursorStore { return storageCursors{kv} }

type storageCursors struct{ kv storage.KVStore }

func (s storageCursors) Load(ctx context.Context, name string) (uint64, error) {
	e, err := s.kv.KVGet(ctx, CursorNamespace, name)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("events: load cursor %s: %w", name, err)
	}
	seq, err := strconv.ParseUint(string(e.Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("events: cursor %s holds %q: %w", name, e.Value, err)
	}
	return seq, nil
}

func (s storageCursors) Save(ctx context.Context, name string, seq uint64) error {
	if _, err := s.kv.KVPut(ctx, CursorNamespace, name, strconv.AppendUint(nil, seq, 10), 0); err != nil {
		return fmt.Errorf("events: save cursor %s at %d: %w", name, seq, err)
	}
	return nil
}

// MemCursors is a CursorStore in memory, for tests and single-process use
// where replaying from the start after a restart is acceptable.
type MemCursors struct {
	mu  sync.Mutex
	pos map[string]uint64 // guarded by mu
}

// Load implements CursorStore.
func (m *MemCursors) Load(_ context.Context, name string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pos[name], nil
}

// Save implements CursorStore.
func (m *MemCursors) Save(_ context.Context, name string, seq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pos == nil {
		m.pos = make(map[string]uint64)
	}
	m.pos[name] = seq
	return nil
}

// Delivered is one event handed to a consumer's handler.
type Delivered struct {
	// Seq is the event's position in the log.
	Seq uint64
	// Event is the decoded envelope.
	Event Event
	// Raw is the encoded envelope as stored (a webhook sends it as is).
	Raw []byte
}

// Handler processes one event. Returning an error retries the same event
// after a backoff, so events are handled in log order, at least once.
type Handler func(ctx context.Context, d Delivered) error

// Consumer defaults.
const (
	// DefaultRetryMin is the first delay after a failed handler or replay.
	DefaultRetryMin = 100 * time.Millisecond
	// DefaultRetryMax caps the delay between retries.
	DefaultRetryMax = 30 * time.Second
	// DefaultSaveEvery is how often the cursor is written while events
	// flow; a crash repeats at most this much (plus the event in flight).
	DefaultSaveEvery = time.Second
)

// ConsumerConfig configures a durable consumer.
type ConsumerConfig struct {
	// Name identifies the consumer's cursor. Required; 1..256 bytes.
	Name string
	// Filters selects event types (see Match); empty means every type.
	Filters []string
	// Handler processes each selected event. Required.
	Handler Handler
	// Cursors keeps the position. Required.
	Cursors CursorStore
	// RetryMin is the first retry delay. Default: DefaultRetryMin.
	RetryMin time.Duration
	// RetryMax caps the retry delay, which doubles per failure with
	// jitter. Default: DefaultRetryMax.
	RetryMax time.Duration
	// MaxAttempts, when positive, skips an event whose handler failed
	// that many times (reported to OnSkip). Default 0: retry until the
	// handler succeeds, so no event is passed over.
	MaxAttempts int
	// SaveEvery is the least time between two cursor writes: the cursor
	// is written after an event when SaveEvery has passed since the last
	// write, and on Stop. A negative value writes after every event.
	// Writing per event costs one storage write per event; after a crash
	// the events since the last write are handled again (at least once).
	// Default: DefaultSaveEvery.
	SaveEvery time.Duration
	// Now is the clock for SaveEvery. Default: time.Now.
	Now func() time.Time
	// OnSkip, when set, is called for every event passed over: malformed
	// envelopes and events that ran out of attempts.
	OnSkip func(seq uint64, err error)
	// Logger receives retry and skip logs. Default: slog.Default().
	Logger *slog.Logger
}

func (c *ConsumerConfig) setDefaults() {
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.SaveEvery == 0 {
		c.SaveEvery = DefaultSaveEvery
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *ConsumerConfig) validate() error {
	switch {
	case c.Name == "" || len(c.Name) > storage.MaxNameLen:
		return fmt.Errorf("events: consumer name of %d bytes (want 1..%d)", len(c.Name), storage.MaxNameLen)
	case c.Handler == nil:
		return fmt.Errorf("events: consumer %s: nil handler", c.Name)
	case c.Cursors == nil:
		return fmt.Errorf("events: consumer %s: nil cursor store", c.Name)
	case c.RetryMin < 0 || c.RetryMax < c.RetryMin || c.MaxAttempts < 0:
		return fmt.Errorf("events: consumer %s: bad retry settings", c.Name)
	}
	for _, f := range c.Filters {
		if err := ValidateFilter(f); err != nil {
			return fmt.Errorf("events: consumer %s: filter %q: %w", c.Name, f, err)
		}
	}
	return nil
}

// Consumer is a running durable consumer: one goroutine replays the event
// log from the stored cursor and follows it.
type Consumer struct {
	cfg    ConsumerConfig
	log    bus.EventLog
	cancel context.CancelCauseFunc
	done   chan struct{}

	pos     atomic.Uint64 // last finished sequence number
	saved   uint64        // last position written; owned by run
	savedAt time.Time     // when; owned by run
	handled atomic.Uint64
	skipped atomic.Uint64
}

// ErrStopped is the cause a Consumer's context is cancelled with on Stop.
var ErrStopped = errors.New("events: consumer stopped")

// Consume starts a durable consumer on log. ctx bounds only loading the
// cursor; the consumer runs until Stop.
func Consume(ctx context.Context, log bus.EventLog, cfg ConsumerConfig) (*Consumer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	pos, err := cfg.Cursors.Load(ctx, cfg.Name)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancelCause(context.Background())
	c := &Consumer{cfg: cfg, log: log, cancel: cancel, done: make(chan struct{}), saved: pos, savedAt: cfg.Now()}
	c.pos.Store(pos)
	go c.run(rctx)
	return c, nil
}

// Position returns the sequence number of the last event the consumer
// finished (handled, filtered out or skipped).
func (c *Consumer) Position() uint64 { return c.pos.Load() }

// Stats returns how many events the handler finished and how many were
// skipped.
func (c *Consumer) Stats() (handled, skipped uint64) { return c.handled.Load(), c.skipped.Load() }

// Stop ends the consumer, writes its cursor and waits for its goroutine;
// an event whose handler was running is handled again by the next
// consumer of the name. Safe to call more than once.
func (c *Consumer) Stop() {
	c.cancel(ErrStopped)
	<-c.done
}

// exactTypes returns the filters when all are exact types, so the bus can
// filter by subject; nil when any is a pattern.
func exactTypes(filters []string) []string {
	for _, f := range filters {
		if f == "*" || len(f) > 2 && f[len(f)-2:] == ".*" {
			return nil
		}
	}
	return filters
}

func (c *Consumer) run(ctx context.Context) {
	defer close(c.done)
	defer c.flush()
	kinds := exactTypes(c.cfg.Filters)
	failures := 0
	for ctx.Err() == nil {
		err := c.log.Replay(ctx, bus.ReplayOptions{From: c.pos.Load() + 1, Kinds: kinds, Follow: true}, func(ev bus.Event) error {
			failures = 0
			return c.handle(ctx, ev)
		})
		if ctx.Err() != nil {
			return
		}
		// The log or the cursor store failed; resume from the cursor.
		failures++
		c.cfg.Logger.Warn("events: consumer replay failed", "consumer", c.cfg.Name, "from", c.pos.Load()+1, "err", err)
		if !sleep(ctx, c.backoff(failures)) {
			return
		}
	}
}

// handle runs the handler for one event until it succeeds (or runs out of
// attempts), then advances the cursor.
func (c *Consumer) handle(ctx context.Context, ev bus.Event) error {
	if ev.Seq <= c.pos.Load() {
		return nil // redelivered after a replay restart
	}
	e, err := Decode(ev.Msg.Data)
	switch {
	case err != nil:
		// A malformed envelope can never be handled; passing it over keeps
		// every later event flowing.
		c.skip(ev.Seq, fmt.Errorf("event %d: %w", ev.Seq, err))
	case MatchAny(c.cfg.Filters, e.Type):
		for attempt := 1; ; attempt++ {
			herr := c.cfg.Handler(ctx, Delivered{Seq: ev.Seq, Event: e, Raw: ev.Msg.Data})
			if herr == nil {
				c.handled.Add(1)
				break
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if c.cfg.MaxAttempts > 0 && attempt >= c.cfg.MaxAttempts {
				c.skip(ev.Seq, fmt.Errorf("event %d (%s %s) after %d attempts: %w", ev.Seq, e.Type, e.ID, attempt, herr))
				break
			}
			c.cfg.Logger.Warn("events: handler failed", "consumer", c.cfg.Name, "seq", ev.Seq, "type", e.Type, "id", e.ID, "attempt", attempt, "err", herr)
			if !sleep(ctx, c.backoff(attempt)) {
				return context.Cause(ctx)
			}
		}
	}
	c.pos.Store(ev.Seq)
	if c.cfg.SaveEvery < 0 || c.cfg.Now().Sub(c.savedAt) >= c.cfg.SaveEvery {
		if err := c.save(ctx, ev.Seq); err != nil {
			return err
		}
	}
	return nil
}

func (c *Consumer) save(ctx context.Context, seq uint64) error {
	if err := c.cfg.Cursors.Save(ctx, c.cfg.Name, seq); err != nil {
		return err
	}
	c.saved, c.savedAt = seq, c.cfg.Now()
	return nil
}

// flush writes the position on the way out; the consumer's context is
// already cancelled, so it gets its own short deadline.
func (c *Consumer) flush() {
	pos := c.pos.Load()
	if pos == c.saved {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.save(ctx, pos); err != nil {
		c.cfg.Logger.Warn("events: cursor not saved on stop", "consumer", c.cfg.Name, "pos", pos, "err", err)
	}
}

func (c *Consumer) skip(seq uint64, err error) {
	c.skipped.Add(1)
	c.cfg.Logger.Error("events: event skipped", "consumer", c.cfg.Name, "seq", seq, "err", err)
	if c.cfg.OnSkip != nil {
		c.cfg.OnSkip(seq, err)
	}
}

// backoff is RetryMin doubled per failure, capped at RetryMax, with "equal
// jitter": half fixed, half random, so consumers that failed together do
// not retry in step.
func (c *Consumer) backoff(failures int) time.Duration {
	return Backoff(c.cfg.RetryMin, c.cfg.RetryMax, failures, rand.Int64N)
}

// Backoff returns the delay after the n-th failure (n >= 1): min doubled
// n-1 times, capped at max, then jittered into [d/2, d] with randN
// (rand.Int64N or a fixed function in tests).
func Backoff(minDelay, maxDelay time.Duration, n int, randN func(int64) int64) time.Duration {
	d := minDelay
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(randN(int64(d-half)+1))
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
