package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/config"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/chat"
	"github.com/jetstreamproto/jsp/services/events"
	"github.com/jetstreamproto/jsp/services/push"
	"github.com/jetstreamproto/jsp/services/push/webpush"
	"github.com/jetstreamproto/jsp/services/webhook"
)

// defaultVAPIDSubject is the VAPID contact when none is configured.
const defaultVAPIDSubject = config.DefaultVAPIDSubject

// eventsFlags configure the event consumers of the core role: outgoing
// webhooks and Web Push notifications (docs/events.md, "Wiring it into a
// server").
type eventsFlags struct {
	// vapidKey is the PEM file of the VAPID P-256 key; empty means the
	// key kept in the database (storedVAPIDKey).
	vapidKey string
	// vapidSubject is the operator contact in VAPID tokens.
	vapidSubject string
	// pushAllowHTTP accepts http:// push endpoints (local receivers only).
	pushAllowHTTP bool
}

func addEventsFlags(fl *pflag.FlagSet, f *eventsFlags) {
	fl.StringVar(&f.vapidKey, "vapid-key", "", "PEM file of the Web Push VAPID key (default: a key kept in the database, created on first start and shared by every core)")
	fl.StringVar(&f.vapidSubject, "vapid-subject", defaultVAPIDSubject, "operator contact in VAPID tokens (mailto: or https: URL)")
	fl.BoolVar(&f.pushAllowHTTP, "push-allow-http", false, "accept http:// push endpoints (local test receivers; RFC 8030 requires https)")
	_ = fl.MarkHidden("push-allow-http")
}

// eventConsumers are the running webhook service and push consumer; stop
// ends them before the core shuts down.
type eventConsumers struct {
	webhooks *webhook.Service
	push     *events.Consumer
	senders  bus.Consumer // push work queue workers
	web      *webpush.Client
}

func (e *eventConsumers) stop() {
	if e == nil {
		return
	}
	// The event consumer first: it feeds the queue the senders drain.
	if e.push != nil {
		e.push.Stop()
	}
	if e.senders != nil {
		e.senders.Stop()
	}
	if e.webhooks != nil {
		e.webhooks.Stop()
	}
	if e.web != nil {
		e.web.CloseIdleConnections()
	}
}

// vapidKVNamespace and vapidKVKey name the cluster's VAPID key in the
// database when no key file is configured: every core of a cluster shares
// the database, so they all sign with the key whose public half the
// browsers subscribed with.
const (
	vapidKVNamespace = "jsp.events"
	vapidKVKey       = "vapid-key"
)

// loadVAPIDKey reads the VAPID key from the PEM file at path.
func loadVAPIDKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vapid key: %w", err)
	}
	k, err := parseVAPIDKey(b)
	if err != nil {
		return nil, fmt.Errorf("vapid key %s: %w", path, err)
	}
	return k, nil
}

// storedVAPIDKey returns the cluster's VAPID key from the database,
// creating it on first use; when several cores start together, the first
// write wins and the others read it.
func storedVAPIDKey(ctx context.Context, st storage.KVStore) (*ecdsa.PrivateKey, error) {
	for range 2 {
		e, err := st.KVGet(ctx, vapidKVNamespace, vapidKVKey)
		if err == nil {
			k, err := parseVAPIDKey(e.Value)
			if err != nil {
				return nil, fmt.Errorf("vapid key in the database: %w", err)
			}
			return k, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("vapid key: %w", err)
		}
		k, err := webpush.GenerateVAPIDKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("vapid key: %w", err)
		}
		block := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		_, err = st.KVCompareAndSet(ctx, vapidKVNamespace, vapidKVKey, block, 0, 0)
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, storage.ErrConflict) {
			return nil, fmt.Errorf("vapid key: store: %w", err)
		}
		// Another core created it first: read that one.
	}
	return nil, errors.New("vapid key: created and removed concurrently")
}

