package natsbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetstreamproto/jsp/server/bus"
)

// DefaultLimitMarkerTTL is how long a bucket with per-key TTLs keeps the
// marker of an expired key, so that watchers learn about the expiry.
const DefaultLimitMarkerTTL = time.Minute

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

func (k *kvBucket) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := bus.ValidateKey(key); err != nil {
		return 0, fmt.Errorf("natsbus: kv %s put: %w", k.cfg.Bucket, err)
	}
	ctx, cancel := apiCtx(ctx)
	defer cancel()
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
	b      *Bus
	w      jetstream.KeyWatcher
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Watch implements bus.KV. The initial snapshot leaves out deleted keys;
// later deletes, purges and expiries arrive as KVDelete.
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
	w := &watcher{b: k.b, w: kw, cancel: cancel, done: make(chan struct{})}
	if err := k.b.addStopper(w); err != nil {
		_ = kw.Stop()
		cancel()
		return nil, fmt.Errorf("natsbus: kv %s watch: %w", k.cfg.Bucket, err)
	}
	ready := make(chan struct{})
	go w.run(h, ready)
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

func (w *watcher) run(h func(bus.KVEntry), ready chan struct{}) {
	defer close(w.done)
	initial := true
	for e := range w.w.Updates() {
		if e == nil { // end of the initial values
			if initial {
				initial = false
				close(ready)
			}
			continue
		}
		be := toEntry(e)
		if initial && be.Op == bus.KVDelete {
			continue
		}
		h(be)
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
		deleted := make(chan struct{})
		w.b.background.Go(func() {
			defer close(deleted)
			_ = w.w.Stop()
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
