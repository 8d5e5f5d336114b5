package natsbus

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetstreamproto/jsp/server/bus"
)

type eventLog struct {
	b   *Bus
	cfg bus.EventLogConfig
}

// EventLog implements bus.Bus: a JetStream stream with limits retention
// that drops its oldest events when full.
func (b *Bus) EventLog(ctx context.Context, cfg bus.EventLogConfig) (bus.EventLog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	r, err := b.replicasFor(cfg.Replicas, b.cfg.Replicas.EventLog)
	if err != nil {
		return nil, fmt.Errorf("natsbus: event log %s: %w", cfg.Stream, err)
	}
	cfg.Replicas = r
	cfg.SetDefaults()
	if err := b.checkOpen("event log " + cfg.Stream); err != nil {
		return nil, err
	}
	scfg := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "JSP event log",
		Subjects:    []string{cfg.SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxMsgs:     unlimited(cfg.MaxMsgs),
		MaxBytes:    unlimited(cfg.MaxBytes),
		Duplicates:  cfg.DuplicateWindow,
		Replicas:    cfg.Replicas,
		Storage:     storage(cfg.Memory),
	}
	err = b.createOrUpdate(ctx, "event log "+cfg.Stream, cfg.Stream, cfg.Replicas, func(ctx context.Context) error {
		_, err := b.js.CreateOrUpdateStream(ctx, scfg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &eventLog{b: b, cfg: cfg}, nil
}

func (l *eventLog) Config() bus.EventLogConfig { return l.cfg }

func (l *eventLog) subject(kind string) (string, error) {
	tok, err := bus.EncodeToken(kind)
	if err != nil {
		return "", fmt.Errorf("kind: %w", err)
	}
	return l.cfg.SubjectPrefix + "." + tok, nil
}

func (l *eventLog) Append(ctx context.Context, kind string, m bus.Msg) (uint64, error) {
	subj, err := l.subject(kind)
	if err != nil {
		return 0, fmt.Errorf("natsbus: append to %s: %w", l.cfg.Stream, err)
	}
	if err := l.b.checkOpen("append to " + l.cfg.Stream); err != nil {
		return 0, err
	}
	seq, err := l.b.publishDurable(ctx, l.cfg.Stream, subj, m)
	if err != nil {
		return 0, fmt.Errorf("natsbus: append to %s: %w", l.cfg.Stream, err)
	}
	return seq, nil
}

// next returns the replay's next message. nats.go recreates the ordered
// consumer inside Next with a timeout of its own, which ctx does not
// shorten; so Next runs in the background and next returns as soon as ctx
// ends, leaving the call to finish by itself (joined by Close).
func (l *eventLog) next(ctx context.Context, cons jetstream.Consumer) (jetstream.Msg, error) {
	type result struct {
		msg jetstream.Msg
		err error
	}
	ch := make(chan result, 1)
	l.b.background.Go(func() {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		ch <- result{msg, err}
	})
	select {
	case r := <-ch:
		return r.msg, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *eventLog) LastSeq(ctx context.Context) (uint64, error) {
	ctx, cancel := apiCtx(ctx)
	defer cancel()
	s, err := l.b.js.Stream(ctx, l.cfg.Stream)
	if err != nil {
		return 0, fmt.Errorf("natsbus: event log %s: %w", l.cfg.Stream, mapErr(err))
	}
	return s.CachedInfo().State.LastSeq, nil
}

// Replay implements bus.EventLog with an ordered consumer (ephemeral,
// flow-controlled, restarted by the client on gaps) starting at opt.From.
func (l *eventLog) Replay(ctx context.Context, opt bus.ReplayOptions, h func(bus.Event) error) error {
	if err := l.b.checkOpen("replay " + l.cfg.Stream); err != nil {
		return err
	}
	var filters []string
	for _, k := range opt.Kinds {
		subj, err := l.subject(k)
		if err != nil {
			return fmt.Errorf("natsbus: replay %s: %w", l.cfg.Stream, err)
		}
		filters = append(filters, subj)
	}
	end, err := l.LastSeq(ctx)
	if err != nil {
		return err
	}
	from := max(opt.From, 1)
	if !opt.Follow && from > end {
		return nil
	}
	actx, cancel := apiCtx(ctx)
	cons, err := l.b.js.OrderedConsumer(actx, l.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
		// One attempt to (re)create the consumer per Next: nats.go
		// otherwise retries forever, ignoring ctx, while a stream has no
		// leader; Replay returns the error and its caller retries.
		MaxResetAttempts: 1,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("natsbus: replay %s: %w", l.cfg.Stream, mapErr(err))
	}
	if !opt.Follow {
		if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
			return nil // nothing matches from here on
		}
	}
	prefix := l.cfg.SubjectPrefix + "."
	for {
		msg, err := l.next(ctx, cons)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("natsbus: replay %s: %w", l.cfg.Stream, context.Cause(ctx))
			}
			return fmt.Errorf("natsbus: replay %s: %w", l.cfg.Stream, mapErr(err))
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("natsbus: replay %s: metadata: %w", l.cfg.Stream, err)
		}
		seq := meta.Sequence.Stream
		if !opt.Follow && seq > end {
			return nil
		}
		kind, err := bus.DecodeToken(strings.TrimPrefix(msg.Subject(), prefix))
		if err != nil {
			return fmt.Errorf("natsbus: replay %s: event %d subject %q: %w", l.cfg.Stream, seq, msg.Subject(), err)
		}
		ev := bus.Event{
			Seq: seq, Kind: kind, Time: meta.Timestamp,
			Msg: &bus.Msg{Subject: msg.Subject(), Header: bus.Header(msg.Headers()), Data: msg.Data()},
		}
		if err := h(ev); err != nil {
			return err
		}
		if !opt.Follow && (seq >= end || meta.NumPending == 0) {
			return nil
		}
	}
}
