// Package webhook delivers internal events (services/events) to outgoing
// webhooks: HTTP endpoints that subscribed to chosen event types.
//
// The flow (docs/events.md, "Webhooks"):
//
//	event log --durable consumer "webhooks"--> dispatcher
//	    for each enabled webhook whose filter matches the event type:
//	        Enqueue(work queue JSP_WORK_WEBHOOK, body = event envelope,
//	                Jsp-Msg-Id = <webhook id>/<event id>)   (de-duplicated)
//	work queue --Consume(Workers)--> deliverer
//	    lane of the webhook full?  -> job back to the queue (bus backoff)
//	    POST url, Jsp-Signature: t=<unix>,v1=<HMAC-SHA256(secret, t.body)>
//	    2xx -> acknowledged
//	    else -> retry after RetryMin*2^(n-1) (capped at RetryMax, jittered)
//	            up to MaxAttempts, then a dead letter in storage
//
// A job is held, and kept alive with InProgress, for its whole retry
// sequence, so a crash hands it to another worker. Each webhook has a lane
// of PerEndpoint slots: a receiver that hangs (each attempt ends at
// Timeout) or answers 500 occupies at most its own lane, and every other
// webhook keeps its workers. Nothing is lost: a delivery ends acknowledged
// by the receiver or as a dead letter that an operator can redeliver.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/events"
)

// Defaults of Config's zero fields.
const (
	// DefaultTimeout bounds one HTTP attempt, response headers and body
	// included.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxAttempts is how many attempts a delivery gets before it
	// becomes a dead letter.
	DefaultMaxAttempts = 8
	// DefaultRetryMin is the delay after the first failed attempt.
	DefaultRetryMin = time.Second
	// DefaultRetryMax caps the delay between attempts.
	DefaultRetryMax = 5 * time.Minute
	// DefaultPerEndpoint is how many deliveries one webhook may hold at
	// once (attempting or waiting to retry).
	DefaultPerEndpoint = 4
	// DefaultWorkers is how many jobs the deliverer holds at once over all
	// webhooks.
	DefaultWorkers = 32
	// DefaultQueueMaxDeliver caps how often the work queue hands out one
	// job: lane-full bounces and crash redeliveries count, HTTP attempts
	// do not (MaxAttempts bounds those per hand-out).
	DefaultQueueMaxDeliver = 50
	// DefaultMaxResponseBytes is how much of a response body is read
	// (and discarded) so the connection can be reused.
	DefaultMaxResponseBytes = 64 << 10
	// DefaultReload is how long the dispatcher caches the webhook list.
	DefaultReload = 5 * time.Second
	// ConsumerName is the durable event consumer of the dispatcher.
	ConsumerName = "webhooks"
)

