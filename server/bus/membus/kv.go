package membus

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

type kvBucket struct {
	b   *Bus
	cfg bus.KVConfig

	mu       sync.Mutex
	keys     map[string]*kvKey       // guarded by mu
	rev      uint64                  // guarded by mu
	watchers map[*kvWatcher]struct{} // guarded by mu
}

type kvKey struct {
	history []bus.KVEntry // oldest first, at most cfg.History
	expires time.Time     // per-key TTL deadline of the latest entry, or zero
}

// KV implements bus.Bus.
func (b *Bus) KV(_ context.Context, cfg bus.KVConfig) (bus.KV, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("membus: %w", err)
	}
	cfg.SetDefaults()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("membus: kv %s: %w", cfg.Bucket, bus.ErrClosed)
	}
	if kv := b.kvs[cfg.Bucket]; kv != nil {
		kv.mu.Lock()
		kv.cfg = cfg
		kv.mu.Unlock()
		return kv, nil
	}
	kv := &kvBucket{b: b, cfg: cfg, keys: map[string]*kvKey{}, watchers: map[*kvWatcher]struct{}{}}
	b.kvs[cfg.Bucket] = kv
	return kv, nil
}

func (kv *kvBucket) Config() bus.KVConfig {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.cfg
}

// latestLocked returns the key's latest entry unless it expired.
func (kv *kvBucket) latestLocked(key string, now time.Time) (bus.KVEntry, bool) {
	k := kv.keys[key]
	if k == nil || len(k.history) == 0 {
		return bus.KVEntry{}, false
	}
	e := k.history[len(k.history)-1]
	if kv.cfg.TTL > 0 && now.Sub(e.Created) >= kv.cfg.TTL || !k.expires.IsZero() && !now.Before(k.expires) {
		delete(kv.keys, key)
		return bus.KVEntry{}, false
	}
	return e, true
}

