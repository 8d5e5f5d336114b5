package session

import (
	"fmt"
	"io"
	"sync"

	"github.com/jetstreamproto/jsp/internal/stackwarm"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// demand runs work on a goroutine owned by the session only while there is
// something to do (decision D27). The transport's callback kicks it; work
// takes whatever is ready and returns when nothing is left; a kick that
// comes while work runs makes it run once more, so nothing that arrives
// during the last look is left behind. An idle session therefore holds no
// goroutine blocked in AcceptStream, ReceiveDatagram or the control
// stream's Read.
//
// Ownership: the goroutine joins the session's WaitGroup, added under mu
// unless stopped is set; fail sets stopped before it cancels the session
// (as for the heartbeat callbacks), so Close and Wait join every run and
// none starts later.
type demand struct {
	wg   *sync.WaitGroup
	work func()

	mu      sync.Mutex
	running bool // guarded by mu: a goroutine runs work
	again   bool // guarded by mu: kicked while work ran
	stopped bool // guarded by mu: the session is ending
}

// kick makes sure work runs after this call. It never blocks, so it may be
// called from a transport callback.
func (d *demand) kick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	if d.running {
		d.again = true
		return
	}
	d.running = true
	d.wg.Add(1)
	go d.loop()
}

func (d *demand) loop() {
	defer d.wg.Done()
	stackwarm.Grow()
	for {
		d.work()
		d.mu.Lock()
		if !d.again || d.stopped {
			d.running = false
			d.mu.Unlock()
			return
		}
		d.again = false
		d.mu.Unlock()
	}
}

// stop keeps later kicks from starting work.
func (d *demand) stop() {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
}

// prepareOnDemand sets up the on-demand control reader and intake where
// the transport offers callbacks (a control reader also needs fr to buffer
// by itself, so that fr.Pending tells whether it holds input). It only
// allocates: every field fail reads is set before any callback can run.
func (s *Session) prepareOnDemand(fr *wire.FrameReader) {
	if rn, ok := s.ctl.(transport.ReadNotifier); ok {
		if _, byteReader := s.ctl.(io.ByteReader); !byteReader {
			if fr.Pending() || fr.Buffered() > 0 {
				// Otherwise the first run makes its own (readAvailable).
				s.ctlReader = fr
			}
			s.reading = &demand{wg: &s.wg, work: func() { s.readAvailable(rn) }}
		}
	}
	if an, ok := s.conn.(transport.ArrivalNotifier); ok {
		s.arrivals = &demand{wg: &s.wg, work: func() { s.takeArrivals(an) }}
	}
}

// startOnDemand registers the callbacks prepareOnDemand chose.
func (s *Session) startOnDemand(fr *wire.FrameReader) {
	if s.reading != nil {
		// Asked before the callback is registered: from then on fr
		// belongs to the reading goroutine.
		pending := fr.Pending()
		s.ctl.(transport.ReadNotifier).NotifyReadable(s.reading.kick)
		if pending {
			// Bytes that came with the handshake's last read.
			s.reading.kick()
		}
	}
	if s.arrivals != nil {
		s.conn.(transport.ArrivalNotifier).NotifyArrivals(s.arrivals.kick)
	}
}

// takeArrivals dispatches every stream and datagram that is ready: a
// stream to its own goroutine (serveStream, as acceptStreams does), a
// datagram inline (handleDatagram does not wait on the transport).
func (s *Session) takeArrivals(an transport.ArrivalNotifier) {
	for s.ctx.Err() == nil {
		ts, gotStream := an.TryAcceptStream()
		if gotStream {
			s.wg.Add(1) // inside a run joined by wg: cannot race with Wait
			go func() {
				defer s.wg.Done()
				s.serveStream(s.ctx, ts)
			}()
		}
		b, gotDatagram := an.TryReceiveDatagram()
		if gotDatagram {
			s.handleDatagram(b)
		}
		if !gotStream && !gotDatagram {
			return
		}
	}
}

// readAvailable reads and dispatches control frames while input is at
// hand. A frame cut in two by the transport is waited for: the goroutine
// stays only while a frame is arriving. When it stops with nothing of its
// own buffered it releases its frame reader (its inline read buffer; the
// last payload is dropped), and the next run takes one again: an idle
// session holds none (D34), and a burst makes none (D50).
func (s *Session) readAvailable(rn transport.ReadNotifier) {
	fr := s.ctlReader
	if fr == nil {
		fr = wire.GetFrameReader(s.ctl, uint64(s.cfg.MaxFrameSize))
	}
	defer func() {
		// A reader holding input or a pooled busy buffer is kept: its
		// next read gives the buffer back to the pool.
		if fr.Release() {
			fr = nil
		}
		s.ctlReader = fr
	}()
	for s.ctx.Err() == nil && (fr.Pending() || rn.Readable()) {
		h, payload, err := fr.ReadFrame()
		if err != nil {
			if err := s.controlReadError(err); err != nil {
				s.fail(fmt.Errorf("session control reader: %w", err))
			}
			return
		}
		s.lastRecv.Store(s.cfg.Now().UnixNano())
		if err := s.handleFrame(h, payload, DeliveryOrdered); err != nil {
			s.fail(fmt.Errorf("session control reader: %w", err))
			return
		}
	}
}
