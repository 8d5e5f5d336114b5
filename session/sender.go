package session

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/internal/stackwarm"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/qos"
	"github.com/jetstreamproto/jsp/transport"
)

// sender owns the write side of the control stream (JSP §11.3, §11.5). Any
// goroutine enqueues encoded frames; one goroutine (run) pops them in QoS
// order and coalesces them into as few writes as the batching policy allows.
// That goroutine runs only while frames are queued, and briefly after
// (senderIdleRelease): enqueue starts it when none runs, so an idle session
// holds no sender goroutine (decision D27).
//
// Write-through: when nothing is queued and no write is in progress, an
// application goroutine writes its frame itself instead of handing it to
// run. A request then costs no goroutine hand-off on the sending side, which
// on loopback is most of JSP's round-trip overhead (docs/benchmarks.md).
// Order is kept because a frame only bypasses an empty queue, and at most
// one write is in progress at any time (the writing flag).
type sender struct {
	w        transport.Stream
	batching bool
	delays   [2][protocol.NumClasses]time.Duration // [normal, battery]
	maxBatch int
	timeout  time.Duration
	now      func() time.Time

	mu sync.Mutex
	// sched holds the queued frames; guarded by mu. It exists only while
	// frames are queued or a run goroutine is draining it: an idle session
	// holds none (D27). Each class holds at most queueLen frames.
	sched    *qos.Scheduler[[]byte]
	queueLen int
	writing  bool // guarded by mu: a write is in progress
	running  bool // guarded by mu: a run goroutine exists
	stopped  bool // guarded by mu: the session is ending; start no run
	// ctx ends the run goroutine; wg (the session's) joins it. Both are
	// set before the first enqueue.
	ctx context.Context
	wg  *sync.WaitGroup
	// onError ends the session after a failed write-through; run reports
	// its own errors by returning them.
	onError func(error)
	battery atomic.Bool
	// signal (capacity 1) says "the scheduler may be non-empty". It is
	// made, under mu, by the first wakeLocked, before any run starts,
	// and never replaced: a session that never queued a frame holds none
	// (D34).
	signal chan struct{}
	// expired is onExpire bound once, the expiry hook of every
	// scheduler this sender takes.
	expired func(qos.Item[[]byte])

	// lastWrite is when the last write of a frame began (UnixNano):
	// offer writes directly only to a session quiet for offerQuiet.
	lastWrite    atomic.Int64
	writes       atomic.Uint64
	bytesWritten atomic.Uint64
	framesSent   atomic.Uint64
	mediaDropped atomic.Uint64
}

func newSender(w transport.Stream, cfg Config) *sender {
	s := &sender{
		w:        w,
		batching: !cfg.DisableBatching,
		maxBatch: cfg.MaxBatchBytes,
		timeout:  cfg.WriteTimeout,
		now:      cfg.Now,
		queueLen: cfg.SendQueueLength,
	}
	s.delays[0], s.delays[1] = cfg.FlushDelay, cfg.BatteryFlushDelay
	s.expired = s.onExpire
	return s
}

// enqueue queues one encoded frame. Media frames carry a deadline after
// which they are dropped rather than sent; chat and bulk frames fail with
// QUEUE_FULL when their queue is full, which callers turn into backpressure.
// With direct set, the caller may write the frame itself (see sender); the
// session's own reader never passes direct, so that it cannot block on a
// peer that is itself blocked writing to us.
func (s *sender) enqueue(class protocol.Class, frame []byte, deadline time.Time, direct bool) error {
	s.mu.Lock()
	if direct && !s.writing && s.lenLocked() == 0 && s.immediate(class) {
		s.writing = true
		s.mu.Unlock()
		err := s.write(frame, false)
		s.mu.Lock()
		s.writing = false
		if s.lenLocked() > 0 {
			// Frames queued behind this write found the writing flag
			// taken; a run that saw it may have ended.
			s.wakeLocked()
		}
		s.mu.Unlock()
		if err != nil {
			s.onError(err)
			return err
		}
		s.framesSent.Add(1)
		return nil
	}
	return s.pushLocked(class, frame, deadline)
}

