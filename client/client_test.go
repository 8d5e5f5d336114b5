package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/pubsub"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

var schemeKind = map[string]transport.Kind{
	client.SchemeQUIC:      transport.KindQUIC,
	client.SchemeTCP:       transport.KindTCP,
	client.SchemeWebSocket: transport.KindWebSocket,
}

// TestAPIs runs every API against the real server over each transport.
func TestAPIs(t *testing.T) {
	srv := startServer(t, serverOpts{})
	for _, scheme := range schemes {
		t.Run(scheme, func(t *testing.T) {
			c := srv.dial(t, scheme)
			if got := c.Transport(); got != schemeKind[scheme] {
				t.Fatalf("Transport() = %s, want %s", got, schemeKind[scheme])
			}
			if info := c.Info(); info.Handshake <= 0 || len(info.SessionID) == 0 || info.Transport != schemeKind[scheme] {
				t.Fatalf("Info() = %+v", info)
			}
			t.Run("ping", func(t *testing.T) { testPing(t, c) })
			t.Run("command", func(t *testing.T) { testCommand(t, c) })
			t.Run("stream", func(t *testing.T) { testStream(t, c) })
			t.Run("stream reset", func(t *testing.T) { testStreamReset(t, c) })
			t.Run("datagram", func(t *testing.T) { testDatagram(t, c) })
			t.Run("events", func(t *testing.T) { testEvents(t, c) })
			t.Run("notify", func(t *testing.T) { testNotify(t, c) })
			t.Run("mixed", func(t *testing.T) { testMixed(t, c) })
			t.Run("battery", func(t *testing.T) {
				c.SetBatteryMode(true)
				defer c.SetBatteryMode(false)
				if !c.Session().BatteryMode() {
					t.Fatal("battery mode not on")
				}
				testPing(t, c)
			})
		})
	}
}

func testPing(t *testing.T, c *client.Client) {
	rtt, err := c.Ping(ctxT(t))
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if rtt <= 0 {
		t.Fatalf("Ping RTT = %v, want > 0", rtt)
	}
}