func (kv *kvBucket) Get(_ context.Context, key string) (bus.KVEntry, error) {
	if err := bus.ValidateKey(key); err != nil {
		return bus.KVEntry{}, fmt.Errorf("membus: kv %s get: %w", kv.cfg.Bucket, err)
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	e, ok := kv.latestLocked(key, kv.b.now())
	if !ok || e.Op != bus.KVPut {
		return bus.KVEntry{}, fmt.Errorf("membus: kv %s get %q: %w", kv.cfg.Bucket, key, bus.ErrKeyNotFound)
	}
	return e, nil
}

// writeLocked appends a revision, checking expect: -1 for none, 0 for
// "absent or deleted", else the latest revision.
func (kv *kvBucket) writeLocked(op string, key string, value []byte, kop bus.KVOp, expect int64, ttl time.Duration) (uint64, error) {
	if err := bus.ValidateKey(key); err != nil {
		return 0, fmt.Errorf("membus: kv %s %s: %w", kv.cfg.Bucket, op, err)
	}
	if kv.cfg.MaxValueSize > 0 && len(value) > int(kv.cfg.MaxValueSize) {
		return 0, fmt.Errorf("membus: kv %s %s %q: value of %d bytes over %d: %w", kv.cfg.Bucket, op, key, len(value), kv.cfg.MaxValueSize, bus.ErrQueueFull)
	}
	if ttl > 0 && !kv.cfg.KeyTTL {
		return 0, fmt.Errorf("membus: kv %s %s %q: per-key TTL needs KVConfig.KeyTTL", kv.cfg.Bucket, op, key)
	}
	now := kv.b.now()
	cur, ok := kv.latestLocked(key, now)
	switch {
	case expect == 0 && ok && cur.Op == bus.KVPut:
		return 0, fmt.Errorf("membus: kv %s %s %q: %w", kv.cfg.Bucket, op, key, bus.ErrKeyExists)
	case expect > 0 && (!ok || cur.Revision != uint64(expect)):
		return 0, fmt.Errorf("membus: kv %s %s %q at revision %d: %w", kv.cfg.Bucket, op, key, expect, bus.ErrRevisionMismatch)
	}
	kv.rev++
	e := bus.KVEntry{Key: key, Revision: kv.rev, Created: now, Op: kop}
	if kop == bus.KVPut {
		e.Value = append([]byte{}, value...)
	}
	k := kv.keys[key]
	if k == nil {
		k = &kvKey{}
		kv.keys[key] = k
	}
	k.history = append(k.history, e)
	if len(k.history) > kv.cfg.History {
		k.history = slices.Delete(k.history, 0, len(k.history)-kv.cfg.History)
	}
	k.expires = time.Time{}
	if ttl > 0 {
		k.expires = now.Add(ttl)
	}
	for w := range kv.watchers {
		if bus.MatchSubject(w.pattern, key) {
			w.push(e)
		}
	}
	return e.Revision, nil
}

func (kv *kvBucket) Put(_ context.Context, key string, value []byte, opts ...bus.KVOption) (uint64, error) {
	o := bus.ApplyKVOptions(opts)
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.writeLocked("put", key, value, bus.KVPut, -1, o.TTL)
}

func (kv *kvBucket) Create(_ context.Context, key string, value []byte, opts ...bus.KVOption) (uint64, error) {
	o := bus.ApplyKVOptions(opts)
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.writeLocked("create", key, value, bus.KVPut, 0, o.TTL)
}

func (kv *kvBucket) Update(_ context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if rev == 0 {
		return 0, fmt.Errorf("membus: kv %s update %q at revision 0: %w", kv.cfg.Bucket, key, bus.ErrRevisionMismatch)
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.writeLocked("update", key, value, bus.KVPut, int64(rev), 0)
}

func (kv *kvBucket) Delete(_ context.Context, key string, rev uint64) error {
	expect := int64(-1)
	if rev > 0 {
		expect = int64(rev)
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	_, err := kv.writeLocked("delete", key, nil, bus.KVDelete, expect, 0)
	return err
}

type kvWatcher struct {
	kv      *kvBucket
	pattern string
	h       func(bus.KVEntry)

	mu    sync.Mutex
	queue []bus.KVEntry // guarded by mu
	ready chan struct{} // closed when the initial entries are handed to h
	wake  chan struct{} // capacity 1: "queue not empty"
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// push queues e for the watcher; called with kv.mu held, so entries stay
// in revision order.
func (w *kvWatcher) push(e bus.KVEntry) {
	w.mu.Lock()
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (kv *kvBucket) Watch(ctx context.Context, pattern string, h func(bus.KVEntry)) (bus.Watcher, error) {
	if err := bus.ValidateKeyPattern(pattern); err != nil {
		return nil, fmt.Errorf("membus: kv %s watch: %w", kv.cfg.Bucket, err)
	}
	if h == nil {
		return nil, fmt.Errorf("membus: kv %s watch %q: nil handler", kv.cfg.Bucket, pattern)
	}
	w := &kvWatcher{
		kv: kv, pattern: pattern, h: h,
		ready: make(chan struct{}), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if err := kv.b.addStopper(w); err != nil {
		return nil, fmt.Errorf("membus: kv %s watch: %w", kv.cfg.Bucket, err)
	}
	kv.mu.Lock()
	now := kv.b.now()
	var initial []bus.KVEntry
	for key := range kv.keys {
		if !bus.MatchSubject(pattern, key) {
			continue
		}
		if e, ok := kv.latestLocked(key, now); ok && e.Op == bus.KVPut {
			initial = append(initial, e)
		}
	}
	slices.SortFunc(initial, func(a, b bus.KVEntry) int { return cmp.Compare(a.Revision, b.Revision) })
	w.queue = initial
	nInitial := len(initial)
	kv.watchers[w] = struct{}{}
	kv.mu.Unlock()
	kv.b.wg.Add(1)
	go w.run(nInitial)
	select {
	case <-w.ready:
		return w, nil
	case <-ctx.Done():
		w.Stop()
		return nil, fmt.Errorf("membus: kv %s watch %q: %w", kv.cfg.Bucket, pattern, context.Cause(ctx))
	}
}

func (w *kvWatcher) run(nInitial int) {
	defer w.kv.b.wg.Done()
	defer close(w.done)
	if nInitial == 0 {
		close(w.ready)
	}
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, e := range batch {
			select {
			case <-w.stop:
				return
			default:
			}
			w.h(e)
			if nInitial > 0 {
				if nInitial--; nInitial == 0 {
					close(w.ready)
				}
			}
		}
		select {
		case <-w.stop:
			return
		case <-w.wake:
		}
	}
}

func (w *kvWatcher) Stop() {
	w.once.Do(func() {
		w.kv.mu.Lock()
		delete(w.kv.watchers, w)
		w.kv.mu.Unlock()
		close(w.stop)
		<-w.done
		w.kv.b.removeStopper(w)
	})
}
