package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

// recorder collects reconnect callbacks in order.
type recorder struct {
	mu     sync.Mutex
	events []string
	ch     chan string // every event, for waiting
}

func newRecorder() *recorder { return &recorder{ch: make(chan string, 64)} }

func (r *recorder) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.ch <- e:
	default:
	}
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// wait returns once event e was recorded.
func (r *recorder) wait(t *testing.T, e string) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		select {
		case got := <-r.ch:
			if got == e {
				return
			}
		case <-deadline:
			t.Fatalf("no %q callback; got %v", e, r.list())
		}
	}
}

// install sets the reconnect options with fast backoff and the callbacks.
func (r *recorder) install(o *client.Options) {
	o.Reconnect.Enabled = true
	o.Reconnect.InitialBackoff = 20 * time.Millisecond
	o.Reconnect.MaxBackoff = 200 * time.Millisecond
	o.Reconnect.OnDisconnected = func(error) { r.add("disconnected") }
	o.Reconnect.OnConnecting = func(int) { r.add("connecting") }
	o.Reconnect.OnConnected = func(client.ConnInfo) { r.add("connected") }
	o.Reconnect.OnResumed = func(client.ConnInfo) { r.add("resumed") }
}

// dialRecorded dials srv over scheme with reconnection on (fast backoff)
// and returns the Client with the recorder of its reconnect callbacks.
func dialRecorded(t *testing.T, srv *server, scheme string) (*client.Client, *recorder) {
	t.Helper()
	rec := newRecorder()
	o := srv.options()
	rec.install(&o)
	c, err := client.Dial(ctxT(t), srv.url(scheme), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c, rec
}

// compact drops repeated "connecting" entries.
func compact(ev []string) []string {
	var out []string
	for _, e := range ev {
		if e == "connecting" && len(out) > 0 && out[len(out)-1] == "connecting" {
			continue
		}
		out = append(out, e)
	}
	return out
}

// TestReconnectAfterRestart kills the server, starts a new one on the same
// ports and checks the client comes back by itself: callbacks in order,
// the subscription restored, a publish queued while down delivered, and a
// command issued while down answered.
func TestReconnectAfterRestart(t *testing.T) {
	for _, scheme := range []string{client.SchemeAuto, client.SchemeTCP} {
		t.Run(scheme, func(t *testing.T) {
			srv := startServer(t, serverOpts{noWS: true})
			c, rec := dialRecorded(t, srv, scheme)
			defer c.Close()
			events := make(chan client.Event, 16)
			if _, err := c.Subscribe(ctxT(t), "news", func(e client.Event) { events <- e }); err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			expect := func(body string) {
				t.Helper()
				select {
				case e := <-events:
					if string(e.Body) != body {
						t.Fatalf("event %q, want %q", e.Body, body)
					}
				case <-time.After(testTimeout):
					t.Fatalf("no event %q", body)
				}
			}
			if err := c.Publish(ctxT(t), "news", []byte("before")); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			expect("before")
			firstID := c.Info().SessionID

			if err := srv.g.Close(); err != nil {
				t.Fatalf("gateway Close: %v", err)
			}
			rec.wait(t, "disconnected")
			// While down: a publish is queued, a command waits.
			if err := c.Publish(ctxT(t), "news", []byte("while down")); err != nil {
				t.Fatalf("Publish while down: %v", err)
			}
			reply := make(chan error, 1)
			go func() {
				got, err := c.Command(ctxT(t), "echo", []byte("ping"))
				if err == nil && string(got) != "ping" {
					err = fmt.Errorf("echo returned %q", got)
				}
				reply <- err
			}()

			startServer(t, serverOpts{noWS: true, port: srv.port, dir: srv.dir})
			rec.wait(t, "resumed")
			if err := <-reply; err != nil {
				t.Fatalf("command issued while down: %v", err)
			}
			expect("while down")
			if err := c.Publish(ctxT(t), "news", []byte("after")); err != nil {
				t.Fatalf("Publish after: %v", err)
			}
			expect("after")

			got := compact(rec.list())
			want := []string{"disconnected", "connecting", "connected", "resumed"}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("callbacks %v, want %v", got, want)
			}
			if bytes.Equal(c.Info().SessionID, firstID) {
				t.Fatal("same session id after a restart")
			}
			st := c.Stats()
			if st.Reconnects != 1 || st.Queued != 1 {
				t.Fatalf("Reconnects %d Queued %d, want 1 and 1", st.Reconnects, st.Queued)
			}
			if c.Err() != nil {
				t.Fatalf("Err() = %v while up", c.Err())
			}
		})
	}
}

