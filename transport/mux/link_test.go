package mux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/qos"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/wire"
)

func TestMalformedInputClosesWithCode(t *testing.T) {
	window := int(protocol.DefaultStreamWindow)
	tests := []struct {
		name  string
		cfg   mux.Config
		input []byte
		code  jsperr.Code
	}{
		{"non-minimal varint", mux.Config{}, []byte{0x40, 0x01, 0x00, 0x01, 0x00}, jsperr.NonMinimalVarint},
		{"frame too large", mux.Config{MaxFrameSize: 2048, MaxChunk: 1024, MaxDatagramSize: 100}, wire.AppendHeader(nil, wire.Header{Type: wire.FrameStream, StreamID: 1, Length: 2049}), jsperr.FrameTooLarge},
		{"stream frame on stream 0", mux.Config{}, streamFrame(0, []byte("x"), false), jsperr.ProtocolViolation},
		{"frame for a stream never opened here", mux.Config{}, streamFrame(2, []byte("x"), false), jsperr.ProtocolViolation},
		{"data after FIN", mux.Config{}, concat(streamFrame(1, []byte("a"), true), streamFrame(1, []byte("b"), false)), jsperr.ProtocolViolation},
		{"session frame on the link", mux.Config{}, frame(wire.FrameHello, 0, 0, nil), jsperr.ProtocolViolation},
		{"window update with trailing bytes", mux.Config{}, frame(wire.FrameWindowUpdate, 0, 0, []byte{1, 2}), jsperr.MalformedFrame},
		{"reset without code", mux.Config{}, frame(wire.FrameResetStream, 0, 1, nil), jsperr.Truncated},
		{"stop sending non-minimal code", mux.Config{}, frame(wire.FrameStopSending, 0, 1, []byte{0x40, 0x05}), jsperr.NonMinimalVarint},
		{"datagram on a stream", mux.Config{}, frame(wire.FrameLinkDatagram, 0, 1, []byte("d")), jsperr.ProtocolViolation},
		{"link close on a stream", mux.Config{}, frame(wire.FrameLinkClose, 0, 1, []byte{0}), jsperr.ProtocolViolation},
		{"link close without code", mux.Config{}, frame(wire.FrameLinkClose, 0, 0, nil), jsperr.Truncated},
		{"stream window exceeded", mux.Config{}, concat(streamFrame(1, make([]byte, window), false), streamFrame(1, []byte{1}, false)), jsperr.FlowControlError},
		{"connection window exceeded", mux.Config{}, concat(
			streamFrame(1, make([]byte, window), false), streamFrame(3, make([]byte, window), false),
			streamFrame(5, make([]byte, window), false), streamFrame(7, make([]byte, window), false),
			streamFrame(9, []byte{1}, false)), jsperr.FlowControlError},
		{"window over 2^62", mux.Config{}, varintFrame(wire.FrameWindowUpdate, 0, wire.MaxVarint), jsperr.FlowControlError},
		{"too many streams", mux.Config{MaxStreams: 3}, concat(
			streamFrame(1, []byte("a"), false), streamFrame(3, []byte("b"), false),
			streamFrame(5, []byte("c"), false), streamFrame(7, []byte("d"), false)), jsperr.StreamLimit},
		{"implicitly too many streams", mux.Config{MaxStreams: 3}, streamFrame(7, []byte("a"), false), jsperr.StreamLimit},
		{"huge stream id", mux.Config{}, streamFrame(wire.MaxVarint, []byte("a"), false), jsperr.StreamLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRaw(t, tc.cfg, false, 0, true)
			r.send(tc.input)
			f := r.waitFrame(func(f rawFrame) bool { return f.h.Type == wire.FrameLinkClose })
			code, _, err := wire.ParseVarint(f.payload)
			if err != nil || jsperr.Code(code) != tc.code {
				t.Fatalf("LINK_CLOSE code %s (%v), want %s; reason %q", jsperr.Code(code), err, tc.code, f.payload)
			}
			je := waitClosed(t, r.conn)
			if je.Code != tc.code || je.Remote {
				t.Fatalf("cause %v, want local %s", je, tc.code)
			}
		})
	}
}

func TestTruncatedInputClosesWithCode(t *testing.T) {
	r := newRaw(t, mux.Config{}, false, 0, true)
	r.send(streamFrame(1, []byte("hello"), false)[:5])
	r.end.CloseWrite()
	if je := waitClosed(t, r.conn); je.Code != jsperr.Truncated {
		t.Fatalf("cause %v, want TRUNCATED", je)
	}
}

