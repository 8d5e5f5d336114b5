// Package core is the command side of the server (ARCHITECTURE §1): it
// serves the requests gateways send over the bus, commits chat messages to
// storage, which assigns each channel's sequence numbers, and publishes
// every committed message on its channel subject for the gateways to fan
// out.
//
// The flow of one PUBLISH (JSP §5.8):
//
//	client ─PUBLISH{id}─► gateway ─Request(core.cmd.<ShardOf(channel)>)─► core
//	                                      storage.AppendMessage (idempotent on
//	                                      sender + client id) ─► Seq
//	                      gateway ◄─Reply{Seq}───────────────── core
//	                                                            │ not a duplicate:
//	  gateways subscribed to the channel ◄─Publish(ch.<channel>, Event{Seq})
//	client ◄─ACK{id}── gateway
//
// Requests, replies and events ([Request], [Reply], [Event]) travel in a
// compact binary form or in JSON (codec.go, D42); decoders take both. The
// bus carries them between processes or inside one (embedded NATS).
//
// A core queue-subscribes to every shard subject CoreCmd(0..Shards-1) in
// queue group bus.CoreQueue, so several cores share the work. The bus hands
// one subscription's messages to its handler one at a time and in order;
// the handler queues each request on a worker lane chosen by its channel
// (lanes.go), so the requests of one channel from one gateway are
// committed in the order they were sent, while channels proceed in
// parallel and share the store's group commits. A publish may carry
// several messages (Request.Messages, batch.go), committed in order.
//
// A resend after a lost reply (same sender and client id) commits nothing
// new: the core answers with the original Seq and Duplicate set and does
// not publish again, since the first commit was already published.
//
// Goroutines: the purge loop (purge.go), which keeps the store's
// de-duplication table bounded by its window, and the worker lanes
// (Config.Workers), which serve requests. Close unsubscribes, cancels
// running requests and the purge loop, waits for every request taken to
// be answered, then stops the lanes.
package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/storage"
)

// Defaults; each is what a zero Config field means.
const (
	// DefaultShards is the number of core command subjects. Gateways and
	// cores of one cluster must agree on it.
	DefaultShards = 16
	// DefaultRequestTimeout bounds the storage work of one request.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultPageSize is the page of a history or recover request without
	// a limit.
	DefaultPageSize = 100
	// DefaultMaxPageSize caps the page of a history or recover request.
	DefaultMaxPageSize = 1000
)

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("core: closed")

// Config configures a Core. Bus and Store are required; every other zero
// field means its documented default.
type Config struct {
	// Bus carries requests in and events out. Required.
	Bus bus.Bus
	// Store commits and reads messages. Required.
	Store storage.Store
	// Subjects builds the cluster's subjects. Default: cluster "jsp".
	Subjects *bus.Subjects
	// Shards is the number of command subjects. Default: DefaultShards.
	Shards int
	// Queue is the queue group cores share. Default: bus.CoreQueue.
	Queue string
	// RequestTimeout bounds one request's storage work.
	// Default: DefaultRequestTimeout.
	RequestTimeout time.Duration
	// PageSize is the default page of history reads. Default:
	// DefaultPageSize.
	PageSize int
	// MaxPageSize caps history pages. Default: DefaultMaxPageSize.
	MaxPageSize int
	// MaxRequestBytes caps a request's size. Default:
	// DefaultMaxRequestBytes.
	MaxRequestBytes int
	// Codec encodes the events the core publishes (codec.go); a reply
	// goes in its request's encoding, which the requester reads.
	// Default: CodecBinary.
	Codec Codec
	// CodecLimits bound the requests the core decodes; MaxBytes is
	// MaxRequestBytes. Default: the CodecLimits defaults.
	CodecLimits CodecLimits
	// Workers is the number of worker lanes serving requests (lanes.go):
	// requests of one channel go to one lane, in order; lanes run
	// concurrently, so their appends share the store's group commits.
	// Default: DefaultWorkers.
	Workers int
	// MaxPublishBatch caps the messages of one multi-message publish
	// (batch.go). Default: DefaultMaxPublishBatch.
	MaxPublishBatch int
	// PurgeInterval is how often expired rows are purged from Store.
	// Default: DefaultPurgeInterval.
	PurgeInterval time.Duration
	// DisablePurge leaves purging to another process.
	DisablePurge bool
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Services are the services commands are forwarded to (services.go).
	// Default: none; every OpCommand is answered NOT_FOUND.
	Services *Registry
	// Authorizer is the authorization hook, called for every request
	// (authz.go). Default: AllowAll.
	Authorizer Authorizer
}

