package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// echoRoute is where round-trip commands go. The server answers every
// COMMAND whatever its route; the route only has to be valid (JSP §4.1).
var echoRoute = wire.Route{Kind: wire.RouteService, Name: "bench.echo"}

// Listener starts a transport listener on a free 127.0.0.1 port. release,
// when not nil, frees what the listener does not own (a socket) once the
// listener and its connections are closed.
type Listener func(t TLS) (ln transport.Listener, release func() error, err error)

// Dialer dials a transport connection to addr.
type Dialer func(ctx context.Context, addr string, t TLS) (transport.Conn, error)

// JSP returns the JSP stack over the transport that listen and dial make:
// a session (HELLO/WELCOME, JSP §11.1) on each connection, bulk transfers
// on Stream API streams of class bulk (JSP §5.12), round trips as
// COMMAND/REPLY of class chat (JSP §5.9). cfg is used by both sides; its
// zero value is the session defaults with logging discarded.
func JSP(listen Listener, dial Dialer, cfg session.Config) Stack {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return Stack{
		Name: "jsp",
		Listen: func(t TLS) (Server, error) {
			ln, release, err := listen(t)
			if err != nil {
				return nil, err
			}
			s := &jspServer{serverBase: newServerBase(), ln: ln, release: release, cfg: cfg}
			s.wg.Go(s.acceptLoop)
			return s, nil
		},
		Connect: func(ctx context.Context, addr string, t TLS) (Conn, error) {
			tc, err := dial(ctx, addr, t)
			if err != nil {
				return nil, err
			}
			sess, err := session.Dial(ctx, tc, session.ClientInfo{Name: "jsp-bench"}, cfg)
			if err != nil {
				_ = tc.CloseWithError(jsperr.NoError, "")
				return nil, fmt.Errorf("bench: JSP handshake: %w", err)
			}
			c := &jspConn{s: sess}
			c.stop = context.AfterFunc(ctx, func() { _ = sess.Close() })
			return c, nil
		},
	}
}

type jspServer struct {
	serverBase
	ln      transport.Listener
	release func() error // nil or frees the listener's socket
	cfg     session.Config
}

func (s *jspServer) Addr() string { return s.ln.Addr().String() }

func (s *jspServer) Close() error {
	err := s.shutdown(s.ln.Close)
	if s.release != nil {
		if rerr := s.release(); err == nil {
			err = rerr
		}
	}
	return err
}

func (s *jspServer) acceptLoop() {
	for {
		// Not s.ctx: after Close the listener still hands out what is
		// queued, and those connections must be closed too.
		tc, err := s.ln.Accept(context.Background())
		if err != nil {
			return // closing
		}
		s.wg.Go(func() { s.serveConn(tc) })
	}
}

// serveConn runs the server side of one session until the client closes it
// or the server shuts down.
func (s *jspServer) serveConn(tc transport.Conn) {
	sess, err := session.Accept(s.ctx, tc, s.cfg, session.ServerOptions{})
	if err != nil {
		s.fail(fmt.Errorf("bench: JSP accept: %w", err))
		_ = tc.CloseWithError(jsperr.NoError, "")
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			st, err := sess.AcceptStream(sess.Context())
			if err != nil {
				return // the session ended
			}
			wg.Go(func() { s.serveBulk(st) })
		}
	})
	wg.Go(func() {
		for {
			in, err := sess.Recv(sess.Context())
			if err != nil {
				return // the session ended
			}
			if in.Type == wire.FrameCommand && in.Envelope != nil {
				if err := sess.Reply(in.Envelope, in.Envelope.Body, jsperr.NoError, ""); err != nil {
					return // closing; the client sees the session end
				}
			}
		}
	})
	select {
	case <-sess.Context().Done():
	case <-s.ctx.Done():
	}
	_ = sess.Close()
	wg.Wait()
}

// serveBulk receives one bulk transfer and acknowledges it.
func (s *jspServer) serveBulk(st *session.Stream) {
	verify := st.Label() == labelBulkVerify
	if !verify && st.Label() != labelBulk {
		st.CancelRead(jsperr.BadRequest)
		st.CancelWrite(jsperr.BadRequest)
		return
	}
	ack, err := sink(st, make([]byte, ChunkSize), -1, verify)
	if err != nil {
		s.fail(err)
		st.CancelWrite(jsperr.Internal)
		return
	}
	if _, err := st.Write(ack.append(nil)); err != nil {
		s.fail(fmt.Errorf("bench: JSP send ack: %w", err))
		return
	}
	_ = st.Close()
}

type jspConn struct {
	s    *session.Session
	stop func() bool
}

func (c *jspConn) Bulk(ctx context.Context, data []byte, verify bool) (Ack, error) {
	label := labelBulk
	if verify {
		label = labelBulkVerify
	}
	st, err := c.s.OpenStream(ctx, protocol.ClassBulk, label, nil)
	if err != nil {
		return Ack{}, err
	}
	if err := writeChunks(st, data); err != nil {
		st.CancelWrite(jsperr.Cancelled)
		st.CancelRead(jsperr.Cancelled)
		return Ack{}, err
	}
	if err := st.Close(); err != nil {
		return Ack{}, fmt.Errorf("bench: JSP close bulk stream: %w", err)
	}
	ack, err := readAck(st)
	if err != nil {
		st.CancelRead(jsperr.Cancelled)
		return Ack{}, err
	}
	// Reading the FIN completes the stream, so the transport can release
	// it; otherwise every transfer would hold one stream until the limit.
	if err := expectEOF(st); err != nil {
		return Ack{}, err
	}
	return ack, nil
}

func (c *jspConn) Echo(ctx context.Context, p, out []byte) error {
	rep, err := c.s.Request(ctx, &wire.Envelope{Route: echoRoute, Class: protocol.ClassChat, Body: p})
	if err != nil {
		return fmt.Errorf("bench: JSP request: %w", err)
	}
	if len(rep.Body) != len(p) {
		return fmt.Errorf("bench: JSP reply of %d bytes to a %d-byte command", len(rep.Body), len(p))
	}
	copy(out, rep.Body)
	return nil
}

func (c *jspConn) Close() error {
	c.stop()
	return c.s.Close()
}

// expectEOF reads the end of a stream whose content has been read.
func expectEOF(r io.Reader) error {
	var b [1]byte
	n, err := r.Read(b[:])
	for n == 0 && err == nil {
		n, err = r.Read(b[:])
	}
	if n > 0 {
		return fmt.Errorf("bench: unexpected data after the ack")
	}
	if err != io.EOF {
		return fmt.Errorf("bench: waiting for the end of the stream: %w", err)
	}
	return nil
}