func testCommand(t *testing.T, c *client.Client) {
	for _, body := range [][]byte{[]byte("hello"), payload(200 << 10), nil} {
		got, err := c.Command(ctxT(t), "echo", body)
		if err != nil {
			t.Fatalf("Command(echo, %d bytes): %v", len(body), err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("echo of %d bytes returned %d different bytes", len(body), len(got))
		}
	}
	_, err := c.Command(ctxT(t), "no-such-service", []byte("x"))
	var je *jsperr.Error
	if !errors.As(err, &je) || je.Code != jsperr.NotFound || !je.Remote {
		t.Fatalf("command to an unknown service: %v, want a remote NOT_FOUND", err)
	}
}

func testStream(t *testing.T, c *client.Client) {
	want := payload(1 << 20)
	st, err := c.OpenStream(ctxT(t), protocol.ClassBulk, "echo")
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	defer st.Close()
	if st.Label() != "echo" {
		t.Fatalf("Label() = %q", st.Label())
	}
	// Write and read concurrently: the echo's flow-control windows are
	// smaller than the payload.
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(want)
		if err == nil {
			err = st.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo stream returned %d bytes, want the %d sent", len(got), len(want))
	}
}

func testStreamReset(t *testing.T, c *client.Client) {
	st, err := c.OpenStream(ctxT(t), protocol.ClassChat, "echo")
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	if _, err := st.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "abc" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	st.Reset(jsperr.Cancelled)
	if _, err := st.Write([]byte("x")); err == nil {
		t.Fatal("Write after Reset succeeded")
	}
	if _, err := st.Read(buf); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("Read after Reset: %v, want an error other than EOF", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close after Reset: %v", err)
	}
	// The session carries on.
	testPing(t, c)
}

// testDatagram sends a 20 KB datagram, far above one transport datagram,
// and expects the echo whole. Datagrams may be lost, so a lost round trip
// is retried; a partial or corrupted one fails the test.
func testDatagram(t *testing.T, c *client.Client) {
	want := payload(20 << 10)
	for try := 0; ; try++ {
		if err := c.SendDatagram(want); err != nil {
			t.Fatalf("SendDatagram: %v", err)
		}
		ctx, cancel := context.WithTimeout(ctxT(t), 2*time.Second)
		got, err := c.ReceiveDatagram(ctx)
		cancel()
		if err == nil {
			if !bytes.Equal(got, want) {
				t.Fatalf("datagram echo of %d bytes, want the %d sent", len(got), len(want))
			}
			break
		}
		if try == 4 {
			t.Fatalf("no datagram echo after %d tries: %v", try+1, err)
		}
	}
	too := payload(c.MaxDatagramSize() + 1)
	if err := c.SendDatagram(too); jsperr.CodeOf(err) != jsperr.DatagramTooLarge {
		t.Fatalf("oversize datagram: %v, want DATAGRAM_TOO_LARGE", err)
	}
}

func testEvents(t *testing.T, c *client.Client) {
	channel := "room." + string(c.Transport())
	events := make(chan client.Event, 16)
	sub, err := c.Subscribe(ctxT(t), channel, func(e client.Event) { events <- e })
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if sub.Channel() != channel {
		t.Fatalf("Channel() = %q", sub.Channel())
	}
	var last uint64
	for i := range 3 {
		body := []byte{byte('a' + i)}
		if err := c.Publish(ctxT(t), channel, body); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		e := recvEvent(t, events)
		if e.Channel != channel || !bytes.Equal(e.Body, body) {
			t.Fatalf("event %+v, want %q on %s", e, body, channel)
		}
		if e.Seq <= last {
			t.Fatalf("event seq %d after %d: not increasing", e.Seq, last)
		}
		last = e.Seq
	}
	if err := sub.Unsubscribe(ctxT(t)); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	if err := sub.Unsubscribe(ctxT(t)); err != nil {
		t.Fatalf("second Unsubscribe: %v", err)
	}
	// After unsubscribing, a publish to the channel must not reach the
	// handler. A second subscription on another channel is the barrier:
	// its event is sent after the first publish.
	barrier := make(chan client.Event, 1)
	bsub, err := c.Subscribe(ctxT(t), channel+".barrier", func(e client.Event) { barrier <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer bsub.Unsubscribe(ctxT(t))
	if err := c.Publish(ctxT(t), channel, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctxT(t), channel+".barrier", []byte("b")); err != nil {
		t.Fatal(err)
	}
	recvEvent(t, barrier)
	select {
	case e := <-events:
		t.Fatalf("event %q delivered after Unsubscribe", e.Body)
	default:
	}
}

func recvEvent(t *testing.T, ch <-chan client.Event) client.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(testTimeout):
		t.Fatal("no event")
		return client.Event{}
	}
}

func testNotify(t *testing.T, c *client.Client) {
	got := make(chan client.Notification, 1)
	if err := c.OnNotify(func(n client.Notification) { got <- n }); err != nil {
		t.Fatal(err)
	}
	defer c.OnNotify(nil)
	if _, err := c.Command(ctxT(t), "notify", []byte("ding")); err != nil {
		t.Fatalf("Command(notify): %v", err)
	}
	select {
	case n := <-got:
		if string(n.Body) != "ding" {
			t.Fatalf("notification body %q, want ding", n.Body)
		}
	case <-time.After(testTimeout):
		t.Fatal("no notification")
	}
}

// testMixed sends one message in each delivery mode and expects the
// server's echo with the same mode.
func testMixed(t *testing.T, c *client.Client) {
	got := make(chan client.Message, 16)
	if err := c.OnMessage(func(m client.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	defer c.OnMessage(nil)
	route := wire.Route{Kind: wire.RouteService, Name: "echo"}
	modes := []struct {
		mode client.Delivery
		opts []client.SendOption
	}{
		{mode: client.Ordered},
		{mode: client.Unordered},
		{mode: client.Partial, opts: []client.SendOption{client.WithTTL(10 * time.Second)}},
		{mode: client.Unreliable},
	}
	for _, m := range modes {
		t.Run(m.mode.String(), func(t *testing.T) {
			body := append([]byte(m.mode.String()+":"), payload(3000)...)
			for try := 0; ; try++ {
				if err := c.Send(ctxT(t), route, body, m.mode, m.opts...); err != nil {
					t.Fatalf("Send: %v", err)
				}
				select {
				case msg := <-got:
					if !bytes.Equal(msg.Body, body) || msg.Delivery != m.mode {
						t.Fatalf("echo %q by %s, want %q by %s", msg.Body[:min(len(msg.Body), 24)], msg.Delivery, body[:24], m.mode)
					}
					return
				case <-time.After(2 * time.Second):
					// Only an unreliable message may be lost.
					if m.mode != client.Unreliable || try == 4 {
						t.Fatalf("no echo of a %s message", m.mode)
					}
				}
			}
		})
	}
	if err := c.Send(context.Background(), route, []byte("x"), client.Partial); jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Fatalf("partial message without TTL or deadline: %v, want BAD_REQUEST", err)
	}
}

func TestAutoPicksQUIC(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	// TCP starts only if QUIC fails: the head start outlasts the test.
	c := srv.dial(t, client.SchemeAuto, func(o *client.Options) { o.HappyEyeballsDelay = time.Hour })
	if got := c.Transport(); got != transport.KindQUIC {
		t.Fatalf("auto mode chose %s, want quic", got)
	}
	testCommand(t, c)
}

func TestAutoFallsBackToTCPWhenUDPBlocked(t *testing.T) {
	srv := startServer(t, serverOpts{noQUIC: true, noWS: true})
	udp := swallowUDP(t, srv.port)
	c := srv.dial(t, client.SchemeAuto, func(o *client.Options) { o.HappyEyeballsDelay = 50 * time.Millisecond })
	if got := c.Transport(); got != transport.KindTCP {
		t.Fatalf("auto mode chose %s, want tcp", got)
	}
	if udp.packets() == 0 {
		t.Fatal("no QUIC packet reached the blocked UDP port: QUIC was not tried")
	}
	testCommand(t, c)
	testDatagram(t, c)
}

func TestSingleTransportDoesNotFallBack(t *testing.T) {
	srv := startServer(t, serverOpts{noQUIC: true, noWS: true})
	swallowUDP(t, srv.port)
	o := srv.options()
	o.DialTimeout = 300 * time.Millisecond
	o.QUIC.HandshakeIdleTimeout = 200 * time.Millisecond
	_, err := client.Dial(ctxT(t), srv.url(client.SchemeQUIC), o)
	if err == nil {
		t.Fatal("jsp+quic:// to a blocked UDP port connected")
	}
}

func TestPinMismatchRefused(t *testing.T) {
	srv := startServer(t, serverOpts{})
	other, err := tlsconf.ParseFingerprint(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range append([]string{client.SchemeAuto}, schemes...) {
		t.Run(scheme, func(t *testing.T) {
			o := srv.options()
			o.Pins = []tlsconf.Fingerprint{other}
			c, err := client.Dial(ctxT(t), srv.url(scheme), o)
			if err == nil {
				c.Close()
				t.Fatal("Dial with a wrong pin succeeded")
			}
			if !errors.Is(err, client.ErrPinMismatch) {
				t.Fatalf("Dial error = %v, want ErrPinMismatch", err)
			}
			if !strings.Contains(err.Error(), srv.pin.String()) || !strings.Contains(err.Error(), other.String()) {
				t.Fatalf("error %q does not name the presented and the pinned key", err)
			}
		})
	}
}

func TestUntrustedCertificateRefused(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	o := client.Options{Logger: quietLogger()} // system roots: the dev cert is unknown
	for _, scheme := range []string{client.SchemeAuto, client.SchemeTCP} {
		c, err := client.Dial(ctxT(t), srv.url(scheme), o)
		if err == nil {
			c.Close()
			t.Fatalf("%s: Dial to an untrusted certificate succeeded", scheme)
		}
	}
}

func TestCommandTimeout(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	c := srv.dial(t, client.SchemeTCP, func(o *client.Options) { o.CommandTimeout = 100 * time.Millisecond })
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{name: "deadline from ctx", ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctxT(t), 100*time.Millisecond)
		}},
		{name: "default timeout", ctx: func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			_, err := c.Command(ctx, "stall", []byte("x"))
			if jsperr.CodeOf(err) != jsperr.Timeout {
				t.Fatalf("Command(stall) = %v, want TIMEOUT", err)
			}
		})
	}
	// The session survives a timed-out command.
	testCommand(t, c)
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	if _, err := c.Command(ctx, "stall", nil); jsperr.CodeOf(err) != jsperr.Cancelled {
		t.Fatalf("cancelled command: %v, want CANCELLED", err)
	}
}