// Config configures a Service.
type Config struct {
	// Store keeps webhooks and dead letters. Required.
	Store storage.WebhookStore
	// Bus carries the work queue. Required.
	Bus bus.Bus
	// Subjects names the cluster's subjects. Required.
	Subjects bus.Subjects
	// Log is the event log the dispatcher follows. Required.
	Log bus.EventLog
	// Cursors keeps the dispatcher's position in the log. Required.
	Cursors events.CursorStore
	// Queue, when set, adjusts the work queue configuration (limits,
	// redelivery backoff, AckWait) before it is opened. MaxDeliver
	// defaults to DefaultQueueMaxDeliver.
	Queue func(*bus.WorkQueueConfig)
	// HTTPClient sends the requests; it must not follow redirects (a 3xx
	// counts as a failure). Default: a client with its own transport that
	// does not follow redirects.
	HTTPClient *http.Client
	// Timeout bounds one attempt. Default: DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts per delivery. Default: DefaultMaxAttempts.
	MaxAttempts int
	// RetryMin and RetryMax bound the exponential backoff between
	// attempts. Defaults: DefaultRetryMin, DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// PerEndpoint caps deliveries one webhook holds at once.
	// Default: DefaultPerEndpoint.
	PerEndpoint int
	// Workers caps jobs held at once. Default: DefaultWorkers.
	Workers int
	// MaxResponseBytes caps the response body read. Default:
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Reload is how long the webhook list is cached. Default:
	// DefaultReload.
	Reload time.Duration
	// Now is the clock for signatures. Default: time.Now.
	Now func() time.Time
	// RandN returns a random integer in [0, n) for backoff jitter.
	// Default: math/rand/v2.Int64N.
	RandN func(n int64) int64
	// Logger receives delivery logs. Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Transport:     http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.PerEndpoint == 0 {
		c.PerEndpoint = DefaultPerEndpoint
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.Reload == 0 {
		c.Reload = DefaultReload
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RandN == nil {
		c.RandN = rand.Int64N
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	switch {
	case c.Store == nil || c.Bus == nil || c.Log == nil || c.Cursors == nil:
		return errors.New("webhook: Store, Bus, Log and Cursors are required")
	case c.Subjects == (bus.Subjects{}):
		return errors.New("webhook: Subjects is required")
	case c.Timeout < 0 || c.MaxAttempts < 0 || c.RetryMin < 0 || c.RetryMax < 0 || c.PerEndpoint < 0 ||
		c.Workers < 0 || c.MaxResponseBytes < 0 || c.Reload < 0:
		return errors.New("webhook: negative limit")
	case c.RetryMax != 0 && c.RetryMax < c.RetryMin:
		return fmt.Errorf("webhook: RetryMax %v below RetryMin %v", c.RetryMax, c.RetryMin)
	}
	return nil
}

// Validate checks a webhook before it is stored: id, http(s) URL, secret
// and filters (see events.ValidateFilter). Errors carry
// jsperr.WebhookInvalid.
func Validate(w storage.Webhook) error {
	bad := func(format string, args ...any) error {
		return jsperr.Newf(jsperr.WebhookInvalid, format, args...)
	}
	if len(w.Secret) < 16 {
		return bad("webhook %s: secret must have at least 16 bytes", w.ID)
	}
	for _, f := range w.EventTypes {
		if err := events.ValidateFilter(f); err != nil {
			return bad("webhook %s: event filter %q: %v", w.ID, f, err)
		}
	}
	return nil
}

// Register validates a webhook and stores it (insert or replace).
func Register(ctx context.Context, s storage.WebhookStore, w storage.Webhook) (storage.Webhook, error) {
	if err := Validate(w); err != nil {
		return storage.Webhook{}, err
	}
	out, err := s.PutWebhook(ctx, w)
	if errors.Is(err, storage.ErrInvalid) {
		return storage.Webhook{}, jsperr.Wrap(jsperr.WebhookInvalid, err)
	}
	if err != nil {
		return storage.Webhook{}, fmt.Errorf("webhook: register %s: %w", w.ID, err)
	}
	return out, nil
}

// Stats counts a Service's work.
type Stats struct {
	Enqueued     uint64 // deliveries put on the work queue
	Delivered    uint64 // deliveries a receiver acknowledged with 2xx
	Attempts     uint64 // HTTP attempts, successful or not
	Failures     uint64 // failed HTTP attempts
	DeadLettered uint64 // deliveries given up and recorded
	Busy         uint64 // jobs handed back because their lane was full
	Dropped      uint64 // jobs whose webhook was deleted
}

type counters struct {
	enqueued, delivered, attempts, failures, dead, busy, dropped atomic.Uint64
}

// Service runs the dispatcher and the deliverer.
type Service struct {
	cfg   Config
	queue bus.WorkQueue
	stats counters

	lanesMu sync.Mutex
	lanes   map[string]int // webhook id -> deliveries held; guarded by lanesMu

	cacheMu   sync.Mutex
	cache     []storage.Webhook // guarded by cacheMu
	cacheTime time.Time         // guarded by cacheMu

	dispatcher *events.Consumer
	workers    bus.Consumer
}

// Start opens the work queue and starts the deliverer's workers and the
// dispatcher. ctx bounds only the setup.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	qc, err := cfg.Subjects.WorkQueue(bus.WorkWebhook)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	qc.MaxDeliver = DefaultQueueMaxDeliver
	if cfg.Queue != nil {
		cfg.Queue(&qc)
	}
	q, err := cfg.Bus.WorkQueue(ctx, qc)
	if err != nil {
		return nil, fmt.Errorf("webhook: open work queue: %w", err)
	}
	s := &Service{cfg: cfg, queue: q, lanes: make(map[string]int)}
	s.workers, err = q.Consume(ctx, s.deliver, bus.ConsumeConfig{Concurrency: cfg.Workers, OnDeadLetter: s.onQueueDeadLetter})
	if err != nil {
		return nil, fmt.Errorf("webhook: start workers: %w", err)
	}
	s.dispatcher, err = events.Consume(ctx, cfg.Log, events.ConsumerConfig{
		Name: ConsumerName, Handler: s.dispatch, Cursors: cfg.Cursors, Logger: cfg.Logger,
	})
	if err != nil {
		s.workers.Stop()
		return nil, fmt.Errorf("webhook: start dispatcher: %w", err)
	}
	return s, nil
}

// Stop stops the dispatcher, then the workers (deliveries in progress are
// handed back to the queue and resumed by the next Start). Safe to call
// more than once.
func (s *Service) Stop() {
	s.dispatcher.Stop()
	s.workers.Stop()
	s.cfg.HTTPClient.CloseIdleConnections()
}

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	c := &s.stats
	return Stats{Enqueued: c.enqueued.Load(), Delivered: c.delivered.Load(), Attempts: c.attempts.Load(),
		Failures: c.failures.Load(), DeadLettered: c.dead.Load(), Busy: c.busy.Load(), Dropped: c.dropped.Load()}
}

