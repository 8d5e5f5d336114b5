package memtransport

import (
	"io"
	"net"
	"sync"
)

// DefaultPipeBuffer is the bytes each direction of a [Pipe] buffers before
// Write blocks, about what a loopback socket buffers.
const DefaultPipeBuffer = 256 << 10

// Addr is the address of an in-memory endpoint.
type Addr string

// Network returns "mem".
func (Addr) Network() string { return "mem" }

// String returns the endpoint's name.
func (a Addr) String() string { return string(a) }

// halfPipe is one direction: a bounded byte buffer between a writer and a
// reader.
type halfPipe struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled on every change below
	buf     []byte    // circular, len = capacity
	head, n int
	wclosed bool // writer closed: reader gets EOF once drained
	rclosed bool // reader closed: writer fails, data is discarded
}

func newHalfPipe(size int) *halfPipe {
	h := &halfPipe{buf: make([]byte, size)}
	h.cond.L = &h.mu
	return h
}

func (h *halfPipe) read(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.n == 0 {
		switch {
		case h.rclosed:
			return 0, net.ErrClosed
		case h.wclosed:
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		}
		h.cond.Wait()
	}
	if h.rclosed {
		return 0, net.ErrClosed
	}
	n := 0
	for n < len(p) && h.n > 0 {
		end := min(h.head+h.n, len(h.buf))
		k := copy(p[n:], h.buf[h.head:end])
		n += k
		h.head = (h.head + k) % len(h.buf)
		h.n -= k
	}
	h.cond.Broadcast()
	return n, nil
}

func (h *halfPipe) write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for len(p) > 0 {
		if h.wclosed {
			return n, net.ErrClosed
		}
		if h.rclosed {
			return n, io.ErrClosedPipe
		}
		if h.n == len(h.buf) {
			h.cond.Wait()
			continue
		}
		tail := (h.head + h.n) % len(h.buf)
		end := len(h.buf)
		if tail < h.head {
			end = h.head
		}
		k := copy(h.buf[tail:end], p)
		h.n += k
		n += k
		p = p[k:]
		h.cond.Broadcast()
	}
	return n, nil
}

func (h *halfPipe) closeWrite() {
	h.mu.Lock()
	h.wclosed = true
	h.cond.Broadcast()
	h.mu.Unlock()
}

func (h *halfPipe) closeRead() {
	h.mu.Lock()
	h.rclosed = true
	h.n = 0
	h.cond.Broadcast()
	h.mu.Unlock()
}

// PipeEnd is one end of a [Pipe]: a reliable, ordered, buffered byte
// stream, safe for one reader and one writer at a time plus Close from any
// goroutine. It behaves like a TCP socket: Close discards unread input and
// makes the peer's writes fail; CloseWrite is a half close after which the
// peer reads io.EOF.
type PipeEnd struct {
	in, out       *halfPipe
	local, remote Addr
}

// Pipe returns the two connected ends of an in-memory byte stream whose
// directions each buffer bufSize bytes (zero means DefaultPipeBuffer).
func Pipe(bufSize int) (*PipeEnd, *PipeEnd) {
	if bufSize <= 0 {
		bufSize = DefaultPipeBuffer
	}
	ab, ba := newHalfPipe(bufSize), newHalfPipe(bufSize)
	return &PipeEnd{in: ba, out: ab, local: "pipe-a", remote: "pipe-b"},
		&PipeEnd{in: ab, out: ba, local: "pipe-b", remote: "pipe-a"}
}

// Read reads buffered bytes, waiting while there are none.
func (e *PipeEnd) Read(p []byte) (int, error) { return e.in.read(p) }

// Write writes all of p, waiting while the buffer is full.
func (e *PipeEnd) Write(p []byte) (int, error) { return e.out.write(p) }

// CloseWrite ends the outgoing direction; the peer reads io.EOF after the
// buffered bytes.
func (e *PipeEnd) CloseWrite() error { e.out.closeWrite(); return nil }

// Close closes both directions and unblocks pending calls.
func (e *PipeEnd) Close() error {
	e.out.closeWrite()
	e.in.closeRead()
	return nil
}

// LocalAddr returns this end's address.
func (e *PipeEnd) LocalAddr() net.Addr { return e.local }

// RemoteAddr returns the other end's address.
func (e *PipeEnd) RemoteAddr() net.Addr { return e.remote }
