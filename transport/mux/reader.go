package mux

import (
	"errors"
	"fmt"
	"io"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// readLoop reads link frames until the byte stream ends. It never blocks on
// the application: every buffer it fills is bounded by flow control or by
// a drop-oldest queue.
func (c *Conn) readLoop(r io.Reader) {
	defer close(c.readerDone)
	fr := wire.NewFrameReader(r, uint64(c.cfg.MaxFrameSize))
	for {
		h, p, err := fr.ReadFrame()
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.closingNow.Load() {
			// Lingering after our LINK_CLOSE: drain until the peer closes.
			continue
		}
		c.mu.Lock()
		c.stats.FramesRead++
		c.stats.BytesRead += uint64(h.Len()) + h.Length
		if err := c.handleFrameLocked(h, p); err != nil {
			c.failLocked(err)
		}
		c.mu.Unlock()
	}
}

// readFailed ends the link after the reader's error.
func (c *Conn) readFailed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr != nil {
		return
	}
	var je *jsperr.Error
	switch {
	case errors.Is(err, io.EOF):
		c.closeLocked(errorf(jsperr.TransportClosed, "link ended without LINK_CLOSE"), false)
	case errors.As(err, &je):
		// A decoding error of the frame layer (JSP §3.1): tell the peer.
		c.closeLocked(jsperr.Wrap(je.Code, fmt.Errorf("mux: reading link frame: %w", err)), true)
	default:
		c.closeLocked(jsperr.Wrap(jsperr.TransportClosed, fmt.Errorf("mux: read: %w", err)), false)
	}
}

// handleFrameLocked applies one received frame. An error closes the link
// with its code.
func (c *Conn) handleFrameLocked(h wire.Header, p []byte) error {
	switch h.Type {
	case wire.FrameStream:
		return c.onStreamLocked(h, p)
	case wire.FrameWindowUpdate:
		return c.onWindowUpdateLocked(h, p)
	case wire.FrameResetStream, wire.FrameStopSending:
		return c.onCancelLocked(h, p)
	case wire.FrameLinkDatagram:
		return c.onDatagramLocked(h, p)
	case wire.FrameLinkClose:
		if h.StreamID != 0 {
			return errorf(jsperr.ProtocolViolation, "LINK_CLOSE on stream %d", h.StreamID)
		}
		code, reason, err := parseLinkClose(p)
		if err != nil {
			return err
		}
		c.closeLocked(&jsperr.Error{Code: code, Reason: reason, Remote: true}, false)
		return nil
	}
	if h.Type.Known() {
		return errorf(jsperr.ProtocolViolation, "session frame %s outside a stream", h.Type)
	}
	// JSP §8.3: unknown frame types are skipped so that later minor versions
	// can add link frames.
	return nil
}

// streamLocked finds the stream a frame refers to (JSP §7.2). It returns
// nil for a stream that has been retired, whose late frames are ignored,
// and opens peer streams that the frame's id implies.
func (c *Conn) streamLocked(h wire.Header) (*stream, error) {
	id := h.StreamID
	if id == 0 {
		return nil, errorf(jsperr.ProtocolViolation, "%s on stream 0", h.Type)
	}
	if c.isLocal(id) {
		if id >= c.nextLocalID {
			return nil, errorf(jsperr.ProtocolViolation, "%s for stream %d, which this end has not opened", h.Type, id)
		}
		return c.streams[id], nil
	}
	if id >= c.nextPeerID {
		// Opening id opens every lower unused peer id too (JSP §7.2).
		n := int64((id-c.nextPeerID)/2 + 1)
		if n > int64(c.cfg.MaxStreams-c.peerOpen) {
			return nil, errorf(jsperr.StreamLimit, "peer opened stream %d: more than %d concurrent streams", id, c.cfg.MaxStreams)
		}
		for ; c.nextPeerID <= id; c.nextPeerID += 2 {
			c.newStreamLocked(c.nextPeerID, protocol.ClassBulk)
			c.peerOpen++
		}
	}
	s := c.streams[id]
	if s != nil && !s.announced && (h.Type == wire.FrameStream || h.Type == wire.FrameResetStream) {
		// A peer stream reaches AcceptStream with its first STREAM frame,
		// which names its class, or with a RESET_STREAM. WINDOW_UPDATE and
		// STOP_SENDING carry flags 0 (JSP §3.4) and count it as open
		// without announcing it.
		s.announced = true
		s.class = h.Flags.Class()
		c.acceptQ = append(c.acceptQ, s)
		c.stats.StreamsAccepted++
		signal(c.acceptWake)
		c.arrivedLocked()
	}
	return s, nil
}

