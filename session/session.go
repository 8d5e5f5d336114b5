// Package session runs one JSP/1 session over a transport connection
// (JSP §5, §11).
//
// The flow:
//
//	client                                 server
//	  | -- opens control stream (system) --> |
//	  | -- HELLO {versions, caps, ...} ----> |  picks highest common version
//	  | <----- WELCOME {version, id, ...} -- |  or ERROR {UNSUPPORTED_VERSION,
//	  |                                      |         supported}
//	  | == PING / PONG every heartbeat ===== |  idle timeout closes dead peers
//	  | == messages on the control stream == |  QoS-scheduled, batched,
//	  | == application streams ============= |  each opened with STREAM_OPEN
//	  | == DATAGRAM frames in datagrams ==== |  fragmented, reassembled
//	  | <----------- GOAWAY ---------------- |  graceful shutdown
//
// A Session owns these goroutines, joined by Close: the control-stream
// reader, the stream acceptor and the datagram receiver (over transports
// that report input by callback, such as transport/mux, each runs only
// while there is input; over the others, QUIC, a server with the
// `announce` capability in effect starts the acceptor and the receiver
// only when the client announces streams or datagrams, JSP §5.14, D38),
// and the sender (QoS scheduling and batching)
// while frames are queued; the heartbeat/idle check is a timer callback
// joined the same way (heartbeat.go). With HandleMessages, a hand-off
// goroutine runs the application's callback while received messages
// wait; Wait joins it (inbox.go, D34). With DeliverInline, the goroutine
// that received a message calls the application's function itself, and
// nothing is queued (D47).
// Other goroutines interact by enqueueing frames and reading from bounded
// queues.
package session

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/qos"
	"github.com/jetstreamproto/jsp/reliability/fragment"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// Role says which side of the connection a session is.
type Role uint8

// Session roles.
const (
	RoleClient Role = iota
	RoleServer
)

// Errors callers branch on.
var (
	// ErrClosed is returned by operations on a closed session.
	ErrClosed = errors.New("session: closed")
)

// Incoming is one message received from the peer.
type Incoming struct {
	// Type is the frame type that carried the message.
	Type wire.FrameType
	// Flags are the frame's flags (class, SIGNED, ...).
	Flags wire.Flags
	// Envelope is set for envelope-carrying frames (PUBLISH, EVENT, COMMAND,
	// REPLY, NOTIFY, MESSAGE).
	Envelope *wire.Envelope
	// Message is set for the other session messages (SUBSCRIBE, ACK, ...).
	Message wire.Message
	// Delivery is how the message travelled.
	Delivery Delivery
}

