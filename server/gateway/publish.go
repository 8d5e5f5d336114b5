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

// publishLoop commits the session's PUBLISHes in bus mode (D23, D36). It
// takes every PUBLISH queued, up to Config.PublishWindow, as one round,
// and commits the round with one core request per channel, so that they
// share one bus round trip and one storage commit instead of paying both
// one message at a time. Up to Config.PublishRounds rounds are committed
// at once: a round's request to a channel goes out as soon as the
// previous round's request to that channel has been answered (a chain per
// channel), so one slow channel no longer holds back the session's other
// channels, while each channel's requests still reach its core one after
// the other and commit in order; each request carries its messages in the
// order received, so one client's messages to a channel keep their order
// (JSP §4.6, §5.8). The rounds are answered in order, ACKs and ERRORs in
// the order the PUBLISHes arrived, each after its message's commit (JSP
// §5.6). PUBLISHes arriving meanwhile wait in h.pubs (capacity
// PublishWindow); a full queue holds the session's reader back.
//
// Goroutines: the loop owns one answering goroutine and the commit
// goroutines of its rounds, and returns only after all of them.
func (h *host) publishLoop(ctx context.Context) {
	depth := max(h.g.cfg.PublishRounds, 1)
	rounds := make(chan *publishRound, depth) // in order, to the answerer
	slots := make(chan struct{}, depth)       // rounds not yet answered
	var answerer sync.WaitGroup
	answerer.Go(func() {
		for r := range rounds {
			r.commits.Wait()
			if ctx.Err() == nil {
				// A session that is ending is not answered: its client
				// resends what it did not see acknowledged, and
				// de-duplication makes that safe.
				h.g.ops.commit.observe(time.Since(r.start))
				h.answerPublishes(r.batch, r.out)
			}
			clear(r.batch) // drop references to answered envelopes
			<-slots
		}
	})
	defer answerer.Wait()
	defer close(rounds)
	chains := map[string]chan struct{}{} // per channel: its latest request's end
	for {
		var first *wire.Envelope
		select {
		case <-ctx.Done():
			return
		case first = <-h.pubs:
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		batch := make([]*wire.Envelope, 1, h.g.cfg.PublishWindow)
		batch[0] = first
	drain:
		for len(batch) < h.g.cfg.PublishWindow {
			select {
			case env := <-h.pubs:
				batch = append(batch, env)
			default:
				break drain
			}
		}
		rounds <- h.startRound(ctx, batch, chains)
	}
}

// publishRound is one window of PUBLISHes being committed.
type publishRound struct {
	batch   []*wire.Envelope
	out     []publishOutcome
	start   time.Time
	commits sync.WaitGroup // the round's channel requests
}

// publishOutcome is one PUBLISH's answer: its commit's failure, or nil.
type publishOutcome struct {
	err error
}

// startRound starts committing batch, one core request per channel, each
// after the previous request to its channel (chains, which only the
// publish loop touches) has ended, and returns the round.
func (h *host) startRound(ctx context.Context, batch []*wire.Envelope, chains map[string]chan struct{}) *publishRound {
	sender := h.user
	if sender == "" {
		sender = h.id
	}
	// Forget the channels whose last request has ended, so that chains
	// holds at most the channels of the rounds in flight.
	for name, done := range chains {
		select {
		case <-done:
			delete(chains, name)
		default:
		}
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
	r := &publishRound{batch: batch, out: make([]publishOutcome, len(batch)), start: time.Now()}
	for _, name := range order {
		prev, done := chains[name], make(chan struct{})
		chains[name] = done
		r.commits.Go(func() {
			defer close(done)
			if prev != nil {
				select {
				case <-prev:
				case <-ctx.Done():
					return
				}
			}
			h.commitChannel(ctx, name, sender, batch, groups[name], r.out)
		})
	}
	return r
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