// TestReconnectGivesUp ends the Client after MaxAttempts failed rounds.
func TestReconnectGivesUp(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	rec := newRecorder()
	o := srv.options()
	rec.install(&o)
	o.Reconnect.MaxAttempts = 2
	c, err := client.Dial(ctxT(t), srv.url(client.SchemeTCP), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	_ = srv.g.Close()
	select {
	case <-c.Done():
	case <-time.After(testTimeout):
		t.Fatal("client still trying")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "gave up after 2 rounds") {
		t.Fatalf("Err() = %v", err)
	}
	if _, err := c.Command(ctxT(t), "echo", nil); err == nil {
		t.Fatal("Command after giving up succeeded")
	}
}

// TestGoAwayMove shuts a gateway down while a client publishes a steady
// stream to it: the client moves to the alternative in the GOAWAY before
// leaving, and every publish reaches one of the two servers.
func TestGoAwayMove(t *testing.T) {
	b := startServer(t, serverOpts{noWS: true})
	a := startServer(t, serverOpts{noWS: true, alternatives: []string{"127.0.0.1:" + b.port}, drainGrace: 10 * time.Second})
	pins := []tlsconf.Fingerprint{a.pin, b.pin}

	// Observers count what reaches each server's channel.
	var mu sync.Mutex
	seen := map[string]bool{}
	all := make(chan struct{})
	const n = 300
	observe := func(s *server) *client.Client {
		o := s.options()
		c, err := client.Dial(ctxT(t), s.url(client.SchemeTCP), o)
		if err != nil {
			t.Fatalf("observer Dial: %v", err)
		}
		if _, err := c.Subscribe(ctxT(t), "count", func(e client.Event) {
			mu.Lock()
			defer mu.Unlock()
			seen[string(e.Body)] = true
			if len(seen) == n {
				close(all)
			}
		}); err != nil {
			t.Fatalf("observer Subscribe: %v", err)
		}
		return c
	}
	oa, ob := observe(a), observe(b)
	defer ob.Close()

	rec := newRecorder()
	o := a.options()
	o.Pins = pins
	rec.install(&o)
	c, err := client.Dial(ctxT(t), a.url(client.SchemeQUIC), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()

	shutdown := make(chan error, 1)
	for i := range n {
		if i == n/3 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				shutdown <- a.g.Shutdown(ctx)
			}()
		}
		if err := c.Publish(ctxT(t), "count", []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		if i%10 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	rec.wait(t, "resumed")
	select {
	case <-all:
	case <-time.After(testTimeout):
		mu.Lock()
		t.Fatalf("%d of %d publishes arrived", len(seen), n)
	}
	// The observer on a was not told to move: closing it lets the
	// shutdown finish.
	oa.Close()
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if want := b.url(client.SchemeQUIC); c.Info().URL != want {
		t.Fatalf("client on %s, want %s", c.Info().URL, want)
	}
	got := compact(rec.list())
	if strings.Join(got, ",") != "connecting,connected,resumed" {
		t.Fatalf("callbacks %v, want connecting, connected, resumed", got)
	}
	if _, err := c.Command(ctxT(t), "echo", []byte("x")); err != nil {
		t.Fatalf("Command after the move: %v", err)
	}
}

// TestMigrateMidTransfer moves a QUIC client to a new socket while it
// streams 4 MiB through the echo service: the transfer completes with the
// right hash, on the same session, without any reconnect.
func TestMigrateMidTransfer(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	rec := newRecorder()
	o := srv.options()
	rec.install(&o)
	o.QUIC.Migratable = true
	c, err := client.Dial(ctxT(t), srv.url(client.SchemeQUIC), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	id := c.Info().SessionID
	local := c.Session().Conn().LocalAddr().String()

	want := payload(4 << 20)
	wantSum := sha256.Sum256(want)
	st, err := c.OpenStream(ctxT(t), protocol.ClassBulk, "echo")
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	defer st.Close()
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(want)
		if err == nil {
			err = st.CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	if _, err := io.CopyN(h, st, 1<<20); err != nil {
		t.Fatalf("read first MiB: %v", err)
	}
	// Addresses are read while the path switches: they must not race.
	stopRead := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			select {
			case <-stopRead:
				return
			default:
				_ = c.Info().Remote
				_ = c.Session().Conn().LocalAddr()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	if err := c.Migrate(ctxT(t)); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if _, err := io.Copy(h, st); err != nil {
		t.Fatalf("read after migration: %v", err)
	}
	close(stopRead)
	<-readDone
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, wantSum[:]) {
		t.Fatalf("SHA-256 %x, want %x", got, wantSum)
	}
	if !bytes.Equal(c.Info().SessionID, id) {
		t.Fatal("session id changed")
	}
	if now := c.Session().Conn().LocalAddr().String(); now == local {
		t.Fatalf("still on local address %s", local)
	}
	if ev := rec.list(); len(ev) != 0 {
		t.Fatalf("reconnect callbacks fired: %v", ev)
	}
	if n := c.Stats().Reconnects; n != 0 {
		t.Fatalf("Reconnects = %d", n)
	}
	if _, err := c.Command(ctxT(t), "echo", []byte("x")); err != nil {
		t.Fatalf("Command after migration: %v", err)
	}
}

// TestMigrateNeedsQUIC refuses to migrate a TCP session.
func TestMigrateNeedsQUIC(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	c := srv.dial(t, client.SchemeTCP)
	if err := c.Migrate(ctxT(t)); err != client.ErrNotQUIC {
		t.Fatalf("Migrate on TCP = %v, want ErrNotQUIC", err)
	}
}

// TestGoAwayNowhereToGoThenLost drains the only server: the client's move
// after GOAWAY finds nowhere to go, and when the drain closes the session
// the move gives way to an ordinary reconnect, reported as a loss, which
// reaches the server started again on the same ports. Before, the move
// kept dialling the dead addresses without ever reporting the loss.
func TestGoAwayNowhereToGoThenLost(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true, drainGrace: 300 * time.Millisecond})
	c, rec := dialRecorded(t, srv, client.SchemeTCP)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := srv.g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	rec.wait(t, "disconnected")
	if got := compact(rec.list()); got[0] != "connecting" {
		t.Fatalf("callbacks %v, want the move's rounds before the loss", got)
	}
	startServer(t, serverOpts{noWS: true, port: srv.port, dir: srv.dir})
	rec.wait(t, "connected")
	if _, err := c.Command(ctxT(t), "echo", []byte("x")); err != nil {
		t.Fatalf("Command: %v", err)
	}
}

// TestReconnectFallback restarts the server without QUIC: the client,
// dialled over QUIC, comes back over TCP from its fallback list.
func TestReconnectFallback(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	rec := newRecorder()
	o := srv.options()
	rec.install(&o)
	o.Reconnect.Fallback = []string{srv.url(client.SchemeTCP)}
	// A QUIC handshake to a port nobody serves ends only by timeout.
	o.DialTimeout = 500 * time.Millisecond
	c, err := client.Dial(ctxT(t), srv.url(client.SchemeQUIC), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if c.Transport() != "quic" {
		t.Fatalf("Transport() = %s", c.Transport())
	}
	_ = srv.g.Close()
	rec.wait(t, "disconnected")
	startServer(t, serverOpts{noWS: true, noQUIC: true, port: srv.port, dir: srv.dir})
	rec.wait(t, "resumed")
	if c.Transport() != "tcp" {
		t.Fatalf("Transport() = %s after the fallback, want tcp", c.Transport())
	}
	if _, err := c.Command(ctxT(t), "echo", []byte("x")); err != nil {
		t.Fatalf("Command: %v", err)
	}
}

// TestCloseWhileReconnecting returns promptly and fails waiting calls.
func TestCloseWhileReconnecting(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	c, rec := dialRecorded(t, srv, client.SchemeTCP)
	_ = srv.g.Close()
	rec.wait(t, "connecting")
	waiting := make(chan error, 1)
	go func() {
		_, err := c.Command(ctxT(t), "echo", nil)
		waiting <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-waiting; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("waiting Command = %v, want ErrClosed", err)
	}
	if err := c.Publish(ctxT(t), "x", nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
}

// TestCommandInFlightFailsRetryable loses the session under a command that
// the server never answers: it fails with TRANSPORT_CLOSED, retryable.
func TestCommandInFlightFailsRetryable(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	c, _ := dialRecorded(t, srv, client.SchemeTCP)
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Command(ctxT(t), "stall", nil)
		done <- err
	}()
	// The command is in flight once the server has it; a ping after it
	// on the same ordered stream makes sure.
	time.Sleep(50 * time.Millisecond)
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	_ = c.Session().Close()
	err := <-done
	if jsperr.CodeOf(err) != jsperr.TransportClosed || !jsperr.CodeOf(err).Retryable() {
		t.Fatalf("in-flight Command = %v, want retryable TRANSPORT_CLOSED", err)
	}
}

// TestOutboxBounded queues at most QueueLength messages while down.
func TestOutboxBounded(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	rec := newRecorder()
	o := srv.options()
	rec.install(&o)
	o.Reconnect.QueueLength = 2
	o.Reconnect.InitialBackoff = time.Hour // stay down
	o.Reconnect.MaxBackoff = time.Hour
	c, err := client.Dial(ctxT(t), srv.url(client.SchemeTCP), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	_ = srv.g.Close()
	rec.wait(t, "disconnected")
	for i := range 2 {
		if err := c.Publish(ctxT(t), "x", nil); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	if err := c.Send(ctxT(t), wire.Route{Kind: wire.RouteUser, Name: "u"}, nil, client.Ordered); jsperr.CodeOf(err) != jsperr.QueueFull {
		t.Fatalf("third queued message: %v, want QUEUE_FULL", err)
	}
	if n := c.Stats().Queued; n != 2 {
		t.Fatalf("Stats().Queued = %d, want 2", n)
	}
}
