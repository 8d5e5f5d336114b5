package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// The goroutines CapAnnounce defers on the server (JSP §5.14, D38).
const (
	fnAcceptStreams    = "session.(*Session).acceptStreams"
	fnReceiveDatagrams = "session.(*Session).receiveDatagrams"
)

// waitGoroutinesIn waits until exactly n goroutines run fn.
func waitGoroutinesIn(t *testing.T, fn string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := goroutinesIn(fn)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines in %s, want %d", got, fn, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAnnounceNegotiation: the capability is in effect only where the
// server saves a goroutine by it (QUIC) and both sides want it, and only
// then does the server wait for the ANNOUNCE.
func TestAnnounceNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		factory    func(*testing.T) (transport.Conn, transport.Conn)
		cli, srv   Config
		inEffect   bool
		srvWaiting wire.Uses
	}{
		{name: "quic", factory: quicPair, inEffect: true, srvWaiting: wire.UsesStreams | wire.UsesDatagrams},
		{name: "quic, client without", factory: quicPair, cli: Config{DisableAnnounce: true}},
		{name: "quic, server without", factory: quicPair, srv: Config{DisableAnnounce: true}},
		{name: "quic, listed in Capabilities too", factory: quicPair, cli: Config{Capabilities: []string{CapAnnounce}},
			srv: Config{Capabilities: []string{CapAnnounce}}, inEffect: true, srvWaiting: wire.UsesStreams | wire.UsesDatagrams},
		{name: "mux link (callbacks)", factory: newPair},
		{name: "tcp", factory: tcpPair},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, srv := establishOn(t, tc.factory, tc.cli, tc.srv, ClientInfo{})
			for _, s := range []*Session{cli, srv} {
				if s.HasCapability(CapAnnounce) != tc.inEffect {
					t.Errorf("%s: announce in effect = %v, want %v (caps %v)", roleName(s.role), !tc.inEffect, tc.inEffect, s.Welcome().Caps)
				}
			}
			if n := len(srv.Welcome().Caps); n != len(cli.Welcome().Caps) {
				t.Errorf("WELCOME caps differ: %v and %v", srv.Welcome().Caps, cli.Welcome().Caps)
			}
			if cli.ann.on != tc.inEffect {
				t.Errorf("client announces = %v, want %v", cli.ann.on, tc.inEffect)
			}
			if srv.unannounced != tc.srvWaiting {
				t.Errorf("server waits for %b, want %b", srv.unannounced, tc.srvWaiting)
			}
		})
	}
}

// rawStream opens a Stream API stream on the client's transport without
// the session, so without an ANNOUNCE: a stream that overtakes it.
func rawStream(t *testing.T, cli *Session, label string) transport.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ts, err := cli.Conn().OpenStream(ctx, protocol.ClassChat)
	if err != nil {
		t.Fatal(err)
	}
	so := &wire.StreamOpen{Class: protocol.ClassChat, Label: label}
	if _, err := ts.Write(wire.AppendFrame(nil, wire.FrameStreamOpen, 0, 0, so.Append(nil))); err != nil {
		t.Fatal(err)
	}
	return ts
}

// rawDatagram sends a whole Datagram API payload on the client's
// transport without the session (no ANNOUNCE).
func rawDatagram(t *testing.T, cli *Session, id uint64, b []byte) {
	t.Helper()
	d := &wire.Datagram{Fragment: wire.FragmentHeader{MsgID: id, Count: 1}, Data: b}
	if err := cli.Conn().SendDatagram(wire.AppendMessage(nil, 0, protocol.StreamID(flowDatagramAPI), d), protocol.ClassChat); err != nil {
		t.Fatal(err)
	}
}

