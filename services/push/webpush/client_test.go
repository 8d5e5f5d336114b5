package webpush

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/services/push"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// verifyVAPID checks an Authorization header as a push service does
// (RFC 8292, Sections 2-3) and returns the claims and the public key.
func verifyVAPID(h, wantAud string, now time.Time) (Claims, []byte, error) {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return Claims{}, nil, errors.New("scheme is not vapid")
	}
	params := map[string]string{}
	for p := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return Claims{}, nil, fmt.Errorf("bad parameter %q", p)
		}
		params[k] = v
	}
	k, err := b64.DecodeString(params["k"])
	if err != nil {
		return Claims{}, nil, fmt.Errorf("k: %w", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k)
	if err != nil {
		return Claims{}, nil, fmt.Errorf("k: %w", err)
	}
	parts := strings.Split(params["t"], ".")
	if len(parts) != 3 {
		return Claims{}, nil, errors.New("t is not a JWT")
	}
	hdr, err := b64.DecodeString(parts[0])
	if err != nil || string(hdr) != `{"typ":"JWT","alg":"ES256"}` {
		return Claims{}, nil, fmt.Errorf("JWT header %q", hdr)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return Claims{}, nil, errors.New("signature is not 64 bytes")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return Claims{}, nil, errors.New("signature does not verify")
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return Claims{}, nil, err
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, nil, err
	}
	exp := time.Unix(c.Exp, 0)
	switch {
	case c.Aud != wantAud:
		return Claims{}, nil, fmt.Errorf("aud %q, want %q", c.Aud, wantAud)
	case !exp.After(now) || exp.Sub(now) > MaxTokenTTL:
		return Claims{}, nil, fmt.Errorf("exp %v outside (now, now+24h]", exp)
	case !strings.HasPrefix(c.Sub, "mailto:") && !strings.HasPrefix(c.Sub, "https:"):
		return Claims{}, nil, fmt.Errorf("sub %q", c.Sub)
	}
	return c, k, nil
}

// pushService plays the browser's push service and the browser: it checks
// each request like a push service and decrypts it with the subscriber's
// private key.
type pushService struct {
	srv   *httptest.Server
	ua    *ecdh.PrivateKey
	auth  []byte
	vapid []byte // the application server key the browser subscribed with

	mu       sync.Mutex
	status   int
	received []received
	errs     []string
}

type received struct {
	plaintext           []byte
	ttl, urgency, topic string
	claims              Claims
}

