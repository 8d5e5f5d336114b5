package bench

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// bulkHeaderLen is the raw TLS per-transfer header: the length (8 bytes,
// big endian) and a verify flag byte.
const bulkHeaderLen = 9

// RawTLS is the raw TCP stack: crypto/tls over TCP with the same TLS
// configuration, no link layer and no session. A connection starts with one
// mode byte; a bulk connection then carries length-prefixed transfers, each
// acknowledged, and an echo connection echoes every byte.
func RawTLS() Stack {
	return Stack{
		Name: "raw",
		Listen: func(t TLS) (Server, error) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("bench: raw TLS listen: %w", err)
			}
			s := &rawTLSServer{serverBase: newServerBase(), ln: ln, cfg: t.Server}
			s.wg.Go(s.acceptLoop)
			return s, nil
		},
		Connect: func(ctx context.Context, addr string, t TLS) (Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("bench: raw TLS dial: %w", err)
			}
			tc := tls.Client(nc, t.Client)
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return nil, fmt.Errorf("bench: raw TLS handshake: %w", err)
			}
			c := &rawTLSConn{tc: tc}
			c.stop = context.AfterFunc(ctx, func() { _ = nc.Close() })
			return c, nil
		},
	}
}

type rawTLSServer struct {
	serverBase
	ln  net.Listener
	cfg *tls.Config
}

func (s *rawTLSServer) Addr() string { return s.ln.Addr().String() }

func (s *rawTLSServer) Close() error { return s.shutdown(s.ln.Close) }

func (s *rawTLSServer) acceptLoop() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return // closing
		}
		s.wg.Go(func() { s.serveConn(nc) })
	}
}

func (s *rawTLSServer) serveConn(nc net.Conn) {
	stop := context.AfterFunc(s.ctx, func() { _ = nc.Close() })
	defer stop()
	defer nc.Close()
	tc := tls.Server(nc, s.cfg)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.fail(fmt.Errorf("bench: raw TLS server handshake: %w", err))
		return
	}
	var mode [1]byte
	if _, err := io.ReadFull(tc, mode[:]); err != nil {
		return // a handshake-only client hung up
	}
	switch mode[0] {
	case modeBulk:
		buf := make([]byte, ChunkSize)
		for {
			var hdr [bulkHeaderLen]byte
			if _, err := io.ReadFull(tc, hdr[:]); err != nil {
				if !errors.Is(err, io.EOF) {
					s.fail(fmt.Errorf("bench: raw TLS bulk header: %w", err))
				}
				return
			}
			n := int64(binary.BigEndian.Uint64(hdr[:8]))
			ack, err := sink(tc, buf, n, hdr[8] == 1)
			if err != nil {
				s.fail(err)
				return
			}
			if _, err := tc.Write(ack.append(nil)); err != nil {
				s.fail(fmt.Errorf("bench: raw TLS send ack: %w", err))
				return
			}
		}
	case modeEcho:
		_ = echo(tc) // ends when the client closes the connection
	}
}

type rawTLSConn struct {
	tc   *tls.Conn
	stop func() bool
	mode byte // 0 until the first operation picks bulk or echo
}

// setMode sends the mode byte before the first operation, and refuses to
// mix bulk and echo on one connection.
func (c *rawTLSConn) setMode(m byte) ([]byte, error) {
	switch c.mode {
	case m:
		return nil, nil
	case 0:
		c.mode = m
		return []byte{m}, nil
	}
	return nil, fmt.Errorf("bench: raw TLS connection in mode %q cannot do %q", c.mode, m)
}

func (c *rawTLSConn) Bulk(ctx context.Context, data []byte, verify bool) (Ack, error) {
	hdr, err := c.setMode(modeBulk)
	if err != nil {
		return Ack{}, err
	}
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(len(data)))
	flag := byte(0)
	if verify {
		flag = 1
	}
	if _, err := c.tc.Write(append(hdr, flag)); err != nil {
		return Ack{}, fmt.Errorf("bench: raw TLS bulk header: %w", err)
	}
	if err := writeChunks(c.tc, data); err != nil {
		return Ack{}, err
	}
	return readAck(c.tc)
}

func (c *rawTLSConn) Echo(ctx context.Context, p, out []byte) error {
	mode, err := c.setMode(modeEcho)
	if err != nil {
		return err
	}
	if mode != nil {
		if _, err := c.tc.Write(mode); err != nil {
			return fmt.Errorf("bench: raw TLS send mode: %w", err)
		}
	}
	if _, err := c.tc.Write(p); err != nil {
		return fmt.Errorf("bench: raw TLS echo send: %w", err)
	}
	if _, err := io.ReadFull(c.tc, out[:len(p)]); err != nil {
		return fmt.Errorf("bench: raw TLS echo receive: %w", err)
	}
	return nil
}

func (c *rawTLSConn) Close() error {
	c.stop()
	if err := c.tc.Close(); err != nil {
		return fmt.Errorf("bench: raw TLS close: %w", err)
	}
	return nil
}
