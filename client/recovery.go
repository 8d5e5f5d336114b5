package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// Message recovery (JSP §5.6, §5.7, §11.1 item 4; docs/protocol-guide.md,
// "Delivery guarantees"):
//
//   - Every channel has a seqTracker that hands the channel's subscriptions
//     each event once, in seq order: duplicates (replays after a resume or
//     a reconnect) are dropped, and an event after a gap waits in a bounded
//     buffer while the gap is fetched from the server's history service;
//     what cannot be fetched within RecoveryOptions.RepairTimeout is
//     reported to OnGap and skipped.
//   - The Client acknowledges what it delivered with cumulative ACK cursors,
//     at most every AckEvery events or AckDelay, so that a resumed session
//     replays only what it has not seen.
//   - On RECOVERY_IMPOSSIBLE (the events after the cursor were trimmed) the
//     Client calls OnRecoveryFailed and refetches the channel's latest
//     events before delivering live ones.
//   - PUBLISHes stay in an in-flight list until the server's ACK (sent
//     after the durable commit) and are sent again, with the same envelope
//     id, on the next session; the server drops duplicates (JSP §4.4).

// Defaults of RecoveryOptions.
const (
	// DefaultAckEvery is how many delivered events trigger an ACK of the
	// cursors at once.
	DefaultAckEvery = 64
	// DefaultAckDelay is the longest a delivered event waits to be
	// acknowledged. The cursors only shorten a resumed session's replay
	// (the Client drops what it already has), and AckEvery already bounds
	// that replay per channel; every ACK costs the server a read, so for a
	// subscriber of a quiet channel the delay decides how many of its
	// events cost two socket operations instead of one.
	DefaultAckDelay = 5 * time.Second
	// DefaultReorderLimit caps the events a channel buffers behind a gap.
	DefaultReorderLimit = 1024
	// DefaultRepairTimeout bounds the wait for a gap's events from
	// history; after it the gap is skipped and reported.
	DefaultRepairTimeout = 5 * time.Second
	// DefaultRecoveryHistory is how many of the latest events are fetched
	// after RECOVERY_IMPOSSIBLE.
	DefaultRecoveryHistory = 100
	// historyService is the gateway's history command route.
	historyService = "jsp.history"
	// maxAckCursors is the most cursors one ACK carries (JSP §5.6).
	maxAckCursors = 256
)

// RecoveryOptions configure resumption and message recovery. The zero value
// means the defaults.
type RecoveryOptions struct {
	// DisableResume makes reconnection start a new session (and subscribe
	// again with Since) instead of resuming the lost one.
	DisableResume bool
	// AckEvery sends the ACK cursors after this many delivered events.
	// Default: DefaultAckEvery.
	AckEvery int
	// AckDelay sends the ACK cursors at most this long after an event was
	// delivered. Default: DefaultAckDelay.
	AckDelay time.Duration
	// ReorderLimit caps the events one channel buffers behind a gap; when
	// it is reached the gap is skipped. Default: DefaultReorderLimit.
	ReorderLimit int
	// RepairTimeout bounds the fetch of a gap's events. Default:
	// DefaultRepairTimeout.
	RepairTimeout time.Duration
	// RecoveryHistory is how many of a channel's latest events are
	// fetched after RECOVERY_IMPOSSIBLE. Default: DefaultRecoveryHistory.
	RecoveryHistory int
	// OnRecoveryFailed is called when the server cannot replay what a
	// subscription missed (RECOVERY_IMPOSSIBLE): events were lost to
	// retention. The Client then delivers the channel's latest
	// RecoveryHistory events that are newer than the last one delivered,
	// and live events after them. It runs on a goroutine of the Client
	// and must return promptly.
	OnRecoveryFailed func(channel string)
	// OnGap is called when events from..to of a channel could not be
	// fetched within RepairTimeout and were skipped. Same goroutine rules
	// as OnRecoveryFailed.
	OnGap func(channel string, from, to uint64)
}

