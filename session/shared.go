package session

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/qos"
	"github.com/jetstreamproto/jsp/wire"
)

// SharedFrame is an envelope frame encoded once and sent, unchanged, to
// many sessions: a channel message fanned out to every local subscriber
// (JSP §5.8) is the same EVENT for all of them, sequence number included,
// so encoding it per subscriber only repeats work.
//
// The frame bytes are never modified once built, and a session's sender
// only copies queued frames into its own batch buffer, so one SharedFrame
// may sit in any number of send queues at once.
//
// Compression (JSP §11.4) is decided per frame, not per session: the
// zstd form is built at most once, by the first session that negotiated
// zstd, and shared by every other such session. A payload zstd does not
// shrink is sent as is by all of them.
type SharedFrame struct {
	typ      wire.FrameType
	class    protocol.Class
	flags    wire.Flags
	bodyLen  int    // envelope body bytes, for the per-session size limit
	payload  []byte // the encoded envelope
	frame    []byte // the whole frame, uncompressed
	zonce    sync.Once
	zframe   []byte // the whole frame, compressed; nil when zstd did not shrink it
	compress bool   // guarded by zonce: zframe is usable
	// parts are the frames a joined SharedFrame carries (JoinShared);
	// its payload is then unset and zframe holds the parts compressed
	// for zthreshold.
	parts      []*SharedFrame
	zthreshold int
}

// NewSharedEnvelope encodes env as one frame of type t (EVENT or NOTIFY)
// for any number of sessions. A zero Timestamp is set to now, as
// SendEnvelope does. env is not retained.
func NewSharedEnvelope(t wire.FrameType, env *wire.Envelope, now time.Time) *SharedFrame {
	e := *env
	if e.Timestamp == 0 {
		e.Timestamp = uint64(now.UnixMilli())
	}
	payload := e.Append(make([]byte, 0, e.Len()))
	flags := envelopeFlags(&e)
	return &SharedFrame{
		typ:     t,
		class:   e.Class,
		flags:   flags,
		bodyLen: len(e.Body),
		payload: payload,
		frame:   wire.AppendFrame(make([]byte, 0, len(payload)+wire.MaxHeaderLen), t, flags, 0, payload),
	}
}

// Len returns the size of the uncompressed frame in bytes.
func (f *SharedFrame) Len() int { return len(f.frame) }

// compressed returns the zstd form of the frame, building it on first use;
// ok is false when zstd did not shrink the payload.
func (f *SharedFrame) compressed() (frame []byte, ok bool) {
	f.zonce.Do(func() {
		c, shrank := compress(nil, f.payload)
		if !shrank {
			return
		}
		f.zframe = wire.AppendFrame(make([]byte, 0, len(c)+wire.MaxHeaderLen), f.typ, f.flags|wire.FlagCompressed, 0, c)
		f.compress = true
	})
	return f.zframe, f.compress
}

// SendShared queues a shared frame on the control stream, in order with
// the other frames of its class, like SendEnvelope. It never waits on the
// caller's goroutine: a fan-out hands one frame to many sessions in a row
// and must not wait for any one peer's socket. It writes the frame itself
// only when the stream can take it without waiting (D50). It fails with
// MESSAGE_TOO_LARGE for an oversize body and QUEUE_FULL when the class's
// send queue is full.
func (s *Session) SendShared(f *SharedFrame) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
	if f.bodyLen > int(s.cfg.MaxMessageSize) {
		return jsperr.Newf(jsperr.MessageTooLarge, "body of %d bytes over limit %d", f.bodyLen, s.cfg.MaxMessageSize)
	}
	frame := f.frame
	switch {
	case !s.zstd:
	case f.parts != nil:
		frame = f.joinedCompressed(s.cfg.CompressThreshold)
	case len(f.payload) >= s.cfg.CompressThreshold && compressible(f.typ):
		if c, ok := f.compressed(); ok {
			frame = c
		}
	}
	var deadline time.Time
	if f.class == protocol.ClassMedia {
		deadline = s.cfg.Now().Add(s.cfg.MediaDeadline)
	}
	if err := s.send.offer(f.class, frame, deadline); err != nil {
		return fmt.Errorf("session: queue %s: %w", f.typ, err)
	}
	return nil
}

// JoinShared returns one SharedFrame carrying parts back to back, in
// order: a run of EVENTs that goes to every subscriber as one queue item
// and so, usually, one write (decision D26). The parts must share their
// class, since a queue item has one; JoinShared returns nil when they do
// not, or when there are none. Each part is compressed, or not, as it
// would be alone.
func JoinShared(parts ...*SharedFrame) *SharedFrame {
	if len(parts) == 0 {
		return nil
	}
	size, maxBody := 0, 0
	for _, p := range parts {
		if p.class != parts[0].class || p.parts != nil {
			return nil
		}
		size += len(p.frame)
		maxBody = max(maxBody, p.bodyLen)
	}
	frame := make([]byte, 0, size)
	for _, p := range parts {
		frame = append(frame, p.frame...)
	}
	return &SharedFrame{
		typ:     parts[0].typ,
		class:   parts[0].class,
		flags:   parts[0].flags,
		bodyLen: maxBody,
		frame:   frame,
		parts:   parts,
	}
}

// joinedCompressed returns the joined frame with each part compressed as
// it would be alone for a session compressing payloads from threshold
// bytes; the first caller's threshold is everyone's (a gateway gives every
// session the same), and a session with another gets the plain frame.
func (f *SharedFrame) joinedCompressed(threshold int) []byte {
	f.zonce.Do(func() {
		f.zthreshold = threshold
		out := make([]byte, 0, len(f.frame))
		shrank := false
		for _, p := range f.parts {
			if len(p.payload) >= threshold && compressible(p.typ) {
				if c, ok := p.compressed(); ok {
					out = append(out, c...)
					shrank = true
					continue
				}
			}
			out = append(out, p.frame...)
		}
		if shrank {
			f.zframe, f.compress = out, true
		}
	})
	if !f.compress || f.zthreshold != threshold {
		return f.frame
	}
	return f.zframe
}

// writeAlone writes first as it is when it is the only frame to send and
// its class does not wait for company: a subscriber that receives one
// event now and then (a fan-out to thousands of mostly idle sessions)
// would otherwise take a 64 KiB batch buffer from the pool for each event
// only to copy one small frame into it, and the pool, which every GC
// empties, then hands out fresh buffers at the fan-out's rate (D26).
// The caller holds the writing flag; writeAlone reports whether it wrote,
// and releases the flag when it did.
func (s *sender) writeAlone(first qos.Item[[]byte]) (bool, error) {
	if s.queued() > 0 {
		return false, nil
	}
	if s.batching && first.Class > protocol.ClassMedia && !s.immediate(first.Class) {
		return false, nil
	}
	err := s.write(first.Value, true)
	s.release()
	if err != nil {
		return true, err
	}
	s.framesSent.Add(1)
	return true, nil
}