// TestAnnounceDeliversWhatRacedAhead: over QUIC with CapAnnounce, an idle
// server session takes no streams or datagrams (no goroutine waits for
// them); streams and datagrams that arrive before the ANNOUNCE are kept by
// the transport and delivered once it comes, with those sent after it.
func TestAnnounceDeliversWhatRacedAhead(t *testing.T) {
	cli, srv := establishOn(t, quicPair, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The client end reads both from the start (JSP §5.14); the server end
	// neither.
	waitGoroutinesIn(t, fnAcceptStreams, 1)
	waitGoroutinesIn(t, fnReceiveDatagrams, 1)

	// Ahead of any ANNOUNCE: two streams and three datagrams.
	early := []transport.Stream{rawStream(t, cli, "early-0"), rawStream(t, cli, "early-1")}
	for i := range 3 {
		rawDatagram(t, cli, uint64(100+i), fmt.Appendf(nil, "early-%d", i))
	}
	// Give them time to arrive: nothing takes them.
	time.Sleep(200 * time.Millisecond)
	waitGoroutinesIn(t, fnAcceptStreams, 1)
	if q := srv.queues.Load(); q != nil && (len(q.streams) > 0 || len(q.dgrams) > 0) {
		t.Fatal("the server took streams or datagrams before the ANNOUNCE")
	}

	// The session's own calls announce first.
	st, err := cli.OpenStream(ctx, protocol.ClassChat, "late", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := cli.SendDatagram([]byte("late"), protocol.ClassChat); err != nil {
		t.Fatal(err)
	}
	waitGoroutinesIn(t, fnAcceptStreams, 2)
	waitGoroutinesIn(t, fnReceiveDatagrams, 2)
	if got := wire.Uses(cli.ann.sent.Load()); got != wire.UsesStreams|wire.UsesDatagrams {
		t.Fatalf("client announced %b", got)
	}

	labels := map[string]bool{}
	for range 3 {
		s, err := srv.AcceptStream(ctx)
		if err != nil {
			t.Fatalf("accept: %v (have %v)", err, labels)
		}
		labels[s.Label()] = true
		if s.Label() == "late" {
			b := make([]byte, 5)
			if _, err := io.ReadFull(s, b); err != nil || string(b) != "hello" {
				t.Fatalf("late stream read %q, %v", b, err)
			}
		}
	}
	for _, l := range []string{"early-0", "early-1", "late"} {
		if !labels[l] {
			t.Errorf("stream %q not delivered (got %v)", l, labels)
		}
	}
	dgrams := map[string]bool{}
	for range 4 {
		b, err := srv.ReceiveDatagram(ctx)
		if err != nil {
			t.Fatalf("receive datagram: %v (have %v)", err, dgrams)
		}
		dgrams[string(b)] = true
	}
	for _, d := range []string{"early-0", "early-1", "early-2", "late"} {
		if !dgrams[d] {
			t.Errorf("datagram %q not delivered (got %v)", d, dgrams)
		}
	}
	for _, ts := range early {
		ts.CancelWrite(0)
	}
}

// TestAnnounceEachOnItsOwn: a client that only sends datagrams starts only
// the server's datagram receiver, and one NACK in a datagram announces
// datagrams too; a message stream (Mixed API) announces streams.
func TestAnnounceEachOnItsOwn(t *testing.T) {
	cli, srv := establishOn(t, quicPair, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitGoroutinesIn(t, fnReceiveDatagrams, 1)
	if err := cli.SendNack(&wire.Nack{Flow: 3, Seqs: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	if n, err := srv.ReceiveNack(ctx); err != nil || n.Flow != 3 {
		t.Fatalf("NACK: %v, %v", n, err)
	}
	waitGoroutinesIn(t, fnReceiveDatagrams, 2)
	if got := wire.Uses(cli.ann.sent.Load()); got != wire.UsesDatagrams {
		t.Fatalf("client announced %b after a NACK, want datagrams only", got)
	}
	// The stream acceptor still waits for its ANNOUNCE (srv.unannounced
	// belongs to the server's control reader: counted, not read).
	waitGoroutinesIn(t, fnAcceptStreams, 1)

	out := make(chan Incoming, 1)
	srv.HandleMessages(func(in Incoming) bool { out <- in; return true })
	env := &wire.Envelope{Route: wire.Route{Kind: wire.RouteChannel, Name: "c"}, Kind: wire.KindEvent, Body: []byte("x")}
	if err := cli.SendMessage(ctx, env, DeliveryUnordered); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-out:
		if in.Delivery != DeliveryUnordered || !bytes.Equal(in.Envelope.Body, []byte("x")) {
			t.Fatalf("got %+v", in)
		}
	case <-ctx.Done():
		t.Fatal("message stream not delivered")
	}
	waitGoroutinesIn(t, fnAcceptStreams, 2)
}

// TestAnnounceIgnoredWhereNotInEffect: an ANNOUNCE to a server that did
// not accept the capability, or to a client, changes nothing; an empty
// ANNOUNCE announces nothing.
func TestAnnounceIgnoredWhereNotInEffect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Run("mux", func(t *testing.T) {
		cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
		if err := cli.Send(&wire.Announce{Uses: wire.UsesStreams | 1<<7}); err != nil {
			t.Fatal(err)
		}
		if err := srv.Send(&wire.Announce{Uses: wire.UsesDatagrams}); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Session{cli, srv} {
			if _, err := s.Ping(ctx); err != nil {
				t.Fatalf("%s after ANNOUNCE: %v", roleName(s.role), err)
			}
		}
	})
	t.Run("quic, empty", func(t *testing.T) {
		cli, srv := establishOn(t, quicPair, Config{}, Config{}, ClientInfo{})
		if err := cli.Send(&wire.Announce{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if srv.unannounced != wire.UsesStreams|wire.UsesDatagrams {
			t.Fatalf("an empty ANNOUNCE changed what the server waits for: %b", srv.unannounced)
		}
		waitGoroutinesIn(t, fnAcceptStreams, 1)
	})
}

// TestControlReaderHandsOffItsWait: over QUIC, where the control reader
// blocks in Peek, each burst of frames ends with the wait moved to a new
// goroutine (D38); the readers never pile up, and the session still
// answers after many bursts.
func TestControlReaderHandsOffItsWait(t *testing.T) {
	cli, srv := establishOn(t, quicPair, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const fn = "session.(*Session).readControl"
	waitGoroutinesIn(t, fn, 2) // one per end
	for i := range 20 {
		from := cli
		if i%2 == 1 {
			from = srv
		}
		if _, err := from.Ping(ctx); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	waitGoroutinesIn(t, fn, 2)
	_ = cli.Close()
	_ = srv.Close()
	waitGoroutinesIn(t, fn, 0)
}

// TestWithoutAnnounce: over QUIC, a client that does not offer `announce`
// (an older client) and a server that does not accept it (an older
// server) exchange streams and datagrams as before: the server reads both
// from the start and no ANNOUNCE is sent.
func TestWithoutAnnounce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cli, srv Config
	}{
		{"client without", Config{DisableAnnounce: true}, Config{}},
		{"server without", Config{}, Config{DisableAnnounce: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, srv := establishOn(t, quicPair, tc.cli, tc.srv, ClientInfo{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			waitGoroutinesIn(t, fnAcceptStreams, 2)
			waitGoroutinesIn(t, fnReceiveDatagrams, 2)
			st, err := cli.OpenStream(ctx, protocol.ClassChat, "s", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if got, err := srv.AcceptStream(ctx); err != nil || got.Label() != "s" {
				t.Fatalf("accept: %v, %v", got, err)
			}
			if err := cli.SendDatagram([]byte("d"), protocol.ClassChat); err != nil {
				t.Fatal(err)
			}
			if b, err := srv.ReceiveDatagram(ctx); err != nil || string(b) != "d" {
				t.Fatalf("datagram: %q, %v", b, err)
			}
			if got := cli.ann.sent.Load(); got != 0 {
				t.Fatalf("client announced %b without the capability", got)
			}
		})
	}
}
