package client_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

// subscribeLog is a minimal JSP server over TLS/TCP that acknowledges
// every SUBSCRIBE, records it, and answers it with one EVENT carrying the
// next sequence number of the channel.
type subscribeLog struct {
	ln   transport.Listener
	pin  tlsconf.Fingerprint
	wg   sync.WaitGroup
	subs chan *wire.Subscribe

	mu       sync.Mutex
	seq      uint64             // guarded by mu
	sessions []*session.Session // guarded by mu
}

func startSubscribeLog(t *testing.T) *subscribeLog {
	t.Helper()
	cert, err := tlsconf.LoadOrCreateDevCert(t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tcptls.Listen("127.0.0.1:0", tlsconf.Server(cert), mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := &subscribeLog{ln: ln, pin: tlsconf.SPKIFingerprint(cert.Leaf), subs: make(chan *wire.Subscribe, 16), seq: 6}
	ctx, cancel := context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(ctx, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		s.mu.Lock()
		for _, ss := range s.sessions {
			_ = ss.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *subscribeLog) serve(ctx context.Context, conn transport.Conn) {
	sess, err := session.Accept(ctx, conn, session.Config{}, session.ServerOptions{})
	if err != nil {
		return
	}
	s.mu.Lock()
	s.sessions = append(s.sessions, sess)
	s.mu.Unlock()
	defer sess.Close()
	for {
		in, err := sess.Recv(ctx)
		if err != nil {
			return
		}
		m, ok := in.Message.(*wire.Subscribe)
		if !ok {
			continue
		}
		s.subs <- m
		_ = sess.Send(&wire.Ack{IDs: [][]byte{m.ReqID}})
		s.mu.Lock()
		s.seq++
		seq := s.seq
		s.mu.Unlock()
		_ = sess.SendEnvelope(wire.FrameEvent, &wire.Envelope{
			ID:    []byte{byte(seq)},
			Route: wire.Route{Kind: wire.RouteChannel, Name: m.Channel},
			Kind:  wire.KindEvent,
			Class: protocol.ClassChat,
			Seq:   seq,
			Body:  []byte("e"),
		})
	}
}

// dropAll closes every server-side session.
func (s *subscribeLog) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		_ = ss.Close()
	}
}

// TestResubscribeSince checks that a reconnect sends SUBSCRIBE again with
// Since set to the last sequence number the subscription saw, and that a
// subscription that saw nothing keeps its own Since.
func TestResubscribeSince(t *testing.T) {
	srv := startSubscribeLog(t)
	rec := newRecorder()
	o := client.Options{Pins: []tlsconf.Fingerprint{srv.pin}, Logger: quietLogger()}
	rec.install(&o)
	c, err := client.Dial(ctxT(t), "jsp+tcp://"+srv.ln.Addr().String(), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	events := make(chan client.Event, 4)
	if _, err := c.Subscribe(ctxT(t), "seen", func(e client.Event) { events <- e }); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	first := <-srv.subs
	if first.HasSince {
		t.Fatalf("first SUBSCRIBE has Since %d", first.Since)
	}
	select {
	case e := <-events:
		if e.Seq != 7 {
			t.Fatalf("event Seq %d, want 7", e.Seq)
		}
	case <-time.After(testTimeout):
		t.Fatal("no event")
	}
	// A subscription with its own Since keeps it until it sees an event.
	if _, err := c.Subscribe(ctxT(t), "quiet", func(client.Event) {}, client.Since(3)); err != nil {
		t.Fatalf("Subscribe quiet: %v", err)
	}
	if m := <-srv.subs; !m.HasSince || m.Since != 3 {
		t.Fatalf("quiet SUBSCRIBE Since %d/%v, want 3", m.Since, m.HasSince)
	}
	srv.dropAll()
	rec.wait(t, "resumed")
	got := map[string]*wire.Subscribe{}
	for range 2 {
		select {
		case m := <-srv.subs:
			got[m.Channel] = m
		case <-time.After(testTimeout):
			t.Fatalf("resubscriptions: %v", got)
		}
	}
	if m := got["seen"]; m == nil || !m.HasSince || m.Since != 7 {
		t.Fatalf("resubscribe of seen: %+v, want Since 7", m)
	}
	// quiet's event (Seq 8) may or may not have reached its handler
	// before the drop: either its own Since 3 or the event's 8.
	if m := got["quiet"]; m == nil || !m.HasSince || (m.Since != 3 && m.Since != 8) {
		t.Fatalf("resubscribe of quiet: %+v, want Since 3 or 8", m)
	}
}