// DefaultCluster is the cluster name when none is configured.
const DefaultCluster = "jsp"

func (c *Config) setDefaults() error {
	if c.Subjects == nil {
		s, err := bus.NewSubjects(DefaultCluster)
		if err != nil {
			return err
		}
		c.Subjects = &s
	}
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	if c.Queue == "" {
		c.Queue = bus.CoreQueue
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.MaxPageSize == 0 {
		c.MaxPageSize = DefaultMaxPageSize
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.CodecLimits.MaxBytes == 0 {
		c.CodecLimits.MaxBytes = c.MaxRequestBytes
	}
	c.CodecLimits.setDefaults()
	if c.PurgeInterval == 0 {
		c.PurgeInterval = DefaultPurgeInterval
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxPublishBatch == 0 {
		c.MaxPublishBatch = DefaultMaxPublishBatch
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Authorizer == nil {
		c.Authorizer = AllowAll
	}
	return nil
}

func (c *Config) validate() error {
	switch {
	case c.Bus == nil:
		return errors.New("core: Config.Bus is required")
	case c.Store == nil:
		return errors.New("core: Config.Store is required")
	case c.Shards < 0, c.RequestTimeout < 0, c.PageSize < 0, c.MaxPageSize < 0, c.MaxRequestBytes < 0, c.PurgeInterval < 0, c.MaxPublishBatch < 0, c.Workers < 0:
		return errors.New("core: negative limit in config")
	case c.Codec > CodecJSON:
		return fmt.Errorf("core: unknown codec %d", c.Codec)
	case c.CodecLimits.validate() != nil:
		return c.CodecLimits.validate()
	case c.PageSize > c.MaxPageSize && c.MaxPageSize > 0:
		return fmt.Errorf("core: PageSize %d over MaxPageSize %d", c.PageSize, c.MaxPageSize)
	}
	return nil
}

// Stats are counters of a Core.
type Stats struct {
	Requests   uint64 // requests handled
	Published  uint64 // messages committed and published
	Duplicates uint64 // resends answered with the original Seq
	Failed     uint64 // requests answered with an error code
	// StoreErrors counts requests that failed in storage with an
	// internal error (not the client's fault).
	StoreErrors uint64
}

// Core serves gateway requests. Create it with New, then Start.
type Core struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // requests taken and not yet answered, and the purge loop
	// handlers counts the requests being served, which Shutdown waits
	// for; wg also holds the purge loop.
	handlers sync.WaitGroup

	lanes     []chan job     // worker lanes (lanes.go), set by Start
	lanesStop chan struct{}  // closed by Close after wg: lanes return
	lanesWG   sync.WaitGroup // running lanes

	mu      sync.Mutex
	subs    []bus.Subscription // guarded by mu
	started bool               // guarded by mu
	closed  bool               // guarded by mu
	// draining: Shutdown has unsubscribed; requests still arriving from
	// the bus's buffer are left unanswered (the gateway times out and the
	// client resends, which de-duplication makes safe).
	draining bool  // guarded by mu
	stats    Stats // guarded by mu
}

// New returns a core for cfg; it serves nothing until Start.
func New(cfg Config) (*Core, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Core{cfg: cfg, log: cfg.Logger.With("component", "core")}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Start queue-subscribes to every shard's command subject.
func (c *Core) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.started:
		return errors.New("core: already started")
	}
	c.started = true
	c.startLanes()
	for i := range c.cfg.Shards {
		subj := c.cfg.Subjects.CoreCmd(i)
		sub, err := c.cfg.Bus.QueueSubscribe(subj, c.cfg.Queue, c.handle)
		if err != nil {
			c.unsubscribeLocked()
			return fmt.Errorf("core: subscribe %s: %w", subj, err)
		}
		c.subs = append(c.subs, sub)
	}
	if !c.cfg.DisablePurge {
		c.wg.Go(c.purgeLoop)
	}
	c.log.Info("core serving", "shards", c.cfg.Shards, "queue", c.cfg.Queue)
	return nil
}

func (c *Core) unsubscribeLocked() {
	for _, s := range c.subs {
		if err := s.Unsubscribe(); err != nil {
			c.log.Debug("core: unsubscribe", "subject", s.Subject(), "err", err)
		}
	}
	c.subs = nil
}

// Close stops serving: it unsubscribes, cancels the requests in progress
// and waits for their handlers to return. It is idempotent.
func (c *Core) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.unsubscribeLocked()
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.stopLanes()
	return nil
}

// Stats returns a snapshot of the counters.
func (c *Core) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// handle takes one request from the bus and queues it on its channel's
// worker lane (lanes.go), so that requests of different channels are
// served concurrently while those of one channel keep their order.
func (c *Core) handle(m *bus.Msg) {
	c.mu.Lock()
	if c.closed || c.draining {
		c.mu.Unlock()
		return
	}
	// Added under mu so that Close's Wait cannot start before it; the
	// lane calls Done once the request is answered.
	c.wg.Add(1)
	c.handlers.Add(1)
	c.mu.Unlock()
	j := job{msg: m}
	j.req, j.err = DecodeRequest(m.Data, &c.cfg.CodecLimits)
	c.lanes[laneOfJob(&j, len(c.lanes))] <- j
}

// serveJob serves one queued request and replies on its reply subject.
func (c *Core) serveJob(j *job) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
	defer cancel()
	var rep Reply
	if j.err != nil {
		rep = failure(j.err)
	} else {
		rep = c.serve(ctx, &j.req)
	}
	c.finishJob(j, rep)
}

