package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/testutil"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// testTimeout bounds every wait in these tests; nothing should come close.
const testTimeout = 15 * time.Second

func testLogger() *slog.Logger {
	if os.Getenv("JSP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var memSeq atomic.Int64

// testGateway is a running gateway with an in-memory listener besides the
// configured real ones.
type testGateway struct {
	*Gateway
	memName string
	served  chan error
}

// startGateway starts a gateway on 127.0.0.1:0 ports (each off unless
// enabled in cfg) plus an in-memory listener, and stops it at cleanup.
func startGateway(t testing.TB, cfg Config) *testGateway {
	t.Helper()
	name := fmt.Sprintf("gw-%d", memSeq.Add(1))
	ml, err := memtransport.Listen(name, mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*string{&cfg.QUICAddr, &cfg.TCPAddr, &cfg.WSAddr} {
		if *a == "" {
			*a = Off
		}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.ExtraListeners = append(cfg.ExtraListeners, ml)
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	g, err := New(cfg)
	if err != nil {
		_ = ml.Close()
		t.Fatalf("New: %v", err)
	}
	tg := &testGateway{Gateway: g, memName: name, served: make(chan error, 1)}
	go func() { tg.served <- g.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = g.Close()
		if err := <-tg.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return tg
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// clientTLS trusts the gateway's certificate by its pin.
func (g *testGateway) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	c, err := tlsconf.Client(tlsconf.ClientConfig{Pins: []tlsconf.Fingerprint{g.Cert().Pin}, TrustPinsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialConn opens a transport connection of the given kind to g.
func (g *testGateway) dialConn(t testing.TB, kind transport.Kind) transport.Conn {
	t.Helper()
	ctx := ctxT(t)
	var (
		conn transport.Conn
		err  error
	)
	switch kind {
	case transport.KindMem:
		conn, err = memtransport.Dial(ctx, g.memName, mux.Config{})
	case transport.KindQUIC:
		conn, err = jspquic.Dial(ctx, g.Addrs().QUIC.String(), g.clientTLS(t), jspquic.Config{})
	default:
		conn, err = dialOther(ctx, t, g, kind)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", kind, err)
	}
	return conn
}

// dial opens a session to g over the given transport and closes it at
// cleanup.
func (g *testGateway) dial(t testing.TB, kind transport.Kind) *session.Session {
	t.Helper()
	conn := g.dialConn(t, kind)
	s, err := session.Dial(ctxT(t), conn, session.ClientInfo{Name: "gateway-test"}, session.Config{Logger: testLogger()})
	if err != nil {
		_ = conn.CloseWithError(jsperr.NoError, "")
		t.Fatalf("session over %s: %v", kind, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// recvType returns the next incoming message of type want, failing on any
// other type.
func recvType(t testing.TB, s *session.Session, want wire.FrameType) session.Incoming {
	t.Helper()
	in, err := s.Recv(ctxT(t))
	if err != nil {
		t.Fatalf("Recv (want %s): %v", want, err)
	}
	if in.Type != want {
		t.Fatalf("received %s, want %s", in.Type, want)
	}
	return in
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closeCode returns the code a closed connection or session ended with.
func closeCode(err error) jsperr.Code {
	var je *jsperr.Error
	if errors.As(err, &je) {
		return je.Code
	}
	return jsperr.CodeOf(err)
}

func sessionConfigHandshake(d time.Duration) session.Config {
	return session.Config{HandshakeTimeout: d, Logger: testLogger()}
}
