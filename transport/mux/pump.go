package mux

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/jetstreamproto/jsp/internal/stackwarm"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// PollSource is a byte stream that a link reads only when it has input,
// so that an idle link holds no goroutine (decision D33). The transports
// implement it over sockets they register with a poller (transport/netpoll):
// tcptls under TLS, websocket under its own frame decoder.
type PollSource interface {
	// Write and Close are used as on the byte stream of New. If the
	// source has CloseWrite, LocalAddr, RemoteAddr or ConnectionState
	// methods, the link uses them as New does.
	io.WriteCloser
	// ReadAvailable copies received link bytes into p without waiting for
	// the network. It returns n > 0; or 0 and nil when nothing is
	// available now, after which the link calls Rearm; or an error, io.EOF
	// at a clean end, once every byte before it has been returned. len(p)
	// is at least MinPollRead. A source may block briefly when its
	// protocol forces it (a TLS record that is not application data), but
	// never for input that has not been announced.
	ReadAvailable(p []byte) (int, error)
	// Watch registers ready, once, to be called on a fresh goroutine when
	// input may be available. The source starts armed.
	Watch(ready func()) error
	// Rearm asks for the next call of ready, after ReadAvailable returned
	// 0 and nil. Input that arrived in between triggers it at once.
	Rearm() error
}

// MinPollRead is the smallest buffer the link passes to
// PollSource.ReadAvailable: one TLS record's plaintext (16 KiB) and a
// byte, so that a source over crypto/tls can always take a whole record
// with one Read and knows nothing is left inside crypto/tls when the
// Read comes back short.
const MinPollRead = 16<<10 + 1

// pumpBuf is the size of the buffer a running pump reads into. It comes
// from pumpPool when input arrives and goes back when the link is idle
// at a frame boundary, so an idle link holds no read buffer.
const pumpBuf = 32 << 10

var pumpPool = sync.Pool{New: func() any { b := make([]byte, 0, pumpBuf); return &b }}

// Pump states. A run starts only by moving armed to running, so one run
// at a time touches the buffer; the close moves armed to done when no run
// is going, and a run that is going ends itself.
const (
	pumpArmed uint32 = iota
	pumpRunning
	pumpDone
)

// pump reads a PollSource when the poller says it has input: it decodes
// every complete frame and hands it to handleFrameLocked exactly as
// readLoop does, keeps a partial frame for the next run, and re-arms.
type pump struct {
	c     *Conn
	src   PollSource
	state atomic.Uint32
	bp    *[]byte // read buffer, nil when idle at a frame boundary; owned by the running pump
}

// NewPolled starts a link over src, read by src's readiness callbacks
// instead of a reader goroutine. Everything else is as with New: the Conn
// owns src, and NewPolled panics if cfg fails Config.Validate. If src
// cannot be watched the link ends at once with TRANSPORT_CLOSED.
func NewPolled(src PollSource, cfg Config, isClient bool) *Conn {
	c := newConn(src, cfg, isClient)
	p := &pump{c: c, src: src}
	c.pump = p
	if err := src.Watch(p.run); err != nil {
		c.mu.Lock()
		c.closeLocked(jsperr.Wrap(jsperr.TransportClosed, fmt.Errorf("mux: watch the byte stream: %w", err)), false)
		c.mu.Unlock()
		p.stop()
		return c
	}
	// The source may hold input already (read with the handshake): a
	// first run takes it without waiting for the socket.
	go p.run()
	return c
}

// run is the readiness callback: it reads and decodes until the source has
// nothing more, then re-arms, or ends the link on an error.
func (p *pump) run() {
	if !p.state.CompareAndSwap(pumpArmed, pumpRunning) {
		return // another run is going, or the link has ended
	}
	stackwarm.Grow()
	for {
		b := p.reserve()
		n, err := p.src.ReadAvailable(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if n > 0 {
			var derr error
			b, derr = p.deliver(b)
			*p.bp = b
			if derr != nil {
				p.finish(derr)
				return
			}
		}
		*p.bp = b
		if err != nil {
			p.finish(p.endError(err))
			return
		}
		if n == 0 {
			p.idle()
			return
		}
	}
}

// reserve returns the read buffer with at least MinPollRead bytes free,
// taking one from the pool if the pump has none and growing it when a
// large frame needs more room.
func (p *pump) reserve() []byte {
	if p.bp == nil {
		p.bp = pumpPool.Get().(*[]byte)
		*p.bp = (*p.bp)[:0]
	}
	b := *p.bp
	if cap(b)-len(b) < MinPollRead {
		nb := make([]byte, len(b), max(2*cap(b), len(b)+MinPollRead))
		copy(nb, b)
		*p.bp = nb
		b = nb
	}
	return b
}

// deliver handles every complete frame at the front of b and returns the
// rest (a partial frame) moved to the front. A decoding error other than
// truncation ends the link, as it ends readLoop.
func (p *pump) deliver(b []byte) ([]byte, error) {
	c := p.c
	off := 0
	for off < len(b) {
		h, hn, err := wire.ParseHeader(b[off:], uint64(c.cfg.MaxFrameSize))
		if errors.Is(err, wire.ErrTruncated) {
			break
		}
		if err != nil {
			return b[:0], err
		}
		end := off + hn + int(h.Length)
		if end > len(b) {
			break // ParseHeader bounded Length by MaxFrameSize
		}
		payload := b[off+hn : end]
		off = end
		if c.closingNow.Load() {
			continue // lingering after our LINK_CLOSE: drain until the peer closes
		}
		c.mu.Lock()
		c.stats.FramesRead++
		c.stats.BytesRead += uint64(hn) + h.Length
		if err := c.handleFrameLocked(h, payload); err != nil {
			c.failLocked(err)
		}
		c.mu.Unlock()
	}
	rest := copy(b, b[off:])
	return b[:rest], nil
}

// endError maps the source's error as FrameReader maps its reader's: the
// end of input between frames is io.EOF, inside a frame ErrTruncated.
func (p *pump) endError(err error) error {
	partial := p.bp != nil && len(*p.bp) > 0
	if errors.Is(err, io.EOF) && !partial {
		return io.EOF
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return wire.ErrTruncated
	}
	return err
}

// idle gives the buffer back if no partial frame is left and re-arms. The
// pump must not touch its buffer once the state is armed: a new run may
// have started.
func (p *pump) idle() {
	if p.bp != nil && len(*p.bp) == 0 {
		p.releaseBuf()
	}
	p.state.Store(pumpArmed)
	if err := p.src.Rearm(); err != nil {
		if p.state.CompareAndSwap(pumpArmed, pumpRunning) {
			p.finish(fmt.Errorf("mux: re-arm the byte stream: %w", err))
		}
	}
}

func (p *pump) releaseBuf() {
	if p.bp == nil {
		return
	}
	if cap(*p.bp) == pumpBuf {
		*p.bp = (*p.bp)[:0]
		pumpPool.Put(p.bp)
	}
	p.bp = nil
}

// finish ends the reading side after err, as readLoop ends.
func (p *pump) finish(err error) {
	p.c.readFailed(err)
	p.releaseBuf()
	p.state.Store(pumpDone)
	close(p.c.readerDone)
}

// stop ends a pump that is waiting for input; the close calls it after
// closing the byte stream. A running pump ends by itself on the read
// error the closed stream gives it.
func (p *pump) stop() {
	if p.state.CompareAndSwap(pumpArmed, pumpDone) {
		p.releaseBuf()
		close(p.c.readerDone)
	}
}
