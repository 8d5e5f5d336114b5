package core

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jetstreamproto/jsp/security/breaker"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/storage"
)

// Breaker names: the dependency in CIRCUIT_OPEN reasons and the name label
// of the breaker metrics.
const (
	BreakerStorage = "storage"
	BreakerBus     = "bus"
)

// StorageFailure is the default failure test of a storage breaker: errors
// that describe the request (not found, conflict, invalid, too large) or a
// caller that gave up say nothing about the database's health.
func StorageFailure(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled),
		errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrConflict),
		errors.Is(err, storage.ErrInvalid), errors.Is(err, storage.ErrTooLarge):
		return false
	}
	return true
}

// BusFailure is the default failure test of a bus breaker: a bad subject
// or a permission refusal is the caller's mistake; a caller that gave up
// is not the bus's fault. No responders counts: nobody serves the subject.
func BusFailure(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled),
		errors.Is(err, bus.ErrInvalidSubject), errors.Is(err, bus.ErrPermission):
		return false
	}
	return true
}

// GuardedStore is a storage.Store whose session and message-log calls pass
// a circuit breaker (ARCHITECTURE §5): while the database keeps failing,
// calls fail at once with CIRCUIT_OPEN and a retry-after instead of
// queueing behind timeouts. Audit, key/value, maintenance and Close pass
// straight through.
type GuardedStore struct {
	storage.Store
	br *breaker.Breaker
}

// GuardStore wraps st. Zero cfg fields take the breaker's defaults; an
// empty Name is BreakerStorage and a nil IsFailure is StorageFailure.
func GuardStore(st storage.Store, cfg breaker.Config) (*GuardedStore, error) {
	if st == nil {
		return nil, errors.New("core: guard a nil store")
	}
	if cfg.Name == "" {
		cfg.Name = BreakerStorage
	}
	if cfg.IsFailure == nil {
		cfg.IsFailure = StorageFailure
	}
	br, err := breaker.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("core: storage breaker: %w", err)
	}
	return &GuardedStore{Store: st, br: br}, nil
}

// Breaker returns the store's breaker, for metrics.
func (g *GuardedStore) Breaker() *breaker.Breaker { return g.br }

// guard runs one call through br and reports its outcome.
func guard[T any](br *breaker.Breaker, op string, fn func() (T, error)) (T, error) {
	t, err := br.Allow()
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", op, err)
	}
	v, err := fn()
	t.Done(err)
	return v, err
}

func guard0(br *breaker.Breaker, op string, fn func() error) error {
	_, err := guard(br, op, func() (struct{}, error) { return struct{}{}, fn() })
	return err
}

// AppendMessage implements storage.MessageLog.
func (g *GuardedStore) AppendMessage(ctx context.Context, channel string, m storage.Message) (storage.AppendResult, error) {
	return guard(g.br, "append message", func() (storage.AppendResult, error) { return g.Store.AppendMessage(ctx, channel, m) })
}

// MessagesAfter implements storage.MessageLog.
func (g *GuardedStore) MessagesAfter(ctx context.Context, channel string, after storage.Seq, limit int) ([]storage.Message, error) {
	return guard(g.br, "read messages", func() ([]storage.Message, error) { return g.Store.MessagesAfter(ctx, channel, after, limit) })
}

// MessagesBefore implements storage.MessageLog.
func (g *GuardedStore) MessagesBefore(ctx context.Context, channel string, before storage.Seq, limit int) ([]storage.Message, error) {
	return guard(g.br, "read messages", func() ([]storage.Message, error) { return g.Store.MessagesBefore(ctx, channel, before, limit) })
}

// ChannelInfo implements storage.MessageLog.
func (g *GuardedStore) ChannelInfo(ctx context.Context, channel string) (storage.ChannelInfo, error) {
	return guard(g.br, "channel info", func() (storage.ChannelInfo, error) { return g.Store.ChannelInfo(ctx, channel) })
}

// UpsertSession implements storage.SessionStore.
func (g *GuardedStore) UpsertSession(ctx context.Context, s storage.Session) (storage.Session, error) {
	return guard(g.br, "upsert session", func() (storage.Session, error) { return g.Store.UpsertSession(ctx, s) })
}

// TouchSession implements storage.SessionStore.
func (g *GuardedStore) TouchSession(ctx context.Context, id string) error {
	return guard0(g.br, "touch session", func() error { return g.Store.TouchSession(ctx, id) })
}

// CloseSession implements storage.SessionStore.
func (g *GuardedStore) CloseSession(ctx context.Context, id string) error {
	return guard0(g.br, "close session", func() error { return g.Store.CloseSession(ctx, id) })
}

// GetSession implements storage.SessionStore.
func (g *GuardedStore) GetSession(ctx context.Context, id string) (storage.Session, error) {
	return guard(g.br, "get session", func() (storage.Session, error) { return g.Store.GetSession(ctx, id) })
}

// ListSessions implements storage.SessionStore.
func (g *GuardedStore) ListSessions(ctx context.Context, q storage.SessionQuery) ([]storage.Session, error) {
	return guard(g.br, "list sessions", func() ([]storage.Session, error) { return g.Store.ListSessions(ctx, q) })
}

