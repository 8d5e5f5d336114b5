package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// host serves one established session. It owns the callbacks that take
// the session's messages (handle, on the session's hand-off goroutine,
// which runs only while messages wait, D34) and its streams and datagrams
// (arrival), the publish loop its first PUBLISH starts in bus mode, the
// watch callbacks that close the session when the gateway closes or its
// identity expires (watch.go), and the command, message and stream
// workers they start; all of them end when the session does, and finish
// joins them. Events need no loop: the hub queues them on the session
// from the publishing goroutine (onDelivery, deliver.go). The state these
// share is the subscriber, which is safe for concurrent use, the replay
// state under cmu, and the semaphores; the session serializes what it
// sends.
type host struct {
	g     *Gateway
	sess  *session.Session
	id    string // session id, hex
	kind  transport.Kind
	log   *slog.Logger
	ident services.Identity
	// auth is who the client authenticated as; user is auth.User, the key
	// of the per-user rate limit ("" for anonymous sessions).
	auth session.Identity
	user string
	// cred is the credential's current expiry and scopes, which a token
	// refresh moves (refresh.go); auth keeps what HELLO proved.
	cred *credState
	sub  hostSub // made by the first Subscribe (hostsub.go)
	// ctx is the context of the host's callbacks, set by start before
	// the session can subscribe; the hub's deliveries use it for the gap
	// replays they start.
	ctx context.Context
	// closing is set by the first delivery that gives the session up
	// as a slow consumer (closeAsync).
	closing atomic.Bool
	// media is the session's voice/video bindings (sfu.go); nil without
	// a bus.
	media *hostMedia
	// live holds the session's permissions to publish to live channels
	// (live.go); nil until its first live PUBLISH.
	live atomic.Pointer[liveAuth]
	// early is closed when the TLS handshake completes; nil when it had
	// before the session started (early.go).
	early <-chan struct{}
	// since is when the session was established; lastActive the Unix
	// nanoseconds of the client's last message other than an ACK
	// (presence).
	since      time.Time
	lastActive atomic.Int64

	// inflight is the semaphore of commands and message echoes, made by
	// the first message that needs it; only handle sets it, before any
	// worker that releases a slot starts (D34).
	inflight chan struct{}
	// streams is the semaphore of stream handlers, made by the first
	// stream (arrival).
	streamsOnce sync.Once
	streams     chan struct{}
	wg          sync.WaitGroup

	// Bus mode only (Gateway.cluster set).
	//
	// pubs queues PUBLISHes for publishLoop, which commits them in order.
	// Both are started by the session's first PUBLISH (startPublishing), so
	// a session that only subscribes holds neither (D26); only handle
	// touches the field, and pubsQueue publishes it to the metrics.
	pubs      chan *wire.Envelope
	pubsQueue atomic.Pointer[chan *wire.Envelope]
	// lives queues live-channel PUBLISHes for liveLoop (liverun.go),
	// made with it by the session's first live PUBLISH.
	lives chan *wire.Envelope
	// joined are the channels this session holds a cluster join for; only
	// handle touches it while the session runs, finish after it ends.
	joined map[string]struct{}
	// cmu guards the replay state the hub's deliveries and replays share.
	cmu      sync.Mutex
	catching map[string]*catchup // guarded by cmu: channels being replayed
	last     map[string]uint64   // guarded by cmu: last seq sent per channel
	capped   map[string]struct{} // guarded by cmu: replay stopped at MaxReplay
	// Resume cursors (resume.go), guarded by cmu.
	subscribed map[string]struct{} // channels subscribed
	base       map[string]uint64   // where each subscription started
	acked      map[string]uint64   // the client's ACK cursors

	watch hostWatch

	mu        sync.Mutex
	goingAway bool // guarded by mu: goAway has started
	finished  bool // guarded by mu: finish is joining wg; no more goroutines
}