// finishJob counts a served request and sends its reply; the request is
// then answered (wg).
func (c *Core) finishJob(j *job, rep Reply) {
	defer c.wg.Done()
	defer c.handlers.Done()
	m, req := j.msg, &j.req
	c.mu.Lock()
	c.stats.Requests++
	switch {
	case rep.Code != jsperr.NoError:
		c.stats.Failed++
		if rep.Code == jsperr.Internal {
			c.stats.StoreErrors++
		}
	case req.Op == OpPublish && len(rep.Results) > 0:
		for _, r := range rep.Results {
			switch {
			case r.Code != jsperr.NoError:
				c.stats.Failed++
				if r.Code == jsperr.Internal {
					c.stats.StoreErrors++
				}
			case r.Duplicate:
				c.stats.Duplicates++
			default:
				c.stats.Published++
			}
		}
	case req.Op == OpPublish && rep.Duplicate:
		c.stats.Duplicates++
	case req.Op == OpPublish:
		c.stats.Published++
	}
	c.mu.Unlock()
	if m.Reply == "" {
		return
	}
	// The reply goes in the request's encoding: a gateway that sends JSON
	// may be of a release that reads nothing else.
	codec := CodecJSON
	if IsBinary(m.Data) {
		codec = CodecBinary
	}
	data, err := codec.EncodeReply(&rep)
	if err != nil {
		c.log.Error("core: encode reply", "op", string(req.Op), "err", err)
		return
	}
	if err := c.cfg.Bus.Publish(m.Reply, bus.Msg{Data: data}); err != nil {
		c.log.Debug("core: reply not sent", "op", string(req.Op), "channel", req.Channel, "err", err)
	}
}

// failure turns an error into a reply, keeping the registry code.
func failure(err error) Reply {
	code := codeOf(err)
	reason := err.Error()
	var je *jsperr.Error
	switch {
	case errors.As(err, &je) && je.Reason != "":
		reason = je.Reason
	case errors.Is(err, storage.ErrInvalid):
		reason = afterSentinel(reason, storage.ErrInvalid)
	case errors.Is(err, storage.ErrTooLarge):
		reason = afterSentinel(reason, storage.ErrTooLarge)
	case errors.Is(err, storage.ErrConflict):
		reason = afterSentinel(reason, storage.ErrConflict)
	}
	if code == jsperr.Internal {
		// Storage internals (paths, SQL) stay in the core's log.
		reason = "internal error"
	}
	rep := Reply{Code: code, Reason: reason}
	if je != nil {
		rep.RetryAfterMS = retryAfterMS(je.RetryAfter)
	}
	return rep
}

