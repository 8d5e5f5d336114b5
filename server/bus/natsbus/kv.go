package natsbus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetstreamproto/jsp/server/bus"
)

// DefaultLimitMarkerTTL is how long a bucket with per-key TTLs keeps the
// marker of an expired key, so that watchers learn about the expiry.
const DefaultLimitMarkerTTL = time.Minute

// kvSubjectPrefix starts the subject of every key of a bucket
// ("$KV.<bucket>.<key>"); the bus uses no JetStream domain or API prefix.
const kvSubjectPrefix = "$KV."

type kvBucket struct {
	b   *Bus
	cfg bus.KVConfig
	kv  jetstream.KeyValue
}

// KV implements bus.Bus.
func (b *Bus) KV(ctx context.Context, cfg bus.KVConfig) (bus.KV, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	r, err := b.replicasFor(cfg.Replicas, b.cfg.Replicas.KV)
	if err != nil {
		return nil, fmt.Errorf("natsbus: kv %s: %w", cfg.Bucket, err)
	}
	cfg.Replicas = r
	cfg.SetDefaults()
	if err := b.checkOpen("kv " + cfg.Bucket); err != nil {
		return nil, err
	}
	kcfg := jetstream.KeyValueConfig{
		Bucket:       cfg.Bucket,
		Description:  "JSP shared state",
		History:      uint8(cfg.History),
		TTL:          cfg.TTL,
		MaxValueSize: cfg.MaxValueSize,
		MaxBytes:     unlimited(cfg.MaxBytes),
		Storage:      storage(cfg.Memory),
		Replicas:     cfg.Replicas,
	}
	if cfg.MaxValueSize == 0 {
		kcfg.MaxValueSize = -1
	}
	if cfg.KeyTTL {
		kcfg.LimitMarkerTTL = DefaultLimitMarkerTTL
	}
	var kv jetstream.KeyValue
	err = b.createOrUpdate(ctx, "kv "+cfg.Bucket, kvStream(cfg.Bucket), cfg.Replicas, func(ctx context.Context) error {
		var err error
		kv, err = b.js.CreateOrUpdateKeyValue(ctx, kcfg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &kvBucket{b: b, cfg: cfg, kv: kv}, nil
}

func (k *kvBucket) Config() bus.KVConfig { return k.cfg }

func toEntry(e jetstream.KeyValueEntry) bus.KVEntry {
	out := bus.KVEntry{Key: e.Key(), Revision: e.Revision(), Created: e.Created(), Op: bus.KVPut, Value: e.Value()}
	if e.Operation() != jetstream.KeyValuePut {
		out.Op, out.Value = bus.KVDelete, nil
	}
	return out
}

func (k *kvBucket) fail(op, key string, err error) error {
	return fmt.Errorf("natsbus: kv %s %s %q: %w", k.cfg.Bucket, op, key, mapErr(err))
}

func (k *kvBucket) Get(ctx context.Context, key string) (bus.KVEntry, error) {
	if err := bus.ValidateKey(key); err != nil {
		return bus.KVEntry{}, fmt.Errorf("natsbus: kv %s get: %w", k.cfg.Bucket, err)
	}
	ctx, cancel := apiCtx(ctx)
	defer cancel()
	e, err := k.kv.Get(ctx, key)
	if err != nil {
		return bus.KVEntry{}, k.fail("get", key, err)
	}
	return toEntry(e), nil
}

func (k *kvBucket) Put(ctx context.Context, key string, value []byte, opts ...bus.KVOption) (uint64, error) {
	if err := bus.ValidateKey(key); err != nil {
		return 0, fmt.Errorf("natsbus: kv %s put: %w", k.cfg.Bucket, err)
	}
	o := bus.ApplyKVOptions(opts)
	if o.TTL > 0 && !k.cfg.KeyTTL {
		return 0, fmt.Errorf("natsbus: kv %s put %q: per-key TTL needs KVConfig.KeyTTL", k.cfg.Bucket, key)
	}
	ctx, cancel := apiCtx(ctx)
	defer cancel()
	if o.TTL > 0 {
		// nats.go's KeyValue.Put takes no TTL: publish the revision on
		// the bucket's subject with the per-message TTL header, as its
		// Create does (the bucket allows message TTLs with KeyTTL).
		pa, err := k.b.js.Publish(ctx, kvSubjectPrefix+k.cfg.Bucket+"."+key, value, jetstream.WithMsgTTL(o.TTL))
		if err != nil {
			return 0, k.fail("put", key, err)
		}
		return pa.Sequence, nil
	}
	rev, err := k.kv.Put(ctx, key, value)
	if err != nil {
		return 0, k.fail("put", key, err)
	}
	return rev, nil
}

func (k *kvBucket) Create(ctx context.Context, key string, value []byte, opts ...bus.KVOption) (uint64, error) {
	if err := bus.ValidateKey(key); err != nil {
		return 0, fmt.Errorf("natsbus: kv %s create: %w", k.cfg.Bucket, err)
	}
	o := bus.ApplyKVOptions(opts)
	var kopts []jetstream.KVCreateOpt
	if o.TTL > 0 {
		if !k.cfg.KeyTTL {
			return 0, fmt.Errorf("natsbus: kv %s create %q: per-key TTL needs KVConfig.KeyTTL", k.cfg.Bucket, key)
		}
		kopts = append(kopts, jetstream.KeyTTL(o.TTL))
	}
	ctx, cancel := apiCtx(ctx)
	defer cancel()
	rev, err := k.kv.Create(ctx, key, value, kopts...)
	if err != nil {
		return 0, k.fail("create", key, err)
	}
	return rev, nil
}

func (k *kvBucket) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if err := bus.ValidateKey(key); err != nil {
		return 0, fmt.Errorf("natsbus: kv %s update: %w", k.cfg.Bucket, err)
	}
	if rev == 0 {
		return 0, fmt.Errorf("natsbus: kv %s update %q at revision 0: %w", k.cfg.Bucket, key, bus.ErrRevisionMismatch)
	}
	ctx, cancel := apiCtx(ctx)
	defer cancel()
	nrev, err := k.kv.Update(ctx, key, value, rev)
	if err != nil {
		// JetStream reports a stale revision as "wrong last sequence",
		// which nats.go also matches as ErrKeyExists; for Update it is a
		// revision mismatch.
		if errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			err = fmt.Errorf("%w: %w", bus.ErrRevisionMismatch, err)
		}
		return 0, k.fail("update", key, err)
	}
	return nrev, nil
}

func (k *kvBucket) Delete(ctx context.Context, key string, rev uint64) error {
	if err := bus.ValidateKey(key); err != nil {
		return fmt.Errorf("natsbus: kv %s delete: %w", k.cfg.Bucket, err)
	}
	var opts []jetstream.KVDeleteOpt
	if rev > 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	ctx, cancel := apiCtx(ctx)
	defer cancel()
	if err := k.kv.Delete(ctx, key, opts...); err != nil {
		if rev > 0 && errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			err = fmt.Errorf("%w: %w", bus.ErrRevisionMismatch, err)
		}
		return k.fail("delete", key, err)
	}
	return nil
}

