package chat

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/push"
	"github.com/jetstreamproto/jsp/services/webhook"
)

// Notification and webhook commands (docs/events.md, "Commands").
type (
	// PushSubscription is a browser's PushSubscription.toJSON().
	PushSubscription = push.BrowserSubscription
	// NotifyLevel is all, mentions or none (muted).
	NotifyLevel = storage.NotifyLevel
	// NotifySetting is a member's setting for one conversation.
	NotifySetting = push.Setting
	// Webhook is a webhook as the admin commands show it.
	Webhook = webhook.Info
	// DeadLetter is a webhook delivery that was given up.
	DeadLetter = webhook.DeadLetterInfo
)

// Notification levels.
const (
	NotifyAll      = storage.NotifyAll
	NotifyMentions = storage.NotifyMentions
	NotifyMuted    = storage.NotifyNone
)

// jsonCommand sends one JSON command to service and decodes the reply.
func (x *Client) jsonCommand(ctx context.Context, service string, req, rep any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s command: %w", service, err)
	}
	out, err := x.c.Command(ctx, service, body)
	if err != nil {
		return fmt.Errorf("%s command: %w", service, err)
	}
	if err := json.Unmarshal(out, rep); err != nil {
		return fmt.Errorf("%s command: reply: %w", service, err)
	}
	return nil
}

func (x *Client) pushCmd(ctx context.Context, req push.Request) (push.Reply, error) {
	var rep push.Reply
	if err := x.jsonCommand(ctx, push.ServiceName, req, &rep); err != nil {
		return push.Reply{}, fmt.Errorf("%s: %w", req.Op, err)
	}
	return rep, nil
}

// VAPIDKey returns the server's VAPID public key (the uncompressed P-256
// point a browser passes as applicationServerKey to pushManager.subscribe).
func (x *Client) VAPIDKey(ctx context.Context) ([]byte, error) {
	rep, err := x.pushCmd(ctx, push.Request{Op: push.OpVAPIDKey})
	if err != nil {
		return nil, err
	}
	k, err := base64.RawURLEncoding.DecodeString(rep.VAPIDKey)
	if err != nil {
		return nil, fmt.Errorf("push.vapid_key: %w", err)
	}
	return k, nil
}

// PushSubscribe registers a Web Push subscription for the signed-in user.
func (x *Client) PushSubscribe(ctx context.Context, sub PushSubscription) error {
	_, err := x.pushCmd(ctx, push.Request{Op: push.OpSubscribe, Subscription: &sub})
	return err
}

// PushUnsubscribe removes the signed-in user's subscription at endpoint.
func (x *Client) PushUnsubscribe(ctx context.Context, endpoint string) error {
	_, err := x.pushCmd(ctx, push.Request{Op: push.OpUnsubscribe, Subscription: &push.BrowserSubscription{Endpoint: endpoint}})
	return err
}

// NotifySettings returns the signed-in user's setting for conv (all when
// none is stored).
func (x *Client) NotifySettings(ctx context.Context, conv string) (NotifySetting, error) {
	rep, err := x.pushCmd(ctx, push.Request{Op: push.OpSettingsGet, Conversation: conv})
	if err != nil {
		return NotifySetting{}, err
	}
	if rep.Setting == nil {
		return NotifySetting{}, fmt.Errorf("%s: reply without a setting", push.OpSettingsGet)
	}
	return *rep.Setting, nil
}

// SetNotifySettings stores the signed-in user's setting for conv;
// whenOnline also pushes while the user is online.
func (x *Client) SetNotifySettings(ctx context.Context, conv string, level NotifyLevel, whenOnline bool) error {
	_, err := x.pushCmd(ctx, push.Request{Op: push.OpSettingsSet, Conversation: conv, Level: level, WhenOnline: whenOnline})
	return err
}

func (x *Client) webhookCmd(ctx context.Context, req webhook.Request) (webhook.Reply, error) {
	var rep webhook.Reply
	if err := x.jsonCommand(ctx, webhook.ServiceName, req, &rep); err != nil {
		return webhook.Reply{}, fmt.Errorf("%s: %w", req.Op, err)
	}
	return rep, nil
}

// CreateWebhook stores a webhook (admin scope). An empty secret makes the
// server generate one, returned in the result's Secret only this once.
func (x *Client) CreateWebhook(ctx context.Context, id, url, secret string, eventFilters []string) (Webhook, error) {
	rep, err := x.webhookCmd(ctx, webhook.Request{Op: webhook.OpCreate, ID: id, URL: url, Secret: secret, Events: eventFilters})
	if err != nil {
		return Webhook{}, err
	}
	if rep.Webhook == nil {
		return Webhook{}, fmt.Errorf("%s: reply without a webhook", webhook.OpCreate)
	}
	return *rep.Webhook, nil
}

// ListWebhooks returns up to limit webhooks after the id after (admin
// scope); limit 0 means the server's default page.
func (x *Client) ListWebhooks(ctx context.Context, after string, limit int) ([]Webhook, error) {
	rep, err := x.webhookCmd(ctx, webhook.Request{Op: webhook.OpList, After: after, Limit: limit})
	return rep.Webhooks, err
}

// DeleteWebhook removes a webhook and its dead letters (admin scope).
func (x *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, err := x.webhookCmd(ctx, webhook.Request{Op: webhook.OpDelete, ID: id})
	return err
}

// DeadLetters lists dead letters of webhook id (all when empty) with ids
// above after (admin scope).
func (x *Client) DeadLetters(ctx context.Context, id string, after int64, limit int) ([]DeadLetter, error) {
	req := webhook.Request{Op: webhook.OpDeadLetters, ID: id, Limit: limit}
	if after > 0 {
		req.After = fmt.Sprint(after)
	}
	rep, err := x.webhookCmd(ctx, req)
	return rep.DeadLetters, err
}

// Redeliver puts dead letter id back on the delivery queue (admin scope).
func (x *Client) Redeliver(ctx context.Context, id int64) error {
	_, err := x.webhookCmd(ctx, webhook.Request{Op: webhook.OpRedeliver, DeadLetter: id})
	return err
}
