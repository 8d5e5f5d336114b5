package push

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/events"
)

// Presence tells whether a user has a live session anywhere in the
// cluster (the presence service keeps it in the bus's KV).
type Presence interface {
	Online(ctx context.Context, userID string) (bool, error)
}

// Members lists the members of a conversation.
type Members interface {
	Members(ctx context.Context, conversation string) ([]string, error)
}

// Defaults of NotifierConfig's zero fields.
const (
	// DefaultConcurrency caps sends in flight for one notice.
	DefaultConcurrency = 8
	// DefaultTTL is how long a push service keeps an undelivered
	// notification.
	DefaultTTL = 24 * time.Hour
	// DefaultMaxPreview caps the message text put in a notification, in
	// bytes (cut at a rune boundary).
	DefaultMaxPreview = 200
	// ProviderWebPush names the Web Push provider and is the provider of
	// subscriptions that name none.
	ProviderWebPush = "webpush"
)

// DefaultTypes are the event types that notify by default.
var DefaultTypes = []string{"message.created"}

// NotifierConfig configures a Notifier.
type NotifierConfig struct {
	// Store keeps subscriptions and notification settings. Required.
	Store storage.NotifyStore
	// Presence answers who is online. Required.
	Presence Presence
	// Members lists conversation members. Required.
	Members Members
	// Providers maps a subscription's provider name to its Provider.
	// Required; subscriptions of an unknown provider are counted as
	// failures.
	Providers map[string]Provider
	// Types are the event types HandleEvent turns into notices (filters
	// as in events.Match). Default: DefaultTypes.
	Types []string
	// Concurrency caps sends in flight. Default: DefaultConcurrency.
	Concurrency int
	// TTL of each notification. Default: DefaultTTL.
	TTL time.Duration
	// MaxPreview caps the text preview in bytes. Default:
	// DefaultMaxPreview.
	MaxPreview int
	// Queue, when set, makes Notify enqueue one job per subscription on
	// this work queue (OpenQueue: JSP_WORK_PUSH) instead of sending
	// directly; StartWorkers sends them, with the queue's retries. Without
	// it sends are made at once and not retried.
	Queue bus.WorkQueue
	// Logger receives send failures. Default: slog.Default().
	Logger *slog.Logger
}

// Notifier decides who gets a push for a conversation event and sends it.
type Notifier struct {
	cfg NotifierConfig
}

