// Package transporttest is the conformance suite every transport.Conn
// implementation passes (JSP §7): streams (open and accept, echo, FIN,
// reset, stop sending, many concurrent streams, a large transfer checked
// with SHA-256, deadlines), datagrams (delivery, the size limit) and close
// propagation with a code. It uses only the transport interface, so QUIC,
// TCP/TLS, WebSocket and in-memory links run the same checks.
//
// Conventions the suite checks, which every transport follows:
//
//   - A Read after the peer's CancelWrite(code) fails with an error e where
//     jsperr.CodeOf(e) == STREAM_RESET and errors.Is(e, jsperr.New(code, ""))
//     holds; the same for a Write after the peer's CancelRead(code).
//   - After the peer's CloseWithError(code, reason), Context is done and
//     context.Cause is a *jsperr.Error with that code and reason and Remote
//     set.
//   - A stream becomes visible to AcceptStream with its first data, as in
//     QUIC; the suite always writes before it accepts.
package transporttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
)

// Factory returns a fresh connected pair. The suite closes both.
type Factory func(t *testing.T) (client, server transport.Conn)

// testTimeout bounds every subtest, so that a hang fails instead of
// stalling the whole run.
const testTimeout = 30 * time.Second

// Run runs the conformance suite against the transport that newPair
// builds.
func Run(t *testing.T, newPair Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, client, server transport.Conn)
	}{
		{"OpenAccept", testOpenAccept},
		{"Classes", testClasses},
		{"Echo", testEcho},
		{"HalfClose", testHalfClose},
		{"ServerOpens", testServerOpens},
		{"Reset", testReset},
		{"StopSending", testStopSending},
		{"ReadDeadline", testReadDeadline},
		{"ManyStreams", testManyStreams},
		{"LargeTransfer", testLargeTransfer},
		{"Datagrams", testDatagrams},
		{"DatagramTooLarge", testDatagramTooLarge},
		{"CloseFromClient", func(t *testing.T, ctx context.Context, c, s transport.Conn) { testClose(t, ctx, c, s) }},
		{"CloseFromServer", func(t *testing.T, ctx context.Context, c, s transport.Conn) { testClose(t, ctx, s, c) }},
		{"TLSState", testTLSState},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, server := newPair(t)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			// Deferred, not t.Cleanup: this runs before the cleanups that
			// join background goroutines, and unblocks them on failure.
			defer func() {
				cancel()
				client.CloseWithError(jsperr.NoError, "")
				server.CloseWithError(jsperr.NoError, "")
			}()
			tc.fn(t, ctx, client, server)
		})
	}
}

// goAsync runs fn on a goroutine that the test joins in its cleanup, after
// the connections have been closed, and reports fn's error.
func goAsync(t *testing.T, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("background task: %v", err)
		}
	})
}

func open(t *testing.T, ctx context.Context, c transport.Conn, class protocol.Class) transport.Stream {
	t.Helper()
	s, err := c.OpenStream(ctx, class)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	return s
}

func accept(t *testing.T, ctx context.Context, c transport.Conn) transport.Stream {
	t.Helper()
	s, err := c.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("AcceptStream: %v", err)
	}
	return s
}

func write(t *testing.T, s transport.Stream, b []byte) {
	t.Helper()
	if n, err := s.Write(b); err != nil || n != len(b) {
		t.Fatalf("Write: %d of %d bytes: %v", n, len(b), err)
	}
}