func (c *Conn) onStreamLocked(h wire.Header, p []byte) error {
	s, err := c.streamLocked(h)
	if err != nil {
		return err
	}
	n := protocol.ByteCount(len(p))
	// Every STREAM byte counts against the connection window, also for
	// streams whose data is discarded.
	if c.recvConnOffset+n > c.recvConnLimit {
		return errorf(jsperr.FlowControlError, "peer sent %d bytes past the connection window of %d", c.recvConnOffset+n-c.recvConnLimit, c.recvConnLimit)
	}
	c.recvConnOffset += n
	if s == nil || s.resetRecv {
		c.consumeConnLocked(n)
		return nil
	}
	if s.finRecv {
		return errorf(jsperr.ProtocolViolation, "data on stream %d after FIN", s.id)
	}
	if s.recvOffset+n > s.recvLimit {
		return errorf(jsperr.FlowControlError, "peer sent %d bytes past the window of stream %d", s.recvOffset+n-s.recvLimit, s.id)
	}
	s.recvOffset += n
	if s.readCancelled {
		s.readOffset += n
		c.consumeConnLocked(n)
	} else if n > 0 {
		// Small payloads fill the last buffer before a new one is taken, so
		// a peer sending tiny frames cannot make us hold a pooled buffer
		// per byte of credit.
		if k := len(s.rbuf); k > 0 && cap(s.rbuf[k-1].b)-len(s.rbuf[k-1].b) >= len(p) {
			s.rbuf[k-1].b = append(s.rbuf[k-1].b, p...)
		} else {
			s.rbuf = append(s.rbuf, recvChunk{b: getChunk(p)})
		}
		s.rbufLen += len(p)
	}
	if h.Flags.Has(wire.FlagFIN) {
		s.finRecv = true
		c.retireLocked(s)
	}
	s.wakeReaderLocked()
	return nil
}

func (c *Conn) onWindowUpdateLocked(h wire.Header, p []byte) error {
	inc, err := parseVarintPayload(h.Type, p)
	if err != nil {
		return err
	}
	if h.StreamID == 0 {
		if uint64(c.sendConnLimit)+inc > wire.MaxVarint {
			return errorf(jsperr.FlowControlError, "connection window over 2^62")
		}
		c.sendConnLimit += protocol.ByteCount(inc)
		c.broadcastSendLocked()
		return nil
	}
	s, err := c.streamLocked(h)
	if err != nil || s == nil {
		return err
	}
	if uint64(s.sendLimit)+inc > wire.MaxVarint {
		return errorf(jsperr.FlowControlError, "window of stream %d over 2^62", s.id)
	}
	s.sendLimit += protocol.ByteCount(inc)
	c.broadcastSendLocked()
	return nil
}

// onCancelLocked handles RESET_STREAM and STOP_SENDING.
func (c *Conn) onCancelLocked(h wire.Header, p []byte) error {
	v, err := parseVarintPayload(h.Type, p)
	if err != nil {
		return err
	}
	s, err := c.streamLocked(h)
	if err != nil || s == nil {
		return err
	}
	code := jsperr.Code(v)
	if h.Type == wire.FrameStopSending {
		// Answer STOP_SENDING by resetting with the peer's code, as QUIC
		// does; a pending Write fails with that code.
		s.resetLocked(code, streamError(s.id, code, true, "stopped by peer"))
		return nil
	}
	if s.finRecv || s.resetRecv {
		return nil
	}
	s.resetRecv = true
	if s.readErr == nil {
		s.readErr = streamError(s.id, code, true, "reset by peer")
	}
	s.discardLocked()
	c.retireLocked(s)
	s.wakeReaderLocked()
	return nil
}

func (c *Conn) onDatagramLocked(h wire.Header, p []byte) error {
	if h.StreamID != 0 {
		return errorf(jsperr.ProtocolViolation, "LINK_DATAGRAM on stream %d", h.StreamID)
	}
	if len(p) > c.cfg.MaxDatagramSize {
		c.stats.DatagramsRecvDropped++
		return nil
	}
	c.stats.DatagramsReceived++
	if len(c.dgRecv) >= c.cfg.DatagramRecvQueueLength {
		// Drop oldest: for real-time data the newest is worth most.
		c.dgRecv[0] = nil
		c.dgRecv = c.dgRecv[1:]
		c.stats.DatagramsRecvDropped++
	}
	c.dgRecv = append(c.dgRecv, append([]byte(nil), p...))
	signal(c.dgramWake)
	c.arrivedLocked()
	return nil
}