// Session is one established JSP session.
type Session struct {
	conn    transport.Conn
	role    Role
	cfg     *Config // shared by the sessions of one Acceptor (D34); never changed
	ctl     transport.Stream
	send    *sender
	version protocol.Version
	id      []byte
	hello   *wire.Hello   // the client's HELLO (on the server, its client fields only)
	welcome *wire.Welcome // the server's WELCOME
	zstd    bool          // both sides offered zstd
	// ann is what a client has announced (JSP §5.14); unannounced, on a
	// server with CapAnnounce in effect, the intake not yet started: set
	// by Accept, then owned by the control reader (startAnnounced).
	ann         announcer
	unannounced wire.Uses
	// compressMisses counts payloads in a row that zstd did not shrink;
	// compressSkips counts attempts skipped since (see worthCompressing).
	compressMisses atomic.Int32
	compressSkips  atomic.Int32
	// identity is set by the server's Authenticator before the session
	// starts and never changes.
	identity Identity
	// resumeState is what ServerOptions.Resume returned for a resumed
	// session (server side); nil otherwise. Set before the session starts.
	resumeState any

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	heartbeat atomic.Int64 // current interval, ns
	hb        heartbeatState
	lastRecv  atomic.Int64 // unix ns of the last frame from the peer

	// recvMu guards the received messages' destination: recvQ, the
	// queues Recv reads (made by the first message or Recv), or the
	// hand-off to handler, set by HandleMessages (inbox.go); recvClosed
	// is set when the session ends.
	recvMu     sync.Mutex
	recvQ      *qos.RecvQueues[Incoming] // guarded by recvMu
	handler    func(Incoming) bool       // guarded by recvMu
	handoff    *qos.Scheduler[Incoming]  // guarded by recvMu; messages for handler, nil while none
	handing    bool                      // guarded by recvMu: a hand-off goroutine runs
	halted     bool                      // guarded by recvMu: handler returned false; messages are dropped
	recvClosed bool                      // guarded by recvMu
	recvSealed bool                      // guarded by recvMu: Wait has begun joining the hand-off
	handoffWG  sync.WaitGroup            // joins the hand-off goroutines
	onEnd      func()                    // guarded by recvMu: OnEnd's function, until the end
	// inline is DeliverInline's function, set once (under recvMu and
	// inlineMu); inlineMu makes its calls one at a time and in order.
	inline   atomic.Pointer[func(Incoming)]
	inlineMu sync.Mutex
	// queues holds the bounded queues of peer streams, datagrams, media
	// flows and NACKs, made by the first use (arrivals): a server that
	// takes its streams and datagrams by callback (HandleArrivals) and no
	// media never allocates them, some 4 KB per session (D27).
	queues     atomic.Pointer[arrivalQueues]
	queuesOnce sync.Once
	// intake, when set, takes peer streams and datagrams instead of the
	// streams and dgrams queues (HandleArrivals).
	intakeMu sync.Mutex
	intake   func(*Stream, []byte) // guarded by intakeMu

	reasm map[wire.FlowID]*fragment.Reassembler // owned by the datagram receiver; made by the first fragment
	// mediaFlows counts reassemblers of media flows; owned by the datagram
	// receiver.
	mediaFlows int
	dgramID    atomic.Uint64

	// pending and pings are made by their first entry: an idle server
	// session has neither (D34).
	pendingMu sync.Mutex
	pending   map[string]chan reply         // guarded by pendingMu; COMMAND id -> reply
	pings     map[uint64]chan time.Duration // guarded by pendingMu; PING id -> RTT
	pingID    uint64                        // guarded by pendingMu

	goawayMu sync.Mutex
	goaway   *wire.Goaway  // guarded by goawayMu
	goawayCh chan struct{} // guarded by goawayMu; made by GoingAway, closed by the peer's GOAWAY

	rtt rttStats

	// reading and arrivals run the control reader and the stream and
	// datagram intake on demand (ondemand.go); nil when the transport has
	// no callbacks and goroutines block instead. Set by start.
	reading  *demand
	arrivals *demand
	// ctlReader is the on-demand control reader's frame reader, owned by
	// its runs (one at a time, ordered by demand's lock); nil between
	// runs when it held nothing (readAvailable).
	ctlReader *wire.FrameReader

	closeOnce sync.Once
}

// Version returns the negotiated protocol version.
func (s *Session) Version() protocol.Version { return s.version }

// ID returns the session id assigned by the server.
func (s *Session) ID() []byte { return s.id }

// Hello returns the client's HELLO. On the server it carries the client's
// name, version, platform, battery flag, heartbeat and frame size only:
// the versions, capabilities, credential and resume request are consumed
// by the handshake and not kept.
func (s *Session) Hello() *wire.Hello { return s.hello }

// Welcome returns the server's WELCOME.
func (s *Session) Welcome() *wire.Welcome { return s.welcome }

// Identity returns who the client is, as the server's Authenticator said
// (server side only; zero on the client).
func (s *Session) Identity() Identity { return s.identity }

// ResumeToken returns the resume token of the session's WELCOME (JSP
// §5.2): the one the server issued, or the one the client received; nil
// when resumption is off. A token is good for one resume.
func (s *Session) ResumeToken() []byte { return s.welcome.ResumeToken }

// Resumed reports whether the session continues the one named in HELLO
// `resume` (WELCOME `resumed`, JSP §5.2).
func (s *Session) Resumed() bool { return s.welcome.Resumed }

// ResumeState returns, on the server, what ServerOptions.Resume returned
// for a resumed session; nil for a new session and on the client.
func (s *Session) ResumeState() any { return s.resumeState }

// HasCapability reports whether capability c is in effect: offered by the
// client and accepted in WELCOME (JSP §8.2).
func (s *Session) HasCapability(c string) bool {
	return s.welcome != nil && hasCap(s.welcome.Caps, c)
}

// Conn returns the underlying transport connection.
func (s *Session) Conn() transport.Conn { return s.conn }

// Context is cancelled when the session ends; context.Cause tells why.
func (s *Session) Context() context.Context { return s.ctx }

// Err returns why the session ended, or nil while it runs.
func (s *Session) Err() error {
	if s.ctx.Err() == nil {
		return nil
	}
	return context.Cause(s.ctx)
}

