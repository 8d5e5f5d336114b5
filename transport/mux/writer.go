package mux

import (
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/internal/stackwarm"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/qos"
	"github.com/jetstreamproto/jsp/wire"
)

type frameKind uint8

const (
	kindData frameKind = iota
	kindReset
	kindStopSending
	kindWindowUpdate
	kindDatagram
)

// outFrame is one queued link frame. Its header is encoded when the writer
// pops it, so that Close can still set FIN on a queued data frame and a
// WINDOW_UPDATE carries all the credit granted until it leaves.
type outFrame struct {
	kind    frameKind
	s       *stream // nil for connection-level frames
	class   protocol.Class
	payload []byte
	code    jsperr.Code
	fin     bool
	pooled  bool // payload came from chunkPool
	counted bool // counted in dataQueued (stream data and datagrams, not FIN-only frames)
}

// chunkPool recycles the copies of written data, which live only from
// Write until the writer copies them into its batch.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, protocol.DefaultMaxLinkChunk); return &b }}

func getChunk(p []byte) []byte {
	bp := chunkPool.Get().(*[]byte)
	return append((*bp)[:0], p...)
}

func putChunk(b []byte) {
	if cap(b) < int(protocol.DefaultMaxLinkChunk) || cap(b) > 4*int(protocol.DefaultMaxLinkChunk) {
		return // not from the pool, or grown for a larger MaxChunk: let it go
	}
	b = b[:0]
	chunkPool.Put(&b)
}

func (f *outFrame) release() {
	if f.pooled {
		putChunk(f.payload)
		f.payload, f.pooled = nil, false
	}
}

// pushLocked queues f. Queue room for frames that are not counted is
// reserved by construction (New), so a refusal means the writer has been
// stuck far longer than any healthy peer allows: the link closes with
// SLOW_CONSUMER.
func (c *Conn) pushLocked(f *outFrame, deadline time.Time) error {
	if c.closeErr != nil {
		f.release()
		return fmt.Errorf("mux: %w", c.closeErr)
	}
	size := len(f.payload) + wire.MaxHeaderLen
	dropped, err := c.schedLocked().Push(qos.Item[*outFrame]{Class: f.class, Size: size, Deadline: deadline, Value: f})
	if err == nil && len(dropped) > 0 {
		err = fmt.Errorf("dropped %d frames", len(dropped))
	}
	if err != nil {
		f.release()
		e := errorf(jsperr.SlowConsumer, "send queue overflow: %v", err)
		c.closeLocked(e, true)
		return e
	}
	if f.counted {
		c.dataQueued[f.class]++
	}
	c.kickWriterLocked()
	return nil
}

// kickWriterLocked makes sure a writer goroutine will see the frames just
// queued: it starts one unless one runs or the link is closing (the close
// goroutine then owns the writing side). The writer runs only while there
// is something to write, and a little after (writeLoop), so an idle link
// holds no writer goroutine (decision D27).
func (c *Conn) kickWriterLocked() {
	signal(c.writeWake)
	if c.writerRunning || c.closeErr != nil {
		return
	}
	c.writerRunning = true
	c.writers.Add(1)
	go c.writeLoop()
}