// pushLocked queues frame for run and unlocks mu.
func (s *sender) pushLocked(class protocol.Class, frame []byte, deadline time.Time) error {
	if s.sched == nil {
		s.sched = s.newSched()
	}
	dropped, err := s.sched.Push(qos.Item[[]byte]{Class: class, Size: len(frame), Deadline: deadline, Value: frame})
	if err == nil {
		s.wakeLocked()
	}
	s.mu.Unlock()
	s.mediaDropped.Add(uint64(len(dropped)))
	return err
}

// tryStream is a stream that can write a frame without waiting (D50): a
// link stream over wss:// or TLS/TCP (transport/mux). TryWrite reports false,
// having written nothing, when the write would have to wait.
type tryStream interface {
	TryWrite(p []byte) (bool, error)
}

// offer queues a frame as enqueue does without direct, but first writes
// it on the caller's goroutine when that cannot wait (decision D50):
// nothing is queued or being written, the class goes out at once, and
// the stream can write without waiting for the peer or the socket. A
// fan-out delivery to a quiet session then costs no sender goroutine,
// however many sessions the fan-out goroutine serves in a row. mu stays
// held during the attempt, so no frame can be queued ahead of it.
//
// A session written to less than offerQuiet ago takes the queue instead:
// frames that follow each other closely are better batched by run into
// one write than written one write(2) each.
func (s *sender) offer(class protocol.Class, frame []byte, deadline time.Time) error {
	s.mu.Lock()
	if ts, ok := s.w.(tryStream); ok && !s.writing && !s.stopped && s.lenLocked() == 0 && s.immediate(class) && s.quiet() {
		wrote, err := ts.TryWrite(frame)
		if wrote {
			s.mu.Unlock()
			if err != nil {
				s.onError(err)
				return err
			}
			s.writes.Add(1)
			s.bytesWritten.Add(uint64(len(frame)))
			s.framesSent.Add(1)
			return nil
		}
	}
	return s.pushLocked(class, frame, deadline)
}

// offerQuiet is how long a session must have had no frame written for
// offer to write the next one directly (D50). A fan-out that reaches a
// session more often keeps its frames queued for run, which coalesces
// what arrives meanwhile.
const offerQuiet = time.Millisecond

// quiet reports whether no frame was written for offerQuiet, and takes
// now as the start of the next write.
func (s *sender) quiet() bool {
	now := time.Now().UnixNano()
	if now-s.lastWrite.Load() < int64(offerQuiet) {
		return false
	}
	s.lastWrite.Store(now)
	return true
}

// wakeLocked tells a running run that frames are queued, or starts one.
func (s *sender) wakeLocked() {
	if s.signal == nil {
		s.signal = make(chan struct{}, 1)
	}
	select {
	case s.signal <- struct{}{}:
	default:
	}
	if s.running || s.stopped {
		return
	}
	s.running = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		stackwarm.Grow()
		if err := s.run(s.ctx); err != nil {
			s.onError(err)
		}
	}()
}

// kick wakes a run waiting between writes: the idle timer's function, and
// the session's end after it cancelled ctx.
func (s *sender) kick() {
	s.mu.Lock()
	sig := s.signal
	s.mu.Unlock()
	if sig == nil {
		return // no run ever started
	}
	select {
	case sig <- struct{}{}:
	default:
	}
}

// stop keeps any later enqueue from starting a run goroutine; the session
// calls it before it cancels ctx and waits for wg.
func (s *sender) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// idleExit ends run when nothing is left for it: the queue is empty, or a
// write-through holds the writing flag (it restarts run if frames queued
// behind it). It clears running under the lock enqueue takes, so a frame
// queued later starts a new run.
func (s *sender) idleExit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lenLocked() > 0 && !s.writing {
		return false
	}
	s.running = false
	if s.lenLocked() == 0 {
		putSched(s.sched)
		s.sched = nil // taken again by the next queued frame
	}
	return true
}