func TestFanOutAcrossTransports(t *testing.T) {
	srv := startServer(t, serverOpts{})
	var subs []chan client.Event
	for _, scheme := range schemes {
		c := srv.dial(t, scheme)
		ch := make(chan client.Event, 8)
		if _, err := c.Subscribe(ctxT(t), "lobby", func(e client.Event) { ch <- e }); err != nil {
			t.Fatalf("%s: Subscribe: %v", scheme, err)
		}
		subs = append(subs, ch)
	}
	pub := srv.dial(t, client.SchemeAuto)
	for i := range 3 {
		if err := pub.Publish(ctxT(t), "lobby", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, ch := range subs {
		var seqs []uint64
		for j := range 3 {
			e := recvEvent(t, ch)
			if len(e.Body) != 1 || e.Body[0] != byte(j) {
				t.Fatalf("subscriber %s: event %d body %v", schemes[i], j, e.Body)
			}
			seqs = append(seqs, e.Seq)
		}
		if seqs[0] >= seqs[1] || seqs[1] >= seqs[2] {
			t.Fatalf("subscriber %s: seqs %v not increasing", schemes[i], seqs)
		}
	}
}

func TestSharedSubscriptions(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	c := srv.dial(t, client.SchemeTCP)
	a, b := make(chan client.Event, 4), make(chan client.Event, 4)
	subA, err := c.Subscribe(ctxT(t), "shared", func(e client.Event) { a <- e })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctxT(t), "shared", func(e client.Event) { b <- e }); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctxT(t), "shared", []byte("1")); err != nil {
		t.Fatal(err)
	}
	recvEvent(t, a)
	recvEvent(t, b)
	// Dropping one local subscription keeps the server-side one for the
	// other.
	if err := subA.Unsubscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctxT(t), "shared", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if e := recvEvent(t, b); string(e.Body) != "2" {
		t.Fatalf("got %q, want 2", e.Body)
	}
	select {
	case e := <-a:
		t.Fatalf("unsubscribed handler got %q", e.Body)
	default:
	}
}

