package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
)

// Stream is a Stream API stream (JSP §5.12): a reliable, ordered byte stream
// in both directions with a QoS class and a label. It is an
// io.ReadWriteCloser: Close ends the conversation (sends FIN, stops
// reading); CloseWrite only sends FIN, to read the peer's answer after
// sending everything.
type Stream struct {
	*session.Stream
	writeOnce sync.Once
	writeErr  error // set by writeOnce
	readOnce  sync.Once
}

// closeWrite sends FIN once; later calls return the first result.
func (s *Stream) closeWrite() error {
	s.writeOnce.Do(func() { s.writeErr = s.Stream.Close() })
	return s.writeErr
}

// CloseWrite closes the sending side: the peer reads io.EOF after the data
// written so far. Reading stays possible.
func (s *Stream) CloseWrite() error {
	if err := s.closeWrite(); err != nil {
		return fmt.Errorf("client: close stream %q for writing: %w", s.Label(), err)
	}
	return nil
}

// Close closes the sending side, if CloseWrite has not, and abandons the
// receiving side: data the peer still sends is discarded.
func (s *Stream) Close() error {
	err := s.closeWrite()
	s.readOnce.Do(func() { s.Stream.CancelRead(jsperr.NoError) })
	if err != nil {
		return fmt.Errorf("client: close stream %q: %w", s.Label(), err)
	}
	return nil
}

// Reset abandons both directions with code; the peer's reads and writes
// fail with it.
func (s *Stream) Reset(code jsperr.Code) {
	s.writeOnce.Do(func() { s.Stream.CancelWrite(code) })
	s.readOnce.Do(func() { s.Stream.CancelRead(code) })
}

// StreamOption is a per-call extra for OpenStream.
type StreamOption func(*streamOpts)

type streamOpts struct {
	meta map[string]string
}

// WithMetadata sends metadata with STREAM_OPEN (at most 64 entries, as
// envelope headers), e.g. a file's name and size.
func WithMetadata(m map[string]string) StreamOption {
	return func(o *streamOpts) { o.meta = m }
}

// OpenStream opens a Stream API stream with a QoS class and a label that
// tells the server what the stream is for (JSP §5.12). It blocks while the
// server's stream limit is reached, until ctx ends.
func (c *Client) OpenStream(ctx context.Context, class protocol.Class, label string, opts ...StreamOption) (*Stream, error) {
	var o streamOpts
	for _, f := range opts {
		f(&o)
	}
	if class >= protocol.NumClasses {
		return nil, jsperr.Newf(jsperr.BadRequest, "unknown QoS class %d", class)
	}
	l, err := c.waitLink(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: open stream %q: %w", label, err)
	}
	var st *session.Stream
	err = c.retryRateLimited(ctx, func() (err error) {
		st, err = l.sess.OpenStream(ctx, class, label, o.meta)
		return err
	})
	if err != nil {
		if errors.Is(err, session.ErrClosed) {
			return nil, fmt.Errorf("client: open stream %q: %w", label, c.lostErr(l))
		}
		return nil, fmt.Errorf("client: open stream %q: %w", label, err)
	}
	return &Stream{Stream: st}, nil
}

// AcceptStream waits for the next stream the server opens.
func (c *Client) AcceptStream(ctx context.Context) (*Stream, error) {
	l, err := c.waitLink(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: accept stream: %w", err)
	}
	st, err := l.sess.AcceptStream(ctx)
	if err != nil {
		if errors.Is(err, session.ErrClosed) {
			return nil, fmt.Errorf("client: accept stream: %w", c.lostErr(l))
		}
		return nil, fmt.Errorf("client: accept stream: %w", err)
	}
	return &Stream{Stream: st}, nil
}

// MaxDatagramSize returns the largest payload SendDatagram accepts: the
// smaller of the session's own limit and the server's announced limit
// (JSP §9). Payloads larger than one transport datagram are fragmented.
func (c *Client) MaxDatagramSize() int {
	n := int(c.opts.Session.MaxDatagramMessage)
	if n == 0 {
		n = int(protocol.DefaultMaxDatagramMessage)
	}
	if w := c.link().sess.Welcome(); w != nil && w.Limits.MaxDatagramMessage > 0 && int(w.Limits.MaxDatagramMessage) < n {
		n = int(w.Limits.MaxDatagramMessage)
	}
	return n
}

// SendDatagram sends b as one unreliable datagram with QoS class media
// (JSP §5.13). Payloads larger than one transport datagram are fragmented
// and arrive whole or not at all. It fails with DATAGRAM_TOO_LARGE above
// MaxDatagramSize.
func (c *Client) SendDatagram(b []byte) error {
	if limit := c.MaxDatagramSize(); len(b) > limit {
		return jsperr.Newf(jsperr.DatagramTooLarge, "datagram of %d bytes over limit %d", len(b), limit)
	}
	l := c.link()
	if err := l.sess.SendDatagram(b, protocol.ClassMedia); err != nil {
		if errors.Is(err, session.ErrClosed) {
			// Datagrams are unreliable: one sent while reconnecting is
			// lost, not queued.
			return fmt.Errorf("client: send datagram: %w", c.lostErr(l))
		}
		return fmt.Errorf("client: send datagram: %w", err)
	}
	return nil
}

// ReceiveDatagram waits for the next whole datagram from the server.
func (c *Client) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	l, err := c.waitLink(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: receive datagram: %w", err)
	}
	b, err := l.sess.ReceiveDatagram(ctx)
	if err != nil {
		if errors.Is(err, session.ErrClosed) {
			return nil, fmt.Errorf("client: receive datagram: %w", c.lostErr(l))
		}
		return nil, fmt.Errorf("client: receive datagram: %w", err)
	}
	return b, nil
}
