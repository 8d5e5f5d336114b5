package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/wire"
)

// Live runs and local delivery (decision D44). A session's live PUBLISHes
// whose permission is kept go through a queue to liveLoop, which takes
// every one waiting, up to PublishWindow, and for each channel among them
// puts the channel's PUBLISHes, in order, on the bus as one event (a run
// of unnumbered messages, core.Event.Messages with Ephemeral) and hands
// the same run to this gateway's own subscribers of the channel directly;
// then it acknowledges the batch in order of arrival, with one ACK frame
// for consecutive successes (JSP §5.6). The bus connection of the channel
// subscriptions does not echo (bus.NoEchoOpener), so the bus delivers the
// event to the other gateways only and no message comes back to its
// sender's gateway. On a bus without no-echo connections the event is
// delivered by the bus to every gateway, this one included, as before.

// maxLiveRunBytes caps the bodies of one live run, as the core caps its
// committed runs: the bus's payload limit (1 MiB in NATS) must hold the
// run in either bus encoding. A larger message goes alone.
const maxLiveRunBytes = 256 << 10

// startLive makes the session's live queue and starts liveLoop, one of the
// host's goroutines, which ends with the session.
func (h *host) startLive(ctx context.Context) {
	h.lives = make(chan *wire.Envelope, h.g.cfg.PublishWindow)
	h.wg.Add(1) // handle runs on a session goroutine: finish is not waiting yet
	go func() {
		defer h.wg.Done()
		h.liveLoop(ctx)
	}()
}

// queueLive hands env, whose permission is kept, to liveLoop. A full queue
// holds the caller back, and with it the session's reader (chat applies
// backpressure, JSP §11.3).
func (h *host) queueLive(ctx context.Context, env *wire.Envelope) {
	select {
	case h.lives <- env:
	case <-ctx.Done():
	}
}

// liveLoop fans the session's live PUBLISHes out in batches: everything
// queued when it takes the first, up to PublishWindow. The PUBLISHes of a
// session that is ending are not answered, as in publishLoop.
func (h *host) liveLoop(ctx context.Context) {
	window := h.g.cfg.PublishWindow
	var batch []*wire.Envelope
	for {
		select {
		case <-ctx.Done():
			return
		case env := <-h.lives:
			batch = append(batch[:0], env)
		}
	drain:
		for len(batch) < window {
			select {
			case env := <-h.lives:
				batch = append(batch, env)
			default:
				break drain
			}
		}
		h.fanOutLive(batch)
		clear(batch) // drop references to answered envelopes
	}
}

// fanOutLive puts batch, live PUBLISHes in order of arrival, on the bus and
// to local subscribers as one run per channel (a channel's PUBLISHes keep
// their order in it) and answers them in order of arrival.
func (h *host) fanOutLive(batch []*wire.Envelope) {
	out := make([]publishOutcome, len(batch))
	var order []string
	byChannel := map[string][]int{}
	for i, env := range batch {
		name := env.Route.Name
		if _, ok := byChannel[name]; !ok {
			order = append(order, name)
		}
		byChannel[name] = append(byChannel[name], i)
	}
	sender := h.sender()
	now := h.g.cfg.Now()
	for _, name := range order {
		idx := byChannel[name]
		for len(idx) > 0 {
			n, size := 0, 0
			for n < len(idx) && (n == 0 || size+len(batch[idx[n]].Body) <= maxLiveRunBytes) {
				size += len(batch[idx[n]].Body)
				n++
			}
			run := liveRun{msgs: make([]storage.Message, n), envs: make([]*wire.Envelope, n)}
			for j, i := range idx[:n] {
				run.msgs[j], run.envs[j] = liveMessage(batch[i], sender, now)
			}
			if err := h.g.cluster.publishLive(name, run); err != nil {
				h.g.ops.busErrors.Add(1)
				for _, i := range idx[:n] {
					out[i].err = err
				}
			}
			idx = idx[n:]
		}
	}
	h.answerPublishes(batch, out)
}

// liveRun is a run of one session's live messages on one channel, as the
// bus carries them and as local subscribers receive them.
type liveRun struct {
	msgs []storage.Message
	envs []*wire.Envelope // msgs[i]'s EVENT envelope, without seq
}

// liveMessage is storedMessage for a live PUBLISH, with the EVENT
// envelope its body encodes, for local subscribers.
func liveMessage(env *wire.Envelope, sender string, now time.Time) (storage.Message, *wire.Envelope) {
	ev := *env
	ev.Kind = wire.KindEvent
	ev.Sender = sender
	ev.Seq = 0
	return storage.Message{Sender: sender, Body: ev.Append(nil), Time: now}, &ev
}

// publishLive puts run on channel's subject as one event without sequence
// numbers and, when the bus does not echo it back, hands it to the local
// subscribers (D44). A bus failure leaves the local subscribers out too,
// so that an ERROR means the message went nowhere.
func (c *cluster) publishLive(channel string, run liveRun) error {
	subj, err := c.subj.Channel(channel)
	if err != nil {
		return jsperr.Wrap(jsperr.BadRequest, err)
	}
	ev := core.Event{Channel: channel, Ephemeral: true}
	if len(run.msgs) == 1 {
		ev.Message = run.msgs[0]
	} else {
		ev.Messages = run.msgs
	}
	data, err := c.codec.EncodeEvent(&ev)
	if err != nil {
		return fmt.Errorf("gateway: encode live event: %w", err)
	}
	if err := c.edge.Publish(subj, bus.Msg{Data: data}); err != nil {
		return jsperr.Wrap(jsperr.Unavailable, fmt.Errorf("gateway: live publish on %s: %w", subj, err))
	}
	if !c.noEcho {
		return nil
	}
	d := c.now().Sub(run.msgs[0].Time)
	for range run.envs {
		c.ops.delivery.observe(d)
	}
	if err := c.hub.PublishSeq(channel, 0, &event{envs: run.envs}); err != nil {
		c.log.Debug("gateway: live event not delivered", "channel", channel, "err", err)
	}
	return nil
}
