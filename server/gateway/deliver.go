package gateway

import (
	"sync"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/pubsub"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// event is one hub publish as every local subscriber receives it (JSP
// §5.8): one channel message, or in bus mode a run of messages with
// consecutive numbers that the core committed together (core.Event
// Messages, D26). Its EVENT frames are the same for every subscriber,
// sequence numbers included, so they are encoded once, by the first
// delivery that needs them, and the same bytes are queued on every
// session; a run goes as one queue item, so a subscriber's sender
// usually writes it at once.
type event struct {
	envs []*wire.Envelope // read-only: shared by every delivery

	once   sync.Once
	frames []*session.SharedFrame // set by once: one per envelope
	run    *session.SharedFrame   // set by once: frames as one item; nil for one message or mixed classes
}

// build encodes the event's frames once. seq is the delivery's number:
// a single message takes it (the hub numbers standalone publishes; in bus
// mode it is the envelope's own), a run keeps its envelopes' numbers.
func (e *event) build(seq uint64, g *Gateway) {
	e.once.Do(func() {
		now := g.cfg.Now()
		e.frames = make([]*session.SharedFrame, len(e.envs))
		for i, env := range e.envs {
			ev := *env
			if len(e.envs) == 1 {
				ev.Seq = seq
			}
			e.frames[i] = session.NewSharedEnvelope(wire.FrameEvent, &ev, now)
		}
		if len(e.frames) > 1 {
			e.run = session.JoinShared(e.frames...)
		}
	})
}

// first returns the number of the event's first message, given the
// delivery's number seq (its last).
func (e *event) first(seq uint64) uint64 { return seq - uint64(len(e.envs)-1) }

// skip returns how many of the event's leading messages have numbers at
// or below last, given the delivery's number seq.
func (e *event) skip(seq, last uint64) int {
	first := e.first(seq)
	if last < first {
		return 0
	}
	return int(min(last-first+1, uint64(len(e.envs))))
}

// onDelivery is the host's hub sink (pubsub.NewSinkSubscriber): it runs on
// the goroutine that publishes to the hub (a bus delivery, or the
// publisher's own in standalone mode), with the channel locked, and
// queues the event on the session's send queue without blocking. The
// session's sender writes it. In bus mode the replay state decides first
// (routeDeliveryLocked); cmu stays held while the frame is queued so that a
// replay's flush cannot put a later event of the channel ahead of it.
//
// It returns false only when the session is given up as a slow consumer;
// the hub then drops the subscriber.
func (h *host) onDelivery(d pubsub.Delivery[*event]) bool {
	if h.g.cluster == nil {
		return !isSlow(h.sendEvent(d, 0))
	}
	h.cmu.Lock()
	defer h.cmu.Unlock()
	send, skip, gap, err := h.routeDeliveryLocked(d)
	if err != nil {
		h.closeAsync(err)
		return false
	}
	if gap > 0 {
		h.fillGap(d.Channel, gap)
	}
	if !send {
		return true
	}
	return !isSlow(h.sendEvent(d, skip))
}

func isSlow(err error) bool { return jsperr.CodeOf(err) == jsperr.SlowConsumer }

// sendEvent queues a delivery as EVENTs, leaving out its first skip
// messages (already sent by a replay). A full send queue gives the
// session up: JSP §11.3, chat is never dropped, so a client whose queue
// stays full is a slow consumer; sendEvent then starts the close and
// returns SLOW_CONSUMER. An unnumbered (live) event that finds the queue
// full is dropped for this client instead (D43). Any other failure means
// the session is over or the event cannot go to this client, and is
// counted, not fatal.
func (h *host) sendEvent(d pubsub.Delivery[*event], skip int) error {
	e := d.Msg
	e.build(d.Seq, h.g)
	if skip == 0 && e.run != nil {
		err := h.sess.SendShared(e.run)
		if err == nil {
			h.countEvents(e.envs)
			return nil
		}
		// An unnumbered run that found the queue full is tried message
		// by message below, where each one that finds it still full is
		// counted as dropped (eventFailed).
		if d.Seq != 0 || jsperr.CodeOf(err) != jsperr.QueueFull {
			if err := h.eventFailed(d, err); err != nil {
				return err
			}
		}
		// One message of the run cannot go to this client (its size
		// limit): the others go one by one.
	}
	for i, f := range e.frames[skip:] {
		if err := h.sess.SendShared(f); err != nil {
			if err := h.eventFailed(d, err); err != nil {
				return err
			}
			continue
		}
		h.countEvents(e.envs[skip+i : skip+i+1])
	}
	return nil
}

// eventFailed handles a failed SendShared of delivery d: it returns the
// session's end (closed, or given up here as a slow consumer) and nil for
// a failure of this event only, which it counts. A full send queue gives
// the session up for a numbered event and drops an unnumbered one.
func (h *host) eventFailed(d pubsub.Delivery[*event], err error) error {
	if h.ctx.Err() != nil {
		return h.ctx.Err()
	}
	if jsperr.CodeOf(err) == jsperr.QueueFull && d.Seq == 0 {
		// An event without a number (a live channel's, D43) is delivered
		// at most once and never replayed: a subscriber that is behind
		// loses it and keeps its session, and is given up only if it
		// stops reading altogether (the session's write timeout). It is
		// stale by the time the queue drains anyway.
		h.g.ops.ephemeralDropped.Add(1)
		return nil
	}
	if jsperr.CodeOf(err) == jsperr.QueueFull {
		err := jsperr.Newf(jsperr.SlowConsumer, "send queue full delivering %s seq %d", d.Channel, d.Seq)
		h.closeAsync(err)
		return err
	}
	h.g.metrics.errors.add(jsperr.CodeOf(err).String(), 1)
	h.log.Debug("event not sent", "channel", d.Channel, "seq", d.Seq, "err", err)
	return nil
}

// countEvents counts EVENTs queued to the client.
func (h *host) countEvents(envs []*wire.Envelope) {
	h.g.metrics.messagesOut.add(wire.FrameEvent.String(), int64(len(envs)))
	for _, env := range envs {
		h.g.ops.countOut(env.Class)
	}
}

// closeAsync ends the session with err's code from a goroutine of its own:
// the hub's delivery path must not wait for the session's goroutines,
// which CloseWithError does. Only the first call starts one, and none
// starts once the session has ended.
func (h *host) closeAsync(err error) {
	if h.closing.Swap(true) || !h.watchEnter() {
		return
	}
	go func() {
		defer h.wg.Done()
		h.closeOnError(err)
	}()
}
