package netpoll

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
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
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-ch
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func rawConn(t *testing.T, c syscall.Conn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// expect waits for a callback on ch, or fails.
func expect(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no callback: %s", what)
	}
}

// expectNone checks that no callback comes within a short while.
func expectNone(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("unexpected callback: %s", what)
	case <-time.After(50 * time.Millisecond):
	}
}

// drain reads everything the socket holds and returns it.
func drain(t *testing.T, rc syscall.RawConn) ([]byte, error) {
	t.Helper()
	var got []byte
	buf := make([]byte, 3)
	for {
		n, err := ReadNonblock(rc, buf)
		got = append(got, buf[:n]...)
		if err != nil || n == 0 {
			return got, err
		}
	}
}

func TestReadableArmRearm(t *testing.T) {
	p := newPoller(t)
	defer p.Close()
	c, s := tcpPair(t)
	rc := rawConn(t, s)
	fired := make(chan struct{}, 8)
	r, err := p.Register(rc, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Deregister()
	expectNone(t, fired, "idle socket")

	c.Write([]byte("hello"))
	expect(t, fired, "first input")
	// One-shot: more input brings no second callback until Arm.
	c.Write([]byte(" world"))
	expectNone(t, fired, "input before Arm")
	got, err := drain(t, rc)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("drained %q, %v", got, err)
	}
	if err := r.Arm(); err != nil {
		t.Fatal(err)
	}
	expectNone(t, fired, "armed, nothing sent")
	c.Write([]byte("!"))
	expect(t, fired, "input after Arm")
	// Level-triggered: arming with unread input fires at once.
	if err := r.Arm(); err != nil {
		t.Fatal(err)
	}
	expect(t, fired, "Arm with input waiting")
	if got, _ := drain(t, rc); string(got) != "!" {
		t.Fatalf("drained %q", got)
	}
}