func TestUnknownFramesAreSkipped(t *testing.T) {
	r := newRaw(t, mux.Config{}, false, 0, true)
	r.send(concat(
		frame(0x09, 0, 0, []byte("future link frame")),
		frame(0x1234, 0xff, 77, []byte("with a two-byte type")),
		streamFrame(1, []byte("ok"), true),
	))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := r.conn.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s); got != "ok" {
		t.Fatalf("read %q", got)
	}
	if s.Class() != protocol.ClassChat {
		t.Fatalf("class %s, want chat from the frame flags", s.Class())
	}
}

func TestRemoteCloseAndEOF(t *testing.T) {
	t.Run("LINK_CLOSE", func(t *testing.T) {
		r := newRaw(t, mux.Config{}, true, 0, true)
		r.send(linkClose(jsperr.GoingAway, "draining"))
		je := waitClosed(t, r.conn)
		if je.Code != jsperr.GoingAway || !je.Remote || je.Reason != "draining" {
			t.Fatalf("cause %+v", je)
		}
		if r.count(wire.FrameLinkClose) != 0 {
			t.Fatal("answered a LINK_CLOSE with another")
		}
	})
	t.Run("EOF", func(t *testing.T) {
		r := newRaw(t, mux.Config{}, true, 0, true)
		r.end.Close()
		if je := waitClosed(t, r.conn); je.Code != jsperr.TransportClosed {
			t.Fatalf("cause %v, want TRANSPORT_CLOSED", je)
		}
	})
	t.Run("invalid UTF-8 reason", func(t *testing.T) {
		r := newRaw(t, mux.Config{}, true, 0, true)
		r.send(linkClose(jsperr.Code(0x9999), "bad \xff byte"))
		// JSP §3.4: the code is kept and the reason dropped.
		je := waitClosed(t, r.conn)
		if je.Code != 0x9999 || je.Reason != "" || !je.Remote {
			t.Fatalf("cause %+v", je)
		}
	})
}

func TestSlowConsumer(t *testing.T) {
	// The raw peer never reads: the writer's write deadline must fire.
	r := newRaw(t, mux.Config{WriteTimeout: 100 * time.Millisecond}, true, 4096, false)
	s, err := r.conn.OpenStream(context.Background(), protocol.ClassBulk)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Write(make([]byte, 1<<20))
	if jsperr.CodeOf(err) != jsperr.SlowConsumer {
		t.Fatalf("Write to a peer that reads nothing: %v, want SLOW_CONSUMER", err)
	}
	if je := waitClosed(t, r.conn); je.Code != jsperr.SlowConsumer {
		t.Fatalf("cause %v", je)
	}
}

func TestSlowStreamDoesNotStallOthers(t *testing.T) {
	client, server := memtransport.NewPair(mux.Config{})
	defer client.Close()
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	stuck, _ := client.OpenStream(ctx, protocol.ClassBulk)
	stuckErr := make(chan error, 1)
	go func() {
		// Nobody reads this stream: the write must stall at the window.
		_, err := stuck.Write(make([]byte, 4<<20))
		stuckErr <- err
	}()
	fast, _ := client.OpenStream(ctx, protocol.ClassBulk)
	const size = 4 << 20
	go func() {
		fast.Write(make([]byte, size))
		fast.Close()
	}()
	var got int64
	for got == 0 || got < size {
		s, err := server.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.ID() != fast.ID() {
			continue // the stuck stream: accepted, never read
		}
		got, err = io.Copy(io.Discard, s)
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-stuckErr:
		t.Fatalf("the unread stream's write finished: %v", err)
	default:
	}
	if st := client.Stats(); st.WritesBlockedOnCredit == 0 {
		t.Fatal("the unread stream never waited for credit")
	}
	stuck.CancelWrite(jsperr.Cancelled)
	if err := <-stuckErr; jsperr.CodeOf(err) != jsperr.StreamReset {
		t.Fatalf("stuck write after CancelWrite: %v", err)
	}
}

