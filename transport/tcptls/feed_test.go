package tcptls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
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

// feedInput writes in to a fresh feed's peer and closes the peer, then
// reads the feed in non-blocking mode with reads of size at most max. It
// returns what each Read handed over and the error that ended the input.
func feedInput(t *testing.T, in []byte, max int) ([][]byte, error) {
	t.Helper()
	f, peer := feedPair(t)
	f.SetNonblocking()
	go func() {
		peer.Write(in)
		peer.(*net.TCPConn).CloseWrite()
	}()
	var out [][]byte
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, max)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			out = append(out, bytes.Clone(buf[:n]))
		}
		if errors.Is(err, ErrWouldBlock) {
			if n > 0 {
				t.Fatal("ErrWouldBlock with bytes")
			}
			if time.Now().After(deadline) {
				t.Fatal("input never ended")
			}
			time.Sleep(100 * time.Microsecond)
			f.drained.Store(false) // what Rearm does before the next callback
			continue
		}
		if err != nil {
			return out, err
		}
	}
}

// In non-blocking mode a record goes over only once it is whole (or at
// once when it is over the TLS limit, or at the end of input), a Read
// never crosses a record boundary, and every byte goes over in order,
// then the end of input.
func TestFeedNonblocking(t *testing.T) {
	small := record(23, []byte("abc"))
	big := record(23, bytes.Repeat([]byte("z"), 1<<14))
	oversized := append([]byte{23, 3, 3, 0xff, 0xff}, "rest"...)
	tests := []struct {
		name  string
		in    []byte
		reads int // Reads that hand over bytes, with buffers of 64 KiB
	}{
		{"one record", small, 1},
		{"two records", append(bytes.Clone(small), big...), 2},
		{"torn at the end", append(bytes.Clone(small), big[:100]...), 2},
		{"oversized header at once", oversized, 2},
		{"empty", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := feedInput(t, tt.in, 64<<10)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("ended with %v, want io.EOF", err)
			}
			if got := bytes.Join(out, nil); !bytes.Equal(got, tt.in) {
				t.Fatalf("handed over %d bytes, want %d", len(got), len(tt.in))
			}
			if tt.name != "oversized header at once" && len(out) != tt.reads {
				t.Fatalf("%d reads, want %d", len(out), tt.reads)
			}
			if tt.name == "oversized header at once" && len(out[0]) < recordHeaderLen {
				t.Fatalf("first read %d bytes", len(out[0]))
			}
		})
	}
}

// FuzzFeedNonblocking: any input is handed over whole and in order,
// never across a record boundary, and then ends.
func FuzzFeedNonblocking(f *testing.F) {
	f.Add(record(23, []byte("hello")), 7)
	f.Add(append(record(22, make([]byte, 300)), record(21, []byte{1, 0})...), 3)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), 64)
	f.Add(append([]byte{23, 3, 3, 0xff, 0xff}, make([]byte, 40)...), 1)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		max = 1 + abs(max)%(64<<10)
		out, err := feedInput(t, in, max)
		if err == nil {
			t.Fatal("no end of input")
		}
		if got := bytes.Join(out, nil); !bytes.Equal(got, in) {
			t.Fatalf("handed over %x, want %x", got, in)
		}
		// Record boundaries from the headers: no Read crosses one.
		pos, next := 0, 0
		for _, b := range out {
			if pos == next && pos+recordHeaderLen <= len(in) {
				next = pos + recordHeaderLen + int(binary.BigEndian.Uint16(in[pos+3:pos+5]))
			} else if pos == next {
				next = len(in)
			}
			if pos+len(b) > next {
				t.Fatalf("read of %d bytes at %d crosses the record end at %d", len(b), pos, next)
			}
			pos += len(b)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