func TestPeerCloseFiresAndReadsEOF(t *testing.T) {
	p := newPoller(t)
	defer p.Close()
	c, s := tcpPair(t)
	rc := rawConn(t, s)
	fired := make(chan struct{}, 1)
	r, err := p.Register(rc, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Deregister()
	c.Write([]byte("bye"))
	c.Close()
	expect(t, fired, "peer close")
	got, err := drain(t, rc)
	if string(got) != "bye" || err != io.EOF {
		t.Fatalf("drained %q, %v; want \"bye\", EOF", got, err)
	}
}

func TestDeregisterStopsCallbacks(t *testing.T) {
	p := newPoller(t)
	defer p.Close()
	c, s := tcpPair(t)
	fired := make(chan struct{}, 1)
	r, err := p.Register(rawConn(t, s), func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	r.Deregister()
	r.Deregister() // idempotent
	c.Write([]byte("x"))
	expectNone(t, fired, "after Deregister")
	if err := r.Arm(); err != ErrClosed {
		t.Fatalf("Arm after Deregister: %v, want ErrClosed", err)
	}
	if n := p.Registrations(); n != 0 {
		t.Fatalf("%d registrations left", n)
	}
}

// A late event must not reach a registration that has been replaced:
// the dispatcher looks registrations up by number, and numbers are never
// reused, also when the kernel reuses the descriptor number.
func TestStaleNumberIgnored(t *testing.T) {
	p := newPoller(t)
	defer p.Close()
	_, s1 := tcpPair(t)
	old := make(chan struct{}, 1)
	r1, err := p.Register(rawConn(t, s1), func() { old <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	r1.Deregister()
	s1.Close()
	c2, s2 := tcpPair(t) // may get s1's descriptor number
	cur := make(chan struct{}, 1)
	r2, err := p.Register(rawConn(t, s2), func() { cur <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Deregister()
	if r2.id == r1.id {
		t.Fatal("registration number reused")
	}
	p.dispatch(r1.id) // as if the kernel delivered a late event
	expectNone(t, old, "stale registration")
	c2.Write([]byte("x"))
	expect(t, cur, "new registration")
}

func TestCloseWaitsForLastRegistration(t *testing.T) {
	p := newPoller(t)
	c, s := tcpPair(t)
	fired := make(chan struct{}, 1)
	r, err := p.Register(rawConn(t, s), func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	p.Close()
	// The listener is gone, the connection is still served.
	c.Write([]byte("x"))
	expect(t, fired, "after the poller's Close")
	r.Deregister()
	if _, err := p.Register(rawConn(t, s), func() {}); err != ErrClosed {
		t.Fatalf("Register after shutdown: %v, want ErrClosed", err)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{Waiters: 2, MaxEvents: 4}, true},
		{Config{Waiters: -1}, false},
		{Config{MaxEvents: -1}, false},
	}
	for _, tt := range tests {
		p, err := New(tt.cfg)
		if (err == nil) != tt.ok {
			t.Errorf("New(%+v): %v", tt.cfg, err)
		}
		if p != nil {
			p.Close()
		}
	}
	c := Config{}
	c.setDefaults()
	if c.Waiters != DefaultWaiters || c.MaxEvents != DefaultMaxEvents {
		t.Fatalf("defaults: %+v", c)
	}
}

// Many waiters and many sockets: every socket's input is seen exactly
// once per arming.
func TestManySockets(t *testing.T) {
	p, err := New(Config{Waiters: 2, MaxEvents: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 20
	fired := make(chan int, n)
	var clients []*net.TCPConn
	var regs []*Registration
	for i := range n {
		c, s := tcpPair(t)
		r, err := p.Register(rawConn(t, s), func() { fired <- i })
		if err != nil {
			t.Fatal(err)
		}
		clients, regs = append(clients, c), append(regs, r)
	}
	for _, c := range clients {
		c.Write([]byte("x"))
	}
	seen := map[int]bool{}
	for range n {
		select {
		case i := <-fired:
			if seen[i] {
				t.Fatalf("socket %d fired twice", i)
			}
			seen[i] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d sockets fired", len(seen), n)
		}
	}
	for _, r := range regs {
		r.Deregister()
	}
}

func TestSocket(t *testing.T) {
	p := newPoller(t)
	defer p.Close()
	c, s := tcpPair(t)
	if _, err := NewSocket(p, struct{ net.Conn }{s}); err == nil {
		t.Fatal("a connection without SyscallConn was accepted")
	}
	sock, err := NewSocket(p, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.Rearm(); err != ErrClosed {
		t.Fatalf("Rearm before Watch: %v", err)
	}
	fired := make(chan struct{}, 1)
	if err := sock.Watch(func() { fired <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := sock.Watch(func() {}); err == nil {
		t.Fatal("second Watch accepted")
	}
	buf := make([]byte, 16)
	if n, err := sock.ReadAvailable(buf); n != 0 || err != nil {
		t.Fatalf("idle read: %d, %v", n, err)
	}
	c.Write([]byte("ping"))
	expect(t, fired, "input")
	if n, err := sock.ReadAvailable(buf); string(buf[:n]) != "ping" || err != nil {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if err := sock.Rearm(); err != nil {
		t.Fatal(err)
	}
	if _, err := sock.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if n, _ := io.ReadFull(c, buf[:4]); string(buf[:n]) != "pong" {
		t.Fatalf("peer read %q", buf[:n])
	}
	sock.CloseWrite()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("peer after CloseWrite: %d, %v", n, err)
	}
	if sock.LocalAddr() == nil || sock.RemoteAddr() == nil || sock.Conn() != s {
		t.Fatal("addresses")
	}
	sock.Close()
	if p.Registrations() != 0 {
		t.Fatal("Close did not deregister")
	}
}

// Arming an armed socket changes nothing: one burst, one callback.
func TestArmTwiceOneCallback(t *testing.T) {
	p := newPoller(t)
	defer p.Close()
	c, s := tcpPair(t)
	fired := make(chan struct{}, 4)
	r, err := p.Register(rawConn(t, s), func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Deregister()
	r.Arm()
	r.Arm()
	c.Write([]byte("x"))
	expect(t, fired, "input")
	expectNone(t, fired, "a second callback for one arming")
}
