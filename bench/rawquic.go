package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
)

// listenUDP opens the server socket of a QUIC stack. Both QUIC stacks get
// their socket this way, so that their servers close deterministically:
// when quic-go owns the socket it keeps it open for three PTOs after the
// last connection closed, beyond the server's Close.
func listenUDP() (*net.UDPConn, error) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("bench: QUIC socket: %w", err)
	}
	return udp, nil
}

// QUICListener listens with transport/quic and its default Config, on a
// socket of its own (Config.PacketConn, a *net.UDPConn, which gets the same
// batched I/O and GSO as one transport/quic would open).
func QUICListener(t TLS) (transport.Listener, func() error, error) {
	udp, err := listenUDP()
	if err != nil {
		return nil, nil, err
	}
	ln, err := jspquic.Listen("", t.Server, jspquic.Config{PacketConn: udp})
	if err != nil {
		udp.Close()
		return nil, nil, err
	}
	return ln, udp.Close, nil
}

// QUICDialer dials with transport/quic and its default Config.
func QUICDialer(ctx context.Context, addr string, t TLS) (transport.Conn, error) {
	return jspquic.Dial(ctx, addr, t.Client, jspquic.Config{})
}

// JSPQUIC is JSP with default session settings over transport/quic.
func JSPQUIC() Stack { return JSP(QUICListener, QUICDialer, session.Config{}) }

// QUICConfig is the quic-go configuration of the raw QUIC stack: the values
// transport/quic derives from its zero Config, so that flow-control windows,
// stream limits, timeouts and datagram support match the JSP stack.
func QUICConfig() *quicgo.Config {
	return &quicgo.Config{
		HandshakeIdleTimeout:           jspquic.DefaultHandshakeIdleTimeout,
		MaxIdleTimeout:                 jspquic.DefaultMaxIdleTimeout,
		KeepAlivePeriod:                jspquic.DefaultKeepAlivePeriod,
		InitialStreamReceiveWindow:     uint64(jspquic.DefaultInitialStreamReceiveWindow),
		MaxStreamReceiveWindow:         uint64(jspquic.DefaultMaxStreamReceiveWindow),
		InitialConnectionReceiveWindow: uint64(jspquic.DefaultInitialConnectionReceiveWindow),
		MaxConnectionReceiveWindow:     uint64(jspquic.DefaultMaxConnectionReceiveWindow),
		MaxIncomingStreams:             protocol.DefaultMaxStreams,
		MaxIncomingUniStreams:          -1,
		EnableDatagrams:                true,
	}
}

// RawQUIC is the raw QUIC stack: quic-go with QUICConfig and the same TLS
// configuration, no session. A stream starts with one mode byte; bulk
// streams carry the data and FIN, round trips share one echo stream.
func RawQUIC() Stack {
	return Stack{
		Name: "raw",
		Listen: func(t TLS) (Server, error) {
			udp, err := listenUDP()
			if err != nil {
				return nil, err
			}
			ln, err := quicgo.Listen(udp, t.Server, QUICConfig())
			if err != nil {
				udp.Close()
				return nil, fmt.Errorf("bench: raw QUIC listen: %w", err)
			}
			s := &rawQUICServer{serverBase: newServerBase(), ln: ln, udp: udp}
			s.wg.Go(s.acceptLoop)
			return s, nil
		},
		Connect: func(ctx context.Context, addr string, t TLS) (Conn, error) {
			qc, err := quicgo.DialAddr(ctx, addr, t.Client, QUICConfig())
			if err != nil {
				return nil, fmt.Errorf("bench: raw QUIC dial: %w", err)
			}
			c := &rawQUICConn{qc: qc}
			c.stop = context.AfterFunc(ctx, func() { _ = qc.CloseWithError(0, "") })
			return c, nil
		},
	}
}

type rawQUICServer struct {
	serverBase
	ln  *quicgo.Listener
	udp *net.UDPConn
}

func (s *rawQUICServer) Addr() string { return s.ln.Addr().String() }