// GuardedBus is a bus.Bus whose Publish and Request pass a circuit
// breaker; subscriptions, queues, logs and buckets pass straight through.
type GuardedBus struct {
	bus.Bus
	br *breaker.Breaker
}

// GuardBus wraps b. Zero cfg fields take the breaker's defaults; an empty
// Name is BreakerBus and a nil IsFailure is BusFailure.
func GuardBus(b bus.Bus, cfg breaker.Config) (*GuardedBus, error) {
	if b == nil {
		return nil, errors.New("core: guard a nil bus")
	}
	if cfg.Name == "" {
		cfg.Name = BreakerBus
	}
	if cfg.IsFailure == nil {
		cfg.IsFailure = BusFailure
	}
	br, err := breaker.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("core: bus breaker: %w", err)
	}
	return &GuardedBus{Bus: b, br: br}, nil
}

// OpenNoEcho implements bus.NoEchoOpener when the guarded bus does: the
// new connection passes the same breaker, so that a bus outage seen on
// either opens it for both (decision D44).
func (g *GuardedBus) OpenNoEcho(name string) (bus.Bus, error) {
	nb, err := bus.OpenNoEcho(g.Bus, name)
	if err != nil {
		return nil, err
	}
	return &GuardedBus{Bus: nb, br: g.br}, nil
}

var _ bus.Flusher = (*GuardedBus)(nil)

// Flush implements bus.Flusher when the guarded bus does; its failure
// counts against the breaker as a publish's does.
func (g *GuardedBus) Flush(ctx context.Context) error {
	return guard0(g.br, "bus flush", func() error { return bus.Flush(ctx, g.Bus) })
}

// Breaker returns the bus's breaker, for metrics.
func (g *GuardedBus) Breaker() *breaker.Breaker { return g.br }

// Publish implements bus.Bus.
func (g *GuardedBus) Publish(subject string, m bus.Msg) error {
	return guard0(g.br, "bus publish", func() error { return g.Bus.Publish(subject, m) })
}

// Request implements bus.Bus.
func (g *GuardedBus) Request(ctx context.Context, subject string, m bus.Msg) (*bus.Msg, error) {
	return guard(g.br, "bus request", func() (*bus.Msg, error) { return g.Bus.Request(ctx, subject, m) })
}

// WriteBreakerMetrics writes the breakers' state and counters in the
// Prometheus text format:
//
//	jsp_breaker_state{name}              0 closed, 1 open, 2 half-open
//	jsp_breaker_calls_total{name,result} admitted, success, failure, rejected
//	jsp_breaker_opened_total{name}       times the breaker opened
func WriteBreakerMetrics(w io.Writer, brs ...*breaker.Breaker) error {
	if len(brs) == 0 {
		return nil
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# HELP jsp_breaker_state Circuit breaker state: 0 closed, 1 open, 2 half-open.\n# TYPE jsp_breaker_state gauge\n")
	stats := make([]breaker.Stats, len(brs))
	for i, b := range brs {
		stats[i] = b.Stats()
		fmt.Fprintf(bw, "jsp_breaker_state{name=%q} %d\n", b.Name(), stats[i].State)
	}
	fmt.Fprintf(bw, "# HELP jsp_breaker_calls_total Calls seen by a circuit breaker, by result.\n# TYPE jsp_breaker_calls_total counter\n")
	for i, b := range brs {
		s := stats[i]
		for _, r := range []struct {
			name string
			v    uint64
		}{{"admitted", s.Admitted}, {"success", s.Successes}, {"failure", s.Failures}, {"rejected", s.Rejected}} {
			fmt.Fprintf(bw, "jsp_breaker_calls_total{name=%q,result=%q} %d\n", b.Name(), r.name, r.v)
		}
	}
	fmt.Fprintf(bw, "# HELP jsp_breaker_opened_total Times a circuit breaker opened.\n# TYPE jsp_breaker_opened_total counter\n")
	for i, b := range brs {
		fmt.Fprintf(bw, "jsp_breaker_opened_total{name=%q} %d\n", b.Name(), stats[i].Opened)
	}
	return bw.Flush()
}

// retryAfterMS converts a retry-after into the reply's milliseconds,
// rounding up so that a client never retries before the breaker's
// cool-down ends.
func retryAfterMS(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// sessionToucher is a store that touches many sessions at once (the SQLite
// store's TouchSessions).
type sessionToucher interface {
	TouchSessions(ctx context.Context, ids []string) error
}

// TouchSessions sets LastSeen of the open sessions among ids, in one call
// through the breaker when the guarded store can (sessionToucher), else
// one TouchSession per id, skipping closed and unknown ones.
func (g *GuardedStore) TouchSessions(ctx context.Context, ids []string) error {
	if st, ok := g.Store.(sessionToucher); ok {
		return guard0(g.br, "touch sessions", func() error { return st.TouchSessions(ctx, ids) })
	}
	for _, id := range ids {
		if err := g.TouchSession(ctx, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}
