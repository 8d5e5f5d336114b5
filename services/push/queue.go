package push

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/storage"
)

// Limits of a queued send.
const (
	// MaxPayload caps a queued notification's payload; Web Push carries at
	// most 3993 bytes, phone services about 4 KiB.
	MaxPayload = 4096
	// MaxJobBytes caps an encoded job: the payload (base64 in JSON) plus
	// the user, endpoint and topic.
	MaxJobBytes = 16 << 10
)

// job is one queued send on the work queue JSP_WORK_PUSH: the message for
// one subscription. The subscription's keys are read from storage when it
// is sent, so a subscription removed meanwhile is not used.
type job struct {
	User     string  `json:"user"`
	Endpoint string  `json:"endpoint"`
	Payload  []byte  `json:"payload"`
	TTL      int64   `json:"ttl"` // seconds
	Urgency  Urgency `json:"urgency"`
	Topic    string  `json:"topic,omitempty"`
}

func (j *job) validate() error {
	switch {
	case j.User == "" || len(j.User) > storage.MaxNameLen:
		return errors.New("user missing or too long")
	case j.Endpoint == "" || len(j.Endpoint) > storage.MaxWebhookURLLen:
		return errors.New("endpoint missing or too long")
	case len(j.Payload) > MaxPayload:
		return fmt.Errorf("payload of %d bytes, limit %d", len(j.Payload), MaxPayload)
	case j.TTL < 0:
		return errors.New("negative ttl")
	case !j.Urgency.Valid():
		return fmt.Errorf("urgency %q", j.Urgency)
	case !ValidTopic(j.Topic):
		return fmt.Errorf("topic %q", j.Topic)
	}
	return nil
}

func encodeJob(j job) ([]byte, error) {
	if err := j.validate(); err != nil {
		return nil, fmt.Errorf("push: job for %s: %w", j.User, err)
	}
	return json.Marshal(j)
}

// decodeJob parses a queued job: at most MaxJobBytes, one JSON object with
// known fields only (the queue is internal, so an unknown field is a bug
// or a newer writer this worker cannot honour), valid values.
func decodeJob(b []byte) (job, error) {
	if len(b) > MaxJobBytes {
		return job{}, fmt.Errorf("push: job of %d bytes, limit %d", len(b), MaxJobBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j job
	if err := dec.Decode(&j); err != nil {
		return job{}, fmt.Errorf("push: decode job: %w", err)
	}
	if dec.More() {
		return job{}, errors.New("push: decode job: data after the object")
	}
	if err := j.validate(); err != nil {
		return job{}, fmt.Errorf("push: job for %s: %w", j.User, err)
	}
	return j, nil
}

// OpenQueue creates or opens the push work queue (stream JSP_WORK_PUSH,
// subject jsp.<cluster>.work.push); mod, when not nil, adjusts its
// configuration first.
func OpenQueue(ctx context.Context, b bus.Bus, subjects bus.Subjects, mod func(*bus.WorkQueueConfig)) (bus.WorkQueue, error) {
	cfg, err := subjects.WorkQueue(bus.WorkPush)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	if mod != nil {
		mod(&cfg)
	}
	q, err := b.WorkQueue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("push: open work queue: %w", err)
	}
	return q, nil
}

// enqueue puts one send on the queue. The message id de-duplicates a
// repeated notice (the event consumer is at least once) per event and
// subscription.
func (nt *Notifier) enqueue(ctx context.Context, eventID string, sub Subscription, msg Message) error {
	b, err := encodeJob(job{User: sub.UserID, Endpoint: sub.Endpoint, Payload: msg.Payload,
		TTL: int64(msg.TTL / time.Second), Urgency: msg.Urgency, Topic: msg.Topic})
	if err != nil {
		return err
	}
	m := bus.Msg{Header: bus.Header{}, Data: b}
	if eventID != "" {
		h := sha256.Sum256([]byte(sub.UserID + "\x00" + sub.Endpoint))
		m.Header.Set(bus.HeaderMsgID, "push/"+eventID+"/"+hex.EncodeToString(h[:12]))
	}
	if _, err := nt.cfg.Queue.Enqueue(ctx, m); err != nil {
		return fmt.Errorf("push: enqueue for %s: %w", sub.UserID, err)
	}
	return nil
}

// StartWorkers consumes the push queue: each job is sent through its
// subscription's provider. A send that fails is retried after the
// queue's backoff up to its MaxDeliver; a gone subscription is removed; a
// job that can never succeed (invalid subscription, payload too large,
// subscription no longer stored) is dropped. Stop the returned consumer
// before closing the bus.
func (nt *Notifier) StartWorkers(ctx context.Context, concurrency int) (bus.Consumer, error) {
	if nt.cfg.Queue == nil {
		return nil, errors.New("push: StartWorkers needs NotifierConfig.Queue")
	}
	c, err := nt.cfg.Queue.Consume(ctx, nt.work, bus.ConsumeConfig{Concurrency: concurrency,
		OnDeadLetter: func(j bus.Job, err error) {
			nt.cfg.Logger.Warn("push: notification dropped", "seq", j.Seq(), "deliveries", j.Delivery(), "err", err)
		}})
	if err != nil {
		return nil, fmt.Errorf("push: start workers: %w", err)
	}
	return c, nil
}

func (nt *Notifier) work(ctx context.Context, bj bus.Job) error {
	j, err := decodeJob(bj.Msg().Data)
	if err != nil {
		return bus.Terminal(err)
	}
	subs, err := nt.cfg.Store.ListPushSubscriptions(ctx, j.User)
	if err != nil {
		return fmt.Errorf("push: subscriptions of %s: %w", j.User, err)
	}
	var sub *storage.PushSubscription
	for i := range subs {
		if subs[i].Endpoint == j.Endpoint {
			sub = &subs[i]
		}
	}
	if sub == nil {
		return nil // unsubscribed since the notice: nothing to send
	}
	gone, err := nt.send(ctx, Subscription{UserID: j.User, Endpoint: sub.Endpoint, P256dh: sub.P256dh, Auth: sub.Auth, Provider: sub.Provider},
		Message{Payload: j.Payload, TTL: time.Duration(j.TTL) * time.Second, Urgency: j.Urgency, Topic: j.Topic})
	switch code := jsperr.CodeOf(err); {
	case gone || err == nil:
		return nil
	case code == jsperr.PushSubscriptionInvalid || code == jsperr.PushPayloadTooLarge:
		return bus.Terminal(err)
	}
	return err
}
