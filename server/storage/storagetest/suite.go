// Package storagetest is the conformance suite every storage backend runs:
// the same tests, against a fresh database per test, through
// [storage.Open]. A backend's test calls [Run] with a function that returns
// the DSN of a fresh database, and [Bench] for the shared benchmarks.
//
// The suite works from DSNs rather than opened stores because it must open
// one database more than once (restart survival, idempotent migrations) and
// inject its own clock and limits through [storage.Config].
package storagetest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

// NewDSN returns the DSN of a fresh, empty database that lives until the
// test ends. The backend behind the DSN's scheme must be registered.
type NewDSN func(t testing.TB) string

// Clock is a settable clock for Config.Now.
type Clock struct {
	mu  sync.Mutex
	now time.Time // guarded by mu
}

// NewClock returns a clock at a fixed, whole-second time.
func NewClock() *Clock {
	return &Clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Quiet is a logger that discards: the stores' migration logs would
// drown test output.
var Quiet = slog.New(slog.DiscardHandler)

// env is one test's database and clock.
type env struct {
	t     *testing.T
	dsn   string
	clock *Clock
	cfg   storage.Config
}

func newEnv(t *testing.T, newDSN NewDSN) *env {
	c := NewClock()
	return &env{t: t, dsn: newDSN(t), clock: c, cfg: storage.Config{Now: c.Now, DedupWindow: time.Hour, Logger: Quiet}}
}

// open opens the test's database; the store closes when the test ends.
func (e *env) open() storage.Store {
	e.t.Helper()
	s, err := storage.Open(context.Background(), e.dsn, e.cfg)
	if err != nil {
		e.t.Fatalf("open %s: %v", storage.Redact(e.dsn), err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// Run runs the conformance suite. Each subtest gets a fresh database from
// newDSN.
func Run(t *testing.T, newDSN NewDSN) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Store", storeTests},
		{"Sessions", sessionTests},
		{"Audit", auditTests},
		{"Messages", messageTests},
		{"KV", kvTests},
		{"Notify", notifyTests},
		{"Devices", deviceTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					// Each test has its own database; running them in
					// parallel overlaps their waits for commits.
					t.Parallel()
					tc.run(t, newEnv(t, newDSN))
				})
			}
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T, e *env)
}

var ctx = context.Background()

// Assertion helpers in the require style: each stops the test.

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustIs(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func equal[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

var storeTests = []test{
	{"SchemaVersionAndReopen", func(t *testing.T, e *env) {
		s := e.open()
		v, err := s.SchemaVersion(ctx)
		must(t, err)
		if v < 1 {
			t.Fatalf("schema version %d after open", v)
		}
		must(t, s.Ping(ctx))
		// Opening the migrated database again applies nothing and keeps
		// the version.
		s2 := e.open()
		v2, err := s2.SchemaVersion(ctx)
		must(t, err)
		equal(t, "version after reopen", v2, v)
	}},
	{"Closed", func(t *testing.T, e *env) {
		s := e.open()
		must(t, s.Close())
		must(t, s.Close())
		_, err := s.AppendMessage(ctx, "c", storage.Message{Sender: "u"})
		mustIs(t, err, storage.ErrClosed)
		_, err = s.MessagesAfter(ctx, "c", 0, 10)
		mustIs(t, err, storage.ErrClosed)
		_, err = s.KVGet(ctx, "n", "k")
		mustIs(t, err, storage.ErrClosed)
		mustIs(t, s.Ping(ctx), storage.ErrClosed)
	}},
	{"Purge", func(t *testing.T, e *env) {
		s := e.open()
		_, err := s.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: "m1"})
		must(t, err)
		_, err = s.KVPut(ctx, "n", "k", []byte("v"), time.Minute)
		must(t, err)
		st, err := s.Purge(ctx)
		must(t, err)
		equal(t, "purged before expiry", st, storage.PurgeStats{})
		e.clock.Advance(e.cfg.DedupWindow + time.Second)
		st, err = s.Purge(ctx)
		must(t, err)
		equal(t, "purged after expiry", st, storage.PurgeStats{Dedup: 1, KV: 1})
	}},
	{"CanceledContext", func(t *testing.T, e *env) {
		s := e.open()
		c, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.AppendMessage(c, "c", storage.Message{Sender: "u"}); err == nil {
			t.Fatal("append with a canceled context succeeded")
		}
		info, err := s.ChannelInfo(ctx, "c")
		must(t, err)
		equal(t, "last seq after canceled append", info.Last, 0)
	}},
}