func newHost(g *Gateway, sess *session.Session) *host {
	id := hex.EncodeToString(sess.ID())
	conn := sess.Conn()
	h := &host{
		g:    g,
		sess: sess,
		id:   id,
		kind: conn.Kind(),
		ident: services.Identity{
			SessionID:  id,
			Transport:  conn.Kind(),
			RemoteAddr: conn.RemoteAddr().String(),
		},
		auth:  sess.Identity(),
		early: handshakeDone(sess),
		user:  sess.Identity().User,
		cred:  newCredState(sess.Identity()),
	}
	h.log = newHostLog(g.log, h)
	h.sub.h = h
	h.since = g.cfg.Now()
	h.lastActive.Store(h.since.UnixNano())
	if g.cluster != nil {
		h.joined = map[string]struct{}{}
		h.catching = map[string]*catchup{}
		h.last = map[string]uint64{}
		h.capped = map[string]struct{}{}
		h.subscribed = map[string]struct{}{}
		h.base = map[string]uint64{}
		h.acked = map[string]uint64{}
		h.media = newHostMedia()
	}
	return h
}

// start serves the session: it registers the callbacks that take the
// session's messages, streams and datagrams, and arranges for finish to
// run when the session ends; then it returns. No goroutine per session
// waits for the client (D27, D34): messages are handled on a goroutine
// that runs only while they wait (session.HandleMessages), and finish
// runs on the goroutine the session starts when it ends (Session.OnEnd).
// done runs last, after finish has joined everything the host started.
func (h *host) start(done func()) {
	// Every core request of the session carries its identity (forward.go).
	ctx := core.WithIdentity(h.sess.Context(), h.coreIdentity())
	h.ctx = ctx
	h.log.Debug("session established")
	h.recordOpen()
	if h.g.resumes != nil {
		h.g.resumes.attach(h)
	}
	// Streams and datagrams come by callback: no goroutine per session
	// only waits for them (D27).
	h.sess.HandleArrivals(func(st *session.Stream, dg []byte) { h.arrival(ctx, st, dg) })
	// Hub deliveries need no loop either: the hub hands them to
	// onDelivery, which queues them on the session (deliver.go, D26).
	var loops []func(context.Context)
	if h.g.reg != nil {
		// Off the session's path: a bus that is slow to answer must not
		// delay the session. finish joins it before registryClose.
		loops = append(loops, func(context.Context) { h.registryOpen() })
	}
	if h.g.cluster != nil {
		loops = append(loops, h.mediaFlowLoop, h.mediaNackLoop, h.mediaCtlLoop)
	}
	for _, loop := range loops {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			loop(ctx)
		}()
	}
	h.startWatch()
	// Before any message is handled, as a client that resumed expects.
	if st, ok := h.sess.ResumeState().(*resumeState); ok {
		h.resumeSubscriptions(ctx, st)
	}
	h.sess.HandleMessages(func(in session.Incoming) bool { return h.handle(ctx, in) })
	// The session starts it on a goroutine of its own once it has
	// ended; the gateway's WaitGroup, which done releases, owns it.
	h.sess.OnEnd(func() {
		h.finish()
		done()
	})
}

// finish runs when the session has ended: it waits for the session's
// goroutines and the last handled message, then joins every goroutine the
// host started and releases what the session held.
func (h *host) finish() {
	err := h.sess.Wait()
	h.stopWatch()
	h.mu.Lock()
	h.finished = true
	h.mu.Unlock()
	h.wg.Wait()
	if h.g.resumes != nil {
		// A session the client closed on purpose (NO_ERROR) or that the
		// gateway's closing ended is not kept for a resume.
		keep := jsperr.CodeOf(err) != jsperr.NoError && h.g.ctx.Err() == nil
		h.g.resumes.detach(h, h.cursors(), keep)
	}
	h.sub.Close()
	if h.media != nil {
		h.mediaDetach()
	}
	for name := range h.joined {
		h.g.cluster.leave(name)
	}
	h.recordClose()
	h.registryClose()
	if code := jsperr.CodeOf(err); code != jsperr.NoError {
		h.g.metrics.errors.add(code.String(), 1)
	}
	h.log.Debug("session ended", "cause", err)
}