func (r *RecoveryOptions) setDefaults() {
	if r.AckEvery == 0 {
		r.AckEvery = DefaultAckEvery
	}
	if r.AckDelay == 0 {
		r.AckDelay = DefaultAckDelay
	}
	if r.ReorderLimit == 0 {
		r.ReorderLimit = DefaultReorderLimit
	}
	if r.RepairTimeout == 0 {
		r.RepairTimeout = DefaultRepairTimeout
	}
	if r.RecoveryHistory == 0 {
		r.RecoveryHistory = DefaultRecoveryHistory
	}
}

func (r *RecoveryOptions) validate() error {
	switch {
	case r.AckEvery < 0, r.ReorderLimit < 0, r.RecoveryHistory < 0:
		return errors.New("client: negative AckEvery, ReorderLimit or RecoveryHistory in RecoveryOptions")
	case r.AckDelay < 0, r.RepairTimeout < 0:
		return errors.New("client: negative duration in RecoveryOptions")
	}
	return nil
}

// ---------------------------------------------------------------------------
// Ordering: one seqTracker per subscribed channel.

// seqTracker delivers one channel's events in seq order, once each. Lock
// order: seqTracker.mu, then Client.mu (deliver takes it); nothing holding
// Client.mu takes a tracker's mu.
type seqTracker struct {
	c       *Client
	channel string
	// fetch reads history: Client.history, replaced in tests.
	fetch func(ctx context.Context, q HistoryQuery) (HistoryPage, error)

	mu        sync.Mutex
	started   bool                      // guarded by mu: last is meaningful
	last      uint64                    // guarded by mu: last seq delivered
	buf       map[uint64]*wire.Envelope // guarded by mu: events behind a gap
	repairing bool                      // guarded by mu: a fetch runs
	resync    bool                      // guarded by mu: waiting for the latest history
	// closed is set (under Client.mu, so without mu: lock order) when the
	// channel's last subscription ended; nothing is delivered after it.
	closed atomic.Bool
	// rebase makes the next event the new baseline: set (under
	// Client.mu) on a new session with a server without storage, whose
	// sequence numbers start again after a restart.
	rebase atomic.Bool

	// Delivery cursors, guarded by Client.mu (deliver, flushAcks, the
	// resubscription after a reconnect). They live here rather than in
	// maps by channel name so that a delivery hashes no channel name for
	// them.
	seen      uint64 // the highest Seq delivered; 0: none yet
	ackSeq    uint64 // the cursor to acknowledge, when ackQueued
	ackQueued bool   // t is in Client.ackQueue
}

func newSeqTracker(c *Client, channel string, since uint64, hasSince bool) *seqTracker {
	return &seqTracker{c: c, channel: channel, fetch: c.history, started: hasSince, last: since, buf: map[uint64]*wire.Envelope{}}
}

// push offers one received event.
func (t *seqTracker) push(env *wire.Envelope) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pushLocked(env, true)
}

// pushLocked delivers env if it is the next one, drops it if it was
// delivered, and otherwise buffers it and, with repair, starts fetching
// the gap. t.mu must be held.
func (t *seqTracker) pushLocked(env *wire.Envelope, repair bool) {
	if t.closed.Load() {
		return
	}
	if env.Seq == 0 {
		// An ephemeral event (typing, read markers; spec/JSP-chat.md
		// §4.1) is never stored, so it has no place in the channel's
		// order: delivered at once, never buffered or counted.
		t.c.deliver(t, env)
		return
	}
	if t.rebase.Swap(false) {
		t.started, t.buf = false, map[uint64]*wire.Envelope{}
	}
	switch {
	case t.resync:
		t.bufferLocked(env)
	case !t.started:
		// The first event of a live-only subscription sets the baseline.
		t.started, t.last = true, env.Seq
		t.c.deliver(t, env)
	case env.Seq <= t.last:
		t.c.duplicates.Add(1)
	case env.Seq == t.last+1:
		t.last = env.Seq
		t.c.deliver(t, env)
		t.drainLocked()
	default:
		t.bufferLocked(env)
		if repair && !t.repairing && !t.resync {
			t.repairing = true
			t.c.goRecover(func(ctx context.Context) { t.repair(ctx) })
		}
	}
}

