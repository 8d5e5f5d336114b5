package ca

import (
	"crypto/tls"
	"math/big"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the start of every fake clock: a fixed instant keeps certificates
// and error messages reproducible.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is a manual clock with After support for the Renewer.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// pending returns the number of After calls not yet fired.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// eventually polls cond for up to 10 s; the loops under test react to a
// fake clock within microseconds, the margin is for a loaded machine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// newTestCA creates a CA in a temporary directory on clk.
func newTestCA(t *testing.T, cluster string, clk func() time.Time, mut ...func(*Config)) *CA {
	t.Helper()
	cfg := Config{Cluster: cluster, Now: clk, MinLifetime: time.Second}
	for _, m := range mut {
		m(&cfg)
	}
	c, err := Init(t.TempDir(), cfg)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return c
}

func mustIssue(t *testing.T, c *CA, role, name string, lifetime time.Duration) *tls.Certificate {
	t.Helper()
	cert, err := c.Issue(Identity{Role: role, Name: name}, lifetime)
	if err != nil {
		t.Fatalf("Issue %s/%s: %v", role, name, err)
	}
	return cert
}

func bigOne() *big.Int { return big.NewInt(1) }
