package membus

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

type eventLog struct {
	b   *Bus
	cfg bus.EventLogConfig

	mu      sync.Mutex
	events  []bus.Event          // guarded by mu; in sequence order
	bytes   int64                // guarded by mu
	lastSeq uint64               // guarded by mu
	dedupe  map[string]dedupeRec // guarded by mu
	changed broadcast            // guarded by mu
}

// EventLog implements bus.Bus.
func (b *Bus) EventLog(_ context.Context, cfg bus.EventLogConfig) (bus.EventLog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("membus: %w", err)
	}
	cfg.SetDefaults()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("membus: event log %s: %w", cfg.Stream, bus.ErrClosed)
	}
	if l := b.logs[cfg.Stream]; l != nil {
		l.mu.Lock()
		l.cfg = cfg
		l.mu.Unlock()
		return l, nil
	}
	l := &eventLog{b: b, cfg: cfg, dedupe: map[string]dedupeRec{}, changed: newBroadcast()}
	b.logs[cfg.Stream] = l
	return l, nil
}

func (l *eventLog) Config() bus.EventLogConfig {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

func (l *eventLog) Append(_ context.Context, kind string, m bus.Msg) (uint64, error) {
	tok, err := bus.EncodeToken(kind)
	if err != nil {
		return 0, fmt.Errorf("membus: append to %s: kind: %w", l.cfg.Stream, err)
	}
	now := l.b.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trimLocked(now)
	id := m.Header.Get(bus.HeaderMsgID)
	if id != "" {
		if r, ok := l.dedupe[id]; ok && now.Sub(r.at) < l.cfg.DuplicateWindow {
			return r.seq, nil
		}
	}
	l.lastSeq++
	l.events = append(l.events, bus.Event{
		Seq: l.lastSeq, Kind: kind, Time: now,
		Msg: cloneMsg(l.cfg.SubjectPrefix+"."+tok, "", m),
	})
	l.bytes += int64(len(m.Data))
	if id != "" {
		l.dedupe[id] = dedupeRec{seq: l.lastSeq, at: now}
	}
	l.trimLocked(now)
	l.changed.notifyLocked()
	return l.lastSeq, nil
}

// trimLocked drops the oldest events beyond the limits (the log discards
// old events rather than refusing new ones).
func (l *eventLog) trimLocked(now time.Time) {
	for id, r := range l.dedupe {
		if now.Sub(r.at) >= l.cfg.DuplicateWindow {
			delete(l.dedupe, id)
		}
	}
	drop := 0
	for drop < len(l.events) {
		e := l.events[drop]
		over := l.cfg.MaxMsgs > 0 && int64(len(l.events)-drop) > l.cfg.MaxMsgs ||
			l.cfg.MaxBytes > 0 && l.bytes > l.cfg.MaxBytes ||
			now.Sub(e.Time) >= l.cfg.MaxAge
		if !over {
			break
		}
		l.bytes -= int64(len(e.Msg.Data))
		drop++
	}
	if drop > 0 {
		l.events = slices.Delete(l.events, 0, drop)
	}
}

func (l *eventLog) LastSeq(context.Context) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSeq, nil
}

func (l *eventLog) Replay(ctx context.Context, opt bus.ReplayOptions, h func(bus.Event) error) error {
	for _, k := range opt.Kinds {
		if _, err := bus.EncodeToken(k); err != nil {
			return fmt.Errorf("membus: replay %s: kind: %w", l.cfg.Stream, err)
		}
	}
	next := max(opt.From, 1)
	l.mu.Lock()
	end := l.lastSeq
	l.mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("membus: replay %s: %w", l.cfg.Stream, context.Cause(ctx))
		}
		l.mu.Lock()
		l.trimLocked(l.b.now())
		var batch []bus.Event
		for _, e := range l.events {
			if e.Seq >= next && (opt.Follow || e.Seq <= end) {
				batch = append(batch, e)
			}
		}
		changed := l.changed.ch
		l.mu.Unlock()
		for _, e := range batch {
			next = e.Seq + 1
			if len(opt.Kinds) > 0 && !slices.Contains(opt.Kinds, e.Kind) {
				continue
			}
			if err := h(e); err != nil {
				return err
			}
		}
		if !opt.Follow {
			return nil // one pass covers everything stored at the start
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("membus: replay %s: %w", l.cfg.Stream, context.Cause(ctx))
			case <-changed:
			}
		}
	}
}
