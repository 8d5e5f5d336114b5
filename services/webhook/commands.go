package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// The webhook admin commands (docs/events.md, "Commands"): a core service
// whose COMMAND body is one JSON Request and whose REPLY body is one JSON
// Reply. Every command needs AdminScope in the caller's token, the scope
// the gateway's admin commands check (server/gateway, AdminScope).
//
//	client ─COMMAND{service "webhook", body {"op":"webhook.create",…}}─► gateway ─► core
//	core ─► Authorizer ─► Commands.HandleCommand (scope check) ─► WebhookStore / Service.Redeliver

// ServiceName is the core service the admin commands are registered
// under.
const ServiceName = "webhook"

// AdminScope is the token scope every webhook command requires; it is
// the gateway's admin scope (a test keeps the two equal).
const AdminScope = "admin"

// Command names (Request.Op).
const (
	// OpCreate stores a webhook (insert or replace). Without a secret one
	// is generated and returned once.
	OpCreate = "webhook.create"
	// OpList lists webhooks (secrets left out).
	OpList = "webhook.list"
	// OpDelete removes a webhook and its dead letters.
	OpDelete = "webhook.delete"
	// OpDeadLetters lists dead letters (of one webhook, or all).
	OpDeadLetters = "webhook.dead_letters"
	// OpRedeliver puts a dead letter back on the queue.
	OpRedeliver = "webhook.redeliver"
)

// Command limits.
const (
	// MaxCommandBytes caps a command body.
	MaxCommandBytes = 16 << 10
	// MaxListLimit caps one list page.
	MaxListLimit = 500
	// DefaultListLimit is the page size when a request gives none.
	DefaultListLimit = 100
	// GeneratedSecretLen is the length of a generated secret in bytes
	// (sent as hex).
	GeneratedSecretLen = 32
)

// Request is one admin command.
type Request struct {
	// Op is the command (OpCreate, …). Required.
	Op string `json:"op"`
	// ID is the webhook (OpCreate, OpDelete; a filter for
	// OpDeadLetters).
	ID string `json:"id,omitempty"`
	// URL receives the deliveries (OpCreate).
	URL string `json:"url,omitempty"`
	// Secret is the HMAC key (OpCreate), at least 16 bytes; empty
	// generates one.
	Secret string `json:"secret,omitempty"`
	// Events are the event filters (OpCreate).
	Events []string `json:"events,omitempty"`
	// Disabled stops deliveries (OpCreate).
	Disabled bool `json:"disabled,omitempty"`
	// DeadLetter is the dead letter of OpRedeliver.
	DeadLetter int64 `json:"dead_letter,omitempty"`
	// After is the list cursor: a webhook id (OpList) or a dead letter
	// id (OpDeadLetters, as a decimal string).
	After string `json:"after,omitempty"`
	// Limit caps a list page. Default DefaultListLimit, at most
	// MaxListLimit.
	Limit int `json:"limit,omitempty"`
}

// Info is a webhook in a Reply; the secret only in OpCreate's answer.
type Info struct {
	// ID names the webhook.
	ID string `json:"id"`
	// URL receives the deliveries.
	URL string `json:"url"`
	// Events are the event filters.
	Events []string `json:"events"`
	// Disabled webhooks get no deliveries.
	Disabled bool `json:"disabled,omitempty"`
	// Secret is set only in OpCreate's answer with a generated secret.
	Secret string `json:"secret,omitempty"`
	// Created and Updated are the store's timestamps.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// DeadLetterInfo is a dead letter in a Reply.
type DeadLetterInfo struct {
	// ID is the dead letter's id (OpRedeliver's DeadLetter).
	ID int64 `json:"id"`
	// Webhook is the webhook the delivery was for.
	Webhook string `json:"webhook"`
	// EventID and EventType identify the event.
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	// Attempts counts the HTTP attempts made.
	Attempts int `json:"attempts"`
	// LastError describes the last failure.
	LastError string `json:"last_error,omitempty"`
	// Time is when the delivery was given up.
	Time time.Time `json:"time"`
	// Body is the event envelope that was being delivered.
	Body json.RawMessage `json:"body,omitempty"`
}

// Reply is a command's answer.
type Reply struct {
	// Webhook is OpCreate's webhook.
	Webhook *Info `json:"webhook,omitempty"`
	// Webhooks is OpList's page.
	Webhooks []Info `json:"webhooks,omitempty"`
	// DeadLetters is OpDeadLetters' page.
	DeadLetters []DeadLetterInfo `json:"dead_letters,omitempty"`
}

// Commands answers the admin commands. It is safe for concurrent use.
type Commands struct {
	// Store keeps webhooks. Required.
	Store storage.WebhookStore
	// Service redelivers dead letters and drops its webhook cache on a
	// change; nil refuses OpRedeliver.
	Service *Service
	// Rand generates secrets. Default: crypto/rand.Reader.
	Rand io.Reader
}

var _ core.Service = (*Commands)(nil)

// Register registers c under ServiceName.
func (c *Commands) Register(r *core.Registry) error { return r.Register(ServiceName, c) }

// HandleCommand implements core.Service.
func (c *Commands) HandleCommand(ctx context.Context, id core.Identity, body []byte) ([]byte, error) {
	if id.Anonymous() {
		return nil, jsperr.New(jsperr.Unauthenticated, "webhook commands need an authenticated user")
	}
	if !slices.Contains(id.Scopes, AdminScope) {
		return nil, jsperr.Newf(jsperr.Forbidden, "webhook commands need the %q scope", AdminScope)
	}
	if len(body) > MaxCommandBytes {
		return nil, jsperr.Newf(jsperr.BadRequest, "webhook command of %d bytes, limit %d", len(body), MaxCommandBytes)
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, jsperr.Newf(jsperr.BadRequest, "webhook command: %v", err)
	}
	if req.Limit < 0 || req.Limit > MaxListLimit {
		return nil, jsperr.Newf(jsperr.BadRequest, "limit %d: want 0..%d", req.Limit, MaxListLimit)
	}
	if req.Limit == 0 {
		req.Limit = DefaultListLimit
	}
	rep, err := c.handle(ctx, req)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, fmt.Errorf("webhook: encode reply: %w", err)
	}
	return b, nil
}