// immediate reports whether a frame of class c may go out without waiting
// for company: always without batching, otherwise when its flush delay in
// the current mode is zero.
func (s *sender) immediate(c protocol.Class) bool {
	if !s.batching {
		return true
	}
	mode := 0
	if s.battery.Load() {
		mode = 1
	}
	return s.delays[mode][c] == 0
}

// pop returns the next queued frame. With claim set it also takes the
// writing flag, and finds nothing while a write-through is in progress.
func (s *sender) pop(claim bool) (qos.Item[[]byte], bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if claim && s.writing {
		return qos.Item[[]byte]{}, false
	}
	if s.sched == nil {
		return qos.Item[[]byte]{}, false
	}
	it, ok := s.sched.Pop(s.now())
	if ok && claim {
		s.writing = true
	}
	return it, ok
}

func (s *sender) release() {
	s.mu.Lock()
	s.writing = false
	s.mu.Unlock()
}

func (s *sender) queuedBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sched == nil {
		return 0
	}
	return s.sched.Bytes()
}

func (s *sender) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lenLocked()
}

// lenLocked returns how many frames are queued.
func (s *sender) lenLocked() int {
	if s.sched == nil {
		return 0
	}
	return s.sched.Len()
}

// run writes queued frames until the queue has stayed empty for
// senderIdleRelease, ctx ends or a write fails.
func (s *sender) run(ctx context.Context) error {
	// The batch buffer is held only while frames are being written
	// (decision D24): it comes from senderBatchPool with the first frame of
	// a burst and goes back when run ends.
	var bp *[]byte
	defer func() { putSenderBatch(bp, s.maxBatch) }()
	// Between writes run waits on signal alone: the session's end and
	// the idle timer send on it too (kick), so that a wake costs one
	// channel receive, not a three-way select, and the timer is set once
	// per idle release rather than once per frame (D47). lastWork is when
	// run last found a frame.
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	lastWork := time.Now()
	var fireAt time.Time // when idle fires; past when none is pending
	var carry *qos.Item[[]byte]
	// The flush timer is made by the first batch that waits for company:
	// a run that writes one frame alone and ends, the common case of a
	// fan-out delivery, makes none (docs/benchmarks.md, "Per-delivery
	// CPU").
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var first qos.Item[[]byte]
		if carry != nil {
			first, carry = *carry, nil
		} else {
			it, ok := s.pop(true)
			if !ok && bp == nil {
				if s.idleExit() {
					return nil
				}
				continue
			}
			if !ok {
				now := time.Now()
				left := senderIdleRelease - now.Sub(lastWork)
				if left <= 0 {
					if s.idleExit() {
						return nil
					}
					continue
				}
				if !now.Before(fireAt) {
					// No timer pending: one fires when run would have
					// idled long enough if nothing comes; a frame that
					// comes first leaves it, and the wake it brings
					// sets it again for what is left.
					fireAt = now.Add(left)
					if idle == nil {
						idle = time.AfterFunc(left, s.kick)
					} else {
						idle.Reset(left)
					}
				}
				<-s.signal
				if ctx.Err() != nil {
					return nil
				}
				continue
			}
			lastWork = time.Now()
			first = it
		}
		// From here until release, this goroutine holds the writing flag.
		if wrote, err := s.writeAlone(first); wrote || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if bp == nil {
			bp = getSenderBatch(len(first.Value)+s.queuedBytes(), s.maxBatch)
		}
		buf := append((*bp)[:0], first.Value...)
		n := 1
		if s.batching {
			mode := 0
			if s.battery.Load() {
				mode = 1
			}
			flushAt := s.now().Add(s.delays[mode][first.Class])
			if first.Class <= protocol.ClassMedia {
				flushAt = time.Time{}
			}
		collect:
			for len(buf) < s.maxBatch {
				it, ok := s.pop(false)
				if ok {
					if len(buf)+len(it.Value) > s.maxBatch {
						// A copy: taking the address of it would move
						// every popped item to the heap.
						held := it
						carry = &held
						break
					}
					buf = append(buf, it.Value...)
					n++
					if it.Class <= protocol.ClassMedia {
						flushAt = time.Time{} // urgent frames flush the batch now
					}
					continue
				}
				wait := flushAt.Sub(s.now())
				if wait <= 0 {
					break
				}
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					timer.Stop()
					s.release()
					return nil
				case <-s.signal:
					timer.Stop()
				case <-timer.C:
					break collect
				}
			}
		}
		*bp = buf[:0]
		err := s.write(buf, true)
		if carry == nil {
			// With a carried frame the writing flag stays taken, so no
			// write-through can overtake it.
			s.release()
		}
		if err != nil {
			return err
		}
		s.framesSent.Add(uint64(n))
	}
}