func newSession(conn transport.Conn, ctl transport.Stream, role Role, cfg *Config) *Session {
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Session{
		conn:   conn,
		role:   role,
		cfg:    cfg,
		ctl:    ctl,
		ctx:    ctx,
		cancel: cancel,
	}
	s.lastRecv.Store(cfg.Now().UnixNano())
	return s
}

// arrivalQueues are the session's bounded queues of what the peer sends
// outside the control stream; each holds Config.AcceptQueueLength.
type arrivalQueues struct {
	streams chan *Stream
	dgrams  chan []byte
	flows   chan FlowDatagram
	nacks   chan *wire.Nack
}

// arrivals returns the session's arrival queues, making them on first use.
func (s *Session) arrivalQueues() *arrivalQueues {
	if q := s.queues.Load(); q != nil {
		return q
	}
	s.queuesOnce.Do(func() {
		n := s.cfg.AcceptQueueLength
		s.queues.Store(&arrivalQueues{
			streams: make(chan *Stream, n),
			dgrams:  make(chan []byte, n),
			flows:   make(chan FlowDatagram, n),
			nacks:   make(chan *wire.Nack, n),
		})
	})
	return s.queues.Load()
}

// logger returns the session's logger, which names its role, peer and
// transport. It is built for each message: a session logs rarely, and a
// logger made up front would cost every idle session its formatted
// attributes (D34).
func (s *Session) logger() *slog.Logger {
	return s.cfg.Logger.With("role", roleName(s.role), "remote", s.conn.RemoteAddr().String(), "transport", string(s.conn.Kind()))
}

func roleName(r Role) string {
	if r == RoleServer {
		return "server"
	}
	return "client"
}

// start launches the session's goroutines after the handshake. The reader
// is given the control stream's frame reader so that bytes already buffered
// during the handshake are not lost.
func (s *Session) start(fr *wire.FrameReader) {
	s.send = newSender(s.ctl, *s.cfg)
	s.send.onError = func(err error) { s.fail(fmt.Errorf("session write: %w", err)) }
	// The sender's goroutine runs only while frames are queued (D27).
	s.send.ctx, s.send.wg = s.ctx, &s.wg
	// The control reader, stream acceptor and datagram receiver run only
	// while there is input when the transport reports it by callback
	// (ondemand.go, D27); otherwise each is a goroutine blocked on it.
	s.prepareOnDemand(fr)
	// Read before the control reader starts: from then on it owns
	// unannounced.
	unannounced := s.unannounced
	if s.reading == nil {
		s.run("control reader", func(ctx context.Context) error { return s.readControl(fr) })
	}
	if s.arrivals == nil {
		// Under CapAnnounce each starts when the client announces it
		// (announce.go, JSP §5.14, D38).
		if !unannounced.Has(wire.UsesStreams) {
			s.run("stream acceptor", s.acceptStreams)
		}
		if !unannounced.Has(wire.UsesDatagrams) {
			s.run("datagram receiver", s.receiveDatagrams)
		}
	}
	s.startOnDemand(fr)
	// The heartbeat and the transport watch run as timer and context
	// callbacks, not goroutines that only wait (heartbeat.go, D24).
	s.startHeartbeat()
}

// run starts a goroutine owned by the session; its error ends the session.
func (s *Session) run(name string, f func(ctx context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(s.ctx); err != nil {
			s.fail(fmt.Errorf("session %s: %w", name, err))
		}
	}()
}

func transportCause(c transport.Conn) error {
	if err := context.Cause(c.Context()); err != nil {
		var je *jsperr.Error
		if errors.As(err, &je) {
			return je
		}
		return jsperr.Wrap(jsperr.TransportClosed, err)
	}
	return jsperr.New(jsperr.TransportClosed, "transport closed")
}

