package tcptls

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/transport/netpoll"
)

func record(typ byte, payload []byte) []byte {
	return append([]byte{typ, 3, 3, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

// feedPair returns a record feed over one end of a loopback connection
// and the other end.
func feedPair(t *testing.T) (*Feed, net.Conn) {
	t.Helper()
	p, err := netpoll.New(netpoll.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := netpoll.NewSocket(p, nc)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFeed(sock)
	t.Cleanup(func() { f.Close(); peer.Close() })
	return f, peer
}

// fillUntil reads without waiting until the feed holds n bytes.
func fillUntil(t *testing.T, f *Feed, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(f.buffered()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("feed holds %d bytes, want %d", len(f.buffered()), n)
		}
		if n, _ := f.fill(false); n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// The feed hands over one record at most and never a byte past its end,
// and says whether a whole record waits.
func TestRecordFeedBoundaries(t *testing.T) {
	f, peer := feedPair(t)
	r1, r2 := record(23, []byte("first record")), record(23, bytes.Repeat([]byte("x"), 300))
	peer.Write(append(r1, r2[:7]...))
	fillUntil(t, f, len(r1)+7)
	if !f.pending() {
		t.Fatal("whole record not seen")
	}
	buf := make([]byte, 4096)
	n, err := f.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], r1) {
		t.Fatalf("read %q, %v; want the first record only", buf[:n], err)
	}
	if f.pending() {
		t.Fatal("a torn record counts as whole")
	}
	// crypto/tls asking for the rest waits for the socket (the KeyUpdate
	// fallback), and gets the second record only.
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		for len(all) < len(r2) {
			n, err := f.Read(buf)
			if err != nil {
				break
			}
			all = append(all, buf[:n]...)
		}
		got <- all
	}()
	time.Sleep(20 * time.Millisecond)
	peer.Write(append(r2[7:], record(21, []byte{1, 0})...))
	if all := <-got; !bytes.Equal(all, r2) {
		t.Fatalf("second record %d bytes, want %d", len(all), len(r2))
	}
	fillUntil(t, f, 7)
	n, _ = f.Read(buf[:3]) // a short buffer gets part of a record
	m, _ := f.Read(buf[3:])
	if !bytes.Equal(buf[:n+m], record(21, []byte{1, 0})) {
		t.Fatalf("alert record in pieces: %x", buf[:n+m])
	}
	if f.bp != nil {
		t.Fatal("empty feed kept its buffer")
	}
}

// A peer that does not speak TLS: its first five bytes go over as a
// header at once, without waiting for the length they seem to announce.
func TestRecordFeedHandsHeaderAtOnce(t *testing.T) {
	f, peer := feedPair(t)
	peer.Write([]byte("GET / HTTP/1.1\r\n"))
	buf := make([]byte, 5)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := f.Read(buf)
		if err != nil || string(buf[:n]) != "GET /" {
			t.Errorf("read %q, %v", buf[:n], err)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("header held back")
	}
}
