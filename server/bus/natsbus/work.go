package natsbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetstreamproto/jsp/server/bus"
)

func storage(memory bool) jetstream.StorageType {
	if memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// unlimited turns the bus's "0 = unlimited" into JetStream's -1.
func unlimited(v int64) int64 {
	if v == 0 {
		return -1
	}
	return v
}

type workQueue struct {
	b   *Bus
	cfg bus.WorkQueueConfig
}

// WorkQueue implements bus.Bus: a JetStream stream with work-queue
// retention (a job is removed once acknowledged) that refuses new jobs
// when full rather than dropping old ones.
func (b *Bus) WorkQueue(ctx context.Context, cfg bus.WorkQueueConfig) (bus.WorkQueue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	r, err := b.replicasFor(cfg.Replicas, b.cfg.Replicas.WorkQueue)
	if err != nil {
		return nil, fmt.Errorf("natsbus: work queue %s: %w", cfg.Stream, err)
	}
	cfg.Replicas = r
	cfg.SetDefaults()
	if err := b.checkOpen("work queue " + cfg.Stream); err != nil {
		return nil, err
	}
	scfg := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "JSP work queue",
		Subjects:    []string{cfg.Subject},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      cfg.MaxAge,
		MaxMsgs:     unlimited(cfg.MaxMsgs),
		MaxBytes:    unlimited(cfg.MaxBytes),
		Duplicates:  cfg.DuplicateWindow,
		Replicas:    cfg.Replicas,
		Storage:     storage(cfg.Memory),
	}
	err = b.createOrUpdate(ctx, "work queue "+cfg.Stream, cfg.Stream, cfg.Replicas, func(ctx context.Context) error {
		_, err := b.js.CreateOrUpdateStream(ctx, scfg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &workQueue{b: b, cfg: cfg}, nil
}

func (q *workQueue) Config() bus.WorkQueueConfig { return q.cfg }

// publishDurable stores m on subject in stream and returns its sequence;
// HeaderMsgID becomes JetStream's de-duplication id.
func (b *Bus) publishDurable(ctx context.Context, stream, subject string, m bus.Msg) (uint64, error) {
	msg := toNatsMsg(subject, m)
	var opts []jetstream.PublishOpt
	if id := m.Header.Get(bus.HeaderMsgID); id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	opts = append(opts, jetstream.WithExpectStream(stream))
	ctx, cancel := apiCtx(ctx)
	defer cancel()
	ack, err := b.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return 0, mapErr(err)
	}
	return ack.Sequence, nil
}

func (q *workQueue) Enqueue(ctx context.Context, m bus.Msg) (uint64, error) {
	if err := q.b.checkOpen("enqueue to " + q.cfg.Stream); err != nil {
		return 0, err
	}
	seq, err := q.b.publishDurable(ctx, q.cfg.Stream, q.cfg.Subject, m)
	if err != nil {
		return 0, fmt.Errorf("natsbus: enqueue to %s: %w", q.cfg.Stream, err)
	}
	return seq, nil
}

type natsJob struct {
	msg      jetstream.Msg
	m        *bus.Msg
	seq      uint64
	delivery int
}

func (j *natsJob) Msg() *bus.Msg     { return j.m }
func (j *natsJob) Seq() uint64       { return j.seq }
func (j *natsJob) Delivery() int     { return j.delivery }
func (j *natsJob) InProgress() error { return mapErr(j.msg.InProgress()) }

type consumer struct {
	q      *workQueue
	cons   jetstream.Consumer
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	// workers is the number of worker goroutines.
	workers int
	// lastWarn is when a pull failure was last logged (Unix ns).
	lastWarn atomic.Int64
}

// pullLogEvery is the least time between two "pull failed" log lines of a
// consumer.
const pullLogEvery = 10 * time.Second

// Consume implements bus.WorkQueue: one durable pull consumer shared by
// every worker of the queue; each worker goroutine pulls one job at a time,
// so a job never waits in a local buffer while its AckWait runs.
func (q *workQueue) Consume(ctx context.Context, h bus.JobHandler, cfg bus.ConsumeConfig) (bus.Consumer, error) {
	if h == nil {
		return nil, fmt.Errorf("natsbus: consume %s: nil handler", q.cfg.Stream)
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("natsbus: consume %s: negative concurrency", q.cfg.Stream)
	}
	cons, err := q.openConsumer(ctx)
	if err != nil {
		return nil, err
	}
	wctx, wcancel := context.WithCancel(context.Background())
	c := &consumer{q: q, cons: cons, ctx: wctx, cancel: wcancel, workers: max(cfg.Concurrency, 1)}
	if err := q.b.addStopper(c); err != nil {
		wcancel()
		return nil, fmt.Errorf("natsbus: consume %s: %w", q.cfg.Stream, err)
	}
	for range c.workers {
		c.wg.Add(1)
		go c.work(h, cfg.OnDeadLetter)
	}
	return c, nil
}

// openConsumer creates or updates the queue's durable consumer, under the
// open retry (open.go).
func (q *workQueue) openConsumer(ctx context.Context) (jetstream.Consumer, error) {
	var cons jetstream.Consumer
	what := "consumer " + q.cfg.Consumer + " of work queue " + q.cfg.Stream
	err := q.b.open(ctx, what, func(ctx context.Context) error {
		var err error
		cons, err = q.b.js.CreateOrUpdateConsumer(ctx, q.cfg.Stream, jetstream.ConsumerConfig{
			Durable:       q.cfg.Consumer,
			Description:   "JSP workers",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       q.cfg.AckWait,
			MaxDeliver:    q.cfg.MaxDeliver,
			MaxAckPending: q.cfg.MaxPending,
			FilterSubject: q.cfg.Subject,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return cons, nil
}

// pullWait bounds one pull request, so that a worker whose pull the
// server lost (a reconnect) asks again.
const pullWait = 5 * time.Second

func (c *consumer) work(h bus.JobHandler, dead func(bus.Job, error)) {
	defer c.wg.Done()
	q := c.q
	for c.ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(c.ctx, pullWait)
		msg, err := c.cons.Next(jetstream.FetchContext(pctx))
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
				// Every worker sees the same failure (a consumer without a
				// leader): one line per pullLogEvery for the consumer.
				if now := time.Now().UnixNano(); now-c.lastWarn.Load() >= int64(pullLogEvery) {
					c.lastWarn.Store(now)
					q.b.log.Warn("natsbus: pull failed; retrying", "stream", q.cfg.Stream, "consumer", q.cfg.Consumer,
						"workers", c.workers, "err", err)
				}
				// Do not spin on a persistent error (permissions, lost
				// stream).
				select {
				case <-c.ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
			continue
		}
		c.handle(msg, h, dead)
	}
}

func (c *consumer) handle(msg jetstream.Msg, h bus.JobHandler, dead func(bus.Job, error)) {
	q := c.q
	meta, err := msg.Metadata()
	if err != nil {
		q.b.log.Warn("natsbus: job without metadata", "stream", q.cfg.Stream, "err", err)
		_ = msg.Term()
		return
	}
	j := &natsJob{
		msg:      msg,
		m:        &bus.Msg{Subject: msg.Subject(), Header: bus.Header(msg.Headers()), Data: msg.Data()},
		seq:      meta.Sequence.Stream,
		delivery: int(meta.NumDelivered),
	}
	herr := h(c.ctx, j)
	switch {
	case herr == nil:
		err = msg.Ack()
	case c.ctx.Err() != nil:
		// Stopping: hand the job back at once rather than after AckWait.
		err = msg.Nak()
	case errors.Is(herr, bus.ErrTerminal) || j.delivery >= q.cfg.MaxDeliver:
		if dead != nil {
			dead(j, herr)
		}
		// Term removes the job from a work-queue stream.
		err = msg.TermWithReason(truncate(herr.Error(), 256))
	default:
		err = msg.NakWithDelay(q.cfg.BackoffFor(j.delivery))
	}
	if err != nil {
		q.b.log.Warn("natsbus: settling job failed", "stream", q.cfg.Stream, "seq", j.seq, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (c *consumer) Stop() {
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
		c.q.b.removeStopper(c)
	})
}