type watcher struct {
	b       *Bus
	k       *kvBucket
	pattern string
	ctx     context.Context // ends at Stop; nats.go ties the watch to it
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returns
	once    sync.Once
	// stopping is set by Stop before it ends the current watch, so that
	// run does not open it again.
	stopping atomic.Bool

	mu sync.Mutex
	w  jetstream.KeyWatcher // guarded by mu; the current watch
}

// Watch implements bus.KV. The initial snapshot leaves out deleted keys;
// later deletes, purges and expiries arrive as KVDelete. When nats.go gives
// up on the watch's consumer (it recreates it after a leader change, but
// ends the watch when the recreate is refused for another reason than
// "not now"), the watch is opened again from the revision after the last
// one delivered, so the handler misses nothing and sees nothing twice.
func (k *kvBucket) Watch(ctx context.Context, pattern string, h func(bus.KVEntry)) (bus.Watcher, error) {
	if err := bus.ValidateKeyPattern(pattern); err != nil {
		return nil, fmt.Errorf("natsbus: kv %s watch: %w", k.cfg.Bucket, err)
	}
	if h == nil {
		return nil, fmt.Errorf("natsbus: kv %s watch %q: nil handler", k.cfg.Bucket, pattern)
	}
	// The watch lives until Stop, not until the caller's ctx ends: nats.go
	// ties the subscription to the context it is given.
	wctx, cancel := context.WithCancel(context.Background())
	kw, err := k.kv.Watch(wctx, pattern)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("natsbus: kv %s watch %q: %w", k.cfg.Bucket, pattern, mapErr(err))
	}
	w := &watcher{b: k.b, k: k, pattern: pattern, ctx: wctx, cancel: cancel, done: make(chan struct{}), w: kw}
	if err := k.b.addStopper(w); err != nil {
		_ = kw.Stop()
		cancel()
		return nil, fmt.Errorf("natsbus: kv %s watch: %w", k.cfg.Bucket, err)
	}
	ready := make(chan struct{})
	go w.run(kw, h, ready)
	select {
	case <-ready:
		return w, nil
	case <-w.done:
		w.Stop()
		return nil, fmt.Errorf("natsbus: kv %s watch %q: %w", k.cfg.Bucket, pattern, bus.ErrClosed)
	case <-ctx.Done():
		w.Stop()
		return nil, fmt.Errorf("natsbus: kv %s watch %q: %w", k.cfg.Bucket, pattern, context.Cause(ctx))
	}
}

