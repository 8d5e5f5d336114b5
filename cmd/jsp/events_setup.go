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
	"path/filepath"

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

// vapidFile is the VAPID key's file under the data directory.
const vapidFile = "vapid.pem"

// defaultVAPIDSubject is the VAPID contact when none is configured.
const defaultVAPIDSubject = config.DefaultVAPIDSubject

// eventsFlags configure the event consumers of the core role: outgoing
// webhooks and Web Push notifications (docs/events.md, "Wiring it into a
// server").
type eventsFlags struct {
	// vapidKey is the PEM file of the VAPID P-256 key; empty means
	// <data-dir>/vapid.pem, created on first start.
	vapidKey string
	// vapidSubject is the operator contact in VAPID tokens.
	vapidSubject string
	// pushAllowHTTP accepts http:// push endpoints (local receivers only).
	pushAllowHTTP bool
}

func addEventsFlags(fl *pflag.FlagSet, f *eventsFlags) {
	fl.StringVar(&f.vapidKey, "vapid-key", "", "PEM file of the Web Push VAPID key (default: <data-dir>/"+vapidFile+", created on first start)")
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

// loadVAPIDKey reads the VAPID key from path, or creates it (mode 0600)
// when the file does not exist and create is set.
func loadVAPIDKey(path string, create bool) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		k, err := webpush.GenerateVAPIDKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("vapid key: %w", err)
		}
		// O_EXCL: two processes sharing a data directory must not both
		// write a key and hand out different public keys.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return loadVAPIDKey(path, false)
			}
			return nil, fmt.Errorf("vapid key: %w", err)
		}
		werr := pem.Encode(f, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("vapid key %s: %w", path, werr)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vapid key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "EC PRIVATE KEY" {
		return nil, fmt.Errorf("vapid key %s: no EC PRIVATE KEY PEM block", path)
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("vapid key %s: %w", path, err)
	}
	if _, err := webpush.PublicKey(k); err != nil {
		return nil, fmt.Errorf("vapid key %s: %w", path, err)
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
	keyPath, create := f.vapidKey, false
	if keyPath == "" {
		keyPath, create = filepath.Join(dataDir, vapidFile), true
	}
	key, err := loadVAPIDKey(keyPath, create)
	if err != nil {
		return nil, err
	}
	pub, err := webpush.PublicKey(key)
	if err != nil {
		return nil, err
	}
	st := c.Store()
	// JetStream may still be electing leaders (a NATS cluster that has
	// just restarted): wait for it as the chat service does.
	var elog bus.EventLog
	if err = untilJetStream(ctx, log, "event log", func(ctx context.Context) error {
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
	if err = untilJetStream(ctx, log, "push queue", func(ctx context.Context) error {
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