func TestWriteDeadlineWhileBlockedOnCredit(t *testing.T) {
	client, server := memtransport.NewPair(mux.Config{})
	defer client.Close()
	defer server.Close()
	s, _ := client.OpenStream(context.Background(), protocol.ClassChat)
	s.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := s.Write(make([]byte, 1<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v, want deadline exceeded", err)
	}
	if n != int(protocol.DefaultStreamWindow) {
		t.Fatalf("wrote %d bytes before the deadline, want the window %d", n, protocol.DefaultStreamWindow)
	}
}

func TestStreamLimitOpenerWaits(t *testing.T) {
	cfg := mux.Config{MaxStreams: 2, PeerMaxStreams: 2}
	client, server := memtransport.NewPair(cfg)
	defer client.Close()
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	a, _ := client.OpenStream(ctx, protocol.ClassChat)
	b, _ := client.OpenStream(ctx, protocol.ClassChat)
	short, cancelShort := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancelShort()
	if _, err := client.OpenStream(short, protocol.ClassChat); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third OpenStream: %v, want to wait for the limit", err)
	}
	// Finish a in both directions: its slot frees up.
	a.Write([]byte("a"))
	a.Close()
	sa, _ := server.AcceptStream(ctx)
	readAll(t, sa)
	sa.Close()
	readAll(t, a)
	c, err := client.OpenStream(ctx, protocol.ClassChat)
	if err != nil {
		t.Fatalf("OpenStream after a slot freed: %v", err)
	}
	_ = b
	_ = c
}