// closeWith ends the session with code and reason, logged with the
// client's address (host.log carries it).
func (h *host) closeWith(code jsperr.Code, reason string) {
	h.g.metrics.errors.add(code.String(), 1)
	h.log.Info("closing session", "code", code.String(), "reason", reason)
	_ = h.sess.CloseWithError(code, reason)
}

// goAway starts the session's drain: GOAWAY now, close after the grace.
// The wait runs on a host goroutine so that Shutdown can signal every
// session at once; a session that has already ended is left alone.
func (h *host) goAway() {
	h.mu.Lock()
	if h.goingAway || h.finished {
		h.mu.Unlock()
		return
	}
	h.goingAway = true
	// Added under mu so that it cannot race with finish's wg.Wait.
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		h.g.metrics.messagesOut.add(wire.FrameGoaway.String(), 1)
		// g.ctx ends when a Shutdown's deadline passes or Close is called;
		// the session then closes before the grace is over.
		if err := h.sess.GoAway(h.g.ctx, "server shutting down", h.g.alternatives(), h.g.cfg.DrainGrace); err != nil {
			h.log.Debug("goaway", "err", err)
			_ = h.sess.CloseWithError(jsperr.GoingAway, "server shutting down")
		}
	}()
}

// closeOnError ends the session with err's code. CloseWithError waits for
// the session's own goroutines, never for the host's, so any host goroutine
// may call it.
func (h *host) closeOnError(err error) {
	code := jsperr.CodeOf(err)
	h.log.Info("closing session", "code", code.String(), "err", err)
	_ = h.sess.CloseWithError(code, err.Error())
}

// handle dispatches one message the client sent on the control stream or
// on a message stream; false stops the hand-off because the session is
// ending. The session calls it for each message in order
// (session.HandleMessages), one at a time.
func (h *host) handle(ctx context.Context, in session.Incoming) bool {
	h.g.metrics.messagesIn.add(in.Type.String(), 1)
	if !h.awaitEarly(ctx, in) {
		return false
	}
	if in.Type != wire.FrameAck {
		// An ACK is the SDK acknowledging events it received, not
		// the user doing something: counting it would keep every
		// subscribed user from ever going away (presence).
		h.lastActive.Store(h.g.cfg.Now().UnixNano())
	}
	h.g.ops.countIn(in)
	switch in.Type {
	case wire.FrameSubscribe:
		if m, ok := in.Message.(*wire.Subscribe); ok {
			h.subscribe(ctx, m)
		}
	case wire.FrameUnsubscribe:
		if m, ok := in.Message.(*wire.Unsubscribe); ok {
			h.unsubscribe(m)
		}
	case wire.FramePublish, wire.FrameCommand, wire.FrameMessage:
		if err := h.limitMessage(in.Type, in.Envelope); err != nil {
			h.rateLimited(in, err)
			return true
		}
		if !h.checkSigned(ctx, in) {
			return true
		}
		if h.inflight == nil {
			h.inflight = make(chan struct{}, h.g.cfg.MaxInflight)
		}
		switch in.Type {
		case wire.FramePublish:
			h.publish(ctx, in.Envelope)
		case wire.FrameCommand:
			h.command(ctx, in.Envelope)
		default:
			h.echoMessage(ctx, in)
		}
	case wire.FrameEvent, wire.FrameNotify, wire.FrameReply:
		// JSP §5.8-§5.10: EVENT and NOTIFY go from server to client
		// only, and this server never sends COMMANDs a client could
		// reply to.
		h.closeOnError(jsperr.Newf(jsperr.ProtocolViolation, "%s from a client", in.Type))
		return false
	case wire.FrameAck:
		if m, ok := in.Message.(*wire.Ack); ok {
			h.ackCursors(m)
		}
	default:
		h.log.Debug("ignoring message", "type", in.Type.String())
	}
	return true
}

