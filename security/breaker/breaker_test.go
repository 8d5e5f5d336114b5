package breaker

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

var (
	t0      = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	errDown = errors.New("dependency down")
)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) hook(_ string, from, to State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, from.String()+">"+to.String())
}

func (r *recorder) transitions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func newTest(t *testing.T, cfg Config) (*Breaker, *testClock, *recorder) {
	t.Helper()
	clk := &testClock{now: t0}
	rec := &recorder{}
	cfg.Name, cfg.Now, cfg.OnStateChange = "storage", clk.Now, rec.hook
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, clk, rec
}

// call runs one call through b with outcome err and returns Allow's error.
func call(b *Breaker, err error) error {
	t, aerr := b.Allow()
	if aerr != nil {
		return aerr
	}
	t.Done(err)
	return nil
}

func TestConsecutiveFailures(t *testing.T) {
	b, clk, rec := newTest(t, Config{ConsecutiveFailures: 3, CoolDown: 10 * time.Second})
	// A success in between resets the count.
	for _, err := range []error{errDown, errDown, nil, errDown, errDown} {
		if call(b, err) != nil {
			t.Fatal("refused while closed")
		}
	}
	if b.State() != Closed {
		t.Fatal("tripped without 3 failures in a row")
	}
	call(b, errDown)
	if b.State() != Open {
		t.Fatal("not open after 3 failures in a row")
	}
	clk.Advance(4 * time.Second)
	err := call(b, nil)
	var je *jsperr.Error
	if !errors.As(err, &je) || je.Code != jsperr.CircuitOpen || je.RetryAfter != 6*time.Second {
		t.Fatalf("open breaker: %v", err)
	}
	if want := []string{"closed>open"}; !slices.Equal(rec.transitions(), want) {
		t.Fatalf("transitions %v, want %v", rec.transitions(), want)
	}
	s := b.Stats()
	if s.Admitted != 6 || s.Failures != 5 || s.Successes != 1 || s.Rejected != 1 || s.Opened != 1 || s.State != Open {
		t.Fatalf("stats %+v", s)
	}
}

func TestHalfOpen(t *testing.T) {
	tests := []struct {
		name     string
		probes   int
		toClose  int
		outcomes []error // probe outcomes in order
		want     State
		wantSeq  []string
	}{
		{"probe succeeds", 1, 0, []error{nil}, Closed,
			[]string{"closed>open", "open>half-open", "half-open>closed"}},
		{"probe fails", 1, 0, []error{errDown}, Open,
			[]string{"closed>open", "open>half-open", "half-open>open"}},
		{"two of two succeed", 2, 2, []error{nil, nil}, Closed,
			[]string{"closed>open", "open>half-open", "half-open>closed"}},
		{"second of two fails", 2, 2, []error{nil, errDown}, Open,
			[]string{"closed>open", "open>half-open", "half-open>open"}},
		{"cancelled probe frees its slot", 1, 0, []error{context.Canceled}, HalfOpen,
			[]string{"closed>open", "open>half-open"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk, rec := newTest(t, Config{ConsecutiveFailures: 1, CoolDown: time.Second,
				HalfOpenProbes: tt.probes, SuccessesToClose: tt.toClose})
			call(b, errDown)
			clk.Advance(time.Second)
			var tickets []Ticket
			for range tt.probes {
				tk, err := b.Allow()
				if err != nil {
					t.Fatalf("probe refused: %v", err)
				}
				tickets = append(tickets, tk)
			}
			// All slots busy: refused, with no retry hint.
			_, err := b.Allow()
			var je *jsperr.Error
			if !errors.As(err, &je) || je.Code != jsperr.CircuitOpen || je.RetryAfter != 0 {
				t.Fatalf("extra call in half-open: %v", err)
			}
			for i, out := range tt.outcomes {
				tickets[i].Done(out)
			}
			if got := b.State(); got != tt.want {
				t.Fatalf("state %s, want %s", got, tt.want)
			}
			if !slices.Equal(rec.transitions(), tt.wantSeq) {
				t.Fatalf("transitions %v, want %v", rec.transitions(), tt.wantSeq)
			}
			if tt.want == HalfOpen {
				if _, err := b.Allow(); err != nil {
					t.Fatalf("slot not freed: %v", err)
				}
			}
		})
	}
}

func TestReopenRestartsCoolDown(t *testing.T) {
	b, clk, _ := newTest(t, Config{ConsecutiveFailures: 1, CoolDown: time.Second})
	call(b, errDown)
	clk.Advance(time.Second)
	call(b, errDown) // failed probe
	clk.Advance(500 * time.Millisecond)
	var je *jsperr.Error
	if err := call(b, nil); !errors.As(err, &je) || je.RetryAfter != 500*time.Millisecond {
		t.Fatalf("after a failed probe: %v", err)
	}
}