// bufferLocked keeps env behind the gap; at ReorderLimit the gap is
// skipped instead (bounded memory).
func (t *seqTracker) bufferLocked(env *wire.Envelope) {
	if _, dup := t.buf[env.Seq]; dup {
		t.c.duplicates.Add(1)
		return
	}
	t.buf[env.Seq] = env
	if len(t.buf) > t.c.opts.Recovery.ReorderLimit && !t.resync {
		t.skipGapLocked()
	}
}

// drainLocked delivers buffered events that have become next in line.
func (t *seqTracker) drainLocked() {
	for {
		env, ok := t.buf[t.last+1]
		if !ok {
			break
		}
		delete(t.buf, t.last+1)
		t.last = env.Seq
		t.c.deliver(t, env)
	}
	for seq := range t.buf {
		if seq <= t.last {
			delete(t.buf, seq)
		}
	}
}

// skipGapLocked gives up on the gap before the oldest buffered event,
// reports it, and delivers what follows.
func (t *seqTracker) skipGapLocked() {
	if len(t.buf) == 0 {
		return
	}
	first := slices.Min(mapKeys(t.buf))
	if t.started && first > t.last+1 {
		from, to := t.last+1, first-1
		t.c.gapsSkipped.Add(1)
		t.c.log.Warn("events skipped after a gap that could not be repaired", "channel", t.channel, "from", from, "to", to)
		if fn := t.c.opts.Recovery.OnGap; fn != nil {
			fn(t.channel, from, to)
		}
	}
	t.started, t.last = true, first-1
	t.drainLocked()
}

func mapKeys(m map[uint64]*wire.Envelope) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// repair fetches the gap's events from history, then skips what is still
// missing.
func (t *seqTracker) repair(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, t.c.opts.Recovery.RepairTimeout)
	defer cancel()
	for {
		t.mu.Lock()
		after, gap := t.last, len(t.buf) > 0
		t.mu.Unlock()
		if !gap {
			break
		}
		page, err := t.fetch(ctx, HistoryQuery{Channel: t.channel, After: after})
		if err != nil || page.Trimmed {
			t.c.log.Debug("gap not repaired", "channel", t.channel, "after", after, "err", err, "trimmed", page.Trimmed)
			break
		}
		t.mu.Lock()
		for _, env := range page.envs {
			t.pushLocked(env, false)
		}
		progress := t.last > after
		t.mu.Unlock()
		if !progress || !page.More {
			break
		}
	}
	t.mu.Lock()
	t.repairing = false
	if len(t.buf) > 0 {
		t.skipGapLocked()
	}
	t.mu.Unlock()
}

