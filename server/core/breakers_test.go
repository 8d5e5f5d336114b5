package core_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/breaker"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// failingStore is a real store whose message appends fail while fail is
// set, as a database that went away would.
type failingStore struct {
	storage.Store
	fail atomic.Bool
}

var errDiskGone = errors.New("database unreachable")

func (f *failingStore) AppendMessage(ctx context.Context, ch string, m storage.Message) (storage.AppendResult, error) {
	if f.fail.Load() {
		return storage.AppendResult{}, errDiskGone
	}
	return f.Store.AppendMessage(ctx, ch, m)
}

// manualClock is a clock tests move by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// transitions records a breaker's state changes.
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (tr *transitions) record(_ string, from, to breaker.State) {
	tr.mu.Lock()
	tr.got = append(tr.got, from.String()+"→"+to.String())
	tr.mu.Unlock()
}

func (tr *transitions) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return strings.Join(tr.got, " ")
}

// TestStorageBreakerThroughCore drives a core over a failing store: the
// breaker opens after three failures, PUBLISH then fails at once with
// CIRCUIT_OPEN and a retry-after, and after the cool-down one probe that
// succeeds closes it again.
func TestStorageBreakerThroughCore(t *testing.T) {
	clock := &manualClock{now: time.Unix(1_900_000_000, 0)}
	tr := &transitions{}
	fs := &failingStore{Store: newStore(t)}
	gs, err := core.GuardStore(fs, breaker.Config{ConsecutiveFailures: 3, CoolDown: 5 * time.Second, Now: clock.Now, OnStateChange: tr.record})
	if err != nil {
		t.Fatal(err)
	}
	b := newMemBus(t)
	subj, _ := bus.NewSubjects("test")
	_, cl := startCore(t, core.Config{Bus: b, Store: gs, Subjects: &subj, Shards: testShards, Logger: quiet})
	publish := func(id string) error {
		_, err := cl.Publish(ctx(t), "room", msg(id, "hi"))
		return err
	}
	if err := publish("ok-1"); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	for i := range 3 {
		if err := publish("f" + string(rune('0'+i))); jsperr.CodeOf(err) != jsperr.Internal {
			t.Fatalf("failure %d: %v, want INTERNAL", i, err)
		}
	}
	if st := gs.Breaker().State(); st != breaker.Open {
		t.Fatalf("after 3 failures: %s", st)
	}
	err = publish("refused")
	var je *jsperr.Error
	if !errors.As(err, &je) || je.Code != jsperr.CircuitOpen || je.RetryAfter != 5*time.Second {
		t.Fatalf("while open: %v (%#v), want CIRCUIT_OPEN retry after 5s", err, je)
	}
	fs.fail.Store(false)
	clock.Advance(5 * time.Second)
	if st := gs.Breaker().State(); st != breaker.HalfOpen {
		t.Fatalf("after the cool-down: %s", st)
	}
	if err := publish("probe"); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if got, want := tr.String(), "closed→open open→half-open half-open→closed"; got != want {
		t.Fatalf("transitions %q, want %q", got, want)
	}
	st := gs.Breaker().Stats()
	if st.Failures != 3 || st.Rejected != 1 || st.Opened != 1 {
		t.Fatalf("stats %+v", st)
	}
	var buf bytes.Buffer
	if err := core.WriteBreakerMetrics(&buf, gs.Breaker()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`jsp_breaker_state{name="storage"} 0`,
		`jsp_breaker_calls_total{name="storage",result="failure"} 3`,
		`jsp_breaker_calls_total{name="storage",result="rejected"} 1`,
		`jsp_breaker_opened_total{name="storage"} 1`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Fatalf("metrics lack %q:\n%s", want, buf.String())
		}
	}
}

// TestStorageBreakerIgnoresClientErrors: refusals that describe the
// request never open the breaker.
func TestStorageBreakerIgnoresClientErrors(t *testing.T) {
	tests := []struct {
		err  error
		fail bool
	}{
		{nil, false},
		{context.Canceled, false},
		{storage.ErrNotFound, false},
		{storage.ErrConflict, false},
		{storage.ErrInvalid, false},
		{storage.ErrTooLarge, false},
		{errDiskGone, true},
		{context.DeadlineExceeded, true},
	}
	for _, tt := range tests {
		if got := core.StorageFailure(tt.err); got != tt.fail {
			t.Errorf("StorageFailure(%v) = %v", tt.err, got)
		}
	}
}

// flakyBus fails every Request while down is set.
type flakyBus struct {
	bus.Bus
	down atomic.Bool
}

func (f *flakyBus) Request(ctx context.Context, subject string, m bus.Msg) (*bus.Msg, error) {
	if f.down.Load() {
		return nil, bus.ErrNoResponders
	}
	return f.Bus.Request(ctx, subject, m)
}

// TestBusBreakerThroughClient: a gateway's core client over a bus whose
// requests fail gets CIRCUIT_OPEN with a retry-after once the breaker
// opens, and recovers through half-open.
func TestBusBreakerThroughClient(t *testing.T) {
	clock := &manualClock{now: time.Unix(1_900_000_000, 0)}
	tr := &transitions{}
	f := newFixture(t, newMemBus(t))
	fb := &flakyBus{Bus: f.bus}
	gb, err := core.GuardBus(fb, breaker.Config{ConsecutiveFailures: 2, CoolDown: time.Second, Now: clock.Now, OnStateChange: tr.record})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := core.NewClient(gb, f.subj, testShards)
	if err != nil {
		t.Fatal(err)
	}
	fb.down.Store(true)
	for range 2 {
		if _, err := cl.Publish(ctx(t), "room", msg("", "x")); jsperr.CodeOf(err) != jsperr.CircuitOpen {
			t.Fatalf("no core: %v", err)
		}
	}
	_, err = cl.Publish(ctx(t), "room", msg("", "x"))
	var je *jsperr.Error
	if !errors.As(err, &je) || je.Code != jsperr.CircuitOpen || je.RetryAfter != time.Second {
		t.Fatalf("open: %v", err)
	}
	fb.down.Store(false)
	clock.Advance(time.Second)
	if _, err := cl.Publish(ctx(t), "room", msg("", "x")); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if got, want := tr.String(), "closed→open open→half-open half-open→closed"; got != want {
		t.Fatalf("transitions %q, want %q", got, want)
	}
}
