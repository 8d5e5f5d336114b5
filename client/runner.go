package client

import (
	"sync"
	"sync/atomic"
	"time"
)

// runner calls one application handler on a goroutine of its own, in the
// order values were offered, through a bounded queue. It keeps a slow or
// stuck handler from stalling the client's dispatch (the session's
// receiving goroutine): the dispatch waits at most the runner's patience
// for queue room, then drops the value and marks the runner stalled; while
// stalled (until its queue drains), further values are dropped without
// waiting, so a handler that never returns costs the dispatch one wait,
// not one per message.
type runner[T any] struct {
	fn       func(T)
	queue    chan T
	patience time.Duration
	quit     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	stalled atomic.Bool
	dropped *atomic.Uint64 // shared with the owner, which reports it
}

func newRunner[T any](fn func(T), queueLen int, patience time.Duration, dropped *atomic.Uint64) *runner[T] {
	return &runner[T]{
		fn:       fn,
		queue:    make(chan T, queueLen),
		patience: patience,
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		dropped:  dropped,
	}
}

// start launches the runner's goroutine; wg is the owner's join point.
func (r *runner[T]) start(wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(r.done)
		r.loop()
	}()
}

func (r *runner[T]) loop() {
	for {
		// Stop takes precedence over queued values: after stop, nothing
		// more is delivered.
		select {
		case <-r.quit:
			return
		default:
		}
		select {
		case <-r.quit:
			return
		case v := <-r.queue:
			r.fn(v)
			if len(r.queue) == 0 {
				r.stalled.Store(false)
			}
		}
	}
}

// offer queues v for the handler. It reports false when v was dropped
// because the queue stayed full past the runner's patience, the runner is
// stalled, or the runner was stopped.
func (r *runner[T]) offer(v T) bool {
	select {
	case <-r.quit:
		return false
	default:
	}
	select {
	case r.queue <- v:
		return true
	default:
	}
	if r.stalled.Load() || r.patience <= 0 {
		r.dropped.Add(1)
		return false
	}
	t := time.NewTimer(r.patience)
	defer t.Stop()
	select {
	case r.queue <- v:
		return true
	case <-t.C:
		r.stalled.Store(true)
		r.dropped.Add(1)
		return false
	case <-r.quit:
		return false
	}
}

// stop ends the runner after the handler call in progress, if any; values
// still queued are discarded. It does not wait; see wait.
func (r *runner[T]) stop() { r.stopOnce.Do(func() { close(r.quit) }) }

// wait blocks until the runner's goroutine has returned.
func (r *runner[T]) wait() { <-r.done }
