package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/internal/stackwarm"
	"github.com/jetstreamproto/jsp/qos"
)

// errHandled is what Recv returns once HandleMessages or DeliverInline took
// the messages.
var errHandled = errors.New("session: messages are handed to a callback (HandleMessages or DeliverInline)")

// The hand-off (HandleMessages) gives the received messages of a session
// whose application takes them by callback to that callback, on a
// goroutine that exists only while messages wait (decision D34, the
// pattern of D27): deliver queues a message and starts the goroutine when
// none runs; the goroutine pops in QoS order (qos.Scheduler, as Recv
// would) and ends when the queue is empty, clearing handing under the
// lock that found it empty, so no message is left behind. One goroutine
// at a time keeps the order within each class; a callback that blocks
// holds the rest back, and once a class's queue is full deliver applies
// that class's policy (backpressure for chat and bulk, JSP §11.3). The
// queue exists only while messages wait, and the state lives in the
// Session under recvMu, so an idle session holds nothing for it.
//
// Ownership: each run joins handoffWG, added under recvMu unless
// recvSealed is set. Wait seals after the session has ended and then
// waits for handoffWG, so it joins every run and none starts later. Close
// and CloseWithError do not wait for runs, so the callback may call them.

// recvConfig is the configuration of the session's receive queues: every
// class capped at Config.RecvQueueLength.
func (s *Session) recvConfig() qos.Config {
	var rq qos.Config
	for c := range rq.QueueLength {
		rq.QueueLength[c] = s.cfg.RecvQueueLength
	}
	rq.Now = s.cfg.Now
	return rq
}

// handoffPushLocked queues it for the callback, making the queue on first
// use. recvMu is held.
func (s *Session) handoffPushLocked(it qos.Item[Incoming]) error {
	if s.handoff == nil {
		s.handoff = qos.New[Incoming](s.recvConfig())
	}
	// Media returns what it dropped to make room; nobody counts those.
	_, err := s.handoff.Push(it)
	return err
}

// startHandoffLocked starts a run when messages wait and none runs.
// recvMu is held.
func (s *Session) startHandoffLocked() {
	if s.handing || s.recvSealed || s.handoff == nil || s.handoff.Len() == 0 {
		return
	}
	s.handing = true
	s.handoffWG.Add(1)
	go s.handOff()
}

// handOff hands queued messages to the callback, in QoS order, until none
// is left.
func (s *Session) handOff() {
	defer s.handoffWG.Done()
	stackwarm.Grow()
	for {
		s.recvMu.Lock()
		var (
			it qos.Item[Incoming]
			ok bool
		)
		if s.handoff != nil {
			it, ok = s.handoff.Pop(s.cfg.Now())
		}
		if !ok {
			s.handing = false
			s.handoff = nil // made again by the next message
			s.recvMu.Unlock()
			return
		}
		fn := s.handler
		s.recvMu.Unlock()
		if !fn(it.Value) {
			s.recvMu.Lock()
			s.halted = true
			s.handoff = nil
			s.recvMu.Unlock()
		}
	}
}

// HandleMessages hands every message the peer sends to fn, instead of
// Recv, in the order Recv would return them: system first, then media,
// chat and bulk by weighted fair share, each class in arrival order.
// Messages queued before the call are handed over first. fn runs on one
// goroutine at a time, which exists only while messages wait (decision
// D34), so a server needs no goroutine per session blocked in Recv. fn
// may block: messages then queue up to Config.RecvQueueLength per class
// and the class's policy applies (JSP §11.3: chat and bulk hold the
// reader back, media drops its oldest, a full system queue ends the
// session with SLOW_CONSUMER). When fn returns false, later messages are
// dropped: the caller is ending the session. Messages that arrived
// before the session ended are still handed over after it has. Wait
// returns only after fn's last call; fn may call Close or CloseWithError
// but never Wait. HandleMessages may be called once; Recv then fails.
func (s *Session) HandleMessages(fn func(Incoming) bool) {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	if s.handler != nil || s.inline.Load() != nil {
		return
	}
	s.handler = fn
	if q := s.recvQ; q != nil {
		for {
			it, ok := q.TryPop()
			if !ok {
				break
			}
			// The queues have the same caps, so this fits.
			_ = s.handoffPushLocked(it)
		}
		// A Recv waiting on them returns.
		q.Close()
		s.recvQ = nil
	}
	s.startHandoffLocked()
}

// recvQueuesLocked returns the queues Recv reads, making them on first
// use: a session whose messages go to HandleMessages never has them.
// recvMu must be held.
func (s *Session) recvQueuesLocked() *qos.RecvQueues[Incoming] {
	if s.recvQ == nil {
		s.recvQ = qos.NewRecvQueues[Incoming](s.recvConfig())
		if s.recvClosed {
			s.recvQ.Close()
		}
	}
	return s.recvQ
}

