package storage

import (
	"context"
	"time"
)

// Limits of the webhook and notification tables. They are fixed, like
// MaxNameLen, because they bound what one row may hold.
const (
	// MaxWebhookURLLen caps a webhook or push endpoint URL in bytes.
	MaxWebhookURLLen = 2048
	// MaxWebhookSecretLen caps a webhook signing secret in bytes.
	MaxWebhookSecretLen = 256
	// MaxWebhookEventTypes caps the event filter of one webhook.
	MaxWebhookEventTypes = 64
	// MaxDeadLetterBytes caps the payload a dead letter keeps; an event
	// envelope is bounded far below it (services/events).
	MaxDeadLetterBytes = 1 << 20
	// MaxPushKeyLen caps a push subscription's p256dh or auth key.
	MaxPushKeyLen = 128
)

// Webhook is an outgoing webhook: events whose type is in EventTypes are
// POSTed to URL, signed with Secret.
type Webhook struct {
	// ID names the webhook. Required.
	ID string
	// URL receives the deliveries (http or https). Required.
	URL string
	// Secret is the HMAC-SHA256 signing key. Required.
	Secret []byte
	// EventTypes filters the events delivered; an entry may be an exact
	// type ("message.created"), a prefix pattern ("message.*") or "*" for
	// every type. Order is kept. At least one entry is required.
	EventTypes []string
	// Disabled stops new deliveries without deleting the webhook.
	Disabled bool
	// Created is set by the store on the first PutWebhook.
	Created time.Time
	// Updated is set by the store on every PutWebhook.
	Updated time.Time
}

// DeadLetterID identifies a dead letter; IDs increase in insertion order.
type DeadLetterID int64

// DeadLetter records a webhook delivery that was given up: its retries ran
// out or it could never succeed. It keeps the payload so an operator can
// inspect and replay it: a delivery is never silently lost.
type DeadLetter struct {
	// ID is assigned by AddDeadLetter.
	ID DeadLetterID
	// WebhookID is the webhook the delivery was for. Required.
	WebhookID string
	// EventID is the event's id. Required.
	EventID string
	// EventType is the event's type. Required.
	EventType string
	// Payload is the request body that was being delivered.
	Payload []byte
	// Attempts counts the HTTP attempts made.
	Attempts int
	// LastError describes the last failure (status or network error).
	LastError string
	// Time is when the delivery was given up; zero means now.
	Time time.Time
}

// WebhookStore keeps webhook configurations and their dead letters.
type WebhookStore interface {
	// PutWebhook inserts or replaces a webhook. It fails with ErrInvalid
	// for a missing id, URL, secret or event filter, or one over its
	// limit. Created is kept from the first insert.
	PutWebhook(ctx context.Context, w Webhook) (Webhook, error)
	// GetWebhook returns one webhook or ErrNotFound.
	GetWebhook(ctx context.Context, id string) (Webhook, error)
	// ListWebhooks returns webhooks ordered by id, after the given id (a
	// cursor), up to limit.
	ListWebhooks(ctx context.Context, after string, limit int) ([]Webhook, error)
	// DeleteWebhook removes a webhook and its dead letters; an unknown id
	// fails with ErrNotFound.
	DeleteWebhook(ctx context.Context, id string) error
	// AddDeadLetter records a delivery that was given up and returns its
	// id. The payload is capped at MaxDeadLetterBytes (ErrTooLarge).
	AddDeadLetter(ctx context.Context, d DeadLetter) (DeadLetterID, error)
	// ListDeadLetters returns the dead letters of one webhook (all
	// webhooks when webhookID is empty) with ID > after, oldest first, up
	// to limit.
	ListDeadLetters(ctx context.Context, webhookID string, after DeadLetterID, limit int) ([]DeadLetter, error)
	// DeleteDeadLetter removes one dead letter (after a replay); an unknown
	// id fails with ErrNotFound.
	DeleteDeadLetter(ctx context.Context, id DeadLetterID) error
}

// PushSubscription is one device's push subscription: for Web Push the
// endpoint URL and keys the browser's PushManager returned (RFC 8030,
// RFC 8291).
type PushSubscription struct {
	// UserID owns the subscription. Required.
	UserID string
	// Endpoint is the push service URL; unique per user. Required.
	Endpoint string
	// P256dh is the subscriber's ECDH P-256 public key (65-byte
	// uncompressed point for Web Push).
	P256dh []byte
	// Auth is the subscriber's authentication secret (16 bytes for Web
	// Push).
	Auth []byte
	// Provider names the push provider ("webpush", "apns", "fcm");
	// empty means "webpush".
	Provider string
	// Created is set by the store on the first PutPushSubscription.
	Created time.Time
}

// NotifyLevel is a member's notification setting for one conversation.
type NotifyLevel string

// Notification levels.
const (
	// NotifyAll notifies on every message (the default without a row).
	NotifyAll NotifyLevel = "all"
	// NotifyMentions notifies only when the member is mentioned by name
	// or through @channel.
	NotifyMentions NotifyLevel = "mentions"
	// NotifyNone mutes the conversation.
	NotifyNone NotifyLevel = "none"
)

// Valid reports whether l is one of the defined levels.
func (l NotifyLevel) Valid() bool {
	return l == NotifyAll || l == NotifyMentions || l == NotifyNone
}

// NotifySetting is one member's notification setting for one
// conversation.
type NotifySetting struct {
	// UserID is the member. Required.
	UserID string
	// Conversation is the conversation. Required.
	Conversation string
	// Level selects which messages notify.
	Level NotifyLevel
	// WhenOnline also pushes while the member is online (for example to a
	// phone while a desktop session is open); by default only offline
	// members get pushes.
	WhenOnline bool
	// Updated is set by the store.
	Updated time.Time
}

// NotifyStore keeps push subscriptions and per-conversation notification
// settings.
type NotifyStore interface {
	// PutPushSubscription inserts or replaces a subscription keyed by
	// (UserID, Endpoint).
	PutPushSubscription(ctx context.Context, s PushSubscription) error
	// ListPushSubscriptions returns a user's subscriptions ordered by
	// endpoint.
	ListPushSubscriptions(ctx context.Context, userID string) ([]PushSubscription, error)
	// DeletePushSubscription removes one subscription; an unknown one
	// fails with ErrNotFound.
	DeletePushSubscription(ctx context.Context, userID, endpoint string) error
	// PutNotifySetting inserts or replaces a setting; an invalid level
	// fails with ErrInvalid.
	PutNotifySetting(ctx context.Context, s NotifySetting) error
	// GetNotifySetting returns a member's setting for a conversation or
	// ErrNotFound when none is stored (callers then use NotifyAll).
	GetNotifySetting(ctx context.Context, userID, conversation string) (NotifySetting, error)
}
