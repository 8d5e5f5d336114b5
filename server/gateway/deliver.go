package gateway

import (
	"sync"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/pubsub"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// event is one channel message as the hub hands it to every local
// subscriber (JSP §5.8). Its EVENT frame is the same for all of them,
// sequence number included, so it is encoded once, by the first delivery
// that needs it, and the same bytes are queued on every session
// (decision D26).
type event struct {
	env *wire.Envelope // read-only: shared by every delivery

	once  sync.Once
	frame *session.SharedFrame // set by once
}

// shared returns the event's encoded EVENT frame with sequence number seq.
// Every delivery of one event carries the same number (the hub assigns it
// once per publish), so the first caller's seq is everyone's.
func (e *event) shared(seq uint64, g *Gateway) *session.SharedFrame {
	e.once.Do(func() {
		ev := *e.env
		ev.Seq = seq
		e.frame = session.NewSharedEnvelope(wire.FrameEvent, &ev, g.cfg.Now())
	})
	return e.frame
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
		return !isSlow(h.sendEvent(d))
	}
	h.cmu.Lock()
	defer h.cmu.Unlock()
	send, gap, err := h.routeDeliveryLocked(d)
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
	return !isSlow(h.sendEvent(d))
}

func isSlow(err error) bool { return jsperr.CodeOf(err) == jsperr.SlowConsumer }

// sendEvent queues one delivery as an EVENT. A full send queue gives the
// session up: JSP §11.3, chat is never dropped, so a client whose queue
// stays full is a slow consumer; sendEvent then starts the close and
// returns SLOW_CONSUMER. Any other failure means the session is over or
// the event cannot go to this client, and is counted, not fatal.
func (h *host) sendEvent(d pubsub.Delivery[*event]) error {
	f := d.Msg.shared(d.Seq, h.g)
	if err := h.sess.SendShared(f); err != nil {
		if h.ctx.Err() != nil {
			return h.ctx.Err()
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
	h.g.metrics.messagesOut.add(wire.FrameEvent.String(), 1)
	h.g.ops.countOut(d.Msg.env.Class)
	return nil
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