func info(w storage.Webhook) Info {
	return Info{ID: w.ID, URL: w.URL, Events: w.EventTypes, Disabled: w.Disabled, Created: w.Created, Updated: w.Updated}
}

func (c *Commands) changed() {
	if c.Service != nil {
		c.Service.Invalidate()
	}
}

func (c *Commands) handle(ctx context.Context, req Request) (Reply, error) {
	switch req.Op {
	case OpCreate:
		secret := []byte(req.Secret)
		generated := len(secret) == 0
		if generated {
			r := c.Rand
			if r == nil {
				r = rand.Reader
			}
			raw := make([]byte, GeneratedSecretLen)
			if _, err := io.ReadFull(r, raw); err != nil {
				return Reply{}, fmt.Errorf("webhook: generate secret: %w", err)
			}
			secret = []byte(hex.EncodeToString(raw))
		}
		w, err := Register(ctx, c.Store, storage.Webhook{ID: req.ID, URL: req.URL, Secret: secret, EventTypes: req.Events, Disabled: req.Disabled})
		if err != nil {
			return Reply{}, err
		}
		c.changed()
		in := info(w)
		if generated {
			in.Secret = string(secret)
		}
		return Reply{Webhook: &in}, nil
	case OpList:
		ws, err := c.Store.ListWebhooks(ctx, req.After, req.Limit)
		if err != nil {
			return Reply{}, fmt.Errorf("webhook: list: %w", err)
		}
		out := make([]Info, 0, len(ws))
		for _, w := range ws {
			out = append(out, info(w))
		}
		return Reply{Webhooks: out}, nil
	case OpDelete:
		err := c.Store.DeleteWebhook(ctx, req.ID)
		if errors.Is(err, storage.ErrNotFound) {
			return Reply{}, jsperr.Newf(jsperr.NotFound, "no webhook %q", req.ID)
		}
		if err != nil {
			return Reply{}, fmt.Errorf("webhook: delete %s: %w", req.ID, err)
		}
		c.changed()
		return Reply{}, nil
	case OpDeadLetters:
		var after int64
		if req.After != "" {
			if _, err := fmt.Sscan(req.After, &after); err != nil || after < 0 {
				return Reply{}, jsperr.Newf(jsperr.BadRequest, "dead letter cursor %q is not a number", req.After)
			}
		}
		dls, err := c.Store.ListDeadLetters(ctx, req.ID, storage.DeadLetterID(after), req.Limit)
		if err != nil {
			return Reply{}, fmt.Errorf("webhook: dead letters: %w", err)
		}
		out := make([]DeadLetterInfo, 0, len(dls))
		for _, d := range dls {
			di := DeadLetterInfo{ID: int64(d.ID), Webhook: d.WebhookID, EventID: d.EventID, EventType: d.EventType,
				Attempts: d.Attempts, LastError: d.LastError, Time: d.Time}
			if json.Valid(d.Payload) {
				di.Body = d.Payload
			}
			out = append(out, di)
		}
		return Reply{DeadLetters: out}, nil
	case OpRedeliver:
		if c.Service == nil {
			return Reply{}, jsperr.New(jsperr.Unavailable, "webhook delivery is not running")
		}
		if req.DeadLetter <= 0 {
			return Reply{}, jsperr.New(jsperr.BadRequest, "webhook.redeliver needs dead_letter")
		}
		dls, err := c.Store.ListDeadLetters(ctx, "", storage.DeadLetterID(req.DeadLetter-1), 1)
		if err != nil {
			return Reply{}, fmt.Errorf("webhook: dead letter %d: %w", req.DeadLetter, err)
		}
		if len(dls) == 0 || int64(dls[0].ID) != req.DeadLetter {
			return Reply{}, jsperr.Newf(jsperr.NotFound, "no dead letter %d", req.DeadLetter)
		}
		if err := c.Service.Redeliver(ctx, dls[0]); err != nil {
			return Reply{}, err
		}
		return Reply{}, nil
	}
	return Reply{}, jsperr.Newf(jsperr.BadRequest, "unknown webhook command %q", req.Op)
}
