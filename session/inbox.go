package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/qos"
)

// errHandled is what Recv returns once HandleMessages took the messages.
var errHandled = errors.New("session: messages are handed to HandleMessages")

// inbox holds the received messages of a session whose application takes
// them by callback (HandleMessages) and runs that callback on a goroutine
// that exists only while messages wait (decision D34, the pattern of D27):
// deliver queues a message and starts the goroutine when none runs; the
// goroutine pops in QoS order (qos.Scheduler, as Recv would) and ends when
// the queue is empty, clearing running under the lock that found it empty,
// so no message is left behind. One goroutine at a time keeps the order
// within each class; a callback that blocks holds the rest back, and once
// a class's queue is full deliver applies that class's policy
// (backpressure for chat and bulk, JSP §11.3). The queue itself exists
// only while messages wait.
//
// Ownership: each run joins wg, added under mu unless sealed is set. Wait
// seals the inbox after the session has ended and then waits for wg, so
// it joins every run and none starts later. Close and CloseWithError do
// not wait for runs, so the callback may call them.
type inbox struct {
	fn  func(Incoming) bool
	qc  qos.Config
	now func() time.Time
	wg  sync.WaitGroup

	mu      sync.Mutex
	sched   *qos.Scheduler[Incoming] // guarded by mu; nil while empty
	running bool                     // guarded by mu: a run goroutine exists
	closed  bool                     // guarded by mu: the session ended; pushes are refused
	halted  bool                     // guarded by mu: fn returned false; messages are dropped
	sealed  bool                     // guarded by mu: Wait is joining runs; none starts
}

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

// push queues one message under its class's policy and makes sure a run
// handles it. After fn returned false a message is dropped; after the
// session ended it is refused with qos.ErrClosed.
func (ib *inbox) push(it qos.Item[Incoming]) error {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if ib.closed {
		return qos.ErrClosed
	}
	if ib.halted {
		return nil
	}
	if err := ib.pushLocked(it); err != nil {
		return err
	}
	ib.startLocked()
	return nil
}

// pushLocked queues it, making the queue on first use.
func (ib *inbox) pushLocked(it qos.Item[Incoming]) error {
	if ib.sched == nil {
		ib.sched = qos.New[Incoming](ib.qc)
	}
	// Media returns what it dropped to make room; nobody counts those.
	_, err := ib.sched.Push(it)
	return err
}

// startLocked starts a run when messages wait and none runs.
func (ib *inbox) startLocked() {
	if ib.running || ib.sealed || ib.sched == nil || ib.sched.Len() == 0 {
		return
	}
	ib.running = true
	ib.wg.Add(1)
	go ib.run()
}

// run hands queued messages to fn, in QoS order, until none is left.
func (ib *inbox) run() {
	defer ib.wg.Done()
	for {
		ib.mu.Lock()
		var (
			it qos.Item[Incoming]
			ok bool
		)
		if ib.sched != nil {
			it, ok = ib.sched.Pop(ib.now())
		}
		if !ok {
			ib.running = false
			ib.sched = nil // made again by the next message
			ib.mu.Unlock()
			return
		}
		ib.mu.Unlock()
		if !ib.fn(it.Value) {
			ib.mu.Lock()
			ib.halted = true
			ib.sched = nil
			ib.mu.Unlock()
		}
	}
}

// close refuses further messages; those queued are still handed to fn.
func (ib *inbox) close() {
	ib.mu.Lock()
	ib.closed = true
	ib.mu.Unlock()
}

// seal keeps any run from starting and waits for the running one.
func (ib *inbox) seal() {
	ib.mu.Lock()
	ib.sealed = true
	ib.mu.Unlock()
	ib.wg.Wait()
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
	ib := &inbox{fn: fn, qc: s.recvConfig(), now: s.cfg.Now}
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	if s.inbox != nil {
		return
	}
	s.inbox = ib
	ib.mu.Lock()
	defer ib.mu.Unlock()
	ib.closed = s.recvClosed
	// Registered after Wait began: Wait does not join this inbox, so no
	// run may start.
	ib.sealed = s.recvSealed
	if q := s.recvQ; q != nil {
		for {
			it, ok := q.TryPop()
			if !ok {
				break
			}
			// The queues have the same caps, so this fits.
			_ = ib.pushLocked(it)
		}
		// A Recv waiting on them returns.
		q.Close()
		s.recvQ = nil
	}
	ib.startLocked()
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

// pushReceived queues one received message for HandleMessages or Recv.
func (s *Session) pushReceived(class protocol.Class, in Incoming) error {
	s.recvMu.Lock()
	if ib := s.inbox; ib != nil {
		s.recvMu.Unlock()
		return ib.push(qos.Item[Incoming]{Class: class, Value: in})
	}
	// Held while pushing, so that HandleMessages moves every message
	// queued before it.
	defer s.recvMu.Unlock()
	_, _, err := s.recvQueuesLocked().Push(qos.Item[Incoming]{Class: class, Value: in})
	return err
}

// closeReceived refuses further received messages; Recv and the inbox
// still hand out those queued.
// It then starts OnEnd's function.
func (s *Session) closeReceived() {
	s.recvMu.Lock()
	s.recvClosed = true
	q, ib, end := s.recvQ, s.inbox, s.onEnd
	s.onEnd = nil
	s.recvMu.Unlock()
	if q != nil {
		q.Close()
	}
	if ib != nil {
		ib.close()
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
	if s.inbox != nil {
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
