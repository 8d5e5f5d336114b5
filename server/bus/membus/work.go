package membus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

type workQueue struct {
	b   *Bus
	cfg bus.WorkQueueConfig

	mu      sync.Mutex
	msgs    map[uint64]*workMsg  // guarded by mu; stored jobs by sequence
	order   []uint64             // guarded by mu; sequences in enqueue order (may hold removed ones)
	bytes   int64                // guarded by mu
	nextSeq uint64               // guarded by mu
	dedupe  map[string]dedupeRec // guarded by mu
	pending int                  // guarded by mu; delivered and unfinished
	changed broadcast            // guarded by mu
}

type dedupeRec struct {
	seq uint64
	at  time.Time
}

type workMsg struct {
	seq        uint64
	msg        *bus.Msg
	enqueued   time.Time
	deliveries int
	inflight   bool
	deadline   time.Time // ack deadline while inflight
	readyAt    time.Time // earliest next delivery while not inflight
	token      uint64    // identifies the current delivery
}

// WorkQueue implements bus.Bus.
func (b *Bus) WorkQueue(_ context.Context, cfg bus.WorkQueueConfig) (bus.WorkQueue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("membus: %w", err)
	}
	cfg.SetDefaults()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("membus: work queue %s: %w", cfg.Stream, bus.ErrClosed)
	}
	if q := b.queues[cfg.Stream]; q != nil {
		q.mu.Lock()
		q.cfg = cfg
		q.mu.Unlock()
		return q, nil
	}
	q := &workQueue{
		b: b, cfg: cfg,
		msgs:    map[uint64]*workMsg{},
		dedupe:  map[string]dedupeRec{},
		changed: newBroadcast(),
	}
	b.queues[cfg.Stream] = q
	return q, nil
}

func (q *workQueue) Config() bus.WorkQueueConfig {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cfg
}

func (q *workQueue) Enqueue(_ context.Context, m bus.Msg) (uint64, error) {
	now := q.b.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireLocked(now)
	id := m.Header.Get(bus.HeaderMsgID)
	if id != "" {
		if r, ok := q.dedupe[id]; ok && now.Sub(r.at) < q.cfg.DuplicateWindow {
			return r.seq, nil
		}
	}
	size := int64(len(m.Data))
	if q.cfg.MaxMsgs > 0 && int64(len(q.msgs)) >= q.cfg.MaxMsgs ||
		q.cfg.MaxBytes > 0 && q.bytes+size > q.cfg.MaxBytes {
		return 0, fmt.Errorf("membus: enqueue to %s: %w", q.cfg.Stream, bus.ErrQueueFull)
	}
	q.nextSeq++
	seq := q.nextSeq
	q.msgs[seq] = &workMsg{seq: seq, msg: cloneMsg(q.cfg.Subject, "", m), enqueued: now, readyAt: now}
	q.order = append(q.order, seq)
	q.bytes += size
	if id != "" {
		q.dedupe[id] = dedupeRec{seq: seq, at: now}
	}
	q.changed.notifyLocked()
	return seq, nil
}

// expireLocked drops jobs older than MaxAge and stale dedupe records.
func (q *workQueue) expireLocked(now time.Time) {
	for id, r := range q.dedupe {
		if now.Sub(r.at) >= q.cfg.DuplicateWindow {
			delete(q.dedupe, id)
		}
	}
	for _, seq := range q.order {
		if wm := q.msgs[seq]; wm != nil && !wm.inflight && now.Sub(wm.enqueued) >= q.cfg.MaxAge {
			q.removeLocked(wm)
		}
	}
}

func (q *workQueue) removeLocked(wm *workMsg) {
	if q.msgs[wm.seq] != wm {
		return
	}
	delete(q.msgs, wm.seq)
	q.bytes -= int64(len(wm.msg.Data))
	if wm.inflight {
		q.pending--
	}
	// Compact the order list once removed entries dominate it.
	if len(q.order) > 64 && len(q.order) > 2*len(q.msgs) {
		kept := q.order[:0]
		for _, s := range q.order {
			if q.msgs[s] != nil {
				kept = append(kept, s)
			}
		}
		q.order = kept
	}
}

// nextLocked picks the next job to deliver, or returns the time to look
// again (zero: wait for a change).
func (q *workQueue) nextLocked(now time.Time) (*workMsg, time.Time) {
	q.expireLocked(now)
	var wake time.Time
	later := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	for _, seq := range q.order {
		wm := q.msgs[seq]
		if wm == nil {
			continue
		}
		if wm.inflight {
			if now.Before(wm.deadline) {
				later(wm.deadline)
				continue
			}
			// The holder let AckWait pass: redeliver, or give up after the
			// last delivery (as NATS stops delivering it).
			wm.inflight = false
			q.pending--
			if wm.deliveries >= q.cfg.MaxDeliver {
				q.removeLocked(wm)
				continue
			}
			wm.readyAt = now
		}
		if now.Before(wm.readyAt) {
			later(wm.readyAt)
			continue
		}
		if q.pending >= q.cfg.MaxPending {
			return nil, wake
		}
		wm.inflight = true
		wm.deliveries++
		wm.token++
		wm.deadline = now.Add(q.cfg.AckWait)
		q.pending++
		return wm, time.Time{}
	}
	return nil, wake
}

