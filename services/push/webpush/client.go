// Package webpush is the Web Push provider: message encryption (RFC 8291,
// aes128gcm content coding of RFC 8188), application server
// identification (RFC 8292, VAPID) and delivery (RFC 8030), from the
// standard library only.
//
// One send:
//
//	plaintext --Encrypt(subscription p256dh, auth; fresh ECDH key + salt)--> body
//	POST <subscription endpoint>
//	    TTL: <seconds>  Urgency: <very-low|low|normal|high>  [Topic: <topic>]
//	    Content-Encoding: aes128gcm
//	    Authorization: vapid t=<ES256 JWT {aud: endpoint origin, exp, sub}>, k=<VAPID public key>
//	201 Created: accepted; 404/410: subscription gone (push.ErrGone);
//	413: payload too large; 429 and 5xx: retry later
package webpush

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/services/push"
)

// Defaults of Config's zero fields.
const (
	// DefaultTimeout bounds one send.
	DefaultTimeout = 10 * time.Second
	// DefaultTokenTTL is the VAPID token lifetime; tokens are reused per
	// push service origin until an hour before they expire.
	DefaultTokenTTL = 12 * time.Hour
	// MaxResponseBytes caps the response body read.
	MaxResponseBytes = 16 << 10
)

// Config configures a Client.
type Config struct {
	// VAPIDKey signs the VAPID tokens. Required.
	VAPIDKey *ecdsa.PrivateKey
	// Subject is the operator contact in the tokens, "mailto:..." or
	// "https://...". Required.
	Subject string
	// HTTPClient sends the requests. Default: a client with its own
	// transport.
	HTTPClient *http.Client
	// Timeout bounds one send. Default: DefaultTimeout.
	Timeout time.Duration
	// TokenTTL is the VAPID token lifetime, at most MaxTokenTTL.
	// Default: DefaultTokenTTL.
	TokenTTL time.Duration
	// AllowHTTP accepts http:// endpoints (tests against a local
	// receiver); RFC 8030 requires https. Default: false.
	AllowHTTP bool
	// Rand is the randomness for keys, salts and signatures.
	// Default: crypto/rand.Reader.
	Rand io.Reader
	// Now is the clock for token expiry. Default: time.Now.
	Now func() time.Time
}

// Client is a push.Provider for Web Push. It is safe for concurrent use.
type Client struct {
	cfg    Config
	pubKey []byte

	mu     sync.Mutex
	tokens map[string]cachedToken // origin -> token; guarded by mu
}

type cachedToken struct {
	header string
	exp    time.Time
}

// New returns a Web Push client.
func New(cfg Config) (*Client, error) {
	if cfg.VAPIDKey == nil {
		return nil, errors.New("webpush: VAPIDKey is required")
	}
	if !strings.HasPrefix(cfg.Subject, "mailto:") && !strings.HasPrefix(cfg.Subject, "https://") {
		return nil, fmt.Errorf("webpush: Subject %q must be a mailto: or https: URI", cfg.Subject)
	}
	if cfg.Timeout < 0 || cfg.TokenTTL < 0 || cfg.TokenTTL > MaxTokenTTL {
		return nil, fmt.Errorf("webpush: Timeout must be >= 0 and TokenTTL within 0..%v", MaxTokenTTL)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pub, err := PublicKey(cfg.VAPIDKey)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, pubKey: pub, tokens: make(map[string]cachedToken)}, nil
}

// PublicKey returns the VAPID public key, the applicationServerKey a
// browser subscribes with.
func (c *Client) PublicKey() []byte { return bytes.Clone(c.pubKey) }

// CloseIdleConnections closes the HTTP client's idle connections.
func (c *Client) CloseIdleConnections() { c.cfg.HTTPClient.CloseIdleConnections() }

// authorization returns the cached or a new VAPID header for origin.
func (c *Client) authorization(origin string) (string, error) {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tokens[origin]; ok && now.Before(t.exp.Add(-time.Hour)) {
		return t.header, nil
	}
	exp := now.Add(c.cfg.TokenTTL)
	tok, err := SignToken(c.cfg.Rand, c.cfg.VAPIDKey, Claims{Aud: origin, Exp: exp.Unix(), Sub: c.cfg.Subject})
	if err != nil {
		return "", err
	}
	h := AuthorizationHeader(tok, c.pubKey)
	c.tokens[origin] = cachedToken{header: h, exp: exp}
	return h, nil
}

func invalidSub(format string, args ...any) error {
	return jsperr.Newf(jsperr.PushSubscriptionInvalid, format, args...)
}

// Send encrypts msg.Payload for sub and posts it to the subscription's
// push service.
func (c *Client) Send(ctx context.Context, sub push.Subscription, msg push.Message) error {
	u, err := url.Parse(sub.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(c.cfg.AllowHTTP && u.Scheme == "http")) {
		return invalidSub("webpush: endpoint %q is not an https URL", sub.Endpoint)
	}
	if len(sub.P256dh) != KeyLen || len(sub.Auth) != AuthLen {
		return invalidSub("webpush: subscription keys of %d and %d bytes, want %d and %d", len(sub.P256dh), len(sub.Auth), KeyLen, AuthLen)
	}
	if msg.Urgency == "" {
		msg.Urgency = push.UrgencyNormal
	}
	if !msg.Urgency.Valid() || !push.ValidTopic(msg.Topic) || msg.TTL < 0 {
		return fmt.Errorf("webpush: bad message: urgency %q, topic %q, ttl %v", msg.Urgency, msg.Topic, msg.TTL)
	}
	body, err := Encrypt(c.cfg.Rand, msg.Payload, sub.P256dh, sub.Auth)
	if err != nil {
		return err
	}
	auth, err := c.authorization(u.Scheme + "://" + u.Host)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webpush: request: %w", err)
	}
	req.Header.Set("TTL", strconv.FormatInt(int64(msg.TTL/time.Second), 10))
	req.Header.Set("Urgency", string(msg.Urgency))
	if msg.Topic != "" {
		req.Header.Set("Topic", msg.Topic)
	}
	req.Header.Set("Content-Encoding", "aes128gcm")
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", auth)
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("webpush: send to %s: %w", u.Host, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("webpush: send to %s: %w", u.Host, push.Gone(sub.Endpoint, resp.StatusCode))
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("webpush: send to %s: %w", u.Host, jsperr.Newf(jsperr.PushPayloadTooLarge, "push service refused %d bytes", len(body)))
	}
	return fmt.Errorf("webpush: send to %s: status %d", u.Host, resp.StatusCode)
}
