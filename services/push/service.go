package push

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// The notification commands (docs/events.md, "Commands"): a core service
// whose COMMAND body is one JSON Request and whose REPLY body is one JSON
// Reply. Every command acts for the calling user only.
//
//	client ─COMMAND{service "push", body {"op":"push.subscribe",…}}─► gateway ─► core
//	core ─► Authorizer (authenticated user) ─► Service.HandleCommand ─► NotifyStore

// ServiceName is the core service the commands are registered under.
const ServiceName = "push"

// Command names (Request.Op).
const (
	// OpVAPIDKey returns the application server's VAPID public key, the
	// applicationServerKey a browser subscribes with.
	OpVAPIDKey = "push.vapid_key"
	// OpSubscribe stores the caller's Web Push subscription.
	OpSubscribe = "push.subscribe"
	// OpUnsubscribe removes one of the caller's subscriptions.
	OpUnsubscribe = "push.unsubscribe"
	// OpSettingsGet returns the caller's setting for a conversation.
	OpSettingsGet = "notify.settings.get"
	// OpSettingsSet stores the caller's setting for a conversation.
	OpSettingsSet = "notify.settings.set"
)

// Command limits.
const (
	// MaxRequestBytes caps a command body.
	MaxRequestBytes = 8 << 10
	// MaxEndpointLen caps a subscription endpoint URL.
	MaxEndpointLen = 2048
	// DefaultMaxSubscriptions is how many subscriptions one user may hold
	// (ServiceConfig.MaxSubscriptions).
	DefaultMaxSubscriptions = 16
	// AuthSecretLen is the Web Push auth secret length (RFC 8291,
	// Section 3.2).
	AuthSecretLen = 16
)

// BrowserSubscription is a browser's PushSubscription as
// PushSubscription.toJSON() writes it: the keys are base64url, with or
// without padding.
type BrowserSubscription struct {
	// Endpoint is the push service URL.
	Endpoint string `json:"endpoint"`
	// Keys holds the subscriber's keys.
	Keys struct {
		// P256dh is the uncompressed P-256 public key.
		P256dh string `json:"p256dh"`
		// Auth is the 16-byte authentication secret.
		Auth string `json:"auth"`
	} `json:"keys"`
}

// Request is one notification command.
type Request struct {
	// Op is the command (OpSubscribe, …). Required.
	Op string `json:"op"`
	// Subscription is the subscription of OpSubscribe; OpUnsubscribe
	// needs only its Endpoint.
	Subscription *BrowserSubscription `json:"subscription,omitempty"`
	// Conversation is the conversation of the settings commands.
	Conversation string `json:"conversation,omitempty"`
	// Level is the new level of OpSettingsSet: all, mentions or none.
	Level storage.NotifyLevel `json:"level,omitempty"`
	// WhenOnline also pushes while the caller is online (OpSettingsSet).
	WhenOnline bool `json:"when_online,omitempty"`
}

// Setting is a notification setting in a Reply.
type Setting struct {
	// Conversation is the conversation.
	Conversation string `json:"conversation"`
	// Level is all, mentions or none.
	Level storage.NotifyLevel `json:"level"`
	// WhenOnline also pushes while the member is online.
	WhenOnline bool `json:"when_online,omitempty"`
}

// Reply is a command's answer.
type Reply struct {
	// VAPIDKey is the VAPID public key, base64url without padding
	// (OpVAPIDKey).
	VAPIDKey string `json:"vapid_key,omitempty"`
	// Setting is the setting (settings commands).
	Setting *Setting `json:"setting,omitempty"`
}

// Membership checks that user belongs to conversation; it returns a
// *jsperr.Error (NOT_A_MEMBER, CONVERSATION_NOT_FOUND) when not.
type Membership func(ctx context.Context, conversation, user string) error

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// Store keeps subscriptions and settings. Required.
	Store storage.NotifyStore
	// VAPIDPublicKey is the uncompressed P-256 VAPID public key.
	// Required.
	VAPIDPublicKey []byte
	// Member, when set, is checked before a settings command.
	Member Membership
	// MaxSubscriptions caps one user's subscriptions.
	// Default: DefaultMaxSubscriptions.
	MaxSubscriptions int
	// AllowHTTP accepts http:// endpoints (tests against a local
	// receiver); RFC 8030 requires https. Default: false.
	AllowHTTP bool
}

// Service answers the notification commands. It is safe for concurrent
// use.
type Service struct {
	cfg ServiceConfig
}

var _ core.Service = (*Service)(nil)

// NewService returns the command service.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil || len(cfg.VAPIDPublicKey) == 0 {
		return nil, errors.New("push: service needs Store and VAPIDPublicKey")
	}
	if cfg.MaxSubscriptions < 0 {
		return nil, errors.New("push: negative MaxSubscriptions")
	}
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	return &Service{cfg: cfg}, nil
}

// Register registers s under ServiceName.
func (s *Service) Register(r *core.Registry) error { return r.Register(ServiceName, s) }

// HandleCommand implements core.Service.
func (s *Service) HandleCommand(ctx context.Context, id core.Identity, body []byte) ([]byte, error) {
	if id.Anonymous() {
		return nil, jsperr.New(jsperr.Unauthenticated, "push commands need an authenticated user")
	}
	if len(body) > MaxRequestBytes {
		return nil, jsperr.Newf(jsperr.BadRequest, "push command of %d bytes, limit %d", len(body), MaxRequestBytes)
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, jsperr.Newf(jsperr.BadRequest, "push command: %v", err)
	}
	rep, err := s.handle(ctx, id.User, req)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, fmt.Errorf("push: encode reply: %w", err)
	}
	return b, nil
}