// TestSubscribeRefused: a subscription the server refuses fails alone; the
// session and other subscriptions carry on.
func TestSubscribeRefused(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true, hub: pubsub.Config{MaxSubscriptions: 1}})
	c := srv.dial(t, client.SchemeQUIC)
	got := make(chan client.Event, 1)
	if _, err := c.Subscribe(ctxT(t), "first", func(e client.Event) { got <- e }); err != nil {
		t.Fatal(err)
	}
	_, err := c.Subscribe(ctxT(t), "second", func(client.Event) {})
	var je *jsperr.Error
	if !errors.As(err, &je) || je.Code != jsperr.LimitExceeded || !je.Remote {
		t.Fatalf("Subscribe beyond the server's limit: %v, want a remote LIMIT_EXCEEDED", err)
	}
	if err := c.Publish(ctxT(t), "first", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if e := recvEvent(t, got); string(e.Body) != "still here" {
		t.Fatalf("event %q", e.Body)
	}
	testCommand(t, c)
}

// TestStuckHandlerIsBounded: a handler that never returns loses its own
// events but delays neither the dispatcher nor other handlers.
func TestStuckHandlerIsBounded(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	c := srv.dial(t, client.SchemeTCP, func(o *client.Options) {
		o.HandlerQueueLength = 2
		o.HandlerPatience = 20 * time.Millisecond
	})
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	if _, err := c.Subscribe(ctxT(t), "stuck", func(client.Event) { <-release }); err != nil {
		t.Fatal(err)
	}
	ok := make(chan client.Event, 64)
	if _, err := c.Subscribe(ctxT(t), "fine", func(e client.Event) { ok <- e }); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		if err := c.Publish(ctxT(t), "stuck", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(ctxT(t), "fine", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if e := recvEvent(t, ok); e.Body[0] != byte(i) {
			t.Fatalf("fine handler got %d, want %d", e.Body[0], i)
		}
	}
	// 1 in the handler, 2 queued, the rest dropped.
	if got := c.Stats().HandlerDrops; got != n-3 {
		t.Fatalf("HandlerDrops = %d, want %d", got, n-3)
	}
	once.Do(func() { close(release) })
}

func TestClose(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	c := srv.dial(t, client.SchemeQUIC)
	if err := c.OnNotify(func(client.Notification) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctxT(t), "x", func(client.Event) {}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	checks := map[string]error{}
	_, checks["Command"] = c.Command(ctxT(t), "echo", nil)
	_, checks["Subscribe"] = c.Subscribe(ctxT(t), "y", func(client.Event) {})
	checks["Publish"] = c.Publish(ctxT(t), "y", nil)
	_, checks["OpenStream"] = c.OpenStream(ctxT(t), protocol.ClassBulk, "echo")
	checks["SendDatagram"] = c.SendDatagram([]byte("x"))
	_, checks["ReceiveDatagram"] = c.ReceiveDatagram(ctxT(t))
	checks["OnMessage"] = c.OnMessage(func(client.Message) {})
	for op, err := range checks {
		if err == nil {
			t.Errorf("%s after Close succeeded", op)
		}
	}
	for _, op := range []string{"Command", "Subscribe", "OpenStream", "ReceiveDatagram", "OnMessage"} {
		if !errors.Is(checks[op], client.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", op, checks[op])
		}
	}
}

func TestServerGoingAway(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	c := srv.dial(t, client.SchemeTCP)
	ctx, cancel := context.WithTimeout(ctxT(t), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.g.Shutdown(ctx) }()
	select {
	case <-c.GoingAway():
	case <-time.After(testTimeout):
		t.Fatal("no GOAWAY")
	}
	if c.GoAwayInfo() == nil {
		t.Fatal("GoAwayInfo() = nil after GOAWAY")
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestServerClosesConnection(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	c := srv.dial(t, client.SchemeQUIC)
	_ = srv.g.Close()
	select {
	case <-c.Done():
	case <-time.After(testTimeout):
		t.Fatal("client did not notice the server closing")
	}
	if c.Err() == nil {
		t.Fatal("Err() = nil after the connection ended")
	}
	if _, err := c.Command(ctxT(t), "echo", nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Command after the server closed: %v, want ErrClosed", err)
	}
}

func TestDialErrors(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts client.Options
		want string
	}{
		{name: "bad scheme", url: "http://127.0.0.1", want: "unknown scheme"},
		{name: "plain ws", url: "ws://127.0.0.1", want: "TLS"},
		{name: "negative timeout", url: "jsp://127.0.0.1", opts: client.Options{DialTimeout: -1}, want: "negative"},
		{name: "missing CA file", url: "jsp://127.0.0.1", opts: client.Options{RootCAsFile: "/nonexistent/ca.pem"}, want: "read CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Dial(ctxT(t), tt.url, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Dial error = %v, want containing %q", err, tt.want)
			}
		})
	}
	// Nothing listens: both transports of the race fail, and the error
	// names both.
	port := freePort(t)
	o := client.Options{InsecureSkipVerify: true, Logger: quietLogger(), DialTimeout: 2 * time.Second}
	o.QUIC.HandshakeIdleTimeout = 300 * time.Millisecond
	_, err := client.Dial(ctxT(t), "jsp://127.0.0.1:"+port, o)
	if err == nil || !strings.Contains(err.Error(), "quic") || !strings.Contains(err.Error(), "tcp") {
		t.Fatalf("Dial to nothing: %v, want the failures of quic and tcp", err)
	}
}

