package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/wire"
)

// startPublishing creates the session's PUBLISH queue and starts
// publishLoop; recvLoop calls it for the first PUBLISH in bus mode. The
// loop is one of the host's goroutines and ends with the session.
func (h *host) startPublishing(ctx context.Context) {
	h.pubs = make(chan *wire.Envelope, h.g.cfg.PublishWindow)
	h.pubsQueue.Store(&h.pubs)
	h.wg.Add(1) // recvLoop is itself a host goroutine: run is not waiting yet
	go func() {
		defer h.wg.Done()
		h.publishLoop(ctx)
	}()
}

// publishLoop commits the session's PUBLISHes in bus mode (D23). It takes
// every PUBLISH queued, up to Config.PublishWindow, and commits them with
// one core request per channel, so that they share one bus round trip and
// one storage commit instead of paying both one message at a time. Each
// channel's request carries its messages in the order received, and the
// core commits them in that order, so one client's messages to a channel
// keep their order (JSP §4.6, §5.8); ACKs and ERRORs then go out in the
// order the PUBLISHes arrived, each after its message's commit (JSP §5.6).
// PUBLISHes arriving meanwhile wait in h.pubs (capacity PublishWindow)
// for the next round; a full queue holds the session's reader back.
func (h *host) publishLoop(ctx context.Context) {
	batch := make([]*wire.Envelope, 0, h.g.cfg.PublishWindow)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case env := <-h.pubs:
			batch = append(batch, env)
		}
	drain:
		for len(batch) < h.g.cfg.PublishWindow {
			select {
			case env := <-h.pubs:
				batch = append(batch, env)
			default:
				break drain
			}
		}
		h.publishCommit(ctx, batch)
		clear(batch) // drop references to answered envelopes
	}
}

// publishOutcome is one PUBLISH's answer: its commit's failure, or nil.
type publishOutcome struct {
	err error
}

// publishCommit commits batch, one core request per channel (in parallel
// across channels), then answers every PUBLISH in batch order.
func (h *host) publishCommit(ctx context.Context, batch []*wire.Envelope) {
	sender := h.user
	if sender == "" {
		sender = h.id
	}
	// Group by channel, keeping the order of arrival within each channel.
	var order []string
	groups := map[string][]int{}
	for i, env := range batch {
		name := env.Route.Name
		if _, ok := groups[name]; !ok {
			order = append(order, name)
		}
		groups[name] = append(groups[name], i)
	}
	out := make([]publishOutcome, len(batch))
	start := time.Now()
	if len(order) == 1 {
		h.commitChannel(ctx, order[0], sender, batch, groups[order[0]], out)
	} else {
		var wg sync.WaitGroup
		for _, name := range order {
			wg.Go(func() { h.commitChannel(ctx, name, sender, batch, groups[name], out) })
		}
		wg.Wait()
	}
	if ctx.Err() != nil {
		// The session is ending: its client resends what it did not
		// see acknowledged, and de-duplication makes that safe.
		return
	}
	h.g.ops.commit.observe(time.Since(start))
	h.answerPublishes(batch, out)
}

// commitChannel commits the PUBLISHes batch[idx...] of one channel with one
// core request and fills their outcomes.
func (h *host) commitChannel(ctx context.Context, channel, sender string, batch []*wire.Envelope, idx []int, out []publishOutcome) {
	msgs := make([]storage.Message, len(idx))
	for j, i := range idx {
		msgs[j] = storedMessage(batch[i], sender)
	}
	rctx, cancel := context.WithTimeout(ctx, h.g.cfg.CoreTimeout)
	defer cancel()
	res, err := h.g.cluster.client.PublishMany(rctx, channel, msgs)
	if err != nil {
		if ctx.Err() == nil {
			h.g.ops.busErrors.Add(1)
		}
		for _, i := range idx {
			out[i].err = err
		}
		return
	}
	for j, i := range idx {
		if err := res[j].Err(); err != nil {
			out[i].err = err
		}
	}
}

// answerPublishes sends the ACKs and ERRORs of batch in batch order: a run
// of commits is acknowledged with one ACK listing its ids (JSP §5.6 lets
// a sender coalesce acknowledgements), a failure with its own ERROR.
func (h *host) answerPublishes(batch []*wire.Envelope, out []publishOutcome) {
	var ids [][]byte
	flush := func() {
		if len(ids) == 0 {
			return
		}
		if err := h.sess.Send(&wire.Ack{IDs: ids}); err == nil {
			h.g.metrics.messagesOut.add(wire.FrameAck.String(), 1)
		}
		ids = nil
	}
	for i, env := range batch {
		if err := out[i].err; err != nil {
			flush()
			h.refuse(env.ID, err)
			continue
		}
		if len(ids) == wire.MaxAckIDs {
			flush()
		}
		ids = append(ids, env.ID)
	}
	flush()
}
