package sqlcommon

import (
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/jetstreamproto/jsp/server/storage"
)

// Webhook checks a webhook for PutWebhook.
func Webhook(w storage.Webhook) error {
	if err := Name("webhook id", w.ID); err != nil {
		return err
	}
	if err := endpointURL("webhook url", w.URL); err != nil {
		return err
	}
	if len(w.Secret) == 0 || len(w.Secret) > storage.MaxWebhookSecretLen {
		return fmt.Errorf("%w: webhook %s secret is %d bytes, want 1..%d", storage.ErrInvalid, w.ID, len(w.Secret), storage.MaxWebhookSecretLen)
	}
	if len(w.EventTypes) == 0 || len(w.EventTypes) > storage.MaxWebhookEventTypes {
		return fmt.Errorf("%w: webhook %s has %d event types, want 1..%d", storage.ErrInvalid, w.ID, len(w.EventTypes), storage.MaxWebhookEventTypes)
	}
	for _, t := range w.EventTypes {
		if err := Name("webhook event type", t); err != nil {
			return err
		}
	}
	return nil
}

func endpointURL(what, s string) error {
	if s == "" || len(s) > storage.MaxWebhookURLLen {
		return fmt.Errorf("%w: %s is %d bytes, want 1..%d", storage.ErrInvalid, what, len(s), storage.MaxWebhookURLLen)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %s %q is not an absolute http(s) URL", storage.ErrInvalid, what, s)
	}
	return nil
}

// EventTypes encodes a webhook's event filter for its column.
func EventTypes(types []string) string {
	b, _ := json.Marshal(types) // a []string always marshals
	return string(b)
}

// ParseEventTypes decodes the event filter column.
func ParseEventTypes(s string) ([]string, error) {
	var types []string
	if err := json.Unmarshal([]byte(s), &types); err != nil {
		return nil, fmt.Errorf("decode webhook event types: %w", err)
	}
	return types, nil
}

// DeadLetter checks a dead letter for AddDeadLetter.
func DeadLetter(d storage.DeadLetter) error {
	for _, f := range []struct{ what, v string }{{"webhook id", d.WebhookID}, {"event id", d.EventID}, {"event type", d.EventType}} {
		if err := Name(f.what, f.v); err != nil {
			return err
		}
	}
	if len(d.Payload) > storage.MaxDeadLetterBytes {
		return fmt.Errorf("%w: dead letter payload is %d bytes, limit %d", storage.ErrTooLarge, len(d.Payload), storage.MaxDeadLetterBytes)
	}
	if d.Attempts < 0 {
		return fmt.Errorf("%w: negative attempts %d", storage.ErrInvalid, d.Attempts)
	}
	return nil
}

// TruncateError caps a dead letter's error text so one row stays small.
func TruncateError(s string) string {
	const maxLen = 1024
	if len(s) > maxLen {
		s = s[:maxLen]
	}
	return s
}

// PushSubscription checks a subscription for PutPushSubscription.
func PushSubscription(s storage.PushSubscription) error {
	if err := Name("user id", s.UserID); err != nil {
		return err
	}
	if err := endpointURL("push endpoint", s.Endpoint); err != nil {
		return err
	}
	if err := OptionalName("push provider", s.Provider); err != nil {
		return err
	}
	if len(s.P256dh) > storage.MaxPushKeyLen || len(s.Auth) > storage.MaxPushKeyLen {
		return fmt.Errorf("%w: push key over %d bytes", storage.ErrInvalid, storage.MaxPushKeyLen)
	}
	return nil
}

// NotifySetting checks a setting for PutNotifySetting.
func NotifySetting(s storage.NotifySetting) error {
	if err := Name("user id", s.UserID); err != nil {
		return err
	}
	if err := Name("conversation", s.Conversation); err != nil {
		return err
	}
	if !s.Level.Valid() {
		return fmt.Errorf("%w: notify level %q", storage.ErrInvalid, s.Level)
	}
	return nil
}