// rateLimited answers a message over a rate limit with ERROR
// {RATE_LIMITED, retry_after_ms, ref = its id} (JSP §5.3); the session goes
// on. A message without an id cannot be answered and is dropped.
func (h *host) rateLimited(in session.Incoming, err error) {
	var je *jsperr.Error
	retry := time.Duration(0)
	if errors.As(err, &je) {
		retry = je.RetryAfter
	}
	h.g.refusalLog.log("gateway: message rate limited", "type", in.Type.String(), "reason", err.Error(),
		"retry_after", retry, "session", h.id, "user", h.user, "remote", h.ident.RemoteAddr)
	h.refuse(in.Envelope.ID, err)
}

// ack confirms a request id (JSP §5.6); requests without an id get none.
func (h *host) ack(id []byte) {
	if len(id) == 0 {
		return
	}
	if err := h.sess.Send(&wire.Ack{IDs: [][]byte{id}}); err == nil {
		h.g.metrics.messagesOut.add(wire.FrameAck.String(), 1)
	}
}

// refuse reports the failure of the message or request named by ref with an
// ERROR carrying ref (JSP §5.3), which fails that request only. Errors
// without a registry code are reported as INTERNAL without details.
func (h *host) refuse(ref []byte, err error) {
	code := jsperr.CodeOf(err)
	h.g.metrics.errors.add(code.String(), 1)
	if len(ref) == 0 {
		h.log.Debug("request without id failed", "err", err)
		return
	}
	m := wire.ErrorMessageFrom(err)
	m.Ref = ref
	if err := h.sess.Send(&m); err == nil {
		h.g.metrics.messagesOut.add(wire.FrameError.String(), 1)
	}
}

// subscribe joins the session to a channel (JSP §5.7). Without a bus the
// hub keeps no history, so a Since cursor replays nothing: the retained set
// is empty, not unknown. With a bus, Since replays the committed messages
// (subscribeCluster).
func (h *host) subscribe(ctx context.Context, m *wire.Subscribe) {
	if h.g.cluster != nil {
		h.subscribeCluster(ctx, m)
		return
	}
	if err := h.sub.Subscribe(m.Channel); err != nil {
		h.refuse(m.ReqID, err)
		return
	}
	h.ack(m.ReqID)
}

func (h *host) unsubscribe(m *wire.Unsubscribe) {
	if err := h.sub.Unsubscribe(m.Channel); err != nil {
		h.refuse(m.ReqID, err)
		return
	}
	if h.g.cluster != nil {
		h.endCatchup(m.Channel)
		h.leaveCluster(m.Channel)
		h.noteUnsubscribed(m.Channel)
	}
	h.ack(m.ReqID)
}

// publish fans a PUBLISH out as EVENTs (JSP §5.8). Without a bus the hub
// receives a copy stamped with the sender's identity and the per-channel
// sequence number is set per delivery. With a bus the PUBLISH is queued
// for publishLoop, which commits it through the core and ACKs it after
// the commit; a full queue holds the reader back (chat applies
// backpressure, JSP §11.3).
func (h *host) publish(ctx context.Context, env *wire.Envelope) {
	if env.Route.Kind != wire.RouteChannel {
		h.refuse(env.ID, jsperr.Newf(jsperr.BadRequest, "PUBLISH to a %s route; want a channel", env.Route.Kind))
		return
	}
	if h.g.cluster != nil {
		if h.g.live.match(env.Route.Name) {
			h.publishLive(ctx, env)
			return
		}
		if len(env.ID) == 0 {
			// The id is the idempotency key and the ACK's reference.
			h.refuse(env.ID, jsperr.New(jsperr.BadRequest, "PUBLISH without an id"))
			return
		}
		if h.pubs == nil {
			h.startPublishing(ctx)
		}
		select {
		case h.pubs <- env:
		case <-ctx.Done():
		}
		return
	}
	ev := *env
	ev.Kind = wire.KindEvent
	ev.Sender = h.id
	ev.Seq = 0
	if _, err := h.g.hub.Publish(env.Route.Name, &event{envs: []*wire.Envelope{&ev}}); err != nil {
		h.refuse(env.ID, err)
	}
}

