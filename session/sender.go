package session

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/qos"
	"github.com/jetstreamproto/jsp/transport"
)

// sender owns the write side of the control stream (JSP §11.3, §11.5). Any
// goroutine enqueues encoded frames; one goroutine (run) pops them in QoS
// order and coalesces them into as few writes as the batching policy allows.
type sender struct {
	w        transport.Stream
	batching bool
	delays   [2][protocol.NumClasses]time.Duration // [normal, battery]
	maxBatch int
	timeout  time.Duration
	now      func() time.Time

	mu      sync.Mutex
	sched   *qos.Scheduler[[]byte] // guarded by mu
	battery atomic.Bool
	signal  chan struct{} // capacity 1: "the scheduler may be non-empty"

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
		signal:   make(chan struct{}, 1),
	}
	s.delays[0], s.delays[1] = cfg.FlushDelay, cfg.BatteryFlushDelay
	var qc qos.Config
	for c := range qc.QueueLength {
		qc.QueueLength[c] = cfg.SendQueueLength
	}
	s.sched = qos.New[[]byte](qc)
	s.sched.OnExpire(func(it qos.Item[[]byte]) { s.mediaDropped.Add(1) })
	return s
}

// enqueue queues one encoded frame. Media frames carry a deadline after
// which they are dropped rather than sent; chat and bulk frames fail with
// QUEUE_FULL when their queue is full, which callers turn into backpressure.
func (s *sender) enqueue(class protocol.Class, frame []byte, deadline time.Time) error {
	s.mu.Lock()
	dropped, err := s.sched.Push(qos.Item[[]byte]{Class: class, Size: len(frame), Deadline: deadline, Value: frame})
	s.mu.Unlock()
	s.mediaDropped.Add(uint64(len(dropped)))
	if err != nil {
		return err
	}
	select {
	case s.signal <- struct{}{}:
	default:
	}
	return nil
}

func (s *sender) pop() (qos.Item[[]byte], bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sched.Pop(s.now())
}

func (s *sender) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sched.Len()
}

// run writes queued frames until ctx ends or a write fails.
func (s *sender) run(ctx context.Context) error {
	buf := make([]byte, 0, s.maxBatch)
	var carry *qos.Item[[]byte]
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var first qos.Item[[]byte]
		if carry != nil {
			first, carry = *carry, nil
		} else {
			it, ok := s.pop()
			if !ok {
				select {
				case <-ctx.Done():
					return nil
				case <-s.signal:
					continue
				}
			}
			first = it
		}
		buf = append(buf[:0], first.Value...)
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
				it, ok := s.pop()
				if ok {
					if len(buf)+len(it.Value) > s.maxBatch {
						carry = &it
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
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					timer.Stop()
					return nil
				case <-s.signal:
					timer.Stop()
				case <-timer.C:
					break collect
				}
			}
		}
		if err := s.write(buf); err != nil {
			return err
		}
		s.framesSent.Add(uint64(n))
	}
}

func (s *sender) write(b []byte) error {
	// The deadline uses the wall clock: it bounds real I/O, whatever clock
	// the session was given for protocol timestamps.
	_ = s.w.SetWriteDeadline(time.Now().Add(s.timeout))
	_, err := s.w.Write(b)
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
