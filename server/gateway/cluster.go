package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/pubsub"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/wire"
)

// cluster is the gateway's side of the bus when Config.Bus is set
// (ARCHITECTURE §1): PUBLISH goes to the core of the channel's shard,
// which commits it and publishes the committed event on the channel
// subject; the gateway holds one bus subscription per channel with local
// subscribers (bus.ChannelFanout) and hands each event to the hub with the
// core's sequence number.
//
// Lock order: cluster.mu, then the fan-out's and the bus's locks. Events
// arrive on bus goroutines and take only the hub's locks, never
// cluster.mu, so leave may wait for a running delivery.
type cluster struct {
	client *core.Client
	bus    bus.Bus
	// edge carries the channel subscriptions and the live events this
	// gateway publishes: a no-echo connection of bus when noEcho is set
	// (D44), so that a live event reaches this gateway's subscribers
	// once, from publishLive, and the others from the bus; else bus.
	edge   bus.Bus
	noEcho bool
	// timeout bounds the wait for a channel's bus subscription to be in
	// effect (Config.CoreTimeout).
	timeout time.Duration
	subj    bus.Subjects
	codec   core.Codec // of the live events this gateway publishes (D42)
	fanout  *bus.ChannelFanout
	hub     *pubsub.Hub[*event]
	log     *slog.Logger
	ops     *opsMetrics
	now     func() time.Time

	mu   sync.Mutex
	refs map[string]*channelRef // guarded by mu: channels with local subscribers

	gaps atomic.Uint64 // gaps in a channel's live events, replayed from storage

	// onDrop ends local subscriptions on a control event; set once by New
	// before any subscription exists.
	onDrop func(channel string, users []string)
}

type channelRef struct {
	n    int
	sink *bus.FanoutSink
	// inEffect is set once the channel's bus subscription is known to be
	// in effect at the bus's server (bus.Flush after it was made).
	inEffect atomic.Bool
}