// TestAcceptStream: the gateway never opens streams toward clients, so a
// bare session server over TLS/TCP does it here.
func TestAcceptStream(t *testing.T) {
	cert, err := tlsconf.LoadOrCreateDevCert(t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tcptls.Listen("127.0.0.1:0", tlsconf.Server(cert), mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		served <- func() error {
			conn, err := ln.Accept(ctxT(t))
			if err != nil {
				return err
			}
			s, err := session.Accept(ctxT(t), conn, session.Config{Logger: quietLogger()}, session.ServerOptions{})
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := s.OpenStream(ctxT(t), protocol.ClassChat, "push", map[string]string{"k": "v"})
			if err != nil {
				return err
			}
			if _, err := io.WriteString(st, "from the server"); err != nil {
				return err
			}
			if err := st.Close(); err != nil {
				return err
			}
			// Wait for the client to answer and leave.
			back, err := io.ReadAll(st)
			if err != nil {
				return err
			}
			if string(back) != "ack" {
				return errors.New("client answered " + string(back))
			}
			<-s.Context().Done()
			return nil
		}()
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	c, err := client.Dial(ctxT(t), "jsp+tcp://127.0.0.1:"+port, client.Options{
		Pins: []tlsconf.Fingerprint{tlsconf.SPKIFingerprint(cert.Leaf)}, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.AcceptStream(ctxT(t))
	if err != nil {
		t.Fatalf("AcceptStream: %v", err)
	}
	if st.Label() != "push" || st.Metadata()["k"] != "v" || st.Class() != protocol.ClassChat {
		t.Fatalf("stream label %q, metadata %v, class %s", st.Label(), st.Metadata(), st.Class())
	}
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "from the server" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := io.WriteString(st, "ack"); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// No second stream comes: AcceptStream honours its context.
	ctx, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	if _, err := c.AcceptStream(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AcceptStream with nothing coming: %v, want DeadlineExceeded", err)
	}
	c.Close()
	if err := <-served; err != nil {
		t.Fatalf("server: %v", err)
	}
}