// webhooks returns the cached webhook list, reloading it after Reload.
func (s *Service) webhooks(ctx context.Context) ([]storage.Webhook, error) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if s.cache != nil && s.cfg.Now().Sub(s.cacheTime) < s.cfg.Reload {
		return s.cache, nil
	}
	all := []storage.Webhook{}
	after := ""
	for {
		page, err := s.cfg.Store.ListWebhooks(ctx, after, 0)
		if err != nil {
			return nil, fmt.Errorf("webhook: list webhooks: %w", err)
		}
		all = append(all, page...)
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
	}
	s.cache, s.cacheTime = all, s.cfg.Now()
	return all, nil
}

// Invalidate drops the cached webhook list, so a change is seen by the
// next event.
func (s *Service) Invalidate() {
	s.cacheMu.Lock()
	s.cache = nil
	s.cacheMu.Unlock()
}

// dispatch is the durable event consumer's handler: one job per matching
// webhook. An error retries the event; jobs enqueued before the error
// are de-duplicated by their message id.
func (s *Service) dispatch(ctx context.Context, d events.Delivered) error {
	hooks, err := s.webhooks(ctx)
	if err != nil {
		return err
	}
	for _, w := range hooks {
		if w.Disabled || !events.MatchAny(w.EventTypes, d.Event.Type) {
			continue
		}
		if err := s.Enqueue(ctx, w.ID, d.Event.ID, d.Event.Type, d.Raw); err != nil {
			return err
		}
	}
	return nil
}

// Enqueue puts one delivery on the work queue: body goes to webhook
// webhookID. Repeating it within the queue's duplicate window stores it
// once.
func (s *Service) Enqueue(ctx context.Context, webhookID, eventID, eventType string, body []byte) error {
	_, err := s.queue.Enqueue(ctx, bus.Msg{
		Header: bus.Header{
			bus.HeaderMsgID: {webhookID + "/" + eventID},
			HeaderWebhookID: {webhookID},
			HeaderEventID:   {eventID},
			HeaderEventType: {eventType},
		},
		Data: body,
	})
	if err != nil {
		return fmt.Errorf("webhook: enqueue %s for %s: %w", eventID, webhookID, err)
	}
	s.stats.enqueued.Add(1)
	return nil
}

// Redeliver puts a dead letter back on the queue and deletes it.
func (s *Service) Redeliver(ctx context.Context, d storage.DeadLetter) error {
	// A fresh message id: the original one may still be inside the
	// duplicate window.
	_, err := s.queue.Enqueue(ctx, bus.Msg{
		Header: bus.Header{
			bus.HeaderMsgID: {fmt.Sprintf("%s/%s/dl%d", d.WebhookID, d.EventID, d.ID)},
			HeaderWebhookID: {d.WebhookID},
			HeaderEventID:   {d.EventID},
			HeaderEventType: {d.EventType},
		},
		Data: d.Payload,
	})
	if err != nil {
		return fmt.Errorf("webhook: redeliver dead letter %d: %w", d.ID, err)
	}
	s.stats.enqueued.Add(1)
	if err := s.cfg.Store.DeleteDeadLetter(ctx, d.ID); err != nil {
		return fmt.Errorf("webhook: redeliver dead letter %d: %w", d.ID, err)
	}
	return nil
}

// errBusy hands a job back to the queue while its webhook's lane is full.
var errBusy = errors.New("webhook: endpoint busy")

func (s *Service) acquire(id string) bool {
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	if s.lanes[id] >= s.cfg.PerEndpoint {
		return false
	}
	s.lanes[id]++
	return true
}

func (s *Service) release(id string) {
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	if s.lanes[id]--; s.lanes[id] <= 0 {
		delete(s.lanes, id)
	}
}