// errorReply maps a handler error to a reply code and reason; errors
// without a registry code become INTERNAL without their details.
func errorReply(err error) (jsperr.Code, string) {
	var je *jsperr.Error
	if errors.As(err, &je) {
		return je.Code, je.Reason
	}
	return jsperr.Internal, "internal error"
}

// command runs a COMMAND on the service named by its route (JSP §5.9) in a
// worker and replies; notifications the service pushes meanwhile follow the
// reply.
func (h *host) command(ctx context.Context, env *wire.Envelope) {
	reply := func(body []byte, code jsperr.Code, reason string) {
		if code != jsperr.NoError {
			h.g.metrics.errors.add(code.String(), 1)
		}
		if err := h.sess.Reply(env, body, code, reason); err != nil {
			h.log.Debug("reply not sent", "err", err)
			return
		}
		h.g.metrics.messagesOut.add(wire.FrameReply.String(), 1)
	}
	if env.Route.Kind == wire.RouteService && h.gatewayCommand(ctx, env, reply) {
		return
	}
	var svc services.Service
	if env.Route.Kind == wire.RouteService {
		svc, _ = h.g.services.Command(env.Route.Name)
		if svc == nil && env.Route.Name == HistoryService && h.g.cluster != nil {
			svc = historyService{client: h.g.cluster.client}
		}
	}
	if svc == nil && env.Route.Kind == wire.RouteService && h.g.cluster != nil {
		h.forwardCommand(ctx, env, reply)
		return
	}
	if svc == nil {
		reply(nil, jsperr.NotFound, "no service "+env.Route.Kind.String()+" "+env.Route.Name)
		return
	}
	select {
	case h.inflight <- struct{}{}:
	default:
		reply(nil, jsperr.QueueFull, "too many commands in progress")
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		// The slot is freed before the reply goes out: a client that sends
		// its next command as soon as it has the reply must find room.
		release := sync.OnceFunc(func() { <-h.inflight })
		defer release()
		cctx := ctx
		if env.TTL > 0 {
			// The sender stops waiting after the TTL (JSP §4); so does the
			// service.
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(ctx, time.Duration(env.TTL)*time.Millisecond)
			defer cancel()
		}
		var (
			mu      sync.Mutex
			replied bool
			queued  []*wire.Envelope
		)
		caller := services.NewCaller(h.ident, func(n *wire.Envelope) error {
			mu.Lock()
			if !replied {
				queued = append(queued, n)
				mu.Unlock()
				return nil
			}
			mu.Unlock()
			return h.notify(n)
		})
		body, err := svc.HandleCommand(cctx, caller, env)
		if err != nil {
			if cctx.Err() != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				err = jsperr.Newf(jsperr.Timeout, "command %s: TTL of %d ms passed", env.Route.Name, env.TTL)
			}
			code, reason := errorReply(err)
			if code == jsperr.Internal {
				h.log.Warn("command failed", "service", env.Route.Name, "err", err)
			}
			release()
			reply(nil, code, reason)
		} else {
			release()
			reply(body, jsperr.NoError, "")
		}
		mu.Lock()
		replied = true
		pending := queued
		queued = nil
		mu.Unlock()
		for _, n := range pending {
			if err := h.notify(n); err != nil {
				h.log.Debug("notification not sent", "err", err)
			}
		}
	}()
}