// nowWriter is a stream that can write on the caller's goroutine when its
// link has nothing else to write: a link stream (transport/mux, D45). Only
// run uses it: it is a writer goroutine already, so handing its frames to
// the link's own writer would only add a goroutine hop per write. A
// write-through from enqueue uses plain Write, so that the goroutine that
// queued the frame, often a handler answering a burst of requests, goes
// on while the link writes, and the answers coalesce.
type nowWriter interface {
	WriteNow(p []byte) (int, error)
}

// write writes b on the control stream; fromRun says the caller is run.
func (s *sender) write(b []byte, fromRun bool) error {
	// The deadline uses the wall clock: it bounds real I/O, whatever clock
	// the session was given for protocol timestamps.
	now := time.Now()
	s.lastWrite.Store(now.UnixNano())
	_ = s.w.SetWriteDeadline(now.Add(s.timeout))
	var err error
	if nw, ok := s.w.(nowWriter); ok && fromRun {
		_, err = nw.WriteNow(b)
	} else {
		_, err = s.w.Write(b)
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return jsperr.New(jsperr.SlowConsumer, "peer did not read the control stream")
		}
		return err
	}
	s.writes.Add(1)
	s.bytesWritten.Add(uint64(len(b)))
	return nil
}

// senderIdleRelease is how long a sender's run waits with nothing to send
// before it ends and gives its batch buffer back to senderBatchPool (D24,
// D27).
const senderIdleRelease = 200 * time.Millisecond

// senderBatchPool and senderSmallPool recycle the senders' batch buffers
// between bursts (decision D24), so that an idle session holds none. A run
// that starts with little to send takes a senderSmallBatch buffer, which
// append grows if the burst turns out larger, so that many sessions waking
// at once do not pin a full-size batch each in the pool (D27).
var senderBatchPool, senderSmallPool sync.Pool

// senderSmallBatch is the capacity of a buffer for a run that starts with
// at most this many bytes to send.
const senderSmallBatch = 4 << 10

// getSenderBatch returns an empty buffer for queued bytes: a small one when
// they fit, else one of capacity at least size.
func getSenderBatch(queued, size int) *[]byte {
	if queued <= senderSmallBatch {
		if bp, ok := senderSmallPool.Get().(*[]byte); ok {
			*bp = (*bp)[:0]
			return bp
		}
		b := make([]byte, 0, senderSmallBatch)
		return &b
	}
	if bp, ok := senderBatchPool.Get().(*[]byte); ok && cap(*bp) >= size {
		*bp = (*bp)[:0]
		return bp
	}
	b := make([]byte, 0, size)
	return &b
}

// putSenderBatch gives bp back to the pool of its size (size is the full
// batch capacity); a buffer that append grew to an odd size is dropped,
// and nil is ignored.
func putSenderBatch(bp *[]byte, size int) {
	if bp == nil {
		return
	}
	*bp = (*bp)[:0]
	switch c := cap(*bp); {
	case c == senderSmallBatch:
		senderSmallPool.Put(bp)
	case c >= size:
		senderBatchPool.Put(bp)
	}
}