func newCluster(cfg *Config, hub *pubsub.Hub[*event], ops *opsMetrics) (*cluster, error) {
	subj, err := bus.NewSubjects(cfg.Cluster)
	if err != nil {
		return nil, fmt.Errorf("gateway: cluster: %w", err)
	}
	cl, err := core.NewClient(cfg.Bus, subj, cfg.CoreShards)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	edge, noEcho := cfg.Bus, true
	name := "jsp-gateway-edge"
	if cfg.NodeID != "" {
		name += "-" + cfg.NodeID
	}
	if e, err := bus.OpenNoEcho(cfg.Bus, name); err == nil {
		edge = e
	} else if errors.Is(err, bus.ErrNoEcho) {
		noEcho = false
	} else {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return &cluster{
		client:  cl.WithCodec(cfg.BusCodec),
		bus:     cfg.Bus,
		edge:    edge,
		noEcho:  noEcho,
		timeout: cfg.CoreTimeout,
		subj:    subj,
		codec:   cfg.BusCodec,
		fanout:  bus.NewChannelFanout(edge, subj.Channel),
		hub:     hub,
		log:     cfg.Logger,
		ops:     ops,
		now:     cfg.Now,
		refs:    map[string]*channelRef{},
	}, nil
}

// join counts one more local subscriber of channel, subscribing the bus
// for the first. It returns once the bus subscription is in effect, so
// that a message committed after the client's SUBSCRIBE is acknowledged
// reaches it: the subscription and the core's commits travel on
// different bus connections (D44), which the bus does not order.
func (c *cluster) join(ctx context.Context, channel string) error {
	c.mu.Lock()
	r := c.refs[channel]
	if r != nil {
		r.n++
	} else {
		sink, err := c.fanout.Subscribe(channel, c.deliver)
		if err != nil {
			c.mu.Unlock()
			if errors.Is(err, bus.ErrInvalidName) {
				return jsperr.Wrap(jsperr.BadRequest, err)
			}
			return jsperr.Wrap(jsperr.Internal, err)
		}
		r = &channelRef{n: 1, sink: sink}
		c.refs[channel] = r
	}
	c.mu.Unlock()
	if r.inEffect.Load() {
		return nil
	}
	// Outside the lock: a slow bus delays this channel's subscribers only.
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := bus.Flush(ctx, c.edge); err != nil {
		c.leave(channel)
		return jsperr.Wrap(jsperr.Unavailable, fmt.Errorf("subscribe %q: %w", channel, err))
	}
	r.inEffect.Store(true)
	return nil
}

// leave undoes one join, unsubscribing the bus after the last.
func (c *cluster) leave(channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.refs[channel]
	if r == nil {
		return
	}
	if r.n--; r.n > 0 {
		return
	}
	delete(c.refs, channel)
	if err := r.sink.Close(); err != nil {
		c.log.Debug("gateway: leave channel", "channel", channel, "err", err)
	}
}

// close ends every bus subscription and the no-echo connection.
func (c *cluster) close() {
	if err := c.fanout.Close(); err != nil {
		c.log.Debug("gateway: close fan-out", "err", err)
	}
	if c.noEcho {
		if err := c.edge.Close(); err != nil {
			c.log.Debug("gateway: close the no-echo bus connection", "err", err)
		}
	}
}

// deliver hands one committed event to the hub. The envelope is decoded
// once here and shared, read-only, by every local subscriber.
func (c *cluster) deliver(channel string, m *bus.Msg) {
	// Decoded once: the event is both the control check and the message.
	ev, err := core.DecodeEvent(m.Data)
	if err == nil && len(ev.Drop) > 0 {
		// A control event (forward.go): no message to deliver.
		if c.onDrop != nil {
			c.onDrop(channel, ev.Drop)
		}
		return
	}
	msgs := ev.Messages
	if len(msgs) == 0 {
		msgs = []storage.Message{ev.Message}
	}
	e := &event{envs: make([]*wire.Envelope, 0, len(msgs))}
	for i := range msgs {
		if err != nil {
			break
		}
		var env *wire.Envelope
		if env, err = storedEnvelope(&msgs[i]); err == nil {
			e.envs = append(e.envs, env)
		}
	}
	if err != nil {
		c.log.Warn("gateway: bad channel event", "channel", channel, "err", err)
		return
	}
	last := msgs[len(msgs)-1]
	seq, committed := last.Seq, last.Time
	if !committed.IsZero() {
		// Every message of a run was committed together.
		d := c.now().Sub(committed)
		for range msgs {
			c.ops.delivery.observe(d)
		}
	}
	if err := c.hub.PublishSeq(channel, uint64(seq), e); err != nil {
		c.log.Debug("gateway: event not delivered", "channel", channel, "seq", seq, "err", err)
	}
}

// storedEnvelope returns the EVENT envelope of a stored message: the body
// of a stored message is the published envelope (JSP §4), with the sender
// stamped by the gateway, and the sequence number is the commit's.
func storedEnvelope(m *storage.Message) (*wire.Envelope, error) {
	env, _, err := wire.ParseEnvelope(m.Body)
	if err != nil {
		return nil, fmt.Errorf("stored message %d: %w", m.Seq, err)
	}
	env.Kind = wire.KindEvent
	env.Seq = uint64(m.Seq)
	return &env, nil
}

// storedMessage is the message the core commits for a PUBLISH: the client's
// envelope id is the idempotency key and the sender the authenticated user
// (the session id for anonymous sessions), so a resend after a reconnect is
// recognised as long as the user is the same.
func storedMessage(env *wire.Envelope, sender string) storage.Message {
	ev := *env
	ev.Kind = wire.KindEvent
	ev.Sender = sender
	ev.Seq = 0
	return storage.Message{
		ClientID: hex.EncodeToString(env.ID),
		Sender:   sender,
		Body:     ev.Append(nil),
	}
}

// sessionRecord is the storage record of a session.
func (h *host) sessionRecord() storage.Session {
	user := h.user
	if user == "" {
		user = "anonymous"
	}
	return storage.Session{
		ID:         h.id,
		UserID:     user,
		DeviceID:   h.auth.Device,
		Gateway:    h.g.cfg.NodeID,
		Transport:  string(h.kind),
		RemoteAddr: h.ident.RemoteAddr,
	}
}

// recordOpen and recordClose keep the session's storage record; a storage
// failure is logged, never fatal to the session: the record is metadata,
// and a gateway restart closes what it left open (CloseGatewaySessions).
func (h *host) recordOpen() {
	st := h.g.cfg.Sessions
	if st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(h.g.ctx, h.g.cfg.CoreTimeout)
	defer cancel()
	if _, err := st.UpsertSession(ctx, h.sessionRecord()); err != nil {
		h.g.storeErrors.Add(1)
		h.log.Warn("gateway: session record not stored", "err", err)
	}
}

func (h *host) recordClose() {
	st := h.g.cfg.Sessions
	if st == nil {
		return
	}
	// The gateway's context may be over (Close); the record still closes.
	ctx, cancel := context.WithTimeout(context.Background(), h.g.cfg.CoreTimeout)
	defer cancel()
	if err := st.CloseSession(ctx, h.id); err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.g.storeErrors.Add(1)
		h.log.Warn("gateway: session record not closed", "err", err)
	}
}