func (s *rawQUICServer) Close() error {
	err := s.shutdown(s.ln.Close)
	if cerr := s.udp.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *rawQUICServer) acceptLoop() {
	for {
		// Not s.ctx: after Close the listener still hands out what is
		// queued, and those connections must be closed too.
		qc, err := s.ln.Accept(context.Background())
		if err != nil {
			return // closing
		}
		s.wg.Go(func() { s.serveConn(qc) })
	}
}

func (s *rawQUICServer) serveConn(qc *quicgo.Conn) {
	stop := context.AfterFunc(s.ctx, func() { _ = qc.CloseWithError(0, "") })
	defer stop()
	var wg sync.WaitGroup
	for {
		st, err := qc.AcceptStream(s.ctx)
		if err != nil {
			break // the connection ended
		}
		wg.Go(func() { s.serveStream(st) })
	}
	_ = qc.CloseWithError(0, "")
	wg.Wait()
}

func (s *rawQUICServer) serveStream(st *quicgo.Stream) {
	var mode [1]byte
	if _, err := io.ReadFull(st, mode[:]); err != nil {
		st.CancelWrite(0)
		return
	}
	switch mode[0] {
	case modeBulk, modeBulkVerify:
		ack, err := sink(st, make([]byte, ChunkSize), -1, mode[0] == modeBulkVerify)
		if err != nil {
			s.fail(err)
			st.CancelWrite(1)
			return
		}
		if _, err := st.Write(ack.append(nil)); err != nil {
			s.fail(fmt.Errorf("bench: raw QUIC send ack: %w", err))
			return
		}
		_ = st.Close()
	case modeEcho:
		_ = echo(st) // ends when the client closes the connection
		_ = st.Close()
	default:
		st.CancelRead(1)
		st.CancelWrite(1)
	}
}

type rawQUICConn struct {
	qc   *quicgo.Conn
	stop func() bool
	echo *quicgo.Stream // opened by the first Echo
}

func (c *rawQUICConn) Bulk(ctx context.Context, data []byte, verify bool) (Ack, error) {
	st, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return Ack{}, fmt.Errorf("bench: raw QUIC open stream: %w", err)
	}
	mode := []byte{modeBulk}
	if verify {
		mode[0] = modeBulkVerify
	}
	if _, err := st.Write(mode); err != nil {
		return Ack{}, fmt.Errorf("bench: raw QUIC send mode: %w", err)
	}
	if err := writeChunks(st, data); err != nil {
		st.CancelWrite(1)
		st.CancelRead(1)
		return Ack{}, err
	}
	if err := st.Close(); err != nil {
		return Ack{}, fmt.Errorf("bench: raw QUIC close stream: %w", err)
	}
	ack, err := readAck(st)
	if err != nil {
		st.CancelRead(1)
		return Ack{}, err
	}
	if err := expectEOF(st); err != nil {
		return Ack{}, err
	}
	return ack, nil
}

func (c *rawQUICConn) Echo(ctx context.Context, p, out []byte) error {
	if c.echo == nil {
		st, err := c.qc.OpenStreamSync(ctx)
		if err != nil {
			return fmt.Errorf("bench: raw QUIC open echo stream: %w", err)
		}
		if _, err := st.Write([]byte{modeEcho}); err != nil {
			return fmt.Errorf("bench: raw QUIC send mode: %w", err)
		}
		c.echo = st
	}
	if _, err := c.echo.Write(p); err != nil {
		return fmt.Errorf("bench: raw QUIC echo send: %w", err)
	}
	if _, err := io.ReadFull(c.echo, out[:len(p)]); err != nil {
		return fmt.Errorf("bench: raw QUIC echo receive: %w", err)
	}
	return nil
}

func (c *rawQUICConn) Close() error {
	c.stop()
	if err := c.qc.CloseWithError(0, ""); err != nil {
		return fmt.Errorf("bench: raw QUIC close: %w", err)
	}
	return nil
}
