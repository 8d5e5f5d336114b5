package chat_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	chatsdk "github.com/jetstreamproto/jsp/client/chat"
	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/all"
	"github.com/jetstreamproto/jsp/server/storage/postgres/pgtest"
	"github.com/jetstreamproto/jsp/services/acl"
	"github.com/jetstreamproto/jsp/services/chat"
	"github.com/jetstreamproto/jsp/services/chatevents"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if code == 0 {
		// After the PostgreSQL server stopped: every goroutine the tests
		// started must be gone.
		deadline := time.Now().Add(testutil.LeakGrace)
		for {
			err := goleak.Find()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	os.Exit(code)
}

// testTimeout bounds one test's whole run (ctxT) and each wait: generous,
// because the machine running the tests may be shared and loaded.
const testTimeout = 60 * time.Second

var unlimited = gateway.Rate{PerSecond: -1}

func quiet() *slog.Logger {
	if os.Getenv("JSP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// backend is one storage backend the end-to-end tests run on.
type backend struct {
	name string
	dsn  func(t testing.TB) string
}

var backends = []backend{
	{"sqlite", func(t testing.TB) string { return "sqlite:" + t.TempDir() + "/jsp.db" }},
	{"sqlite-memory", func(t testing.TB) string { return "sqlite::memory:" }},
	{"postgres", func(t testing.TB) string { return pgtest.DSN(t) }},
}

// env is a real server: a gateway on loopback TCP, an in-process bus, a
// core with the chat service and the ACL hook, and a store. Clients
// authenticate as the user named in their HELLO auth bytes (a stand-in for
// a token).
type env struct {
	t     testing.TB
	store storage.Store
	core  *core.Core
	svc   *chat.Service
	gw    *gateway.Gateway
	url   string
	pin   tlsconf.Fingerprint
	bus   bus.Bus
}

func newEnv(t testing.TB, dsn string) *env {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, dsn, storage.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b, err := membus.New(membus.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	reg := core.NewRegistry()
	c, err := core.New(core.Config{Bus: b, Store: st, Logger: quiet(), Services: reg, Authorizer: &acl.Authorizer{Store: st}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := chat.Setup(ctx, c, reg, chat.Config{Logger: quiet(), Admins: []string{"root"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	g, err := gateway.New(gateway.Config{
		QUICAddr: gateway.Off, WSAddr: gateway.Off, TCPAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), Bus: b, Logger: quiet(),
		// Many clients from one address, many commands: the tests and the
		// benchmark measure chat, not the rate limits.
		RateLimits:    gateway.RateLimits{ConnAttemptsPerIP: unlimited, Conn: unlimited, User: unlimited, Command: unlimited},
		MaxConnsPerIP: 1000,
		Authenticate: func(_ context.Context, h *wire.Hello, _ transport.Conn) (session.Identity, error) {
			return session.Identity{User: string(h.Auth)}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = g.Close()
		if err := <-done; !errors.Is(err, gateway.ErrServerClosed) {
			t.Errorf("gateway Serve: %v", err)
		}
	})
	return &env{t: t, store: st, core: c, svc: svc, gw: g, bus: b,
		url: "jsp+tcp://" + g.Addrs().TCP.String(), pin: g.Cert().Pin}
}

// user is one connected SDK client.
type user struct {
	name string
	c    *client.Client
	chat *chatsdk.Client
}

func (e *env) connect(name string) *user {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	o := client.Options{Pins: []tlsconf.Fingerprint{e.pin}, Logger: quiet()}
	o.Info.Auth = []byte(name)
	c, err := client.Dial(ctx, e.url, o)
	if err != nil {
		e.t.Fatalf("dial as %s: %v", name, err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	u := &user{name: name, c: c, chat: chatsdk.New(c)}
	if _, err := u.chat.Me(ctx); err != nil {
		e.t.Fatalf("%s: me: %v", name, err)
	}
	return u
}

// clientPins trusts the server's certificate.
func (e *env) clientPins() []tlsconf.Fingerprint { return []tlsconf.Fingerprint{e.pin} }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// inbox collects the events of one subscription.
type inbox struct {
	mu  sync.Mutex
	evs []chatsdk.Event
	sig chan struct{}
}

func newInbox() *inbox { return &inbox{sig: make(chan struct{}, 1)} }

func (b *inbox) add(e chatsdk.Event) {
	b.mu.Lock()
	b.evs = append(b.evs, e)
	b.mu.Unlock()
	select {
	case b.sig <- struct{}{}:
	default:
	}
}

// wait blocks until pred holds for the events received so far.
func (b *inbox) wait(t testing.TB, what string, pred func([]chatsdk.Event) bool) []chatsdk.Event {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		b.mu.Lock()
		evs := append([]chatsdk.Event(nil), b.evs...)
		b.mu.Unlock()
		if pred(evs) {
			return evs
		}
		select {
		case <-b.sig:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; have %s", what, describe(evs))
		}
	}
}

func (b *inbox) snapshot() []chatsdk.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]chatsdk.Event(nil), b.evs...)
}

func describe(evs []chatsdk.Event) string {
	s := ""
	for _, e := range evs {
		s += fmt.Sprintf(" %d:%s", e.Seq, e.Type)
	}
	return s
}

// count returns how many events of type t are in evs.
func count(evs []chatsdk.Event, t chatevents.Type) int {
	n := 0
	for _, e := range evs {
		if e.Type == t {
			n++
		}
	}
	return n
}

func (u *user) subscribe(t testing.TB, conv string, since uint64) *inbox {
	t.Helper()
	b := newInbox()
	if _, err := u.chat.Subscribe(ctxT(t), conv, since, b.add); err != nil {
		t.Fatalf("%s: subscribe %s: %v", u.name, conv, err)
	}
	return b
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