func newPushService(t *testing.T, vapid []byte) *pushService {
	ua, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &pushService{ua: ua, auth: make([]byte, AuthLen), vapid: vapid, status: http.StatusCreated}
	rand.Read(p.auth)
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pushService) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fail := func(format string, args ...any) {
		p.errs = append(p.errs, fmt.Sprintf(format, args...))
		w.WriteHeader(http.StatusBadRequest)
	}
	if p.status != http.StatusCreated {
		w.WriteHeader(p.status)
		return
	}
	claims, k, err := verifyVAPID(r.Header.Get("Authorization"), "http://"+r.Host, time.Now())
	if err != nil {
		fail("vapid: %v", err)
		return
	}
	if string(k) != string(p.vapid) {
		fail("vapid key is not the subscription's applicationServerKey")
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Encoding") != "aes128gcm" || r.Header.Get("TTL") == "" {
		fail("method %s, encoding %q, ttl %q", r.Method, r.Header.Get("Content-Encoding"), r.Header.Get("TTL"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyLen+1))
	if err != nil || len(body) > MaxBodyLen {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	plain, err := Decrypt(p.ua, p.auth, body)
	if err != nil {
		fail("decrypt: %v", err)
		return
	}
	p.received = append(p.received, received{plain, r.Header.Get("TTL"), r.Header.Get("Urgency"), r.Header.Get("Topic"), claims})
	w.WriteHeader(http.StatusCreated)
}

func (p *pushService) subscription() push.Subscription {
	return push.Subscription{UserID: "bob", Endpoint: p.srv.URL + "/push/abc123", P256dh: p.ua.PublicKey().Bytes(), Auth: p.auth, Provider: "webpush"}
}

func newClient(t *testing.T) *Client {
	key, err := GenerateVAPIDKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{VAPIDKey: key, Subject: "mailto:ops@example.test", AllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestSendToLocalPushService(t *testing.T) {
	c := newClient(t)
	ps := newPushService(t, c.PublicKey())
	sub := ps.subscription()
	note := []byte(`{"title":"alice in #general","body":"hi @bob","conversation":"general"}`)
	for i, msg := range []push.Message{
		{Payload: note, TTL: time.Hour, Urgency: push.UrgencyHigh, Topic: "general"},
		{Payload: note, TTL: 90 * time.Second}, // the cached token is reused
	} {
		if err := c.Send(context.Background(), sub, msg); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.errs) > 0 || len(ps.received) != 2 {
		t.Fatalf("push service: %d received, errors %v", len(ps.received), ps.errs)
	}
	r := ps.received[0]
	var got map[string]string
	if err := json.Unmarshal(r.plaintext, &got); err != nil || got["body"] != "hi @bob" || got["conversation"] != "general" {
		t.Fatalf("notification %s (%v)", r.plaintext, err)
	}
	if r.ttl != "3600" || r.urgency != "high" || r.topic != "general" || r.claims.Sub != "mailto:ops@example.test" {
		t.Fatalf("headers ttl %q urgency %q topic %q claims %+v", r.ttl, r.urgency, r.topic, r.claims)
	}
	if r2 := ps.received[1]; r2.ttl != "90" || r2.urgency != "normal" || r2.topic != "" || r2.claims != r.claims {
		t.Fatalf("second message %+v", r2)
	}
}

func TestSendStatuses(t *testing.T) {
	c := newClient(t)
	ps := newPushService(t, c.PublicKey())
	sub := ps.subscription()
	for _, tc := range []struct {
		status int
		gone   bool
		code   jsperr.Code
	}{
		{http.StatusGone, true, jsperr.PushSubscriptionGone},
		{http.StatusNotFound, true, jsperr.PushSubscriptionGone},
		{http.StatusRequestEntityTooLarge, false, jsperr.PushPayloadTooLarge},
		{http.StatusTooManyRequests, false, jsperr.Internal},
		{http.StatusInternalServerError, false, jsperr.Internal},
	} {
		ps.mu.Lock()
		ps.status = tc.status
		ps.mu.Unlock()
		err := c.Send(context.Background(), sub, push.Message{Payload: []byte("x")})
		if err == nil || errors.Is(err, push.ErrGone) != tc.gone || jsperr.CodeOf(err) != tc.code {
			t.Errorf("status %d: err = %v (code %v)", tc.status, err, jsperr.CodeOf(err))
		}
	}
}

func TestSendRejects(t *testing.T) {
	c := newClient(t)
	ps := newPushService(t, c.PublicKey())
	good := ps.subscription()
	for name, tc := range map[string]struct {
		sub push.Subscription
		msg push.Message
	}{
		"ftp endpoint": {push.Subscription{Endpoint: "ftp://x/y", P256dh: good.P256dh, Auth: good.Auth}, push.Message{}},
		"short p256dh": {push.Subscription{Endpoint: good.Endpoint, P256dh: good.P256dh[:33], Auth: good.Auth}, push.Message{}},
		"no auth":      {push.Subscription{Endpoint: good.Endpoint, P256dh: good.P256dh}, push.Message{}},
		"bad urgency":  {good, push.Message{Urgency: "urgent"}},
		"bad topic":    {good, push.Message{Topic: "has space"}},
		"long topic":   {good, push.Message{Topic: strings.Repeat("a", 33)}},
		"oversize":     {good, push.Message{Payload: make([]byte, MaxPlaintext+1)}},
	} {
		if err := c.Send(context.Background(), tc.sub, tc.msg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	strict, err := New(Config{VAPIDKey: c.cfg.VAPIDKey, Subject: "mailto:x@y"})
	if err != nil {
		t.Fatal(err)
	}
	if err := strict.Send(context.Background(), good, push.Message{}); jsperr.CodeOf(err) != jsperr.PushSubscriptionInvalid {
		t.Errorf("http endpoint without AllowHTTP: %v", err)
	}
	for name, cfg := range map[string]Config{
		"no key":     {Subject: "mailto:x@y"},
		"no subject": {VAPIDKey: c.cfg.VAPIDKey},
		"long ttl":   {VAPIDKey: c.cfg.VAPIDKey, Subject: "mailto:x@y", TokenTTL: 25 * time.Hour},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: config accepted", name)
		}
	}
}