// run delivers the watch's updates until Stop or the bus closes, opening
// the watch again when its updates end otherwise.
func (w *watcher) run(kw jetstream.KeyWatcher, h func(bus.KVEntry), ready chan struct{}) {
	defer close(w.done)
	initial := true
	var last uint64 // revision of the last entry delivered
	for {
		for e := range kw.Updates() {
			if e == nil { // end of the initial values
				if initial {
					initial = false
					close(ready)
				}
				continue
			}
			last = e.Revision()
			be := toEntry(e)
			if initial && be.Op == bus.KVDelete {
				continue
			}
			h(be)
		}
		if w.stopping.Load() || w.ctx.Err() != nil || w.b.checkOpen("") != nil {
			return
		}
		if kw = w.rewatch(last); kw == nil {
			return
		}
		if initial {
			// The snapshot ended early; what follows are updates.
			initial = false
			close(ready)
		}
	}
}

// rewatch opens the watch again after revision last (from the start when
// nothing was delivered), retrying with the open backoff until it succeeds
// or Stop; nil when stopping.
func (w *watcher) rewatch(last uint64) jetstream.KeyWatcher {
	var opts []jetstream.WatchOpt
	if last > 0 {
		opts = append(opts, jetstream.ResumeFromRevision(last+1))
	}
	var lastLog time.Time
	for n := 1; ; n++ {
		kw, err := w.k.kv.Watch(w.ctx, w.pattern, opts...)
		if err == nil {
			w.mu.Lock()
			w.w = kw
			w.mu.Unlock()
			w.b.log.Info("natsbus: watch reopened", "bucket", w.k.cfg.Bucket, "pattern", w.pattern, "after_revision", last, "attempts", n)
			return kw
		}
		if w.ctx.Err() != nil {
			return nil
		}
		if now := time.Now(); lastLog.IsZero() || now.Sub(lastLog) >= openLogEvery {
			lastLog = now
			w.b.log.Warn("natsbus: watch ended; reopening", "bucket", w.k.cfg.Bucket, "pattern", w.pattern, "attempt", n, "err", err)
		}
		t := time.NewTimer(openBackoff(n, rand.Int64N))
		select {
		case <-w.ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// watchStopWait bounds how long Stop waits for the server to delete the
// watch's consumer. The subscription ends locally at once; the delete is a
// JetStream request that, while the consumer's server is down or the
// cluster has no leader, is not answered before the API timeout. The
// server removes an idle ephemeral consumer by itself, so Stop returns
// after this wait and the request finishes in the background (joined by
// Close, which ends it by closing the connection).
const watchStopWait = 250 * time.Millisecond

func (w *watcher) Stop() {
	w.once.Do(func() {
		w.stopping.Store(true)
		deleted := make(chan struct{})
		w.mu.Lock()
		kw := w.w
		w.mu.Unlock()
		w.b.background.Go(func() {
			defer close(deleted)
			_ = kw.Stop()
		})
		t := time.NewTimer(watchStopWait)
		select {
		case <-deleted:
		case <-t.C:
			w.b.log.Debug("natsbus: watch consumer delete still pending; continuing", "err", "no answer within "+watchStopWait.String())
		}
		t.Stop()
		w.cancel()
		<-w.done
		w.b.removeStopper(w)
	})
}