// NewNotifier validates cfg and returns a Notifier.
func NewNotifier(cfg NotifierConfig) (*Notifier, error) {
	switch {
	case cfg.Store == nil || cfg.Presence == nil || cfg.Members == nil:
		return nil, errors.New("push: Store, Presence and Members are required")
	case len(cfg.Providers) == 0:
		return nil, errors.New("push: no providers")
	case cfg.Concurrency < 0 || cfg.TTL < 0 || cfg.MaxPreview < 0:
		return nil, errors.New("push: negative limit")
	}
	for _, f := range cfg.Types {
		if err := events.ValidateFilter(f); err != nil {
			return nil, fmt.Errorf("push: type filter %q: %w", f, err)
		}
	}
	if len(cfg.Types) == 0 {
		cfg.Types = DefaultTypes
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxPreview == 0 {
		cfg.MaxPreview = DefaultMaxPreview
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Notifier{cfg: cfg}, nil
}

// Notice is what a notification is about.
type Notice struct {
	// Type and EventID identify the event.
	Type, EventID string
	// Conversation is where it happened. Required.
	Conversation string
	// Actor caused it and is never notified.
	Actor string
	// Mentions are the users mentioned by name.
	Mentions []string
	// MentionChannel is an @channel mention: every member counts as
	// mentioned.
	MentionChannel bool
	// Text is the message text; a preview of it is sent.
	Text string
}

// Mentioned reports whether the notice mentions user.
func (n *Notice) Mentioned(user string) bool {
	return n.MentionChannel || slices.Contains(n.Mentions, user)
}

// messagePayload is the part of a message event's payload the notifier
// reads (docs/events.md, "Payload fields used by notifications").
type messagePayload struct {
	Text           string   `json:"text"`
	Mentions       []string `json:"mentions"`
	MentionChannel bool     `json:"mention_channel"`
}

// NoticeFromEvent reads a notice from a conversation event.
func NoticeFromEvent(ev events.Event) (Notice, error) {
	n := Notice{Type: ev.Type, EventID: ev.ID, Conversation: ev.Conversation, Actor: ev.Actor}
	if n.Conversation == "" {
		return Notice{}, fmt.Errorf("push: event %s %s has no conversation", ev.Type, ev.ID)
	}
	if len(ev.Payload) > 0 {
		var p messagePayload
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return Notice{}, fmt.Errorf("push: event %s %s payload: %w", ev.Type, ev.ID, err)
		}
		n.Text, n.Mentions, n.MentionChannel = p.Text, p.Mentions, p.MentionChannel
	}
	return n, nil
}

// Recipients returns the members who get a push for n, in member order:
// every member but the actor whose setting allows it (none: never;
// mentions: only when mentioned; all, the default: always) and who is
// offline, or online with WhenOnline set.
func (nt *Notifier) Recipients(ctx context.Context, n Notice, members []string) ([]string, error) {
	var out []string
	for _, m := range members {
		if m == n.Actor {
			continue
		}
		set, err := nt.cfg.Store.GetNotifySetting(ctx, m, n.Conversation)
		if errors.Is(err, storage.ErrNotFound) {
			set = storage.NotifySetting{Level: storage.NotifyAll}
		} else if err != nil {
			return nil, fmt.Errorf("push: setting of %s in %s: %w", m, n.Conversation, err)
		}
		switch set.Level {
		case storage.NotifyNone:
			continue
		case storage.NotifyMentions:
			if !n.Mentioned(m) {
				continue
			}
		}
		if !set.WhenOnline {
			online, err := nt.cfg.Presence.Online(ctx, m)
			if err != nil {
				return nil, fmt.Errorf("push: presence of %s: %w", m, err)
			}
			if online {
				continue
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// Result counts the outcome of one Notify.
type Result struct {
	// Recipients are the members chosen.
	Recipients []string
	// Sent counts subscriptions a push service accepted.
	Sent int
	// Queued counts sends put on the work queue (with Queue set).
	Queued int
	// Removed counts subscriptions deleted because the push service said
	// they are gone.
	Removed int
	// Failed counts other failed sends (the notification is best
	// effort; it is not retried).
	Failed int
}

// topic collapses undelivered notifications of one conversation into the
// newest (RFC 8030, Section 5.4): 24 base64url characters of its hash.
func topic(conversation string) string {
	h := sha256.Sum256([]byte(conversation))
	return base64.RawURLEncoding.EncodeToString(h[:18])
}

// preview cuts s to at most n bytes at a rune boundary.
func preview(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Payload is the JSON a device receives.
type Payload struct {
	Type         string `json:"type"`
	EventID      string `json:"event_id,omitempty"`
	Conversation string `json:"conversation"`
	Actor        string `json:"actor,omitempty"`
	Text         string `json:"text,omitempty"`
	Mentioned    bool   `json:"mentioned,omitempty"`
}

// Notify sends n to every recipient's subscriptions, or enqueues the
// sends when the notifier has a Queue. Send failures are counted, and
// subscriptions that are gone are removed; an error means the recipients
// could not be decided (members, settings or presence failed) or a send
// could not be enqueued.
func (nt *Notifier) Notify(ctx context.Context, n Notice) (Result, error) {
	members, err := nt.cfg.Members.Members(ctx, n.Conversation)
	if err != nil {
		return Result{}, fmt.Errorf("push: members of %s: %w", n.Conversation, err)
	}
	rcpts, err := nt.Recipients(ctx, n, members)
	if err != nil {
		return Result{}, err
	}
	res := Result{Recipients: rcpts}
	type job struct {
		sub Subscription
		msg Message
	}
	var jobs []job
	for _, u := range rcpts {
		subs, err := nt.cfg.Store.ListPushSubscriptions(ctx, u)
		if err != nil {
			return res, fmt.Errorf("push: subscriptions of %s: %w", u, err)
		}
		mentioned := n.Mentioned(u)
		body, err := json.Marshal(Payload{Type: n.Type, EventID: n.EventID, Conversation: n.Conversation, Actor: n.Actor,
			Text: preview(n.Text, nt.cfg.MaxPreview), Mentioned: mentioned})
		if err != nil {
			return res, fmt.Errorf("push: payload: %w", err)
		}
		msg := Message{Payload: body, TTL: nt.cfg.TTL, Urgency: UrgencyNormal, Topic: topic(n.Conversation)}
		if mentioned {
			msg.Urgency = UrgencyHigh
		}
		for _, s := range subs {
			jobs = append(jobs, job{Subscription{UserID: u, Endpoint: s.Endpoint, P256dh: s.P256dh, Auth: s.Auth, Provider: s.Provider}, msg})
		}
	}
	if nt.cfg.Queue != nil {
		for _, j := range jobs {
			if err := nt.enqueue(ctx, n.EventID, j.sub, j.msg); err != nil {
				return res, err
			}
			res.Queued++
		}
		return res, nil
	}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, nt.cfg.Concurrency)
	)
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			gone, err := nt.send(ctx, j.sub, j.msg)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case gone:
				res.Removed++
			case err != nil:
				res.Failed++
			default:
				res.Sent++
			}
		})
	}
	wg.Wait()
	return res, nil
}

// send delivers one message and removes a subscription that is gone.
func (nt *Notifier) send(ctx context.Context, sub Subscription, msg Message) (gone bool, err error) {
	name := sub.Provider
	if name == "" {
		name = ProviderWebPush
	}
	p, ok := nt.cfg.Providers[name]
	if !ok {
		err = fmt.Errorf("push: no provider %q for %s", name, sub.UserID)
	} else {
		err = p.Send(ctx, sub, msg)
	}
	if errors.Is(err, ErrGone) {
		if derr := nt.cfg.Store.DeletePushSubscription(ctx, sub.UserID, sub.Endpoint); derr != nil && !errors.Is(derr, storage.ErrNotFound) {
			nt.cfg.Logger.Warn("push: remove gone subscription", "user", sub.UserID, "err", derr)
			return false, derr
		}
		return true, nil
	}
	if err != nil {
		nt.cfg.Logger.Warn("push: send failed", "user", sub.UserID, "provider", name, "err", err)
	}
	return false, err
}

// HandleEvent is an events.Handler: events of the configured types
// become notices. Send failures do not fail it (notifications are best
// effort); failing to decide the recipients does, so the durable consumer
// retries the event.
func (nt *Notifier) HandleEvent(ctx context.Context, d events.Delivered) error {
	if !events.MatchAny(nt.cfg.Types, d.Event.Type) {
		return nil
	}
	n, err := NoticeFromEvent(d.Event)
	if err != nil {
		nt.cfg.Logger.Warn("push: event skipped", "seq", d.Seq, "err", err)
		return nil // a malformed payload will not improve on retry
	}
	_, err = nt.Notify(ctx, n)
	return err
}