// deliver is the work queue handler: the whole retry sequence of one
// delivery.
func (s *Service) deliver(ctx context.Context, j bus.Job) error {
	m := j.Msg()
	id, evID, evType := m.Header.Get(HeaderWebhookID), m.Header.Get(HeaderEventID), m.Header.Get(HeaderEventType)
	if id == "" || evID == "" {
		return bus.Terminal(errors.New("webhook: job without webhook or event id"))
	}
	w, err := s.cfg.Store.GetWebhook(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		s.stats.dropped.Add(1) // the webhook was deleted: nobody wants it
		return nil
	}
	if err != nil {
		return fmt.Errorf("webhook: load %s: %w", id, err)
	}
	if !s.acquire(id) {
		s.stats.busy.Add(1)
		return errBusy
	}
	defer s.release(id)
	stop := s.keepAlive(j)
	defer stop()

	var last error
	attempts := 0
	if w.Disabled {
		last = errors.New("webhook disabled")
	} else {
		for attempts < s.cfg.MaxAttempts {
			attempts++
			last = s.send(ctx, w, evID, evType, attempts, m.Data)
			if last == nil {
				s.stats.delivered.Add(1)
				return nil
			}
			s.stats.failures.Add(1)
			if ctx.Err() != nil {
				return context.Cause(ctx) // stopping: the queue redelivers later
			}
			if attempts == s.cfg.MaxAttempts {
				break
			}
			if !sleep(ctx, events.Backoff(s.cfg.RetryMin, s.cfg.RetryMax, attempts, s.cfg.RandN)) {
				return context.Cause(ctx)
			}
		}
	}
	s.cfg.Logger.Warn("webhook: delivery given up", "webhook", id, "event", evID, "attempts", attempts, "err", last)
	if _, err := s.cfg.Store.AddDeadLetter(ctx, storage.DeadLetter{WebhookID: id, EventID: evID, EventType: evType,
		Payload: m.Data, Attempts: attempts, LastError: last.Error()}); err != nil {
		// Keep the job: the queue redelivers it and the record is tried
		// again, so the delivery is not lost.
		return fmt.Errorf("webhook: record dead letter for %s/%s: %w", id, evID, err)
	}
	s.stats.dead.Add(1)
	return nil
}

// keepAlive calls InProgress every third of AckWait until stop, so a job
// held through retries is not redelivered to another worker.
func (s *Service) keepAlive(j bus.Job) (stop func()) {
	every := s.queue.Config().AckWait / 3
	if every <= 0 {
		every = time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := j.InProgress(); err != nil {
					s.cfg.Logger.Debug("webhook: job keep-alive failed", "seq", j.Seq(), "err", err)
				}
			case <-done:
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// onQueueDeadLetter records jobs the queue dropped: too many lane-full
// bounces or crash redeliveries (MaxDeliver), or a terminal error.
func (s *Service) onQueueDeadLetter(j bus.Job, herr error) {
	m := j.Msg()
	id, evID, evType := m.Header.Get(HeaderWebhookID), m.Header.Get(HeaderEventID), m.Header.Get(HeaderEventType)
	if id == "" || evID == "" {
		s.cfg.Logger.Error("webhook: dropped malformed job", "seq", j.Seq(), "err", herr)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if evType == "" {
		evType = "unknown.event"
	}
	if _, err := s.cfg.Store.AddDeadLetter(ctx, storage.DeadLetter{WebhookID: id, EventID: evID, EventType: evType,
		Payload: m.Data, LastError: "queue gave up: " + herr.Error()}); err != nil {
		s.cfg.Logger.Error("webhook: dead letter lost", "webhook", id, "event", evID, "err", err)
		return
	}
	s.stats.dead.Add(1)
}

// send makes one signed attempt.
func (s *Service) send(ctx context.Context, w storage.Webhook, evID, evType string, attempt int, body []byte) error {
	s.stats.attempts.Add(1)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jsp-webhook/1")
	req.Header.Set(HeaderSignature, Sign(w.Secret, s.cfg.Now(), body))
	req.Header.Set(HeaderWebhookID, w.ID)
	req.Header.Set(HeaderEventID, evID)
	req.Header.Set(HeaderEventType, evType)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("attempt %d: %w", attempt, err)
	}
	_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, s.cfg.MaxResponseBytes))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("attempt %d: status %d", attempt, resp.StatusCode)
	}
	if rerr != nil {
		// The receiver answered 2xx; a broken body read does not undo it.
		s.cfg.Logger.Debug("webhook: response body", "webhook", w.ID, "err", rerr)
	}
	return nil
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