func TestFailureRatio(t *testing.T) {
	b, clk, _ := newTest(t, Config{ConsecutiveFailures: -1, FailureRatio: 0.5, MinRequests: 10, Window: 10 * time.Second})
	// 9 calls, all failing, stay below MinRequests.
	for range 9 {
		call(b, errDown)
	}
	if b.State() != Closed {
		t.Fatal("tripped below MinRequests")
	}
	// Old failures slide out of the window: after 11 s only new calls count.
	clk.Advance(11 * time.Second)
	for i := range 10 {
		var err error
		if i%3 == 0 {
			err = errDown // 4 of 10
		}
		call(b, err)
	}
	if b.State() != Closed {
		t.Fatal("tripped at 40% failures")
	}
	call(b, errDown) // 5 of 11
	call(b, errDown) // 6 of 12: 50%
	if b.State() != Open {
		t.Fatal("not tripped at 50% failures")
	}
}

func TestStaleTicketIgnored(t *testing.T) {
	b, clk, _ := newTest(t, Config{ConsecutiveFailures: 1, CoolDown: time.Second})
	slow, err := b.Allow() // admitted while closed
	if err != nil {
		t.Fatal(err)
	}
	call(b, errDown) // trips
	clk.Advance(time.Second)
	probe, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	slow.Done(nil) // a success from the closed period must not close the breaker
	if b.State() != HalfOpen {
		t.Fatalf("stale success moved the state to %s", b.State())
	}
	probe.Done(nil)
	if b.State() != Closed {
		t.Fatal("probe success did not close")
	}
	if s := b.Stats(); s.Successes != 2 {
		t.Fatalf("stale outcome not counted in stats: %+v", s)
	}
}

func TestIsFailure(t *testing.T) {
	notFound := errors.New("not found")
	b, _, _ := newTest(t, Config{ConsecutiveFailures: 2,
		IsFailure: func(err error) bool { return err != nil && !errors.Is(err, notFound) }})
	for range 5 {
		call(b, notFound)
	}
	call(b, context.Canceled) // a custom IsFailure decides alone
	call(b, errDown)
	if b.State() != Open {
		t.Fatal("not open")
	}
	d, _, _ := newTest(t, Config{ConsecutiveFailures: 2})
	for range 5 {
		call(d, context.Canceled)
	}
	if d.State() != Closed {
		t.Fatal("default IsFailure counted context.Canceled")
	}
}

func TestDo(t *testing.T) {
	b, _, _ := newTest(t, Config{ConsecutiveFailures: 1})
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	err := b.Do(ctx, func(ctx context.Context) error {
		if ctx.Value(key{}) != "v" {
			t.Error("context not passed")
		}
		return errDown
	})
	if !errors.Is(err, errDown) {
		t.Fatalf("Do returned %v", err)
	}
	ran := false
	err = b.Do(ctx, func(context.Context) error { ran = true; return nil })
	if ran || jsperr.CodeOf(err) != jsperr.CircuitOpen {
		t.Fatalf("Do on open breaker: ran %v, %v", ran, err)
	}
}

// TestHookReentrant checks that a hook may call the breaker, even causing
// another transition, without deadlock, and that transitions arrive in
// order.
func TestHookReentrant(t *testing.T) {
	clk := &testClock{now: t0}
	var b *Breaker
	var got []string
	var err error
	b, err = New(Config{ConsecutiveFailures: 1, CoolDown: time.Second, Now: clk.Now,
		OnStateChange: func(_ string, from, to State) {
			got = append(got, from.String()+">"+to.String())
			if to == Open {
				clk.Advance(time.Second)
				if tk, err := b.Allow(); err == nil { // causes open > half-open
					tk.Done(nil) // and half-open > closed
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	call(b, errDown)
	want := []string{"closed>open", "open>half-open", "half-open>closed"}
	if !slices.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{ConsecutiveFailures: -1},
		{FailureRatio: 1.5},
		{FailureRatio: -0.1},
		{CoolDown: -time.Second},
		{HalfOpenProbes: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	b, err := New(Config{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if b.cfg.ConsecutiveFailures != DefaultConsecutiveFailures || b.cfg.CoolDown != DefaultCoolDown ||
		b.cfg.SuccessesToClose != DefaultHalfOpenProbes || b.Name() != "x" {
		t.Fatalf("defaults %+v", b.cfg)
	}
	if State(9).String() != "State(9)" {
		t.Fatal("State.String")
	}
}

// TestConcurrent drives a breaker from several goroutines under -race and
// checks the half-open probe cap.
func TestConcurrent(t *testing.T) {
	clk := &testClock{now: t0}
	var mu sync.Mutex
	inHalfOpen, maxProbes := 0, 0
	b, err := New(Config{ConsecutiveFailures: 3, CoolDown: time.Millisecond, HalfOpenProbes: 2, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 2000 {
				tk, err := b.Allow()
				if err != nil {
					clk.Advance(time.Millisecond)
					continue
				}
				if tk.probe {
					mu.Lock()
					inHalfOpen++
					maxProbes = max(maxProbes, inHalfOpen)
					mu.Unlock()
				}
				var out error
				if r.IntN(3) == 0 {
					out = errDown
				}
				if tk.probe {
					mu.Lock()
					inHalfOpen--
					mu.Unlock()
				}
				tk.Done(out)
			}
		})
	}
	wg.Wait()
	if maxProbes > 2 {
		t.Fatalf("%d probes at once, cap 2", maxProbes)
	}
	if s := b.Stats(); s.Opened == 0 || s.Admitted+s.Rejected != 8000 {
		t.Fatalf("stats %+v", s)
	}
}