type memJob struct {
	q          *workQueue
	wm         *workMsg
	token      uint64
	deliveries int
}

func (j *memJob) Msg() *bus.Msg { return j.wm.msg }
func (j *memJob) Seq() uint64   { return j.wm.seq }
func (j *memJob) Delivery() int { return j.deliveries }
func (j *memJob) InProgress() error {
	j.q.mu.Lock()
	defer j.q.mu.Unlock()
	if j.q.msgs[j.wm.seq] != j.wm || j.wm.token != j.token || !j.wm.inflight {
		return fmt.Errorf("membus: job %d of %s is no longer held", j.wm.seq, j.q.cfg.Stream)
	}
	j.wm.deadline = j.q.b.now().Add(j.q.cfg.AckWait)
	return nil
}

// finish settles a delivery with the handler's result.
func (q *workQueue) finish(j *memJob, herr error, dead func(bus.Job, error)) {
	q.mu.Lock()
	current := q.msgs[j.wm.seq] == j.wm
	if !current {
		q.mu.Unlock()
		return
	}
	if herr == nil {
		// A late ack still removes the job, as in JetStream.
		q.removeLocked(j.wm)
		q.changed.notifyLocked()
		q.mu.Unlock()
		return
	}
	if j.wm.token != j.token || !j.wm.inflight {
		q.mu.Unlock() // a newer delivery owns the job now
		return
	}
	if errors.Is(herr, bus.ErrTerminal) || j.deliveries >= q.cfg.MaxDeliver {
		q.mu.Unlock()
		if dead != nil {
			dead(j, herr)
		}
		q.mu.Lock()
		q.removeLocked(j.wm)
		q.changed.notifyLocked()
		q.mu.Unlock()
		return
	}
	j.wm.inflight = false
	q.pending--
	j.wm.readyAt = q.b.now().Add(q.cfg.BackoffFor(j.deliveries))
	q.changed.notifyLocked()
	q.mu.Unlock()
}

// release returns a job a stopping worker did not finish.
func (q *workQueue) release(j *memJob) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.msgs[j.wm.seq] == j.wm && j.wm.token == j.token && j.wm.inflight {
		j.wm.inflight = false
		q.pending--
		j.wm.readyAt = q.b.now()
		q.changed.notifyLocked()
	}
}

type memConsumer struct {
	q      *workQueue
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func (q *workQueue) Consume(_ context.Context, h bus.JobHandler, cfg bus.ConsumeConfig) (bus.Consumer, error) {
	if h == nil {
		return nil, fmt.Errorf("membus: consume %s: nil handler", q.cfg.Stream)
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("membus: consume %s: negative concurrency", q.cfg.Stream)
	}
	n := max(cfg.Concurrency, 1)
	ctx, cancel := context.WithCancel(context.Background())
	c := &memConsumer{q: q, ctx: ctx, cancel: cancel}
	if err := q.b.addStopper(c); err != nil {
		cancel()
		return nil, fmt.Errorf("membus: consume %s: %w", q.cfg.Stream, err)
	}
	for range n {
		c.wg.Add(1)
		q.b.wg.Add(1)
		go c.work(h, cfg.OnDeadLetter)
	}
	return c, nil
}

func (c *memConsumer) work(h bus.JobHandler, dead func(bus.Job, error)) {
	defer c.q.b.wg.Done()
	defer c.wg.Done()
	q := c.q
	for {
		q.mu.Lock()
		wm, wake := q.nextLocked(q.b.now())
		changed := q.changed.ch
		var j *memJob
		if wm != nil {
			j = &memJob{q: q, wm: wm, token: wm.token, deliveries: wm.deliveries}
		}
		q.mu.Unlock()
		if j != nil {
			err := h(c.ctx, j)
			if c.ctx.Err() != nil && err != nil {
				q.release(j)
				return
			}
			q.finish(j, err, dead)
			continue
		}
		if !c.wait(changed, wake) {
			return
		}
	}
}

// wait blocks until the queue changes, wake passes (zero: no deadline) or
// the consumer stops, reporting false for the latter.
func (c *memConsumer) wait(changed <-chan struct{}, wake time.Time) bool {
	var timer <-chan time.Time
	if !wake.IsZero() {
		t := time.NewTimer(max(wake.Sub(c.q.b.now()), time.Millisecond))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-c.ctx.Done():
		return false
	case <-changed:
	case <-timer:
	}
	return true
}

func (c *memConsumer) Stop() {
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
		c.q.b.removeStopper(c)
	})
}