// afterSentinel returns what a storage error says after its sentinel
// ("...: storage: conflict: client id ... was used for a different
// message" gives "client id ... was used for a different message"): the
// client learns what was wrong, not which backend or table said so.
func afterSentinel(msg string, sentinel error) string {
	prefix := sentinel.Error() + ": "
	if i := strings.LastIndex(msg, prefix); i >= 0 {
		return msg[i+len(prefix):]
	}
	return sentinel.Error()
}

func (c *Core) serve(ctx context.Context, req *Request) Reply {
	if req.Channel == "" {
		return Reply{Code: jsperr.BadRequest, Reason: "request without channel"}
	}
	if err := c.authorize(ctx, req); err != nil {
		return failure(err)
	}
	switch req.Op {
	case OpSubscribe, OpLive:
		return Reply{}
	case OpCommand:
		return c.command(ctx, req)
	case OpPublish:
		return c.publish(ctx, req)
	case OpHistory:
		return c.history(ctx, req)
	case OpRecover:
		return c.recover(ctx, req)
	}
	return Reply{Code: jsperr.BadRequest, Reason: fmt.Sprintf("unknown core op %q", req.Op)}
}

// publish commits the message, then publishes it: live delivery follows
// the commit (ARCHITECTURE §1), so a subscriber never sees a message that
// history would not return.
func (c *Core) publish(ctx context.Context, req *Request) Reply {
	if req.Message == nil && len(req.Messages) > 0 {
		return c.publishMany(ctx, req)
	}
	if req.Message == nil {
		return Reply{Code: jsperr.BadRequest, Reason: "publish without message"}
	}
	msg := *req.Message
	res, err := c.cfg.Store.AppendMessage(ctx, req.Channel, msg)
	if err != nil {
		rep := failure(err)
		if rep.Code == jsperr.Internal {
			c.log.Warn("core: append failed", "channel", req.Channel, "err", err)
		}
		return rep
	}
	rep := Reply{Seq: res.Seq, Time: res.Time, Duplicate: res.Duplicate}
	if res.Duplicate {
		return rep
	}
	msg.Channel, msg.Seq, msg.Time = req.Channel, res.Seq, res.Time
	if err := c.publishEvent(req.Channel, msg); err != nil {
		// The message is committed: the sender gets its Seq, and
		// subscribers that missed the event recover it from history.
		c.log.Warn("core: event not published", "channel", req.Channel, "seq", res.Seq, "err", err)
	}
	return rep
}

func (c *Core) publishEvent(channel string, msg storage.Message) error {
	subj, err := c.cfg.Subjects.Channel(channel)
	if err != nil {
		return err
	}
	data, err := c.cfg.Codec.EncodeEvent(&Event{Channel: channel, Message: msg})
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	return c.cfg.Bus.Publish(subj, bus.Msg{Data: data})
}

func (c *Core) limit(n int) int {
	if n <= 0 {
		return c.cfg.PageSize
	}
	return min(n, c.cfg.MaxPageSize)
}

func (c *Core) history(ctx context.Context, req *Request) Reply {
	limit := c.limit(req.Limit)
	var (
		msgs []storage.Message
		err  error
	)
	switch {
	case req.Before > 0 || req.Latest:
		msgs, err = c.cfg.Store.MessagesBefore(ctx, req.Channel, req.Before, limit)
	default:
		msgs, err = c.cfg.Store.MessagesAfter(ctx, req.Channel, req.After, limit)
	}
	if err != nil {
		return failure(fmt.Errorf("history of %q: %w", req.Channel, err))
	}
	return Reply{Messages: msgs, More: len(msgs) == limit}
}

// recover answers a resume (ARCHITECTURE §4): either the first page of the
// messages after req.After, or Recoverable false when some were trimmed.
func (c *Core) recover(ctx context.Context, req *Request) Reply {
	info, err := c.cfg.Store.ChannelInfo(ctx, req.Channel)
	if err != nil {
		return failure(fmt.Errorf("channel info of %q: %w", req.Channel, err))
	}
	rep := Reply{Info: &info, Recoverable: info.CanRecover(req.After)}
	if !rep.Recoverable {
		return rep
	}
	limit := c.limit(req.Limit)
	msgs, err := c.cfg.Store.MessagesAfter(ctx, req.Channel, req.After, limit)
	if err != nil {
		return failure(fmt.Errorf("recover %q after %d: %w", req.Channel, req.After, err))
	}
	rep.Messages, rep.More = msgs, len(msgs) == limit
	return rep
}
