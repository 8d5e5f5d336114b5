package mux_test

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/netpoll"
	"github.com/jetstreamproto/jsp/transport/transporttest"
)

// usePump makes newRaw start the link under test with NewPolled, so that
// the raw-frame tests run against the pump as well as readLoop.
var usePump bool

// pollPipe is a PollSource over a memtransport pipe end. A goroutine
// reads the pipe into a buffer and calls the ready callback when input
// arrives while armed, which is what a poller does for a socket; the
// link itself reads only from the buffer.
type pollPipe struct {
	*memtransport.PipeEnd

	mu    sync.Mutex
	buf   []byte
	err   error
	armed bool
	ready func()
}

func newPollPipe(e *memtransport.PipeEnd) *pollPipe {
	p := &pollPipe{PipeEnd: e}
	go p.fill()
	return p
}

// fill ends when the pipe end is closed or its peer's side ends.
func (p *pollPipe) fill() {
	b := make([]byte, 1000) // odd size: frames straddle reads
	for {
		n, err := p.PipeEnd.Read(b)
		p.mu.Lock()
		p.buf = append(p.buf, b[:n]...)
		if err != nil {
			p.err = err
		}
		p.fireLocked()
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (p *pollPipe) fireLocked() {
	if p.armed && p.ready != nil && (len(p.buf) > 0 || p.err != nil) {
		p.armed = false
		go p.ready()
	}
}

func (p *pollPipe) ReadAvailable(q []byte) (int, error) {
	if len(q) < mux.MinPollRead {
		panic("ReadAvailable with a buffer below MinPollRead")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := copy(q, p.buf)
	p.buf = p.buf[n:]
	if n == 0 && p.err != nil {
		return 0, p.err
	}
	return n, nil
}

func (p *pollPipe) Watch(f func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ready, p.armed = f, true
	p.fireLocked()
	return nil
}

func (p *pollPipe) Rearm() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = true
	p.fireLocked()
	return nil
}

// TestPumpRawFrames runs the raw-frame tests with the server link read by
// the pump: the same input must end the link with the same codes.
func TestPumpRawFrames(t *testing.T) {
	usePump = true
	defer func() { usePump = false }()
	tests := []struct {
		name string
		f    func(*testing.T)
	}{
		{"MalformedInput", TestMalformedInputClosesWithCode},
		{"TruncatedInput", TestTruncatedInputClosesWithCode},
		{"UnknownFrames", TestUnknownFramesAreSkipped},
		{"RemoteCloseAndEOF", TestRemoteCloseAndEOF},
		{"SlowConsumer", TestSlowConsumer},
		{"ControlFramesDoNotAnnounce", TestControlFramesDoNotAnnounceStreams},
		{"CloseTimeoutBoundsLinger", TestCloseTimeoutBoundsLinger},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.f)
	}
}

// tcpPollPair connects a client link (New, a reader goroutine) to a
// server link over a loopback socket watched by a netpoll.Poller
// (NewPolled), as tcptls and websocket do for accepted connections.
func tcpPollPair(t *testing.T, p *netpoll.Poller, cfg mux.Config) (client, server *mux.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-ch
	sock, err := netpoll.NewSocket(p, sc)
	if err != nil {
		t.Fatal(err)
	}
	return mux.New(cc, cfg, true), mux.NewPolled(sock, cfg, false)
}

func TestPumpConformance(t *testing.T) {
	p, err := netpoll.New(netpoll.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	transporttest.Run(t, func(t *testing.T) (transport.Conn, transport.Conn) {
		// Plain TCP, so the link is a memory link to the suite: it checks
		// TLS state only on real transports, whose own tests run it.
		c, s := tcpPollPair(t, p, mux.Config{Kind: transport.KindMem})
		return c, s
	})
}

// An idle polled link holds no goroutine and no read buffer: after a
// burst the count falls back to what it was before the link existed,
// apart from the client's reader.
func TestPumpIdleHoldsNoGoroutine(t *testing.T) {
	p, err := netpoll.New(netpoll.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	base := runtime.NumGoroutine()
	c, s := tcpPollPair(t, p, mux.Config{})
	defer c.Close()
	defer s.Close()
	if err := c.SendDatagram([]byte("wake"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReceiveDatagram(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The client holds its reader; the server nothing once the writers
	// have lingered out.
	want := base + 1
	if !netpoll.IdleWithoutGoroutine {
		want++ // the fallback poller waits with one goroutine per socket
	}
	waitFor(t, "idle goroutines", func() bool { return runtime.NumGoroutine() <= want })
}

func TestPumpWatchFailureEndsLink(t *testing.T) {
	a, b := memtransport.Pipe(0)
	defer b.Close()
	c := mux.NewPolled(failingSource{a}, mux.Config{}, false)
	<-c.Done()
	if je := waitClosed(t, c); je.Code != jsperr.TransportClosed {
		t.Fatalf("cause %v, want TRANSPORT_CLOSED", je)
	}
}

type failingSource struct{ *memtransport.PipeEnd }

func (failingSource) ReadAvailable([]byte) (int, error) { return 0, nil }
func (failingSource) Watch(func()) error                { return errors.New("no poller") }
func (failingSource) Rearm() error                      { return errors.New("no poller") }