// notify sends a NOTIFY to the session (JSP §5.10), filling in what the
// service left empty.
func (h *host) notify(n *wire.Envelope) error {
	if len(n.ID) == 0 {
		n.ID = make([]byte, 16)
		if _, err := io.ReadFull(h.g.cfg.Rand, n.ID); err != nil {
			return jsperr.Wrap(jsperr.Internal, err)
		}
	}
	n.Kind = wire.KindNotification
	if n.Route.Name == "" {
		n.Route = wire.Route{Kind: wire.RouteUser, Name: h.id}
	}
	if err := h.sess.SendEnvelope(wire.FrameNotify, n); err != nil {
		return err
	}
	h.g.metrics.messagesOut.add(wire.FrameNotify.String(), 1)
	return nil
}

// echoMessage sends a Mixed API MESSAGE back to its sender with the same
// delivery mode (JSP §12). Reliable modes wait for a worker slot
// (backpressure); an unreliable message is dropped when none is free, as
// the network might have dropped it.
func (h *host) echoMessage(ctx context.Context, in session.Incoming) {
	if in.Delivery == session.DeliveryUnreliable {
		select {
		case h.inflight <- struct{}{}:
		default:
			return
		}
	} else {
		select {
		case h.inflight <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
	echo := *in.Envelope
	echo.Sender = h.id
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer func() { <-h.inflight }()
		if err := h.sess.SendMessage(ctx, &echo, in.Delivery); err != nil {
			if ctx.Err() == nil {
				h.g.metrics.errors.add(jsperr.CodeOf(err).String(), 1)
				h.log.Debug("message echo failed", "delivery", in.Delivery.String(), "err", err)
			}
			return
		}
		h.g.metrics.messagesOut.add(wire.FrameMessage.String(), 1)
	}()
}

// arrival hands an application stream to the service registered for its
// label (JSP §5.12) and echoes a datagram. The session calls it for each
// (Session.HandleArrivals); it never blocks: handlers run on their own
// goroutines, a datagram send never waits. The session's goroutines that
// call it end before finish's sess.Wait returns, so its h.wg.Add comes before
// finish's h.wg.Wait.
func (h *host) arrival(ctx context.Context, st *session.Stream, dg []byte) {
	if st == nil {
		h.echoDatagram(ctx, dg)
		return
	}
	h.g.metrics.messagesIn.add(wire.FrameStreamOpen.String(), 1)
	svc, ok := h.g.services.Stream(st.Label())
	if !ok {
		h.g.metrics.errors.add(jsperr.NotFound.String(), 1)
		st.CancelRead(jsperr.NotFound)
		st.CancelWrite(jsperr.NotFound)
		return
	}
	h.streamsOnce.Do(func() { h.streams = make(chan struct{}, h.g.cfg.MaxStreamHandlers) })
	select {
	case h.streams <- struct{}{}:
	default:
		h.g.metrics.errors.add(jsperr.StreamLimit.String(), 1)
		st.CancelRead(jsperr.StreamLimit)
		st.CancelWrite(jsperr.StreamLimit)
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer func() { <-h.streams }()
		caller := services.NewCaller(h.ident, h.notify)
		if err := svc.HandleStream(ctx, caller, st); err != nil {
			h.g.metrics.errors.add(jsperr.CodeOf(err).String(), 1)
			h.log.Debug("stream handler failed", "label", st.Label(), "err", err)
		}
	}()
}

// echoDatagram echoes a datagram back (JSP §5.13).
func (h *host) echoDatagram(ctx context.Context, b []byte) {
	h.g.metrics.messagesIn.add(wire.FrameDatagram.String(), 1)
	if err := h.sess.SendDatagram(b, protocol.ClassMedia); err != nil {
		if ctx.Err() == nil {
			h.g.metrics.errors.add(jsperr.CodeOf(err).String(), 1)
		}
		return
	}
	h.g.metrics.messagesOut.add(wire.FrameDatagram.String(), 1)
}