// sessionToucher is a session store that touches many sessions at once
// (the SQLite store, and the core's guarded store over it).
type sessionToucher interface {
	TouchSessions(ctx context.Context, ids []string) error
}

// touchSessions refreshes LastSeen of every live session, so that
// ExpireSessions closes only the records of a gateway that stopped.
func (g *Gateway) touchSessions(ctx context.Context) {
	st := g.cfg.Sessions
	if st == nil {
		return
	}
	g.mu.Lock()
	ids := make([]string, 0, len(g.hosts))
	for h := range g.hosts {
		ids = append(ids, h.id)
	}
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, g.cfg.CoreTimeout)
	defer cancel()
	if tt, ok := st.(sessionToucher); ok {
		// One transaction for many sessions instead of one fsync per
		// session, each of which the message log's commits wait behind
		// (D36).
		if err := tt.TouchSessions(ctx, ids); err != nil {
			g.storeErrors.Add(1)
			g.log.Debug("gateway: touch sessions", "sessions", len(ids), "err", err)
		}
		return
	}
	for _, id := range ids {
		if err := st.TouchSession(ctx, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			g.storeErrors.Add(1)
			g.log.Debug("gateway: touch session", "session", id, "err", err)
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// ---------------------------------------------------------------------------
// The host's side: publish through the core, subscribe with replay.

// catchup buffers a channel's live deliveries while its history is being
// replayed, so that replayed and live events reach the client in sequence
// order.
type catchup struct {
	buf []pubsub.Delivery[*event]
}

// subscribeCluster joins a channel in bus mode: the bus subscription (one
// per channel per gateway), the hub, and with Since a replay of the
// committed messages the client missed, followed by the live ones.
func (h *host) subscribeCluster(ctx context.Context, m *wire.Subscribe) {
	name := m.Channel
	if err := h.authorizeSubscribe(ctx, name); err != nil {
		h.refuse(m.ReqID, err)
		return
	}
	if _, ok := h.joined[name]; !ok {
		if err := h.g.cluster.join(ctx, name); err != nil {
			h.refuse(m.ReqID, err)
			return
		}
		h.joined[name] = struct{}{}
	}
	if m.HasSince {
		// Buffer live events from now on; the replay flushes them.
		h.cmu.Lock()
		h.catching[name] = &catchup{}
		h.cmu.Unlock()
	}
	if err := h.sub.Subscribe(name); err != nil {
		h.endCatchup(name)
		h.leaveCluster(name)
		h.refuse(m.ReqID, err)
		return
	}
	h.noteSubscribed(name, m.Since, m.HasSince)
	if !m.HasSince {
		h.ack(m.ReqID)
		return
	}
	h.wg.Go(func() {
		err := h.replay(ctx, name, storage.Seq(m.Since))
		// Live events buffered meanwhile go out even when the replay
		// failed: the client then sees the gap, not a stalled channel.
		if ferr := h.flushCatchup(name); ferr != nil || ctx.Err() != nil {
			return
		}
		if err != nil {
			h.refuse(m.ReqID, err)
			return
		}
		h.ack(m.ReqID)
	})
}

// fillGap replays what the bus lost between the last event sent on a
// channel and a later one that arrived (core messages are at most once),
// then resumes live delivery; routeDeliveryLocked has started buffering.
// It runs on the hub's delivery path, so the replay gets a goroutine of
// its own, joined by run; none starts once the session has ended.
func (h *host) fillGap(name string, after uint64) {
	h.g.cluster.gaps.Add(1)
	if !h.watchEnter() {
		return
	}
	ctx := h.ctx
	go func() {
		defer h.wg.Done()
		if err := h.replay(ctx, name, storage.Seq(after)); err != nil && ctx.Err() == nil {
			h.log.Warn("gateway: gap in channel events not filled", "channel", name, "after", after, "err", err)
		}
		_ = h.flushCatchup(name)
	}()
}

// leaveCluster undoes subscribeCluster's join.
func (h *host) leaveCluster(name string) {
	if _, ok := h.joined[name]; !ok {
		return
	}
	delete(h.joined, name)
	h.g.cluster.leave(name)
	h.cmu.Lock()
	delete(h.last, name)
	delete(h.capped, name)
	h.cmu.Unlock()
}

func (h *host) endCatchup(name string) {
	h.cmu.Lock()
	delete(h.catching, name)
	h.cmu.Unlock()
}

// replay sends the committed messages after since, up to MaxReplay. When
// some of them were trimmed it sends ERROR RECOVERY_IMPOSSIBLE naming the
// channel instead, and the client refetches history (ARCHITECTURE §4).
func (h *host) replay(ctx context.Context, name string, since storage.Seq) error {
	rctx, cancel := context.WithTimeout(ctx, h.g.cfg.CoreTimeout)
	rep, err := h.g.cluster.client.Recover(rctx, name, since, 0)
	cancel()
	if err != nil {
		return err
	}
	after := since
	msgs, more := rep.Messages, rep.More
	if !rep.Recoverable && rep.Info != nil {
		// Some of the missed events were trimmed: the client is told so
		// and refetches history itself; the subscription goes on live,
		// and its next event is sent despite the gap (JSP §5.7).
		h.recoveryImpossible(name, since, rep.Info.Oldest)
		h.markCapped(name)
		return nil
	}
	for sent := 0; ; {
		for i := range msgs {
			if sent >= h.g.cfg.MaxReplay {
				h.markCapped(name)
				return nil
			}
			env, err := storedEnvelope(&msgs[i])
			if err != nil {
				h.log.Warn("gateway: stored message not replayed", "channel", name, "err", err)
				continue
			}
			if err := h.sendReplayed(ctx, name, env); err != nil {
				return err
			}
			after = msgs[i].Seq
			sent++
		}
		if !more {
			return nil
		}
		if sent >= h.g.cfg.MaxReplay {
			h.markCapped(name)
			return nil
		}
		rctx, cancel := context.WithTimeout(ctx, h.g.cfg.CoreTimeout)
		rep, err := h.g.cluster.client.After(rctx, name, after, 0)
		cancel()
		if err != nil {
			return err
		}
		msgs, more = rep.Messages, rep.More
	}
}

// markCapped records that a replay of name stopped at MaxReplay: the next
// live event is sent despite the gap before it, which the client fills
// from history itself, instead of starting another replay.
func (h *host) markCapped(name string) {
	h.cmu.Lock()
	h.capped[name] = struct{}{}
	h.cmu.Unlock()
}

// replayQueueWait is how long a replay waits for room in the session's send
// queue before it gives the client up as a slow consumer: a replay is a
// burst the queue is not sized for, so it paces itself instead of failing
// at the first full queue.
const replayQueueWait = 5 * time.Second

// sendReplayed sends one replayed EVENT, skipping numbers already sent.
func (h *host) sendReplayed(ctx context.Context, name string, env *wire.Envelope) error {
	h.cmu.Lock()
	if env.Seq <= h.last[name] {
		h.cmu.Unlock()
		return nil
	}
	h.last[name] = env.Seq
	h.cmu.Unlock()
	deadline := time.Now().Add(replayQueueWait)
	for {
		err := h.sess.SendEnvelope(wire.FrameEvent, env)
		if err == nil {
			h.g.metrics.messagesOut.add(wire.FrameEvent.String(), 1)
			return nil
		}
		if jsperr.CodeOf(err) != jsperr.QueueFull || time.Now().After(deadline) {
			if jsperr.CodeOf(err) == jsperr.QueueFull {
				err = jsperr.Newf(jsperr.SlowConsumer, "send queue full replaying %s seq %d", name, env.Seq)
				h.closeOnError(err)
			}
			return err
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// flushCatchup sends the live events buffered during the replay that the
// replay did not cover, and switches the channel to live delivery. It
// holds cmu while queueing them, so that the hub cannot queue a later
// event of the channel first (onDelivery takes cmu too).
func (h *host) flushCatchup(name string) error {
	h.cmu.Lock()
	defer h.cmu.Unlock()
	c := h.catching[name]
	delete(h.catching, name)
	if c == nil {
		return nil
	}
	for _, d := range c.buf {
		if d.Seq <= h.last[name] {
			continue
		}
		skip := d.Msg.skip(d.Seq, h.last[name])
		delete(h.capped, name)
		h.last[name] = d.Seq
		if err := h.sendEvent(d, skip); err != nil {
			return err
		}
	}
	return nil
}

// routeDeliveryLocked decides what onDelivery does with a delivery in bus
// mode: buffer it during a replay, drop a number already sent, or send
// it. A number past the next one expected starts a replay of the gap: gap
// is then the last number sent, and the delivery waits in the buffer.
// h.cmu must be held.
//
// A delivery may carry a run of messages (D26), d.Seq being the last
// one's number: the run is judged by its first number for a gap, by its
// last for being already sent, and skip is how many of its messages the
// session has already had (a replay overlapped it).
func (h *host) routeDeliveryLocked(d pubsub.Delivery[*event]) (send bool, skip int, gap uint64, err error) {
	if d.Seq == 0 {
		// An ephemeral event (typing): never stored, so it takes no
		// place in the channel's order and is never replayed.
		return true, 0, 0, nil
	}
	if c := h.catching[d.Channel]; c != nil {
		if len(c.buf) >= h.g.cfg.Hub.QueueLength {
			return false, 0, 0, jsperr.Newf(jsperr.SlowConsumer, "more than %d live events of %s while replaying", h.g.cfg.Hub.QueueLength, d.Channel)
		}
		c.buf = append(c.buf, d)
		return false, 0, 0, nil
	}
	last := h.last[d.Channel]
	switch {
	case d.Seq <= last:
		return false, 0, 0, nil
	case last > 0 && d.Msg.first(d.Seq) > last+1 && !h.isCappedLocked(d.Channel):
		h.catching[d.Channel] = &catchup{buf: []pubsub.Delivery[*event]{d}}
		return false, 0, last, nil
	}
	skip = d.Msg.skip(d.Seq, last)
	delete(h.capped, d.Channel)
	h.last[d.Channel] = d.Seq
	return true, skip, 0, nil
}

func (h *host) isCappedLocked(name string) bool {
	_, ok := h.capped[name]
	return ok
}