// DeliverInline hands every message the peer sends to fn on the goroutine
// that received it (the control reader, a stream's, the datagram intake),
// instead of queueing it for Recv: no goroutine hop and no queue per
// message. Calls are made one at a time, in the order the messages were
// received; messages queued before the call are handed over first, within
// it. fn must not block for long, since while it runs the session reads
// nothing more from that path (a blocked fn is backpressure, as a full
// receive queue is). It must not call Close, CloseWithError or Wait. No
// call starts after Close returns. DeliverInline may be called once, and
// not after HandleMessages; Recv then fails.
//
// A client whose dispatcher only routes messages to handler queues uses
// it (the Go SDK, D47): each received event crossed one goroutine more.
func (s *Session) DeliverInline(fn func(Incoming)) {
	s.inlineMu.Lock()
	defer s.inlineMu.Unlock()
	s.recvMu.Lock()
	if s.handler != nil || s.inline.Load() != nil {
		s.recvMu.Unlock()
		return
	}
	s.inline.Store(&fn)
	var queued []Incoming
	if q := s.recvQ; q != nil {
		for {
			it, ok := q.TryPop()
			if !ok {
				break
			}
			queued = append(queued, it.Value)
		}
		// A Recv waiting on them returns.
		q.Close()
		s.recvQ = nil
	}
	s.recvMu.Unlock()
	// Still under inlineMu: a message received meanwhile waits for these.
	for _, in := range queued {
		fn(in)
	}
}

// deliverInline calls DeliverInline's function with in, unless the
// session ended.
func (s *Session) deliverInline(fn func(Incoming), in Incoming) error {
	s.inlineMu.Lock()
	defer s.inlineMu.Unlock()
	s.recvMu.Lock()
	closed := s.recvClosed
	s.recvMu.Unlock()
	if closed {
		return qos.ErrClosed
	}
	fn(in)
	return nil
}

// pushReceived queues one received message for HandleMessages or Recv,
// or hands it to DeliverInline's function. After the session ended it is
// refused with qos.ErrClosed; after the callback returned false it is
// dropped.
func (s *Session) pushReceived(class protocol.Class, in Incoming) error {
	if fn := s.inline.Load(); fn != nil {
		return s.deliverInline(*fn, in)
	}
	it := qos.Item[Incoming]{Class: class, Value: in}
	s.recvMu.Lock()
	if fn := s.inline.Load(); fn != nil {
		// Set between the two looks: the queue is gone.
		s.recvMu.Unlock()
		return s.deliverInline(*fn, in)
	}
	defer s.recvMu.Unlock()
	if s.handler == nil {
		// Pushed under recvMu, so that HandleMessages moves every
		// message queued before it.
		_, _, err := s.recvQueuesLocked().Push(it)
		return err
	}
	if s.recvClosed {
		return qos.ErrClosed
	}
	if s.halted {
		return nil
	}
	if err := s.handoffPushLocked(it); err != nil {
		return err
	}
	s.startHandoffLocked()
	return nil
}

// closeReceived refuses further received messages; Recv and the hand-off
// still hand out those queued. It then starts OnEnd's function.
func (s *Session) closeReceived() {
	s.recvMu.Lock()
	s.recvClosed = true
	q, end := s.recvQ, s.onEnd
	s.onEnd = nil
	s.recvMu.Unlock()
	if q != nil {
		q.Close()
	}
	if end != nil {
		go end()
	}
}

// OnEnd arranges for f to run, on a goroutine of its own, once the session
// has ended (at once when it already has); f may call Wait. The caller owns
// that goroutine and joins it as it sees fit. A server hosting a session
// by callbacks (HandleMessages, HandleArrivals) uses it to clean up
// without a goroutine that waits for the end, and without a
// context.AfterFunc on Context, which costs every session a child
// context, its registration and a Done channel (D34). Only the last f
// given runs.
func (s *Session) OnEnd(f func()) {
	s.recvMu.Lock()
	if !s.recvClosed {
		s.onEnd = f
		s.recvMu.Unlock()
		return
	}
	s.recvMu.Unlock()
	go f()
}

// Recv returns the next message from the peer, serving QoS classes in
// priority order. It fails when ctx ends or the session closes, and once
// HandleMessages has been called.
func (s *Session) Recv(ctx context.Context) (Incoming, error) {
	s.recvMu.Lock()
	if s.handler != nil || s.inline.Load() != nil {
		s.recvMu.Unlock()
		return Incoming{}, errHandled
	}
	q := s.recvQueuesLocked()
	s.recvMu.Unlock()
	// Pop returns when either the caller's context ends or the queues are
	// closed by Close; a session that ended on error closes them too.
	it, err := q.Pop(ctx)
	if err != nil {
		if s.ctx.Err() != nil {
			return Incoming{}, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
		}
		if errors.Is(err, qos.ErrClosed) {
			// HandleMessages took the messages while this Recv waited.
			return Incoming{}, errHandled
		}
		return Incoming{}, err
	}
	return it.Value, nil
}