func (s *Service) handle(ctx context.Context, user string, req Request) (Reply, error) {
	switch req.Op {
	case OpVAPIDKey:
		return Reply{VAPIDKey: base64.RawURLEncoding.EncodeToString(s.cfg.VAPIDPublicKey)}, nil
	case OpSubscribe:
		return Reply{}, s.subscribe(ctx, user, req.Subscription)
	case OpUnsubscribe:
		if req.Subscription == nil || req.Subscription.Endpoint == "" {
			return Reply{}, jsperr.New(jsperr.BadRequest, "push.unsubscribe needs subscription.endpoint")
		}
		err := s.cfg.Store.DeletePushSubscription(ctx, user, req.Subscription.Endpoint)
		if errors.Is(err, storage.ErrNotFound) {
			return Reply{}, jsperr.New(jsperr.NotFound, "no such push subscription")
		}
		if err != nil {
			return Reply{}, fmt.Errorf("push: unsubscribe %s: %w", user, err)
		}
		return Reply{}, nil
	case OpSettingsGet, OpSettingsSet:
		return s.settings(ctx, user, req)
	}
	return Reply{}, jsperr.Newf(jsperr.BadRequest, "unknown push command %q", req.Op)
}

// ParseSubscription checks a browser subscription for user: an absolute
// https (or, with allowHTTP, http) endpoint of at most MaxEndpointLen
// bytes, a valid uncompressed P-256 point and a 16-byte auth secret. It
// fails with PUSH_SUBSCRIPTION_INVALID.
func ParseSubscription(user string, b *BrowserSubscription, allowHTTP bool) (storage.PushSubscription, error) {
	bad := func(format string, args ...any) (storage.PushSubscription, error) {
		return storage.PushSubscription{}, jsperr.Newf(jsperr.PushSubscriptionInvalid, format, args...)
	}
	if b == nil {
		return bad("push.subscribe needs a subscription")
	}
	if len(b.Endpoint) > MaxEndpointLen {
		return bad("endpoint of %d bytes, limit %d", len(b.Endpoint), MaxEndpointLen)
	}
	u, err := url.Parse(b.Endpoint)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || allowHTTP && u.Scheme == "http") {
		return bad("endpoint must be an absolute https URL")
	}
	p256dh, err1 := decodeB64URL(b.Keys.P256dh)
	auth, err2 := decodeB64URL(b.Keys.Auth)
	if err1 != nil || err2 != nil {
		return bad("keys must be base64url")
	}
	if _, err := ecdh.P256().NewPublicKey(p256dh); err != nil || len(p256dh) != 65 {
		return bad("p256dh is not an uncompressed P-256 point")
	}
	if len(auth) != AuthSecretLen {
		return bad("auth secret of %d bytes, want %d", len(auth), AuthSecretLen)
	}
	return storage.PushSubscription{UserID: user, Endpoint: b.Endpoint, P256dh: p256dh, Auth: auth, Provider: "webpush"}, nil
}

// decodeB64URL accepts base64url with or without padding, as browsers
// differ.
func decodeB64URL(s string) ([]byte, error) {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return base64.RawURLEncoding.DecodeString(s)
}

func (s *Service) subscribe(ctx context.Context, user string, b *BrowserSubscription) error {
	sub, err := ParseSubscription(user, b, s.cfg.AllowHTTP)
	if err != nil {
		return err
	}
	have, err := s.cfg.Store.ListPushSubscriptions(ctx, user)
	if err != nil {
		return fmt.Errorf("push: subscriptions of %s: %w", user, err)
	}
	known := false
	for _, h := range have {
		known = known || h.Endpoint == sub.Endpoint
	}
	if !known && len(have) >= s.cfg.MaxSubscriptions {
		return jsperr.Newf(jsperr.LimitExceeded, "%s holds %d push subscriptions, limit %d", user, len(have), s.cfg.MaxSubscriptions)
	}
	if err := s.cfg.Store.PutPushSubscription(ctx, sub); err != nil {
		return fmt.Errorf("push: subscribe %s: %w", user, err)
	}
	return nil
}

func (s *Service) settings(ctx context.Context, user string, req Request) (Reply, error) {
	if req.Conversation == "" {
		return Reply{}, jsperr.Newf(jsperr.BadRequest, "%s needs a conversation", req.Op)
	}
	if s.cfg.Member != nil {
		if err := s.cfg.Member(ctx, req.Conversation, user); err != nil {
			return Reply{}, err
		}
	}
	if req.Op == OpSettingsSet {
		if !req.Level.Valid() {
			return Reply{}, jsperr.Newf(jsperr.BadRequest, "level %q: want all, mentions or none", req.Level)
		}
		set := storage.NotifySetting{UserID: user, Conversation: req.Conversation, Level: req.Level, WhenOnline: req.WhenOnline}
		if err := s.cfg.Store.PutNotifySetting(ctx, set); err != nil {
			return Reply{}, fmt.Errorf("push: setting of %s in %s: %w", user, req.Conversation, err)
		}
		return Reply{Setting: &Setting{Conversation: req.Conversation, Level: req.Level, WhenOnline: req.WhenOnline}}, nil
	}
	set, err := s.cfg.Store.GetNotifySetting(ctx, user, req.Conversation)
	if errors.Is(err, storage.ErrNotFound) {
		set = storage.NotifySetting{Level: storage.NotifyAll}
	} else if err != nil {
		return Reply{}, fmt.Errorf("push: setting of %s in %s: %w", user, req.Conversation, err)
	}
	return Reply{Setting: &Setting{Conversation: req.Conversation, Level: set.Level, WhenOnline: set.WhenOnline}}, nil
}