// TestStreamLimitChurn opens and finishes many streams as fast as the limit
// allows: the opener must never get ahead of the peer's count.
func TestStreamLimitChurn(t *testing.T) {
	cfg := mux.Config{MaxStreams: 3, PeerMaxStreams: 3}
	client, server := memtransport.NewPair(cfg)
	defer client.Close()
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const total = 200
	serverDone := make(chan error, 1)
	go func() {
		var wg sync.WaitGroup
		defer func() { wg.Wait() }()
		for i := 0; i < total; i++ {
			s, err := server.AcceptStream(ctx)
			if err != nil {
				serverDone <- err
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(s, s)
				s.Close()
			}()
		}
		serverDone <- nil
	}()
	var wg sync.WaitGroup
	errs := make(chan error, total)
	for i := 0; i < total; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := client.OpenStream(ctx, protocol.ClassChat)
			if err != nil {
				errs <- err
				return
			}
			msg := fmt.Sprint(i)
			s.Write([]byte(msg))
			s.Close()
			b, err := io.ReadAll(s)
			if err != nil || string(b) != msg {
				errs <- fmt.Errorf("stream %d: %q %v", s.ID(), b, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := <-serverDone; err != nil {
		t.Fatal(err)
	}
	if client.Context().Err() != nil {
		t.Fatalf("link closed: %v", context.Cause(client.Context()))
	}
}

func TestDatagramsStaleAtSenderAreDropped(t *testing.T) {
	cfg := mux.Config{DatagramMaxAge: 20 * time.Millisecond, DatagramQueueLength: 32}
	r := newRaw(t, cfg, true, 2048, false) // the peer reads nothing for now
	payload := make([]byte, 1000)
	const total = 3000
	for i := 0; i < total; i++ {
		if err := r.conn.SendDatagram(payload, protocol.ClassMedia); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if i%500 == 499 {
			time.Sleep(30 * time.Millisecond) // let the queued ones go stale
		}
		st := r.conn.Stats()
		if q := st.Queues[protocol.ClassMedia]; q.Len > cfg.DatagramQueueLength || q.Bytes > cfg.DatagramQueueLength*(1000+wire.MaxHeaderLen) {
			t.Fatalf("datagram %d: %d queued (%d bytes), over the bound", i, q.Len, q.Bytes)
		}
	}
	st := r.conn.Stats()
	if st.DatagramsExpired == 0 || st.DatagramsDropped == 0 {
		t.Fatalf("expired %d, dropped %d: want both > 0", st.DatagramsExpired, st.DatagramsDropped)
	}
	// Now read: the stale datagrams still queued must never arrive.
	time.Sleep(30 * time.Millisecond)
	r.startReading()
	s, _ := r.conn.OpenStream(context.Background(), protocol.ClassSystem)
	s.Write([]byte("sync"))
	r.waitFrame(func(f rawFrame) bool { return f.h.Type == wire.FrameStream })
	st = r.conn.Stats()
	accounted := st.DatagramsSent + st.DatagramsExpired + st.DatagramsDropped
	if accounted != total {
		t.Fatalf("sent %d + expired %d + dropped %d = %d, want %d", st.DatagramsSent, st.DatagramsExpired, st.DatagramsDropped, accounted, total)
	}
	if got := r.count(wire.FrameLinkDatagram); uint64(got) != st.DatagramsSent {
		t.Fatalf("peer got %d datagrams, sender counted %d sent", got, st.DatagramsSent)
	}
	t.Logf("of %d datagrams: %d sent, %d expired at the sender, %d dropped (queue full)", total, st.DatagramsSent, st.DatagramsExpired, st.DatagramsDropped)
}

func TestDatagramReceiveQueueDropsOldest(t *testing.T) {
	r := newRaw(t, mux.Config{DatagramRecvQueueLength: 4}, false, 0, true)
	var in []byte
	for i := 0; i < 10; i++ {
		in = append(in, frame(wire.FrameLinkDatagram, 0, 0, []byte{byte('0' + i)})...)
	}
	in = append(in, frame(wire.FrameLinkDatagram, 0, 0, make([]byte, 2000))...) // over MaxDatagramSize
	in = append(in, streamFrame(1, nil, true)...)                               // marks the end
	r.send(in)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.conn.AcceptStream(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 4; i++ {
		b, err := r.conn.ReceiveDatagram(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	if fmt.Sprint(got) != "[6 7 8 9]" {
		t.Fatalf("received %v, want the newest four", got)
	}
	if st := r.conn.Stats(); st.DatagramsRecvDropped != 7 || st.DatagramsReceived != 10 {
		t.Fatalf("received %d, dropped %d", st.DatagramsReceived, st.DatagramsRecvDropped)
	}
}

func TestWritesAreCoalesced(t *testing.T) {
	// A peer slow to start reading makes frames pile up behind the first
	// write; the writer must then send them in few writes.
	r := newRaw(t, mux.Config{}, true, 1024, false)
	ctx := context.Background()
	first, _ := r.conn.OpenStream(ctx, protocol.ClassBulk)
	first.Write(make([]byte, 4000)) // fills the pipe: the writer blocks
	const frames = 200
	for i := 0; i < frames; i++ {
		s, err := r.conn.OpenStream(ctx, protocol.ClassChat)
		if err != nil {
			t.Fatal(err)
		}
		s.Write([]byte("small message"))
		s.Close()
	}
	r.startReading()
	r.waitFrame(func(f rawFrame) bool { return f.h.StreamID == protocol.StreamID(2*frames+1) })
	// The writer counts a write when it returns, which may be just after
	// the peer has read it.
	st := r.conn.Stats()
	for deadline := time.Now().Add(5 * time.Second); st.FramesWritten < frames+1; st = r.conn.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames written, want %d", st.FramesWritten, frames+1)
		}
		time.Sleep(time.Millisecond)
	}
	if st.Writes > 10 {
		t.Fatalf("%d frames took %d writes: not coalesced", st.FramesWritten, st.Writes)
	}
	t.Logf("%d frames in %d writes (%.1f frames per write)", st.FramesWritten, st.Writes, float64(st.FramesWritten)/float64(st.Writes))
}

func TestQoSPriorityOnTheWire(t *testing.T) {
	// With the writer blocked, queue bulk data and then a system stream's
	// data: the system frame must be written before the queued bulk.
	r := newRaw(t, mux.Config{}, true, 1024, false)
	ctx := context.Background()
	bulk, _ := r.conn.OpenStream(ctx, protocol.ClassBulk)
	bulk.Write(make([]byte, 200<<10))
	sys, _ := r.conn.OpenStream(ctx, protocol.ClassSystem)
	sys.Write([]byte("heartbeat"))
	r.startReading()
	r.waitFrame(func(f rawFrame) bool { return f.h.StreamID == sys.ID() })
	r.mu.Lock()
	defer r.mu.Unlock()
	bulkBefore := 0
	for _, f := range r.frames {
		if f.h.StreamID == sys.ID() {
			break
		}
		bulkBefore += len(f.payload)
	}
	// Only what the writer had already taken (one batch) may precede it.
	if bulkBefore > mux.DefaultMaxWriteBatch+int(protocol.DefaultMaxLinkChunk) {
		t.Fatalf("%d bulk bytes went out before the system frame", bulkBefore)
	}
}

func TestCloseIsIdempotentAndCodesAreClamped(t *testing.T) {
	r := newRaw(t, mux.Config{}, true, 0, true)
	s, _ := r.conn.OpenStream(context.Background(), protocol.ClassChat)
	s.CancelWrite(jsperr.Code(1 << 63)) // not encodable as a varint: sent as INTERNAL
	f := r.waitFrame(func(f rawFrame) bool { return f.h.Type == wire.FrameResetStream })
	if code, _, _ := wire.ParseVarint(f.payload); jsperr.Code(code) != jsperr.Internal {
		t.Fatalf("reset code %d", code)
	}
	r.conn.CloseWithError(jsperr.Code(1<<63), strings.Repeat("long reason ", 1000))
	r.conn.CloseWithError(jsperr.Blocked, "second close is ignored")
	f = r.waitFrame(func(f rawFrame) bool { return f.h.Type == wire.FrameLinkClose })
	if len(f.payload) > 1100 {
		t.Fatalf("LINK_CLOSE of %d bytes: the reason is not capped", len(f.payload))
	}
	if je := waitClosed(t, r.conn); je.Code != jsperr.Code(1<<63) {
		t.Fatalf("local cause %v", je)
	}
	if err := r.conn.SendDatagram([]byte("x"), protocol.ClassMedia); err == nil {
		t.Fatal("SendDatagram after close succeeded")
	}
}

func TestLargerWindowsAreGranted(t *testing.T) {
	cfg := mux.Config{StreamWindow: 4 << 20, ConnWindow: 8 << 20}
	client, server := memtransport.NewPair(cfg)
	defer client.Close()
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, _ := client.OpenStream(ctx, protocol.ClassBulk)
	go func() {
		s.Write(bytes.Repeat([]byte{7}, 3<<20))
		s.Close()
	}()
	ss, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, ss); len(got) != 3<<20 {
		t.Fatalf("read %d bytes", len(got))
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []mux.Config{
		{StreamWindow: 1024},
		{ConnWindow: 1024},
		{MaxStreams: -1},
		{MaxChunk: -1},
		{DatagramQueueLength: -1},
		{WriteTimeout: -time.Second},
		{MaxFrameSize: 1000},       // smaller than the default chunk
		{MaxDatagramSize: 2 << 20}, // larger than the default frame
		{QoS: qosConfigWithNegativeQuantum()},
	}
	for i, cfg := range bad {
		if err := cfg.Validate(); err == nil {
			t.Errorf("config %d accepted: %+v", i, cfg)
		}
	}
	var zero mux.Config
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
}

func TestConnIdentity(t *testing.T) {
	client, server := memtransport.NewPair(mux.Config{})
	defer client.Close()
	defer server.Close()
	var _ transport.Conn = client
	if client.Kind() != transport.KindMem || client.LocalAddr().String() != "mem-client" || server.RemoteAddr().String() != "mem-client" {
		t.Fatalf("kind %s local %v remote %v", client.Kind(), client.LocalAddr(), server.RemoteAddr())
	}
	if client.MaxDatagramSize() != int(protocol.DefaultMaxDatagramPayload) {
		t.Fatalf("MaxDatagramSize %d", client.MaxDatagramSize())
	}
	a, b := memtransport.Pipe(0)
	c := mux.New(a, mux.Config{}, true)
	if c.LocalAddr() == nil || c.Kind() != transport.KindTCP {
		t.Fatalf("addresses not taken from the byte stream: %v %s", c.LocalAddr(), c.Kind())
	}
	b.Close()
	c.Close()
}

func qosConfigWithNegativeQuantum() (c qos.Config) {
	c.Quantum = -1
	return c
}

func TestControlFramesDoNotAnnounceStreams(t *testing.T) {
	// STOP_SENDING on a new peer stream opens it (and is answered with
	// RESET_STREAM) but only its first STREAM frame hands it to
	// AcceptStream, with that frame's class.
	r := newRaw(t, mux.Config{}, false, 0, true)
	r.send(varintFrame(wire.FrameStopSending, 1, uint64(jsperr.Cancelled)))
	f := r.waitFrame(func(f rawFrame) bool { return f.h.Type == wire.FrameResetStream })
	if f.h.StreamID != 1 || f.h.Flags != 0 {
		t.Fatalf("reset %v, want stream 1 with flags 0", f.h)
	}
	short, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if s, err := r.conn.AcceptStream(short); err == nil {
		t.Fatalf("stream %d announced by STOP_SENDING", s.ID())
	}
	flags := wire.Flags(0).WithClass(protocol.ClassMedia) | wire.FlagFIN
	r.send(frame(wire.FrameStream, flags, 1, []byte("late data")))
	ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	s, err := r.conn.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != 1 || s.Class() != protocol.ClassMedia {
		t.Fatalf("accepted stream %d class %s", s.ID(), s.Class())
	}
	if got := readAll(t, s); got != "late data" {
		t.Fatalf("read %q", got)
	}
}