func readFull(t *testing.T, s transport.Stream, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(s, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

func testOpenAccept(t *testing.T, ctx context.Context, client, server transport.Conn) {
	cs := open(t, ctx, client, protocol.ClassChat)
	write(t, cs, []byte("hello"))
	ss := accept(t, ctx, server)
	if ss.ID() != cs.ID() {
		t.Errorf("accepted stream id %d, opened %d", ss.ID(), cs.ID())
	}
	if got := readFull(t, ss, 5); string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
	write(t, ss, []byte("world"))
	if got := readFull(t, cs, 5); string(got) != "world" {
		t.Fatalf("read %q", got)
	}
	// A second stream gets a different id of the same side.
	cs2 := open(t, ctx, client, protocol.ClassChat)
	if cs2.ID() == cs.ID() {
		t.Fatalf("two streams share id %d", cs.ID())
	}
}

func testClasses(t *testing.T, ctx context.Context, client, server transport.Conn) {
	for c := protocol.Class(0); c < protocol.NumClasses; c++ {
		cs := open(t, ctx, client, c)
		if cs.Class() != c {
			t.Errorf("opened %s stream reports %s", c, cs.Class())
		}
		write(t, cs, []byte{byte(c)})
		ss := accept(t, ctx, server)
		if ss.Class() != c {
			t.Errorf("accepted %s stream reports %s", c, ss.Class())
		}
		readFull(t, ss, 1)
	}
}

func testEcho(t *testing.T, ctx context.Context, client, server transport.Conn) {
	goAsync(t, func() error { return echoOne(ctx, server) })
	cs := open(t, ctx, client, protocol.ClassBulk)
	msg := bytes.Repeat([]byte("echo "), 20000)
	goAsync(t, func() error {
		if _, err := cs.Write(msg); err != nil {
			return err
		}
		return cs.Close()
	})
	got, err := io.ReadAll(cs)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo returned %d bytes, sent %d", len(got), len(msg))
	}
}

// echoOne accepts one stream and copies it back, closing after the FIN.
func echoOne(ctx context.Context, c transport.Conn) error {
	s, err := c.AcceptStream(ctx)
	if err != nil {
		return err
	}
	if _, err := io.Copy(s, s); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	return s.Close()
}

func testHalfClose(t *testing.T, ctx context.Context, client, server transport.Conn) {
	cs := open(t, ctx, client, protocol.ClassChat)
	write(t, cs, []byte("request"))
	if err := cs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := cs.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	ss := accept(t, ctx, server)
	got, err := io.ReadAll(ss)
	if err != nil || string(got) != "request" {
		t.Fatalf("server read %q, %v; want request then EOF", got, err)
	}
	// The other direction is still open.
	write(t, ss, []byte("response"))
	ss.Close()
	got, err = io.ReadAll(cs)
	if err != nil || string(got) != "response" {
		t.Fatalf("client read %q, %v", got, err)
	}
}

func testServerOpens(t *testing.T, ctx context.Context, client, server transport.Conn) {
	ss := open(t, ctx, server, protocol.ClassSystem)
	write(t, ss, []byte("push"))
	ss.Close()
	cs := accept(t, ctx, client)
	if got, err := io.ReadAll(cs); err != nil || string(got) != "push" {
		t.Fatalf("client read %q, %v", got, err)
	}
	if cs.ID() == 0 {
		t.Fatal("stream id 0")
	}
}

// checkStreamErr verifies the STREAM_RESET convention of the suite.
func checkStreamErr(t *testing.T, err error, code jsperr.Code) {
	t.Helper()
	if jsperr.CodeOf(err) != jsperr.StreamReset {
		t.Fatalf("error %v has code %s, want STREAM_RESET", err, jsperr.CodeOf(err))
	}
	if !errors.Is(err, jsperr.New(code, "")) {
		t.Fatalf("error %v does not carry the application code %s", err, code)
	}
}

func testReset(t *testing.T, ctx context.Context, client, server transport.Conn) {
	cs := open(t, ctx, client, protocol.ClassChat)
	write(t, cs, []byte("partial"))
	ss := accept(t, ctx, server)
	readFull(t, ss, 1)
	cs.CancelWrite(jsperr.Cancelled)
	if _, err := cs.Write([]byte("more")); err == nil {
		t.Fatal("Write after CancelWrite succeeded")
	}
	buf := make([]byte, 100)
	var err error
	for err == nil {
		_, err = ss.Read(buf)
	}
	checkStreamErr(t, err, jsperr.Cancelled)
}

func testStopSending(t *testing.T, ctx context.Context, client, server transport.Conn) {
	cs := open(t, ctx, client, protocol.ClassBulk)
	write(t, cs, []byte("x"))
	ss := accept(t, ctx, server)
	ss.CancelRead(jsperr.Forbidden)
	if _, err := ss.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after CancelRead succeeded")
	}
	cs.SetWriteDeadline(time.Now().Add(testTimeout / 2))
	chunk := make([]byte, 4096)
	var err error
	for err == nil {
		_, err = cs.Write(chunk)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("writes never failed after the peer's CancelRead")
	}
	checkStreamErr(t, err, jsperr.Forbidden)
}