// parseVAPIDKey parses a PEM "EC PRIVATE KEY" block holding a P-256 key.
func parseVAPIDKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "EC PRIVATE KEY" {
		return nil, errors.New("no EC PRIVATE KEY PEM block")
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if _, err := webpush.PublicKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// memberOf checks chat membership for the notification settings commands.
func memberOf(st storage.ChatStore) push.Membership {
	return func(ctx context.Context, conv, user string) error {
		_, err := st.GetMember(ctx, conv, user)
		if errors.Is(err, storage.ErrNotFound) {
			return jsperr.Newf(jsperr.NotAMember, "%s is not a member of %s", user, conv)
		}
		if err != nil {
			return fmt.Errorf("member %s of %s: %w", user, conv, err)
		}
		return nil
	}
}

// setupEvents starts the webhook service and the push notifier on the
// event log the chat service writes, and registers their commands
// ("webhook", admin only; "push") in the core.
func setupEvents(ctx context.Context, c *core.Core, reg *core.Registry, f eventsFlags, presence *core.Presence, dataDir string, log *slog.Logger) (_ *eventConsumers, err error) {
	if f.vapidSubject == "" {
		f.vapidSubject = defaultVAPIDSubject
	}
	var key *ecdsa.PrivateKey
	if f.vapidKey != "" {
		key, err = loadVAPIDKey(f.vapidKey)
	} else {
		key, err = storedVAPIDKey(ctx, c.Store())
	}
	if err != nil {
		return nil, err
	}
	pub, err := webpush.PublicKey(key)
	if err != nil {
		return nil, err
	}
	st := c.Store()
	// JetStream may still be electing leaders (a NATS cluster that has
	// just restarted): the bus waits for it (openJetStream).
	var elog bus.EventLog
	if err = openJetStream(ctx, "event log", func(ctx context.Context) error {
		var err error
		elog, err = events.OpenLog(ctx, c.Bus(), c.Subjects(), nil)
		return err
	}); err != nil {
		return nil, err
	}
	cursors := events.StorageCursors(st)
	ec := &eventConsumers{}
	defer func() {
		if err != nil {
			ec.stop()
		}
	}()
	if ec.webhooks, err = webhook.Start(ctx, webhook.Config{Store: st, Bus: c.Bus(), Subjects: c.Subjects(), Log: elog,
		Cursors: cursors, Logger: log}); err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	if ec.web, err = webpush.New(webpush.Config{VAPIDKey: key, Subject: f.vapidSubject, AllowHTTP: f.pushAllowHTTP}); err != nil {
		return nil, fmt.Errorf("web push: %w", err)
	}
	// Sends go through the push work queue: every core process runs the
	// "push" consumer, and the queue's per-event-and-subscription message
	// id keeps several cores from sending one notification twice; failed
	// sends are retried with the queue's backoff.
	var q bus.WorkQueue
	if err = openJetStream(ctx, "push queue", func(ctx context.Context) error {
		var err error
		q, err = push.OpenQueue(ctx, c.Bus(), c.Subjects(), nil)
		return err
	}); err != nil {
		return nil, err
	}
	nt, err := push.NewNotifier(push.NotifierConfig{Store: st, Presence: chat.CorePresence{P: presence},
		Members: chat.StoreMembers{Store: st}, Providers: map[string]push.Provider{"webpush": ec.web}, Queue: q, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("push notifier: %w", err)
	}
	if ec.senders, err = nt.StartWorkers(ctx, push.DefaultConcurrency); err != nil {
		return nil, err
	}
	if ec.push, err = events.Consume(ctx, elog, events.ConsumerConfig{Name: "push", Filters: push.DefaultTypes,
		Handler: nt.HandleEvent, Cursors: cursors, Logger: log}); err != nil {
		return nil, fmt.Errorf("push consumer: %w", err)
	}
	ps, err := push.NewService(push.ServiceConfig{Store: st, VAPIDPublicKey: pub, Member: memberOf(st), AllowHTTP: f.pushAllowHTTP})
	if err != nil {
		return nil, err
	}
	if err := ps.Register(reg); err != nil {
		return nil, err
	}
	if err := (&webhook.Commands{Store: st, Service: ec.webhooks}).Register(reg); err != nil {
		return nil, err
	}
	return ec, nil
}
