package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/server/pubsub"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/server/services/echo"
	"github.com/jetstreamproto/jsp/server/services/files"
	"github.com/jetstreamproto/jsp/server/services/notify"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

// TestMain fails the package when goroutines outlive the tests, allowing
// for quic-go's asynchronous connection teardown.
func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// testTimeout bounds every wait in these tests; nothing comes close to it
// unless something is broken.
const testTimeout = 20 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func quietLogger() *slog.Logger {
	if os.Getenv("JSP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// stallService never answers: its commands end only when their TTL passes.
type stallService struct{}

func (stallService) HandleCommand(ctx context.Context, _ *services.Caller, _ *wire.Envelope) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// server is an in-process gateway on loopback.
type server struct {
	g    *gateway.Gateway
	port string // shared by QUIC (UDP) and TCP
	pin  tlsconf.Fingerprint
	dir  string
	done chan error
}

// serverOpts choose which listeners run.
type serverOpts struct {
	noQUIC bool // UDP port left free for a packet swallower
	noWS   bool
	hub    pubsub.Config
	auth   session.Authenticator
	// refresh is the gateway's token refresh (gateway.Config.Refresh).
	refresh func(ctx context.Context, cur session.Identity, token string) (session.Identity, error)
	// port, when set, is the port number for QUIC and TCP (a restart on
	// the ports of a closed server).
	port string
	// alternatives are announced in WELCOME and GOAWAY.
	alternatives []string
	// drainGrace is the gateway's DrainGrace.
	drainGrace time.Duration
	// dir, when set, is the data directory (a restart that keeps the
	// server's key).
	dir string
}

// freePort returns a port number free for both UDP and TCP on 127.0.0.1
// right now. Auto mode dials QUIC and TCP on the same port number.
func freePort(tb testing.TB) string {
	tb.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(l.Addr().String())
		_ = l.Close()
		u, err := net.ListenPacket("udp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		_ = u.Close()
		return port
	}
	tb.Fatal("no port free for both UDP and TCP")
	return ""
}

// newRegistry registers the gateway's default services plus "stall".
func newRegistry(dir string) (*services.Registry, error) {
	r := services.NewRegistry()
	fs, err := files.New(files.Config{Dir: filepath.Join(dir, "files")})
	if err != nil {
		return nil, err
	}
	for _, reg := range []func(*services.Registry) error{echo.Register, notify.Register, fs.Register} {
		if err := reg(r); err != nil {
			return nil, err
		}
	}
	return r, r.Register(stallService{}, "stall")
}

// startServer starts a gateway with QUIC and TCP on one port number and
// WebSocket on another, and stops it at cleanup.
func startServer(tb testing.TB, o serverOpts) *server {
	tb.Helper()
	dir := o.dir
	if dir == "" {
		dir = tb.TempDir()
	}
	reg, err := newRegistry(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var g *gateway.Gateway
	var port string
	for range 5 {
		port = o.port
		if port == "" {
			port = freePort(tb)
		}
		cfg := gateway.Config{
			Alternatives: o.alternatives,
			DrainGrace:   o.drainGrace,
			QUICAddr:     "127.0.0.1:" + port,
			TCPAddr:      "127.0.0.1:" + port,
			WSAddr:       "127.0.0.1:0",
			DataDir:      dir,
			Services:     reg,
			Hub:          o.hub,
			Logger:       quietLogger(),
			Authenticate: o.auth,
			Refresh:      o.refresh,
		}
		if o.noQUIC {
			cfg.QUICAddr = gateway.Off
		}
		if o.noWS {
			cfg.WSAddr = gateway.Off
		}
		// Another process may take the port between freePort and New; a
		// fixed port may take a moment to be released.
		if g, err = gateway.New(cfg); err == nil {
			break
		}
		if o.port != "" {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err != nil {
		tb.Fatalf("gateway.New: %v", err)
	}
	s := &server{g: g, port: port, pin: g.Cert().Pin, dir: dir, done: make(chan error, 1)}
	go func() { s.done <- g.Serve(context.Background()) }()
	tb.Cleanup(func() {
		_ = g.Close()
		if err := <-s.done; !errors.Is(err, gateway.ErrServerClosed) {
			tb.Errorf("gateway Serve returned %v", err)
		}
	})
	return s
}

// url returns the server's URL for a scheme: jsp, jsp+quic, jsp+tcp, wss.
func (s *server) url(scheme string) string {
	if scheme == client.SchemeWebSocket {
		a := s.g.Addrs()
		_, port, _ := net.SplitHostPort(a.WebSocket.String())
		return "wss://127.0.0.1:" + port + a.WSPath
	}
	return scheme + "://127.0.0.1:" + s.port
}

// options trust the server by its pin.
func (s *server) options() client.Options {
	return client.Options{Pins: []tlsconf.Fingerprint{s.pin}, Logger: quietLogger()}
}

// dial connects with the server's pin and closes the client at cleanup.
func (s *server) dial(tb testing.TB, scheme string, mod ...func(*client.Options)) *client.Client {
	tb.Helper()
	o := s.options()
	for _, m := range mod {
		m(&o)
	}
	c, err := client.Dial(ctxT(tb), s.url(scheme), o)
	if err != nil {
		tb.Fatalf("Dial %s: %v", s.url(scheme), err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// udpSwallower binds a UDP port and reads and discards every packet, as a
// firewall that drops UDP would: QUIC handshakes to it never complete.
type udpSwallower struct {
	pc   net.PacketConn
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen int // packets swallowed; guarded by mu
}

func swallowUDP(tb testing.TB, port string) *udpSwallower {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:"+port)
	if err != nil {
		tb.Fatalf("bind UDP %s: %v", port, err)
	}
	u := &udpSwallower{pc: pc}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			u.mu.Lock()
			u.seen++
			u.mu.Unlock()
		}
	}()
	tb.Cleanup(func() { _ = pc.Close(); u.wg.Wait() })
	return u
}

func (u *udpSwallower) packets() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen
}

// payload returns n deterministic bytes.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// schemes are the single-transport URL schemes.
var schemes = []string{client.SchemeQUIC, client.SchemeTCP, client.SchemeWebSocket}
