package netpoll

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// The test stream is big-endian 32-bit counters, one for every four
// bytes, so that a byte lost, repeated or moved shows at its offset.

// pattern returns n bytes of the test stream from offset off, a multiple
// of 4.
func pattern(off, n int) []byte { return fillPattern(make([]byte, n), off) }

// fillPattern overwrites b, of a length that is a multiple of 4, with the
// test stream from offset off, a multiple of 4.
func fillPattern(b []byte, off int) []byte {
	for i := 0; i < len(b); i += 4 {
		binary.BigEndian.PutUint32(b[i:], uint32((off+i)/4))
	}
	return b
}

// checkPattern fails unless got is the test stream from offset 0.
func checkPattern(t *testing.T, got []byte) {
	t.Helper()
	want := pattern(0, (len(got)+3)&^3)[:len(got)]
	if bytes.Equal(got, want) {
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("byte %d of %d is %#x, want %#x: the stream is out of order", i, len(got), got[i], want[i])
		}
	}
}

// heldSocket returns a Socket on the server end of a loopback TCP
// connection and the client end, with socket buffers that hold a few
// hundred KiB between them, so that a peer that does not read fills them
// soon.
func heldSocket(t *testing.T) (*Socket, *net.TCPConn) {
	t.Helper()
	p := newPoller(t)
	t.Cleanup(func() { p.Close() })
	peer, s := tcpPair(t)
	if err := s.SetWriteBuffer(128 << 10); err != nil {
		t.Fatal(err)
	}
	if err := peer.SetReadBuffer(128 << 10); err != nil {
		t.Fatal(err)
	}
	sock, err := NewSocket(p, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	return sock, peer
}

// waitHold polls TryHold until it succeeds; the caller then holds the
// write side.
func waitHold(t *testing.T, sock *Socket) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !sock.TryHold(); {
		if time.Now().After(deadline) {
			t.Fatal("the write side stayed held")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWriteHeldAllAtOnce: a write the kernel takes whole leaves no tail
// and releases the write side before WriteHeld returns.
func TestWriteHeldAllAtOnce(t *testing.T) {
	sock, peer := heldSocket(t)
	for i, msg := range []string{"first", "second", ""} {
		if !sock.TryHold() {
			t.Fatalf("write %d: TryHold failed on an idle socket", i)
		}
		if err := sock.WriteHeld([]byte(msg), time.Second); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if n := sock.Tails(); n != 0 {
		t.Fatalf("Tails() = %d after small writes, want 0", n)
	}
	buf := make([]byte, len("firstsecond"))
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "firstsecond" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
}

// TestWriteHeldTail: a held write the kernel does not take whole leaves
// its tail to a goroutine that holds the write side (TryHold fails) until
// the tail is sent; a Write made meanwhile waits for it; the peer receives
// every byte once and in order, and the write side is free again
// afterwards.
func TestWriteHeldTail(t *testing.T) {
	sock, peer := heldSocket(t)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	off := 0 // bytes handed to the socket
	rbuf := make([]byte, 64<<10)
	readSome := func() {
		t.Helper()
		n, err := peer.Read(rbuf)
		if err != nil {
			t.Fatalf("peer read after %d of %d bytes: %v", len(got), off, err)
		}
		got = append(got, rbuf[:n]...)
	}
	// hold takes the write side, reading what the peer has while a tail
	// holds it. A tail whose bytes have all arrived is about to release
	// it.
	hold := func() {
		t.Helper()
		for !sock.TryHold() {
			if len(got) < off {
				readSome()
			} else {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	// 2 MiB in 64 KiB chunks to a slow reader, which takes up to 64 KiB
	// whenever a tail holds the write side.
	wbuf := make([]byte, 64<<10)
	for off < 2<<20 {
		hold()
		if err := sock.WriteHeld(fillPattern(wbuf, off), time.Minute); err != nil {
			t.Fatalf("WriteHeld at %d: %v", off, err)
		}
		off += len(wbuf)
	}
	if sock.Tails() == 0 {
		t.Fatal("2 MiB went through the socket buffers without a tail")
	}
	hold()
	// While the peer reads nothing, the tail of a write far larger than
	// the socket buffers cannot be sent, and holds the write side. The
	// caller may reuse its buffer at once: the tail is a copy.
	tails := sock.Tails()
	big := fillPattern(make([]byte, 2<<20), off)
	if err := sock.WriteHeld(big, time.Minute); err != nil {
		t.Fatal(err)
	}
	off += len(big)
	clear(big)
	if sock.Tails() != tails+1 {
		t.Fatalf("Tails() = %d after a write larger than the socket buffers, want %d", sock.Tails(), tails+1)
	}
	if sock.TryHold() {
		t.Fatal("TryHold succeeded while a tail is pending")
	}
	// A Write waits for the tail, and its bytes follow it.
	const extra = 4 << 10
	wrote := make(chan error, 1)
	go func(p []byte) {
		_, err := sock.Write(p)
		wrote <- err
	}(pattern(off, extra))
	off += extra
	for len(got) < off {
		readSome()
	}
	if err := <-wrote; err != nil {
		t.Fatalf("Write after the tail: %v", err)
	}
	checkPattern(t, got)
	// Everything was read: the write side is free, and a held write of
	// little goes out whole.
	waitHold(t, sock)
	tails = sock.Tails()
	if err := sock.WriteHeld(pattern(off, 8), time.Second); err != nil {
		t.Fatal(err)
	}
	if sock.Tails() != tails {
		t.Fatal("a small write on an empty socket left a tail")
	}
	for len(got) < off+8 {
		readSome()
	}
	checkPattern(t, got)
}

// TestWriteHeldTailTimeout: a tail the peer does not take within the
// timeout fails the socket: the write side is released, the connection is
// closed (the peer reads to its end), and later writes report the
// timeout.
func TestWriteHeldTailTimeout(t *testing.T) {
	sock, peer := heldSocket(t)
	if !sock.TryHold() {
		t.Fatal("TryHold failed on an idle socket")
	}
	// Far more than the socket buffers hold, to a peer that reads nothing.
	if err := sock.WriteHeld(pattern(0, 4<<20), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if sock.TryHold() {
		t.Fatal("TryHold succeeded while a tail is pending")
	}
	waitHold(t, sock) // the tail's writer gave up
	err := sock.WriteHeld([]byte("late"), time.Second)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WriteHeld after a failed tail: %v, want a deadline error", err)
	}
	if _, err := sock.Write([]byte("later")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write after a failed tail: %v, want a deadline error", err)
	}
	if !sock.TryHold() {
		t.Fatal("a failed WriteHeld kept the write side")
	}
	sock.WriteHeld(nil, time.Second)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatalf("peer did not read to the end: %v", err)
	}
	if len(got) >= 4<<20 {
		t.Fatalf("peer read %d bytes: the tail was sent after its timeout", len(got))
	}
	checkPattern(t, got)
}