func testReadDeadline(t *testing.T, ctx context.Context, client, server transport.Conn) {
	cs := open(t, ctx, client, protocol.ClassChat)
	write(t, cs, []byte("x"))
	ss := accept(t, ctx, server)
	readFull(t, ss, 1)
	ss.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := ss.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v", err)
	}
	// Clearing the deadline makes the stream usable again.
	ss.SetReadDeadline(time.Time{})
	write(t, cs, []byte("y"))
	if got := readFull(t, ss, 1); string(got) != "y" {
		t.Fatalf("read %q after clearing the deadline", got)
	}
}

func testManyStreams(t *testing.T, ctx context.Context, client, server transport.Conn) {
	const streams = 40
	goAsync(t, func() error {
		var wg sync.WaitGroup
		errs := make(chan error, streams)
		for i := 0; i < streams; i++ {
			s, err := server.AcceptStream(ctx)
			if err != nil {
				return err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := io.Copy(s, s); err != nil {
					errs <- err
					return
				}
				s.Close()
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	})
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- echoCheck(ctx, client, protocol.Class(i%protocol.NumClasses), 1000+i*997, uint64(i))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// echoCheck sends n pseudo-random bytes on a new stream and checks that
// the same bytes come back.
func echoCheck(ctx context.Context, c transport.Conn, class protocol.Class, n int, seed uint64) error {
	s, err := c.OpenStream(ctx, class)
	if err != nil {
		return err
	}
	msg := randomBytes(n, seed)
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(msg)
		if err == nil {
			err = s.Close()
		}
		werr <- err
	}()
	got, err := io.ReadAll(s)
	if e := <-werr; e != nil {
		return fmt.Errorf("stream %d: write: %w", s.ID(), e)
	}
	if err != nil {
		return fmt.Errorf("stream %d: read: %w", s.ID(), err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("stream %d: echo of %d bytes returned %d different bytes", s.ID(), n, len(got))
	}
	return nil
}

func randomBytes(n int, seed uint64) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func testLargeTransfer(t *testing.T, ctx context.Context, client, server transport.Conn) {
	size := 16 << 20
	if testing.Short() {
		size = 4 << 20
	}
	// The server hashes what it receives and answers with the digest.
	goAsync(t, func() error {
		s, err := server.AcceptStream(ctx)
		if err != nil {
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(h, s); err != nil {
			return fmt.Errorf("receiving: %w", err)
		}
		if _, err := s.Write(h.Sum(nil)); err != nil {
			return err
		}
		return s.Close()
	})
	cs := open(t, ctx, client, protocol.ClassBulk)
	r := rand.NewChaCha8([32]byte{1, 2})
	h := sha256.New()
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		r.Read(chunk)
		h.Write(chunk)
		write(t, cs, chunk)
	}
	cs.Close()
	got, err := io.ReadAll(cs)
	if err != nil {
		t.Fatalf("reading the digest: %v", err)
	}
	if !bytes.Equal(got, h.Sum(nil)) {
		t.Fatalf("SHA-256 of %d bytes differs: sent %x, received %x", size, h.Sum(nil), got)
	}
}

func testDatagrams(t *testing.T, ctx context.Context, client, server transport.Conn) {
	if client.MaxDatagramSize() < 100 {
		t.Fatalf("MaxDatagramSize %d is too small to be useful", client.MaxDatagramSize())
	}
	for _, dir := range []struct {
		name     string
		from, to transport.Conn
	}{{"client to server", client, server}, {"server to client", server, client}} {
		// Datagrams may be lost; send until one arrives, then check it.
		want := randomBytes(dir.from.MaxDatagramSize(), 7)
		rctx, cancel := context.WithCancel(ctx)
		got := make(chan []byte, 1)
		go func() {
			b, err := dir.to.ReceiveDatagram(rctx)
			if err != nil {
				b = nil
			}
			got <- b
		}()
		var b []byte
	send:
		for {
			if err := dir.from.SendDatagram(want, protocol.ClassMedia); err != nil {
				cancel()
				<-got
				t.Fatalf("%s: SendDatagram: %v", dir.name, err)
			}
			select {
			case b = <-got:
				break send
			case <-time.After(50 * time.Millisecond):
			}
		}
		cancel()
		if !bytes.Equal(b, want) {
			t.Fatalf("%s: received %d bytes, sent %d", dir.name, len(b), len(want))
		}
	}
}

func testDatagramTooLarge(t *testing.T, ctx context.Context, client, server transport.Conn) {
	err := client.SendDatagram(make([]byte, client.MaxDatagramSize()+1), protocol.ClassMedia)
	if jsperr.CodeOf(err) != jsperr.DatagramTooLarge {
		t.Fatalf("oversize datagram: %v, want DATAGRAM_TOO_LARGE", err)
	}
	if err := client.SendDatagram(make([]byte, client.MaxDatagramSize()), protocol.ClassMedia); err != nil {
		t.Fatalf("datagram of exactly MaxDatagramSize: %v", err)
	}
}

func testClose(t *testing.T, ctx context.Context, closer, peer transport.Conn) {
	// A stream in use on both sides sees the close too.
	s := open(t, ctx, peer, protocol.ClassChat)
	write(t, s, []byte("x"))
	as := accept(t, ctx, closer)
	readFull(t, as, 1)

	const reason = "maintenance window"
	if err := closer.CloseWithError(jsperr.GoingAway, reason); err != nil {
		t.Fatalf("CloseWithError: %v", err)
	}
	select {
	case <-closer.Context().Done():
	default:
		t.Fatal("closer's Context not done after CloseWithError")
	}
	select {
	case <-peer.Context().Done():
	case <-ctx.Done():
		t.Fatal("peer's Context not done after the close")
	}
	var je *jsperr.Error
	if cause := context.Cause(peer.Context()); !errors.As(cause, &je) {
		t.Fatalf("peer's cause %v is not a *jsperr.Error", cause)
	}
	if je.Code != jsperr.GoingAway || !je.Remote || je.Reason != reason {
		t.Fatalf("peer's cause = %+v, want remote GOING_AWAY %q", je, reason)
	}
	if cause := context.Cause(closer.Context()); jsperr.CodeOf(cause) != jsperr.GoingAway {
		t.Fatalf("closer's cause = %v", cause)
	}
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read on a closed connection succeeded")
	}
	if _, err := peer.OpenStream(ctx, protocol.ClassChat); err == nil {
		t.Fatal("OpenStream on a closed connection succeeded")
	}
	if _, err := peer.AcceptStream(ctx); err == nil {
		t.Fatal("AcceptStream on a closed connection succeeded")
	}
	if _, err := peer.ReceiveDatagram(ctx); err == nil {
		t.Fatal("ReceiveDatagram on a closed connection succeeded")
	}
}

func testTLSState(t *testing.T, ctx context.Context, client, server transport.Conn) {
	if client.Kind() != server.Kind() {
		t.Fatalf("kinds differ: %s and %s", client.Kind(), server.Kind())
	}
	if client.LocalAddr() == nil || client.RemoteAddr() == nil || server.LocalAddr() == nil || server.RemoteAddr() == nil {
		t.Fatal("an address is nil")
	}
	if client.Kind() == transport.KindMem {
		return
	}
	for _, c := range []transport.Conn{client, server} {
		st := c.TLS()
		if !st.HandshakeComplete || st.Version != tls.VersionTLS13 {
			t.Fatalf("%s: TLS handshake complete %v, version 0x%x; want TLS 1.3", c.Kind(), st.HandshakeComplete, st.Version)
		}
		if c.Kind() != transport.KindWebSocket && st.NegotiatedProtocol != protocol.ALPN {
			t.Fatalf("%s: ALPN %q, want %q", c.Kind(), st.NegotiatedProtocol, protocol.ALPN)
		}
	}
}