// fail ends the session because of err. Protocol errors detected locally are
// sent to the peer as the connection close code first (STYLE rule 10).
func (s *Session) fail(err error) {
	s.closeOnce.Do(func() {
		code, reason := jsperr.CodeOf(err), err.Error()
		var je *jsperr.Error
		if errors.As(err, &je) && je.Remote {
			code, reason = jsperr.NoError, ""
		}
		if code != jsperr.NoError {
			s.logger().Warn("session closing on error", "code", code.String(), "err", err)
		}
		// Before the cancel, so that no heartbeat callback or sender
		// goroutine joins wg once a Close may be waiting on it.
		s.stopHeartbeat()
		if s.send != nil {
			s.send.stop()
		}
		s.reading.stop()
		s.arrivals.stop()
		s.cancel(err)
		if s.send != nil {
			// A run waiting between writes waits on its signal alone.
			s.send.kick()
		}
		// Recv and HandleMessages hand out what already arrived, then
		// report the end.
		s.closeReceived()
		_ = s.conn.CloseWithError(code, truncate(reason, 256))
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Close ends the session with NO_ERROR and waits for its goroutines.
func (s *Session) Close() error {
	s.fail(jsperr.New(jsperr.NoError, "closed by "+roleName(s.role)))
	s.wg.Wait()
	return nil
}

// CloseWithError ends the session with code and reason and waits for its
// goroutines.
func (s *Session) CloseWithError(code jsperr.Code, reason string) error {
	s.fail(jsperr.New(code, reason))
	s.wg.Wait()
	return nil
}

// Wait blocks until the session ends, and the last message has been
// handed to HandleMessages, and returns the cause.
func (s *Session) Wait() error {
	<-s.ctx.Done()
	s.wg.Wait()
	s.recvMu.Lock()
	s.recvSealed = true
	s.recvMu.Unlock()
	s.handoffWG.Wait()
	return context.Cause(s.ctx)
}

// encodeFrame builds a whole frame for m with class c, compressing the
// payload when negotiated and worthwhile (JSP §11.4).
func (s *Session) encodeFrame(t wire.FrameType, f wire.Flags, sid protocol.StreamID, payload []byte) []byte {
	if s.zstd && len(payload) >= s.cfg.CompressThreshold && compressible(t) && s.worthCompressing() {
		c, ok := compress(nil, payload)
		s.compressResult(ok)
		if ok {
			return wire.AppendFrame(make([]byte, 0, len(c)+wire.MaxHeaderLen), t, f|wire.FlagCompressed, sid, c)
		}
	}
	return wire.AppendFrame(make([]byte, 0, len(payload)+wire.MaxHeaderLen), t, f, sid, payload)
}

// envelopeFlags are the frame flags for an envelope: its class, and SIGNED
// when it carries a signature (JSP §3.2).
func envelopeFlags(env *wire.Envelope) wire.Flags {
	f := wire.Flags(0).WithClass(env.Class)
	if len(env.Signature) > 0 {
		f |= wire.FlagSigned
	}
	return f
}

// Compression back-off: after compressMissLimit payloads in a row that did
// not shrink (media, encrypted or already compressed bodies), only every
// compressProbeEvery-th payload is tried, until one shrinks again. Trying
// zstd on incompressible data costs CPU and latency for nothing
// (docs/benchmarks.md).
const (
	compressMissLimit  = 8
	compressProbeEvery = 32
)

func (s *Session) worthCompressing() bool {
	m := s.compressMisses.Load()
	if m < compressMissLimit {
		return true
	}
	return s.compressSkips.Add(1)%compressProbeEvery == 0
}

func (s *Session) compressResult(shrank bool) {
	if shrank {
		s.compressMisses.Store(0)
		return
	}
	s.compressMisses.Add(1)
}

// compressible: only application messages are compressed; the handshake
// must be readable before capabilities are known, and PING/PONG are tiny.
func compressible(t wire.FrameType) bool {
	switch t {
	case wire.FramePublish, wire.FrameEvent, wire.FrameCommand, wire.FrameReply, wire.FrameNotify, wire.FrameMessage:
		return true
	}
	return false
}

// sendFrame queues a session message on the control stream, or writes it at
// once when the stream is idle (write-through, see sender).
func (s *Session) sendFrame(m wire.Message, class protocol.Class) error {
	return s.sendFrameVia(m, class, true)
}

// sendFrameVia is sendFrame; direct=false forces the queue, for frames sent
// from the session's own reader goroutine.
func (s *Session) sendFrameVia(m wire.Message, class protocol.Class, direct bool) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
	t := m.FrameType()
	f := wire.Flags(0).WithClass(class)
	if ef, ok := m.(*wire.EnvelopeFrame); ok {
		f = envelopeFlags(&ef.Envelope)
	}
	frame := s.encodeFrame(t, f, 0, m.Append(nil))
	var deadline time.Time
	if class == protocol.ClassMedia {
		deadline = s.cfg.Now().Add(s.cfg.MediaDeadline)
	}
	if err := s.send.enqueue(class, frame, deadline, direct); err != nil {
		return fmt.Errorf("session: queue %s: %w", t, err)
	}
	return nil
}

// SendEnvelope queues an envelope-carrying frame (PUBLISH, EVENT, COMMAND,
// REPLY, NOTIFY, MESSAGE) on the control stream, in order with the other
// frames of its class. It fails with MESSAGE_TOO_LARGE for an oversize body
// and QUEUE_FULL when the class's send queue is full.
func (s *Session) SendEnvelope(t wire.FrameType, env *wire.Envelope) error {
	if len(env.Body) > int(s.cfg.MaxMessageSize) {
		return jsperr.Newf(jsperr.MessageTooLarge, "body of %d bytes over limit %d", len(env.Body), s.cfg.MaxMessageSize)
	}
	if env.Timestamp == 0 {
		env.Timestamp = uint64(s.cfg.Now().UnixMilli())
	}
	return s.sendFrame(&wire.EnvelopeFrame{Type: t, Envelope: *env}, env.Class)
}

// Send queues any session message (SUBSCRIBE, ACK, ...) as a system frame.
func (s *Session) Send(m wire.Message) error { return s.sendFrame(m, protocol.ClassSystem) }

// deliver queues an incoming message for Recv under its class's policy.
func (s *Session) deliver(in Incoming) {
	class := protocol.ClassSystem
	if in.Envelope != nil {
		class = in.Envelope.Class
	} else {
		class = in.Flags.Class()
	}
	for {
		err := s.pushReceived(class, in)
		if err == nil || class == protocol.ClassMedia {
			return // media drops the oldest inside the queue
		}
		if class == protocol.ClassSystem {
			// System never drops, and its queue is 16x larger than the
			// others: overflowing it means the application stopped
			// calling Recv altogether.
			s.fail(jsperr.Newf(jsperr.SlowConsumer, "receive queue for %s full", class))
			return
		}
		// Chat and bulk apply backpressure: this reader stops reading, the
		// transport's flow control stops the peer, and a peer whose writes
		// stall past its WriteTimeout closes with SLOW_CONSUMER.
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// peeker is a stream that can wait for input without consuming it
// (transport/quic).
type peeker interface {
	Peek(p []byte) (int, error)
}

// readControl reads and dispatches frames from the control stream. Over a
// stream that can peek it holds no frame reader while the stream is idle:
// it waits for the next byte with Peek and makes a reader then, and drops
// it again once it has nothing buffered (D34).
//
// Once a burst of frames is handled and nothing is buffered, the wait for
// the next byte moves to a new goroutine and this one ends (D38): handling
// a frame grows a goroutine's stack (decoding, a PONG queued, the sender
// woken) to 4 or 8 KiB, and the runtime shrinks a stack only while less
// than a quarter of it is used, so a reader that once handled a PING would
// wait with the larger stack for the rest of an idle session. A new
// goroutine waits on the 2 KiB it starts with. Cost: one goroutine start
// per burst. The new goroutine is added to s.wg from this one, which still
// holds its own count, so the add cannot race with Close's Wait.
func (s *Session) readControl(fr *wire.FrameReader) error {
	pk, ok := s.ctl.(peeker)
	if !ok {
		return s.readFrames(fr)
	}
	if fr != nil && !fr.Pending() && fr.Buffered() == 0 {
		fr = nil
	}
	if fr == nil {
		var one [1]byte
		if _, err := pk.Peek(one[:]); err != nil {
			return s.controlReadError(err)
		}
		fr = wire.NewFrameReader(s.ctl, uint64(s.cfg.MaxFrameSize))
	}
	for {
		h, payload, err := fr.ReadFrame()
		if err != nil {
			return s.controlReadError(err)
		}
		s.lastRecv.Store(s.cfg.Now().UnixNano())
		if err := s.handleFrame(h, payload, DeliveryOrdered); err != nil {
			return err
		}
		if !fr.Pending() && fr.Buffered() == 0 {
			s.run("control reader", s.waitControl)
			return nil
		}
	}
}

// waitControl is readControl without a frame reader, as a goroutine's
// function.
func (s *Session) waitControl(context.Context) error { return s.readControl(nil) }

// readFrames reads and dispatches frames from the control stream with fr.
func (s *Session) readFrames(fr *wire.FrameReader) error {
	for {
		h, payload, err := fr.ReadFrame()
		if err != nil {
			return s.controlReadError(err)
		}
		s.lastRecv.Store(s.cfg.Now().UnixNano())
		if err := s.handleFrame(h, payload, DeliveryOrdered); err != nil {
			return err
		}
	}
}

// controlReadError says why reading the control stream failed; nil when the
// session is ending anyway.
func (s *Session) controlReadError(err error) error {
	if s.ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return jsperr.New(jsperr.TransportClosed, "peer closed the control stream")
	}
	var je *jsperr.Error
	if errors.As(err, &je) {
		return err
	}
	return transportCause(s.conn)
}

// decodePayload decompresses (when flagged) and decodes a frame payload.
// An unknown frame type returns wire.ErrUnknownFrame, which callers skip.
func (s *Session) decodePayload(h wire.Header, payload []byte) (wire.Message, error) {
	if h.Flags.Has(wire.FlagCompressed) {
		if !s.zstd {
			return nil, jsperr.New(jsperr.ProtocolViolation, "COMPRESSED flag without negotiated zstd")
		}
		p, err := decompress(payload, int(s.cfg.MaxFrameSize))
		if err != nil {
			return nil, err
		}
		payload = p
	}
	return wire.DecodeMessage(h.Type, payload)
}

// handleFrame acts on one frame from the peer. A returned error ends the
// session.
func (s *Session) handleFrame(h wire.Header, payload []byte, d Delivery) error {
	m, err := s.decodePayload(h, payload)
	if errors.Is(err, wire.ErrUnknownFrame) {
		// JSP §8.3: unknown frame types are skipped so that newer minor
		// versions can add frames.
		s.logger().Debug("skipping unknown frame", "type", h.Type.String())
		return nil
	}
	if err != nil {
		return fmt.Errorf("decode %s: %w", h.Type, err)
	}
	switch m := m.(type) {
	case *wire.Ping:
		if h.Type == wire.FramePing {
			return s.sendFrameVia(&wire.Pong{ID: m.ID, Timestamp: m.Timestamp}, protocol.ClassSystem, false)
		}
		return nil
	case *wire.Pong:
		s.pendingMu.Lock()
		ch := s.pings[m.ID]
		delete(s.pings, m.ID)
		s.pendingMu.Unlock()
		if ch != nil {
			rtt := time.Duration(uint64(s.cfg.Now().UnixMicro())-m.Timestamp) * time.Microsecond
			s.rtt.add(rtt)
			ch <- rtt
		}
		return nil
	case *wire.ErrorMessage:
		if len(m.Ref) == 0 && m.Code.Scope() != "message" {
			// JSP §5.3: an ERROR without a reference ends the session,
			// unless its code's scope is one message (RECOVERY_IMPOSSIBLE
			// names its channel instead).
			return m.Err()
		}
		// An ERROR that names a message fails only that message: a
		// pending command, or whatever the application waits for.
		if s.failRequest(m) {
			return nil
		}
		s.deliver(Incoming{Type: h.Type, Flags: h.Flags, Message: m, Delivery: d})
		return nil
	case *wire.Goaway:
		s.goawayMu.Lock()
		if s.goaway == nil {
			s.goaway = m
			if s.goawayCh != nil {
				close(s.goawayCh)
			}
		}
		s.goawayMu.Unlock()
		s.logger().Info("peer is going away", "code", m.Code.String(), "reason", m.Reason, "alternatives", m.Alternatives)
		return nil
	case *wire.Nack:
		s.queueNack(m)
		return nil
	case *wire.Announce:
		// JSP §5.14: honoured on the control stream of a server that
		// accepted CapAnnounce; ignored anywhere else.
		if s.role == RoleServer && d == DeliveryOrdered && s.unannounced != 0 {
			s.startAnnounced(m.Uses)
		}
		return nil
	case *wire.Hello, *wire.Welcome:
		return jsperr.Newf(jsperr.ProtocolViolation, "%s after the handshake", h.Type)
	case *wire.EnvelopeFrame:
		// JSP §3.2: the SIGNED flag says whether the envelope carries a
		// signature; a mismatch means a broken or tampering peer.
		if h.Flags.Has(wire.FlagSigned) != (len(m.Envelope.Signature) > 0) {
			return jsperr.Newf(jsperr.ProtocolViolation, "%s: SIGNED flag does not match the envelope's signature", h.Type)
		}
		if h.Type == wire.FrameReply && s.completeRequest(&m.Envelope) {
			return nil
		}
		if d == DeliveryUnordered && m.Envelope.TTL > 0 {
			// JSP §12: a message on its own stream with a TTL was sent
			// partially reliable; the receiver cannot tell otherwise.
			d = DeliveryPartial
		}
		s.deliver(Incoming{Type: h.Type, Flags: h.Flags, Envelope: &m.Envelope, Delivery: d})
		return nil
	default:
		s.deliver(Incoming{Type: h.Type, Flags: h.Flags, Message: m, Delivery: d})
		return nil
	}
}

// GoingAway is closed when the peer has sent GOAWAY.
func (s *Session) GoingAway() <-chan struct{} {
	s.goawayMu.Lock()
	defer s.goawayMu.Unlock()
	if s.goawayCh == nil {
		s.goawayCh = make(chan struct{})
		if s.goaway != nil {
			close(s.goawayCh)
		}
	}
	return s.goawayCh
}

// addPingLocked records a PING waiting for its PONG; pendingMu is held.
func (s *Session) addPingLocked(id uint64, ch chan time.Duration) {
	if s.pings == nil {
		s.pings = map[uint64]chan time.Duration{}
	}
	s.pings[id] = ch
}

// GoAwayInfo returns the peer's GOAWAY, or nil.
func (s *Session) GoAwayInfo() *wire.Goaway {
	s.goawayMu.Lock()
	defer s.goawayMu.Unlock()
	return s.goaway
}

// GoAway tells the peer to reconnect elsewhere (JSP §11.6), then closes the
// session with GOING_AWAY after grace, or earlier if the peer disconnects.
// It returns when the session has ended.
func (s *Session) GoAway(ctx context.Context, reason string, alternatives []string, grace time.Duration) error {
	g := &wire.Goaway{Code: jsperr.GoingAway, Reason: reason, Alternatives: alternatives, GraceMS: uint64(grace.Milliseconds())}
	if err := s.Send(g); err != nil {
		return err
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return s.CloseWithError(jsperr.GoingAway, reason)
}

// newID returns 16 random bytes for message ids.
func (s *Session) newID() []byte {
	b := make([]byte, 16)
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		// A failing randomness source is not recoverable; use the counter
		// so ids stay unique within the session.
		n := s.dgramID.Add(1)
		copy(b, fmt.Sprintf("%016x", n))
	}
	return b
}

// Request sends a COMMAND and waits for its REPLY (JSP §5.9). The envelope's
// ID is filled in when empty and its TTL is set from ctx's deadline so the
// peer can drop a command nobody waits for. A reply with an error code is
// returned as a remote *jsperr.Error; a deadline that passes first returns
// TIMEOUT.
func (s *Session) Request(ctx context.Context, env *wire.Envelope) (*wire.Envelope, error) {
	if len(env.ID) == 0 {
		env.ID = s.newID()
	}
	env.Kind = wire.KindCommand
	if dl, ok := ctx.Deadline(); ok && env.TTL == 0 {
		if ms := time.Until(dl).Milliseconds(); ms > 0 {
			env.TTL = uint64(ms)
		}
	}
	key := string(env.ID)
	ch := make(chan reply, 1)
	s.pendingMu.Lock()
	if _, dup := s.pending[key]; dup {
		s.pendingMu.Unlock()
		return nil, jsperr.Newf(jsperr.Conflict, "command id %s already pending", hex.EncodeToString(env.ID))
	}
	if s.pending == nil {
		s.pending = map[string]chan reply{}
	}
	s.pending[key] = ch
	s.pendingMu.Unlock()
	defer func() {
		s.pendingMu.Lock()
		delete(s.pending, key)
		s.pendingMu.Unlock()
	}()
	if err := s.SendEnvelope(wire.FrameCommand, env); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return r.env, r.err
		}
		if r.env.ErrCode != jsperr.NoError {
			return r.env, &jsperr.Error{Code: r.env.ErrCode, Reason: r.env.ErrReason, Remote: true}
		}
		return r.env, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, jsperr.Newf(jsperr.Timeout, "command %s on %s: no reply before the deadline", hex.EncodeToString(env.ID), env.Route.Name)
		}
		return nil, jsperr.Wrap(jsperr.Cancelled, ctx.Err())
	case <-s.ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
}

// completeRequest hands a REPLY to its waiting Request; false when nobody
// waits (the reply is then delivered through Recv).
func (s *Session) completeRequest(rep *wire.Envelope) bool {
	return s.complete(rep.ReplyTo, reply{env: rep})
}

// reply is what a waiting Request receives: a REPLY, or the error of an
// ERROR that referenced the command.
type reply struct {
	env *wire.Envelope
	err error
}

func (s *Session) complete(id []byte, r reply) bool {
	s.pendingMu.Lock()
	ch, ok := s.pending[string(id)]
	s.pendingMu.Unlock()
	if !ok {
		return false
	}
	select {
	case ch <- r:
	default: // a duplicate reply; the first one won
	}
	return true
}

// failRequest completes a pending Request with an ERROR that references
// it; false when no Request waits for that id.
// The error keeps the ERROR's retry_after_ms, so a RATE_LIMITED caller
// knows when to try again.
func (s *Session) failRequest(m *wire.ErrorMessage) bool {
	err := m.Err()
	if err.Code == jsperr.NoError {
		err.Code = jsperr.Internal
	}
	return s.complete(m.Ref, reply{err: err})
}

// Reply answers a COMMAND with body, or with an error when code is not
// NO_ERROR.
func (s *Session) Reply(cmd *wire.Envelope, body []byte, code jsperr.Code, reason string) error {
	rep := &wire.Envelope{
		ID:        s.newID(),
		Route:     cmd.Route,
		Kind:      wire.KindReply,
		Class:     cmd.Class,
		ReplyTo:   cmd.ID,
		Body:      body,
		ErrCode:   code,
		ErrReason: reason,
	}
	return s.SendEnvelope(wire.FrameReply, rep)
}

// Ping sends a PING and returns the round-trip time when its PONG arrives.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	ch := make(chan time.Duration, 1)
	s.pendingMu.Lock()
	s.pingID++
	id := s.pingID
	s.addPingLocked(id, ch)
	s.pendingMu.Unlock()
	defer func() {
		s.pendingMu.Lock()
		delete(s.pings, id)
		s.pendingMu.Unlock()
	}()
	if err := s.Send(&wire.Ping{ID: id, Timestamp: uint64(s.cfg.Now().UnixMicro())}); err != nil {
		return 0, err
	}
	select {
	case rtt := <-ch:
		return rtt, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.ctx.Done():
		return 0, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
}

// RTT returns the smoothed round-trip time and the last sample, both zero
// before the first PONG.
func (s *Session) RTT() (smoothed, last time.Duration) { return s.rtt.get() }

// SetBatteryMode switches battery mode (JSP §11.5): a longer heartbeat, a
// wider batching window, bulk deferred.
func (s *Session) SetBatteryMode(on bool) {
	s.send.battery.Store(on)
	if on {
		s.heartbeat.Store(int64(s.cfg.BatteryHeartbeatInterval))
	} else {
		s.heartbeat.Store(int64(s.negotiatedHeartbeat()))
	}
}

// BatteryMode reports whether battery mode is on.
func (s *Session) BatteryMode() bool { return s.send.battery.Load() }

func (s *Session) negotiatedHeartbeat() time.Duration {
	if s.welcome != nil && s.welcome.HeartbeatMS > 0 {
		return time.Duration(s.welcome.HeartbeatMS) * time.Millisecond
	}
	return s.cfg.HeartbeatInterval
}

// idleTimeout is the configured timeout or 3x the longest interval the peer
// may use between frames: the battery interval when the client may switch
// to battery mode.
func (s *Session) idleTimeout() time.Duration {
	if s.cfg.IdleTimeout > 0 {
		return s.cfg.IdleTimeout
	}
	if s.welcome != nil && s.welcome.IdleTimeoutMS > 0 {
		return time.Duration(s.welcome.IdleTimeoutMS) * time.Millisecond
	}
	return 3 * max(s.negotiatedHeartbeat(), s.cfg.BatteryHeartbeatInterval)
}

// Stats are counters of one session.
type Stats struct {
	Writes       uint64 // write calls on the control stream
	BytesWritten uint64
	FramesSent   uint64
	MediaDropped uint64 // media frames dropped past their deadline
	SendQueued   int    // frames waiting to be sent now
	SmoothedRTT  time.Duration
}

// Stats returns a snapshot of the session's counters.
func (s *Session) Stats() Stats {
	srtt, _ := s.rtt.get()
	return Stats{
		Writes:       s.send.writes.Load(),
		BytesWritten: s.send.bytesWritten.Load(),
		FramesSent:   s.send.framesSent.Load(),
		MediaDropped: s.send.mediaDropped.Load(),
		SendQueued:   s.send.queued(),
		SmoothedRTT:  srtt,
	}
}

// rttStats keeps a smoothed RTT (RFC 6298 style, alpha 1/8).
type rttStats struct {
	mu       sync.Mutex
	smoothed time.Duration
	last     time.Duration
}

func (r *rttStats) add(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.smoothed == 0 {
		r.smoothed = d
	} else {
		r.smoothed = (7*r.smoothed + d) / 8
	}
	r.last = d
}

func (r *rttStats) get() (time.Duration, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.smoothed, r.last
}

// hasCap reports whether caps contains c.
func hasCap(caps []string, c string) bool { return slices.Contains(caps, c) }