// writeLoop writes queued frames until the queue has stayed empty for
// batchIdleRelease (at once when the run wrote one batch) or the link
// closes. It runs on demand (kickWriterLocked);
// writerRunning, under mu, says whether one runs, and it is cleared under
// the same lock that finds the queue empty, so no queued frame is missed.
// Lingering a little after the queue empties keeps a busy link's goroutine
// and batch buffer between bursts instead of trading them with the pool.
func (c *Conn) writeLoop() {
	defer c.writers.Done()
	stackwarm.Grow()
	// The batch buffer is held only while there is something to write
	// (decision D24): it comes from batchPool when frames are queued and
	// goes back when the writer ends.
	var bp *[]byte
	bigBatch := c.cfg.MaxWriteBatch + int(c.cfg.MaxChunk) + wire.MaxHeaderLen
	defer func() { putBatch(bp, bigBatch) }()
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	writes := 0 // batches this run wrote
	for {
		c.mu.Lock()
		if n, _ := c.queuedLocked(); c.closeErr != nil || (bp == nil && n == 0) {
			c.writerEndLocked()
			c.mu.Unlock()
			return
		}
		if bp == nil {
			_, queued := c.queuedLocked()
			bp = getBatch(queued, bigBatch)
		}
		buf, frames := c.fillBatchLocked((*bp)[:0])
		*bp = buf[:0]
		if n, _ := c.queuedLocked(); len(buf) == 0 && writes <= 1 && n == 0 {
			// A run that wrote once, such as one fan-out delivery to a
			// quiet link, ends at once: lingering would cost a timer and
			// a wake-up per delivery for a burst that is not coming.
			c.writerEndLocked()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if len(buf) == 0 {
			if idle == nil {
				idle = time.NewTimer(batchIdleRelease)
			} else {
				idle.Reset(batchIdleRelease)
			}
			select {
			case <-c.writeWake:
			case <-c.ctx.Done():
			case <-idle.C:
				c.mu.Lock()
				if n, _ := c.queuedLocked(); n == 0 {
					c.writerEndLocked()
					c.mu.Unlock()
					return
				}
				c.mu.Unlock()
			}
			idle.Stop()
			continue
		}
		writes++
		if err := c.writeTimed(buf, c.cfg.WriteTimeout); err != nil {
			c.mu.Lock()
			c.closeLocked(jsperr.Wrap(jsperr.TransportClosed, fmt.Errorf("mux: write: %w", err)), false)
			c.writerEndLocked()
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		c.stats.Writes++
		c.stats.FramesWritten += uint64(frames)
		c.stats.BytesWritten += uint64(len(buf))
		c.mu.Unlock()
	}
}

// mayWriteThroughLocked reports whether a stream's WriteNow may write its
// frame on the caller's goroutine (writeThroughLocked): nothing is queued,
// no writer runs and the link is open, so the frame overtakes nothing and
// no other write can interleave with it.
//
// The write is bounded by the link's WriteTimeout, whose expiry closes the
// link, while a queued frame's Write returns at the stream's own deadline
// and leaves the link open. So a stream whose deadline is sooner than
// WriteTimeout less writeThroughSlack takes the queue; the session's
// control stream, whose deadline is its own write timeout (a missed one
// ends the session anyway), writes through.
func (c *Conn) mayWriteThroughLocked(s *stream) bool {
	if c.writerRunning || c.closeErr != nil {
		return false
	}
	if n, _ := c.queuedLocked(); n > 0 {
		return false
	}
	if d := s.writeDeadline; !d.IsZero() {
		bound := c.cfg.WriteTimeout - c.cfg.WriteTimeout/writeThroughSlack
		if time.Until(d) < bound {
			return false
		}
	}
	return true
}

// writeThroughSlack sets how much sooner than the link's WriteTimeout a
// stream's write deadline may be and still let its Write write through
// (mayWriteThroughLocked): up to a tenth of WriteTimeout.
const writeThroughSlack = 10

// writeThroughLocked writes p as one STREAM frame of s on the caller's
// goroutine, taking the writer's place for that one write (D45). A lone
// frame, such as one fan-out delivery to a quiet link, then costs no
// writer goroutine, no queue entry and no copy into a chunk. Frames queued
// while it writes start a writer afterwards, as kickWriterLocked would
// have. c.mu is held on entry and on return, not during the write.
func (c *Conn) writeThroughLocked(s *stream, p []byte) error {
	_, err := c.writeOneLocked(s, p, nil)
	return err
}

// tryWriter is a byte stream that can write without waiting (D50): a
// wss:// or TLS/TCP connection on a record feed (tcptls.Feed). TryWrite returns false, having
// written nothing, when the write would have to wait; what it accepts
// it sends, the part the kernel does not take at once within timeout.
type tryWriter interface {
	TryWrite(p []byte, timeout time.Duration) (bool, error)
}

// writeOneLocked is writeThroughLocked with the write made by tw when it
// is not nil: then it may write nothing and report false, having handed
// the writing side back (to a writer, when frames queued meanwhile).
func (c *Conn) writeOneLocked(s *stream, p []byte, tw tryWriter) (bool, error) {
	c.writerRunning = true
	c.writers.Add(1)
	k := protocol.ByteCount(len(p))
	s.sendOffset += k
	c.sendConnOffset += k
	flags := wire.Flags(0).WithClass(s.class)
	bigBatch := c.cfg.MaxWriteBatch + int(c.cfg.MaxChunk) + wire.MaxHeaderLen
	bp := getBatch(len(p)+wire.MaxHeaderLen, bigBatch)
	buf := wire.AppendFrame((*bp)[:0], wire.FrameStream, flags, s.id, p)
	c.mu.Unlock()
	wrote := true
	var err error
	if tw != nil {
		wrote, err = tw.TryWrite(buf, c.cfg.WriteTimeout)
	} else {
		err = c.writeTimed(buf, c.cfg.WriteTimeout)
	}
	*bp = buf[:0]
	putBatch(bp, bigBatch)
	c.mu.Lock()
	if err != nil {
		e := jsperr.Wrap(jsperr.TransportClosed, fmt.Errorf("mux: write: %w", err))
		c.closeLocked(e, false)
		c.writerEndLocked()
		c.writers.Done()
		return true, fmt.Errorf("mux: write stream %d: %w", s.id, c.closeErr)
	}
	if wrote {
		c.stats.Writes++
		c.stats.FramesWritten++
		c.stats.BytesWritten += uint64(len(buf))
		c.stats.WritesThrough++
	} else {
		s.sendOffset -= k
		c.sendConnOffset -= k
	}
	if n, _ := c.queuedLocked(); n > 0 && c.closeErr == nil {
		// Hand the writing side to a writer for what queued meanwhile;
		// it inherits writerRunning and the writers count.
		go c.writeLoop()
		return wrote, nil
	}
	c.writerEndLocked()
	c.writers.Done()
	return wrote, nil
}

// closeLink runs on its own goroutine from the start of the close
// (closeLocked): it waits for a running writer to stop, which a write
// stuck behind a silent peer does within CloseTimeout (writeTimer), then
// shuts the link down.
func (c *Conn) closeLink() {
	defer close(c.writerDone)
	c.writers.Wait()
	c.shutdown()
}

// fillBatchLocked pops frames in scheduler order into buf until it holds
// MaxWriteBatch bytes or the queue is empty.
func (c *Conn) fillBatchLocked(buf []byte) ([]byte, int) {
	now := c.cfg.Now()
	frames := 0
	freed := false
	if c.sched == nil {
		return buf, 0
	}
	for len(buf) < c.cfg.MaxWriteBatch {
		it, ok := c.sched.Pop(now)
		if !ok {
			break
		}
		f := it.Value
		if f.counted {
			c.dataQueued[f.class]--
			freed = true
		}
		n := len(buf)
		buf = c.encodeLocked(buf, f)
		if len(buf) > n {
			frames++
		}
		f.release()
	}
	if freed {
		c.broadcastSendLocked()
	}
	return buf, frames
}

// encodeLocked appends f to buf, or nothing if f has become pointless, and
// updates the state that depends on f leaving.
func (c *Conn) encodeLocked(buf []byte, f *outFrame) []byte {
	s := f.s
	switch f.kind {
	case kindData:
		if s.lastData == f {
			s.lastData = nil
		}
		if s.resetQueued {
			// The stream was reset after this was queued: nothing may
			// follow RESET_STREAM on the wire. The peer never counts these
			// bytes, so take back their connection credit.
			c.sendConnOffset -= protocol.ByteCount(len(f.payload))
			c.broadcastSendLocked()
			return buf
		}
		flags := wire.Flags(0).WithClass(s.class)
		if f.fin {
			flags |= wire.FlagFIN
		}
		buf = wire.AppendFrame(buf, wire.FrameStream, flags, s.id, f.payload)
		if f.fin {
			s.finWritten = true
			c.retireLocked(s)
		}
	case kindReset:
		buf = appendVarintFrame(buf, wire.FrameResetStream, s.id, wireCode(f.code))
		s.resetWritten = true
		c.retireLocked(s)
	case kindStopSending:
		if s.finRecv || s.resetRecv {
			return buf // the peer has finished sending already
		}
		buf = appendVarintFrame(buf, wire.FrameStopSending, s.id, wireCode(f.code))
	case kindWindowUpdate:
		if s == nil {
			inc := c.connWUPending
			c.connWUPending, c.connWUQueued = 0, false
			if inc > 0 {
				buf = appendVarintFrame(buf, wire.FrameWindowUpdate, 0, uint64(inc))
			}
			return buf
		}
		inc := s.wuPending
		s.wuPending, s.wuQueued = 0, false
		if inc > 0 && !s.finRecv && !s.resetRecv && !s.readCancelled {
			buf = appendVarintFrame(buf, wire.FrameWindowUpdate, s.id, uint64(inc))
		}
	case kindDatagram:
		c.dgQueued--
		c.stats.DatagramsSent++
		buf = wire.AppendFrame(buf, wire.FrameLinkDatagram, wire.Flags(0).WithClass(f.class), 0, f.payload)
	}
	return buf
}

// writeTimed writes b, closing the byte stream if the write takes longer
// than d. Closing is the one way to interrupt a Write that works for every
// io.ReadWriteCloser; the timer's callback records SLOW_CONSUMER first so
// that it, not the write error, becomes the close reason.
func (c *Conn) writeTimed(b []byte, d time.Duration) error {
	c.mu.Lock()
	if c.writeTimer == nil {
		c.writeTimer = time.AfterFunc(d, c.writeTimedOut)
	} else {
		c.writeTimer.Reset(d)
	}
	t := c.writeTimer
	c.mu.Unlock()
	_, err := c.rw.Write(b)
	t.Stop()
	return err
}

// writerEndLocked marks the writer gone and lets its timer and an empty
// send queue go, so that an idle link holds neither (D33).
func (c *Conn) writerEndLocked() {
	c.writerRunning = false
	if c.writeTimer != nil {
		c.writeTimer.Stop()
		c.writeTimer = nil
	}
	c.dropSchedLocked()
}

func (c *Conn) writeTimedOut() {
	c.mu.Lock()
	c.closeLocked(errorf(jsperr.SlowConsumer, "peer read nothing for %v", c.cfg.WriteTimeout), false)
	c.mu.Unlock()
	c.closeRW()
}

// shutdown runs on the close goroutine once no writer runs: it sends
// LINK_CLOSE if the close calls for it, lingers for the peer's end, closes
// the byte stream and waits for the reader.
func (c *Conn) shutdown() {
	c.mu.Lock()
	err, send := c.closeErr, c.sendLinkClose
	c.mu.Unlock()
	if send {
		frame := appendLinkClose(nil, err.Code, err.Reason)
		if c.writeTimed(frame, c.cfg.CloseTimeout) == nil {
			c.mu.Lock()
			c.stats.Writes++
			c.stats.FramesWritten++
			c.stats.BytesWritten += uint64(len(frame))
			c.mu.Unlock()
			// Lingering close: half-close, then wait for the peer to close
			// its side. Closing at once with unread input in our socket
			// buffer would reset the connection, and the peer could lose
			// the LINK_CLOSE still waiting in its own buffer.
			if cw, ok := c.rw.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			t := time.NewTimer(c.cfg.CloseTimeout)
			select {
			case <-c.readerDone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	c.closeRW()
	if c.pump != nil {
		// The byte stream is closed: a pump that is running sees the
		// error and ends; one that waits for input is ended here.
		c.pump.stop()
	}
	<-c.readerDone
}

// batchIdleRelease is how long a link writer waits without anything to
// write before it ends and gives its batch buffer back to batchPool (D24,
// D27).
const batchIdleRelease = 200 * time.Millisecond

// batchPool and smallBatchPool recycle the writers' batch buffers between
// bursts (decision D24): an idle link holds none, a busy one keeps its
// buffer for as long as frames keep coming. A writer that starts with
// little queued (an idle session's PING, a single event) takes a
// smallBatch buffer, which append grows if the burst turns out larger, so
// that many links waking at once do not pin a full-size batch each in the
// pool (D27).
var batchPool, smallBatchPool sync.Pool

// smallBatch is the capacity of a buffer for a writer that starts with at
// most this many bytes queued.
const smallBatch = 4 << 10

// getBatch returns an empty buffer for queued bytes: a small one when they
// fit, else one of capacity at least size.
func getBatch(queued, size int) *[]byte {
	if queued <= smallBatch {
		if bp, ok := smallBatchPool.Get().(*[]byte); ok {
			*bp = (*bp)[:0]
			return bp
		}
		b := make([]byte, 0, smallBatch)
		return &b
	}
	if bp, ok := batchPool.Get().(*[]byte); ok && cap(*bp) >= size {
		*bp = (*bp)[:0]
		return bp
	}
	b := make([]byte, 0, size)
	return &b
}

// putBatch gives bp back to the pool of its size (size is the full batch
// capacity); a buffer that append grew to an odd size is dropped, and nil
// is ignored.
func putBatch(bp *[]byte, size int) {
	if bp == nil {
		return
	}
	*bp = (*bp)[:0]
	switch c := cap(*bp); {
	case c == smallBatch:
		smallBatchPool.Put(bp)
	case c >= size:
		batchPool.Put(bp)
	}
}
