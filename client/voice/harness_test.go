package voice_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/internal/lossyproxy"
	"github.com/jetstreamproto/jsp/internal/simnet"
	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/sqlite"
	voicesvc "github.com/jetstreamproto/jsp/services/voice"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

const testTimeout = 20 * time.Second

func quiet() *slog.Logger {
	if os.Getenv("JSP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// cluster is a core with the rooms service, an embedded NATS bus and
// gateways on loopback QUIC; clients authenticate as the user named in
// their HELLO auth bytes.
type cluster struct {
	t   testing.TB
	bus bus.Bus
	svc *voicesvc.Service
	gws []*gateway.Gateway
}

func newCluster(t testing.TB, gateways int) *cluster {
	t.Helper()
	return newClusterBus(t, gateways, nil)
}

// newClusterBus is newCluster where gateway i uses wrap(i, bus) as its
// bus when wrap is not nil.
func newClusterBus(t testing.TB, gateways int, wrap func(int, bus.Bus) bus.Bus) *cluster {
	t.Helper()
	b, err := natsbus.Embedded(natsbus.EmbeddedConfig{
		Server: natsbus.ServerConfig{DataDir: t.TempDir(), Logger: quiet()},
		Client: natsbus.ClientConfig{Logger: quiet()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	st, err := storage.Open(context.Background(), "sqlite:"+t.TempDir()+"/jsp.db", storage.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	reg := core.NewRegistry()
	var svc *voicesvc.Service
	authz := core.AuthorizerFunc(func(ctx context.Context, id core.Identity, a core.Action) error {
		return svc.Authorize(ctx, id, a)
	})
	c, err := core.New(core.Config{Bus: b, Store: st, Logger: quiet(), Services: reg, Authorizer: authz})
	if err != nil {
		t.Fatal(err)
	}
	if svc, err = voicesvc.Setup(c, reg, voicesvc.Config{Logger: quiet()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	cl := &cluster{t: t, bus: b, svc: svc}
	unlimited := gateway.Rate{PerSecond: -1}
	for i := range gateways {
		gb := bus.Bus(b)
		if wrap != nil {
			gb = wrap(i, b)
		}
		g, err := gateway.New(gateway.Config{
			QUICAddr: "127.0.0.1:0", TCPAddr: gateway.Off, WSAddr: gateway.Off,
			DataDir: t.TempDir(), Bus: gb, Logger: quiet(), NodeID: "gw" + string(rune('a'+i)),
			RateLimits: gateway.RateLimits{ConnAttemptsPerIP: unlimited, Conn: unlimited, User: unlimited, Command: unlimited},
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
		cl.gws = append(cl.gws, g)
	}
	return cl
}

// connect dials gateway gw as user, through a lossy proxy when link is
// not nil (up and down get the same impairment, different seeds).
func (cl *cluster) connect(user string, gw int, link *simnet.Config) *client.Client {
	cl.t.Helper()
	return cl.connectCaps(user, gw, link, nil)
}

// connectCaps is connect with extra session capabilities offered.
func (cl *cluster) connectCaps(user string, gw int, link *simnet.Config, caps []string) *client.Client {
	t := cl.t
	t.Helper()
	g := cl.gws[gw]
	addr := g.Addrs().QUIC.String()
	if link != nil {
		up, down := *link, *link
		down.Seed = link.Seed + 1000
		p, err := lossyproxy.New(lossyproxy.Config{Target: addr, Up: up, Down: down})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		addr = p.Addr().String()
	}
	o := client.Options{Pins: []tlsconf.Fingerprint{g.Cert().Pin}, Logger: quiet()}
	o.Session.Capabilities = caps
	// Only the tests that ask for FEC get it, so that the others measure
	// NACK and the jitter buffer alone.
	o.DisableMediaFEC = !slices.Contains(caps, media.CapFEC)
	o.Info.Auth = []byte(user)
	c, err := client.Dial(ctxT(t), "jsp+quic://"+addr, o)
	if err != nil {
		t.Fatalf("dial as %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// events collects room events.
type events struct {
	mu  sync.Mutex
	evs []voice.Event
}

func (e *events) add(ev voice.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

func (e *events) has(typ string, pred func(voice.Event) bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.evs {
		if string(ev.Type) == typ && (pred == nil || pred(ev)) {
			return true
		}
	}
	return false
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