// recoveryFailed handles RECOVERY_IMPOSSIBLE: the app is told, the latest
// history is delivered after what was delivered before, then the live
// events that waited meanwhile.
func (t *seqTracker) recoveryFailed() {
	t.mu.Lock()
	if t.closed.Load() || t.resync {
		t.mu.Unlock()
		return
	}
	t.resync = true
	t.mu.Unlock()
	t.c.recoveryFailures.Add(1)
	t.c.goRecover(func(ctx context.Context) {
		if fn := t.c.opts.Recovery.OnRecoveryFailed; fn != nil {
			fn(t.channel)
		}
		ctx, cancel := context.WithTimeout(ctx, t.c.opts.Recovery.RepairTimeout)
		defer cancel()
		page, err := t.fetch(ctx, HistoryQuery{Channel: t.channel, Latest: true, Limit: t.c.opts.Recovery.RecoveryHistory})
		if err != nil {
			t.c.log.Warn("latest history not fetched after RECOVERY_IMPOSSIBLE", "channel", t.channel, "err", err)
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		t.resync = false
		if len(page.envs) > 0 && (!t.started || page.envs[0].Seq > t.last+1) {
			// What lies between the last delivered event and the oldest
			// fetched one is lost to retention; the app was told.
			t.started, t.last = true, page.envs[0].Seq-1
		}
		for _, env := range page.envs {
			t.pushLocked(env, false)
		}
		if len(t.buf) > 0 {
			if first := slices.Min(mapKeys(t.buf)); !t.started || first > t.last+1 {
				t.started, t.last = true, first-1
			}
			t.drainLocked()
		}
	})
}

// close stops delivery: the channel has no subscription left. It may be
// called with Client.mu held.
func (t *seqTracker) close() { t.closed.Store(true) }

// goRecover runs fn on a goroutine the Client owns; fn's context ends at
// Close.
func (c *Client) goRecover(fn func(ctx context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(c.dispatchCtx)
	}()
}

// deliver hands one of t's in-order events to the channel's
// subscriptions and counts it for the ACK cursors.
func (c *Client) deliver(t *seqTracker, env *wire.Envelope) {
	c.mu.Lock()
	// Not copied: a published list never changes (Client.subs).
	subs := c.subs[t.channel]
	flush := false
	if env.Seq > 0 {
		// An ephemeral event (Seq 0) moves no cursor.
		t.seen = max(t.seen, env.Seq)
		flush = c.noteDeliveredLocked(t, env.Seq)
	}
	c.mu.Unlock()
	if flush {
		c.flushAcks()
	}
	ev := eventOf(env)
	for _, s := range subs {
		s.r.offer(ev)
	}
}

// ---------------------------------------------------------------------------
// ACK cursors.

// noteDeliveredLocked records seq as t's cursor; true when AckEvery
// events are waiting, so the caller flushes now. Otherwise the flush timer
// is armed. c.mu must be held.
func (c *Client) noteDeliveredLocked(t *seqTracker, seq uint64) bool {
	t.ackSeq = seq
	if !t.ackQueued {
		t.ackQueued = true
		c.ackQueue = append(c.ackQueue, t)
	}
	c.ackCount++
	if c.ackCount >= c.opts.Recovery.AckEvery {
		return true
	}
	if c.ackTimer == nil && !c.closed {
		c.ackTimer = time.AfterFunc(c.opts.Recovery.AckDelay, c.flushAcks)
	}
	return false
}

// flushAcks sends the pending cursors as ACKs on the session in use. A
// failed send keeps nothing: the next delivery sends the newer cursor, and
// a resume replays from the older one, which the trackers de-duplicate.
func (c *Client) flushAcks() {
	c.mu.Lock()
	if c.ackTimer != nil {
		c.ackTimer.Stop()
		c.ackTimer = nil
	}
	// By name: a channel subscribed again after its last subscription
	// ended has a new tracker, queued after the old one, and its cursor
	// wins.
	cursors := make(map[string]uint64, len(c.ackQueue))
	for _, t := range c.ackQueue {
		cursors[t.channel] = t.ackSeq
		t.ackQueued = false
	}
	clear(c.ackQueue) // keeps no ended tracker alive
	c.ackQueue, c.ackCount = c.ackQueue[:0], 0
	l, closed := c.cur, c.closed
	c.mu.Unlock()
	if closed || len(cursors) == 0 || !l.alive() {
		return
	}
	names := make([]string, 0, len(cursors))
	for name := range cursors {
		names = append(names, name)
	}
	slices.Sort(names)
	for len(names) > 0 {
		n := min(len(names), maxAckCursors)
		m := &wire.Ack{Cursors: make([]wire.Cursor, 0, n)}
		for _, name := range names[:n] {
			m.Cursors = append(m.Cursors, wire.Cursor{Channel: name, Seq: cursors[name]})
		}
		names = names[n:]
		if err := l.sess.Send(m); err != nil {
			c.log.Debug("ACK cursors not sent", "err", err)
			return
		}
		c.acksSent.Add(1)
	}
}

// ---------------------------------------------------------------------------
// History.

// HistoryQuery selects a page of a channel's committed events.
type HistoryQuery struct {
	// Channel is the channel. Required.
	Channel string
	// After selects the events with seq > After, oldest first.
	After uint64
	// Latest selects the newest events instead of After.
	Latest bool
	// Limit caps the page; 0 means the server's default page.
	Limit int
}

// HistoryPage is one page of a channel's events.
type HistoryPage struct {
	// Events are the page's events, ascending by seq.
	Events []Event
	// More reports that more events may follow the page.
	More bool
	// Trimmed reports that events after After are no longer retained.
	Trimmed bool
	// Oldest and Last are the channel's retained range, when the server
	// said.
	Oldest, Last uint64

	envs []*wire.Envelope
}

// historyRequest and historyReply are the JSON bodies of the gateway's
// history service (docs/protocol-guide.md).
type historyRequest struct {
	Channel string `json:"channel"`
	After   uint64 `json:"after,omitempty"`
	Latest  bool   `json:"latest,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

type historyReply struct {
	Events  [][]byte `json:"events,omitempty"`
	More    bool     `json:"more,omitempty"`
	Trimmed bool     `json:"trimmed,omitempty"`
	Oldest  uint64   `json:"oldest,omitempty"`
	Last    uint64   `json:"last,omitempty"`
}

// History reads one page of a channel's committed events from the
// server's history service (a server with storage). Each event is what a
// subscription would have received.
func (c *Client) History(ctx context.Context, q HistoryQuery) (HistoryPage, error) {
	p, err := c.history(ctx, q)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("client: history of %q: %w", q.Channel, err)
	}
	return p, nil
}

func (c *Client) history(ctx context.Context, q HistoryQuery) (HistoryPage, error) {
	body, err := json.Marshal(historyRequest{Channel: q.Channel, After: q.After, Latest: q.Latest, Limit: q.Limit})
	if err != nil {
		return HistoryPage{}, err
	}
	raw, err := c.Command(ctx, historyService, body)
	if err != nil {
		return HistoryPage{}, err
	}
	var rep historyReply
	if err := json.Unmarshal(raw, &rep); err != nil {
		return HistoryPage{}, jsperr.Wrap(jsperr.BadRequest, fmt.Errorf("history reply: %w", err))
	}
	p := HistoryPage{More: rep.More, Trimmed: rep.Trimmed, Oldest: rep.Oldest, Last: rep.Last}
	var prev uint64
	for _, b := range rep.Events {
		env, _, err := wire.ParseEnvelope(b)
		if err != nil {
			return HistoryPage{}, fmt.Errorf("history event: %w", err)
		}
		if env.Seq <= prev || env.Route.Name != q.Channel {
			return HistoryPage{}, jsperr.Newf(jsperr.BadRequest, "history event seq %d of %q out of order", env.Seq, env.Route.Name)
		}
		prev = env.Seq
		e := env
		p.envs = append(p.envs, &e)
		p.Events = append(p.Events, eventOf(&e))
	}
	return p, nil
}

// ---------------------------------------------------------------------------
// In-flight PUBLISHes.

// inflightPub is a PUBLISH sent and not yet acknowledged.
type inflightPub struct {
	q    queued
	done chan error // buffered; receives the ACK (nil) or the refusal
}

// trackLocked records a PUBLISH until its ACK. c.mu must be held.
func (c *Client) trackLocked(q queued) *inflightPub {
	p := &inflightPub{q: q, done: make(chan error, 1)}
	if c.inflight == nil {
		c.inflight = map[string]*inflightPub{}
	}
	c.inflight[string(q.env.ID)] = p
	c.inflightOrder = append(c.inflightOrder, string(q.env.ID))
	return p
}

// settle resolves the in-flight PUBLISHes named by an ACK (err nil) or an
// ERROR with ref (err its error); false when none was in flight.
func (c *Client) settle(ids [][]byte, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	found := false
	for _, id := range ids {
		if p, ok := c.inflight[string(id)]; ok {
			delete(c.inflight, string(id))
			p.done <- err
			found = true
		}
	}
	if found && len(c.inflightOrder) > 2*len(c.inflight)+64 {
		c.compactInflightLocked()
	}
	return found
}

// compactInflightLocked drops settled ids from the send order. c.mu must
// be held.
func (c *Client) compactInflightLocked() {
	c.inflightOrder = slices.DeleteFunc(c.inflightOrder, func(id string) bool {
		_, ok := c.inflight[id]
		return !ok
	})
}

// resendInflightLocked sends every unacknowledged PUBLISH again on l, in
// the original order and with the original ids. c.mu must be held.
func (c *Client) resendInflightLocked(l *link) {
	c.compactInflightLocked()
	for i, id := range c.inflightOrder {
		p := c.inflight[id]
		env, err := c.sigs.resign(p.q.env)
		if err == nil {
			p.q.env = env
			err = p.q.sendOn(l.sess)
		}
		if err != nil {
			c.log.Warn("unacknowledged messages not resent", "count", len(c.inflightOrder)-i, "err", err)
			return
		}
		c.resent.Add(1)
	}
}

// failInflightLocked ends every wait for an ACK with err. c.mu must be
// held.
func (c *Client) failInflightLocked(err error) {
	for id, p := range c.inflight {
		p.done <- err
		delete(c.inflight, id)
	}
	c.inflightOrder = nil
}

// PublishAcked publishes body to channel like Publish and waits until the
// server acknowledged it, which it does after the durable commit (JSP
// §5.6). With reconnection on, a PUBLISH whose session was lost is sent
// again with the same id on the next session, and the wait goes on; the
// server stores it once. A refusal is returned as the server's error.
func (c *Client) PublishAcked(ctx context.Context, channel string, body []byte) error {
	// A PUBLISH refused with RATE_LIMITED is sent again, under a fresh
	// id, after the retry-after (Options.RateLimitRetry).
	return c.retryRateLimited(ctx, func() error { return c.publishAcked(ctx, channel, body) })
}

func (c *Client) publishAcked(ctx context.Context, channel string, body []byte) error {
	p, err := c.publish(ctx, channel, body)
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("client: publish to %q: %w", channel, ErrNoAcks)
	}
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("client: publish to %q: %w", channel, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("client: publish to %q: waiting for the ACK: %w", channel, jsperr.Wrap(jsperr.Timeout, ctx.Err()))
	}
}

// ErrNoAcks is returned by PublishAcked when the server does not
// acknowledge PUBLISHes: a server without storage fans them out without a
// commit (the message was sent).
var ErrNoAcks = errors.New("server does not acknowledge PUBLISH")

// resumeInfo returns the resume request for the next session, or nil.
func (c *Client) resumeInfo() *wire.Resume {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opts.Recovery.DisableResume || c.resume == nil {
		return nil
	}
	return c.resume
}

// noteResumable records what resumes l's session later: its id and the
// token of its WELCOME. c.mu must be held.
func (c *Client) noteResumableLocked(l *link) {
	// A server that issues resume tokens keeps history, so it commits
	// PUBLISHes and acknowledges them (server/gateway, JSP §5.8).
	if tok := l.sess.ResumeToken(); len(tok) > 0 {
		c.resume = &wire.Resume{SessionID: l.sess.ID(), Token: tok}
		c.acking = true
	} else {
		c.resume, c.acking = nil, false
	}
}
