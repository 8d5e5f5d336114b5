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
// and hands each channel's part of the round to that channel's queue
// (chanQueue). A channel has at most one core request in flight; when it
// ends, the next request takes everything the channel's queue holds, up to
// PublishWindow messages, so one hot channel is still committed a window
// per round trip while a slow channel no longer holds back the session's
// other channels. Each channel's requests reach its core one after the
// other and carry their messages in the order received, so one client's
// messages to a channel keep their order (JSP §4.6, §5.8). Rounds are
// answered in order, ACKs and ERRORs in the order the PUBLISHes arrived,
// each after its message's commit (JSP §5.6). At most
// PublishRounds × PublishWindow PUBLISHes are taken and not yet answered;
// beyond that they wait in h.pubs (capacity PublishWindow), and a full
// queue holds the session's reader back.
//
// Goroutines: the loop owns one answering goroutine and the channel
// queues' senders, and returns only after all of them.
func (h *host) publishLoop(ctx context.Context) {
	window := h.g.cfg.PublishWindow
	budget := make(chan struct{}, max(h.g.cfg.PublishRounds, 1)*window) // one token per PUBLISH taken and not answered
	rounds := make(chan *publishRound, cap(budget))                     // in order, to the answerer
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
			for range r.batch {
				<-budget
			}
			clear(r.batch) // drop references to answered envelopes
		}
	})
	var senders sync.WaitGroup
	defer answerer.Wait()
	defer close(rounds)
	defer senders.Wait()
	queues := map[string]*chanQueue{}
	for {
		var first *wire.Envelope
		select {
		case <-ctx.Done():
			return
		case first = <-h.pubs:
		}
		select {
		case budget <- struct{}{}:
		case <-ctx.Done():
			return
		}
		batch := []*wire.Envelope{first}
	drain:
		for len(batch) < window {
			select {
			case budget <- struct{}{}:
			default:
				break drain
			}
			select {
			case env := <-h.pubs:
				batch = append(batch, env)
			default:
				<-budget // not used
				break drain
			}
		}
		r := &publishRound{batch: batch, out: make([]publishOutcome, len(batch)), start: time.Now()}
		// Started first: its WaitGroup counts its parts before the
		// answerer waits on it.
		h.startRound(ctx, r, queues, &senders)
		rounds <- r
	}
}

// publishRound is one window of PUBLISHes being committed.
type publishRound struct {
	batch   []*wire.Envelope
	out     []publishOutcome
	start   time.Time
	commits sync.WaitGroup // one per channel part, done once it is answered
}

// publishOutcome is one PUBLISH's answer: its commit's failure, or nil.
type publishOutcome struct {
	err error
}

// roundPart is one channel's PUBLISHes of a round: their indexes in the
// round's batch, in order of arrival.
type roundPart struct {
	r   *publishRound
	idx []int
}

// chanQueue holds the round parts of one channel waiting for its request
// in flight (D36). The publish loop appends; the channel's sender, which
// runs while the queue is busy, takes.
type chanQueue struct {
	mu      sync.Mutex
	pending []roundPart // guarded by mu
	busy    bool        // guarded by mu: a sender runs
}

// startRound hands each channel's part of r to the channel's queue and
// starts the queue's sender when none runs. queues belongs to the publish
// loop; idle queues are dropped, so it holds at most the channels of the
// rounds in flight.
func (h *host) startRound(ctx context.Context, r *publishRound, queues map[string]*chanQueue, senders *sync.WaitGroup) {
	for name, q := range queues {
		q.mu.Lock()
		idle := !q.busy
		q.mu.Unlock()
		if idle {
			delete(queues, name)
		}
	}
	// Group by channel, keeping the order of arrival within each channel.
	var order []string
	parts := map[string]*roundPart{}
	for i, env := range r.batch {
		name := env.Route.Name
		p := parts[name]
		if p == nil {
			p = &roundPart{r: r}
			parts[name] = p
			order = append(order, name)
		}
		p.idx = append(p.idx, i)
	}
	r.commits.Add(len(order))
	for _, name := range order {
		q := queues[name]
		if q == nil {
			q = &chanQueue{}
			queues[name] = q
		}
		q.mu.Lock()
		q.pending = append(q.pending, *parts[name])
		start := !q.busy
		q.busy = true
		q.mu.Unlock()
		if start {
			senders.Go(func() { h.sendChannel(ctx, name, q) })
		}
	}
}

// sendChannel commits q's pending parts, one core request at a time, each
// taking every part waiting up to PublishWindow messages (a part is never
// split, and a round's part is at most a window), until q is empty.
func (h *host) sendChannel(ctx context.Context, channel string, q *chanQueue) {
	sender := h.sender()
	for {
		q.mu.Lock()
		n, take := 0, 0
		for take < len(q.pending) && (take == 0 || n+len(q.pending[take].idx) <= h.g.cfg.PublishWindow) {
			n += len(q.pending[take].idx)
			take++
		}
		parts := q.pending[:take:take]
		q.pending = q.pending[take:]
		if take == 0 {
			q.busy = false
			q.pending = nil
		}
		q.mu.Unlock()
		if take == 0 {
			return
		}
		if ctx.Err() == nil {
			h.commitChannel(ctx, channel, sender, parts)
		}
		for _, p := range parts {
			p.r.commits.Done()
		}
	}
}

// commitChannel commits the PUBLISHes of parts, all to one channel and in
// order, with one core request and fills their outcomes in their rounds.
func (h *host) commitChannel(ctx context.Context, channel, sender string, parts []roundPart) {
	var msgs []storage.Message
	for _, p := range parts {
		for _, i := range p.idx {
			msgs = append(msgs, storedMessage(p.r.batch[i], sender))
		}
	}
	rctx, cancel := context.WithTimeout(ctx, h.g.cfg.CoreTimeout)
	defer cancel()
	res, err := h.g.cluster.client.PublishMany(rctx, channel, msgs)
	if err != nil && ctx.Err() == nil {
		h.g.ops.busErrors.Add(1)
	}
	j := 0
	for _, p := range parts {
		for _, i := range p.idx {
			switch {
			case err != nil:
				p.r.out[i].err = err
			default:
				p.r.out[i].err = res[j].Err()
			}
			j++
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

// sender is who the session's PUBLISHes are stored as: the authenticated
// user, or the session id for an anonymous session.
func (h *host) sender() string {
	if h.user == "" {
		return h.id
	}
	return h.user
}
