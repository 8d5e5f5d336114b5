package bus

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors callers branch on. Implementations wrap them with
// context, so test with errors.Is.
var (
	// ErrClosed: the bus, subscription, consumer or watcher is closed.
	ErrClosed = errors.New("bus: closed")
	// ErrNoResponders: a request found no subscriber on its subject.
	ErrNoResponders = errors.New("bus: no responders")
	// ErrInvalidSubject: a subject or subject pattern is malformed.
	ErrInvalidSubject = errors.New("bus: invalid subject")
	// ErrInvalidName: a name cannot become a subject token, stream, bucket
	// or key.
	ErrInvalidName = errors.New("bus: invalid name")
	// ErrKeyNotFound: the KV key does not exist, was deleted or expired.
	ErrKeyNotFound = errors.New("bus: key not found")
	// ErrKeyExists: KV Create found the key already present.
	ErrKeyExists = errors.New("bus: key exists")
	// ErrRevisionMismatch: a KV Update or Delete named a revision that is
	// not the key's latest.
	ErrRevisionMismatch = errors.New("bus: revision mismatch")
	// ErrQueueFull: a work queue or event log reached its size limit and
	// refuses new messages.
	ErrQueueFull = errors.New("bus: queue full")
	// ErrPermission: the bus refused an operation for lack of permission.
	ErrPermission = errors.New("bus: permission denied")
)

// Header holds message headers; keys are case-sensitive.
type Header map[string][]string

// Get returns the first value of key, or "".
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key with value.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// HeaderMsgID names the header whose value de-duplicates
// [WorkQueue.Enqueue] and [EventLog.Append] within the stream's duplicate
// window: a retried enqueue with the same id is stored once.
const HeaderMsgID = "Jsp-Msg-Id"

// Msg is one message on the bus.
type Msg struct {
	// Subject is where the message was published; set on received
	// messages, ignored by Publish (which takes the subject separately).
	Subject string
	// Reply is the subject a responder publishes its answer to; set on
	// received requests, empty otherwise.
	Reply string
	// Header holds optional headers.
	Header Header
	// Data is the payload. A received Msg is shared by every local
	// receiver of one delivery and must be treated as read-only.
	Data []byte
}

// Handler receives messages of a subscription. Calls for one subscription
// are sequential and in arrival order; a handler that blocks delays its own
// subscription only, and past the implementation's pending limit the bus
// drops that subscription's messages (NATS "slow consumer"), so handlers
// hand slow work to a queue.
type Handler func(m *Msg)

// Subscription is an active subscription.
type Subscription interface {
	// Subject returns the subject or pattern subscribed to.
	Subject() string
	// Unsubscribe stops delivery. Messages already handed to the handler
	// finish; it is safe to call more than once.
	Unsubscribe() error
}

// Bus is what gateways and cores use to talk to each other. All methods are
// safe for concurrent use.
//
// Subjects are dot-separated tokens; patterns may use "*" for one token and
// a final ">" for one or more. Build them with [Subjects], never by hand.
type Bus interface {
	// Publish sends m.Data and m.Header to every subscriber of subject
	// (and to one member of each queue group). It does not wait for
	// delivery: core messages are at most once.
	Publish(subject string, m Msg) error
	// Subscribe calls h for every message on subject (a pattern allowed).
	Subscribe(subject string, h Handler) (Subscription, error)
	// QueueSubscribe is Subscribe where each message goes to one member of
	// the named queue group only; this is how cores share work.
	QueueSubscribe(subject, queue string, h Handler) (Subscription, error)
	// Request publishes m to subject with a private reply subject and waits
	// for the first reply or ctx's end. A responder answers with
	// Publish(req.Reply, answer). Without any subscriber it fails with
	// ErrNoResponders.
	Request(ctx context.Context, subject string, m Msg) (*Msg, error)
	// WorkQueue creates the work queue described by cfg, or updates it to
	// cfg, and returns a handle to it.
	WorkQueue(ctx context.Context, cfg WorkQueueConfig) (WorkQueue, error)
	// EventLog creates or updates the event log described by cfg.
	EventLog(ctx context.Context, cfg EventLogConfig) (EventLog, error)
	// KV creates or updates the KV bucket described by cfg.
	KV(ctx context.Context, cfg KVConfig) (KV, error)
	// Close stops every consumer and watcher of this bus, lets
	// subscriptions finish the messages they hold, and releases the
	// connection. Further calls fail with ErrClosed.
	Close() error
}

// Limits on names, shared by every implementation so that code tested on
// membus behaves the same on NATS.
const (
	// MaxTokenLen caps an encoded subject token in bytes.
	MaxTokenLen = 768
	// MaxSubjectLen caps a subject in bytes; NATS refuses lines longer
	// than its 4 KiB control line, which also carries reply and sizes.
	MaxSubjectLen = 2048
)

// ---------------------------------------------------------------------------
// Work queues

// Default work queue settings; each is what a zero WorkQueueConfig field
// means.
const (
	// DefaultMaxDeliver caps deliveries of one job, the first included.
	DefaultMaxDeliver = 5
	// DefaultAckWait is how long a consumer may hold a job without
	// finishing or extending it before it is redelivered.
	DefaultAckWait = 30 * time.Second
	// DefaultConsumer names the durable consumer all workers share.
	DefaultConsumer = "workers"
	// DefaultWorkMaxAge drops jobs nobody processed within it.
	DefaultWorkMaxAge = 7 * 24 * time.Hour
	// DefaultDuplicateWindow is how long HeaderMsgID de-duplicates.
	DefaultDuplicateWindow = 2 * time.Minute
	// DefaultMaxPending caps jobs handed out and not yet finished, over all
	// workers of the queue.
	DefaultMaxPending = 1000
)

// DefaultBackoff is the delay before each redelivery after a failure: the
// n-th failed delivery waits DefaultBackoff[min(n, len)-1].
var DefaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}

// WorkQueueConfig describes a durable work queue. Build it with
// [Subjects.WorkQueue], which fills Stream and Subject; the zero value of
// every other field is its documented default.
type WorkQueueConfig struct {
	// Stream is the durable stream, JSP_WORK_<NAME>.
	Stream string
	// Subject receives the jobs, jsp.<cluster>.work.<name>.
	Subject string
	// Consumer names the durable consumer every worker shares.
	// Default: DefaultConsumer.
	Consumer string
	// MaxDeliver caps deliveries of one job; when the last one fails the
	// job is dropped and passed to ConsumeConfig.OnDeadLetter.
	// Default: DefaultMaxDeliver.
	MaxDeliver int
	// AckWait is how long a worker may hold a job before it is redelivered.
	// Default: DefaultAckWait.
	AckWait time.Duration
	// Backoff is the delay before each redelivery after a failure; the
	// last entry repeats. Default: DefaultBackoff.
	Backoff []time.Duration
	// MaxPending caps jobs delivered and unfinished, over all workers.
	// Default: DefaultMaxPending.
	MaxPending int
	// MaxAge drops jobs older than it. Default: DefaultWorkMaxAge.
	MaxAge time.Duration
	// MaxMsgs caps stored jobs; beyond it Enqueue fails with ErrQueueFull.
	// Default: unlimited (0).
	MaxMsgs int64
	// MaxBytes caps stored bytes; beyond it Enqueue fails with
	// ErrQueueFull. Default: unlimited (0).
	MaxBytes int64
	// DuplicateWindow is how long HeaderMsgID de-duplicates.
	// Default: DefaultDuplicateWindow.
	DuplicateWindow time.Duration
	// Replicas is the number of copies in a clustered JetStream.
	// Default: 1.
	Replicas int
	// Memory keeps the queue in memory instead of on disk. Default: disk.
	Memory bool
}

// SetDefaults fills zero fields with their defaults.
func (c *WorkQueueConfig) SetDefaults() {
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultWorkMaxAge
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
}

// Validate reports a config that cannot work.
func (c *WorkQueueConfig) Validate() error {
	switch {
	case !validStreamName(c.Stream):
		return fmt.Errorf("work queue stream %q: %w", c.Stream, ErrInvalidName)
	case ValidateSubject(c.Subject) != nil || !isLiteral(c.Subject):
		return fmt.Errorf("work queue %s subject %q: %w", c.Stream, c.Subject, ErrInvalidSubject)
	case c.Consumer != "" && !validStreamName(c.Consumer):
		return fmt.Errorf("work queue %s consumer %q: %w", c.Stream, c.Consumer, ErrInvalidName)
	case c.MaxDeliver < 0, c.AckWait < 0, c.MaxPending < 0, c.MaxAge < 0, c.MaxMsgs < 0,
		c.MaxBytes < 0, c.DuplicateWindow < 0, c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("work queue %s: negative limit or replicas outside 1..5", c.Stream)
	}
	for _, d := range c.Backoff {
		if d < 0 {
			return fmt.Errorf("work queue %s: negative backoff %v", c.Stream, d)
		}
	}
	return nil
}

// BackoffFor returns the delay before redelivering a job whose delivery
// number delivery (1-based) failed.
func (c *WorkQueueConfig) BackoffFor(delivery int) time.Duration {
	if len(c.Backoff) == 0 {
		return 0
	}
	i := min(max(delivery, 1), len(c.Backoff)) - 1
	return c.Backoff[i]
}

// Job is one delivery of a work queue message.
type Job interface {
	// Msg is the enqueued message.
	Msg() *Msg
	// Seq is the job's sequence number in its stream.
	Seq() uint64
	// Delivery counts deliveries of this job, 1 for the first.
	Delivery() int
	// InProgress tells the bus the worker is still busy, resetting the
	// AckWait timer.
	InProgress() error
}

// JobHandler processes one job. Returning nil acknowledges (removes) it; an
// error schedules a redelivery after the queue's backoff, unless the error
// wraps ErrTerminal or this was the last allowed delivery, in which case
// the job is dropped and passed to ConsumeConfig.OnDeadLetter. ctx ends
// when the consumer stops.
type JobHandler func(ctx context.Context, j Job) error

// ErrTerminal, wrapped into a JobHandler's error, drops the job at once
// instead of retrying it: use it for jobs that can never succeed.
var ErrTerminal = errors.New("bus: terminal job failure")

// Terminal marks err as a failure that retrying cannot fix.
func Terminal(err error) error { return fmt.Errorf("%w: %w", ErrTerminal, err) }

// ConsumeConfig configures one Consume call. The zero value is valid.
type ConsumeConfig struct {
	// Concurrency is how many jobs this call processes at once.
	// Default: 1.
	Concurrency int
	// OnDeadLetter, when set, receives every job that is dropped after a
	// terminal failure or its last delivery, with the handler's error. It
	// runs on the worker goroutine before the job is dropped.
	OnDeadLetter func(j Job, err error)
}

// WorkQueue is a durable queue: each job goes to one worker and is
// redelivered until a worker succeeds or MaxDeliver is reached.
type WorkQueue interface {
	// Config returns the queue's configuration with defaults filled in.
	Config() WorkQueueConfig
	// Enqueue stores m durably and returns its sequence number. A message
	// with a HeaderMsgID seen within the duplicate window is stored once
	// and returns the first copy's sequence number.
	Enqueue(ctx context.Context, m Msg) (uint64, error)
	// Consume starts workers calling h for jobs until Stop or the bus
	// closes; ctx bounds only the setup. Several Consume calls, in this or
	// other processes, share the jobs.
	Consume(ctx context.Context, h JobHandler, cfg ConsumeConfig) (Consumer, error)
}

// Consumer is a running set of workers.
type Consumer interface {
	// Stop ends the workers: handlers running now finish (their ctx is
	// cancelled), and Stop returns when they have. Jobs they did not
	// finish are redelivered later. Safe to call more than once.
	Stop()
}

// ---------------------------------------------------------------------------
// Event log

// Default event log settings.
const (
	// DefaultEventMaxAge drops events older than it.
	DefaultEventMaxAge = 30 * 24 * time.Hour
)

// EventLogConfig describes the event log stream. Build it with
// [Subjects.EventLog]; zero fields mean their documented default.
type EventLogConfig struct {
	// Stream is the stream name, JSP_EVENTS.
	Stream string
	// SubjectPrefix is the prefix of the event subjects,
	// jsp.<cluster>.events; an event of kind k goes to prefix.Token(k).
	SubjectPrefix string
	// MaxAge drops older events. Default: DefaultEventMaxAge.
	MaxAge time.Duration
	// MaxMsgs caps stored events; the oldest are dropped beyond it.
	// Default: unlimited (0).
	MaxMsgs int64
	// MaxBytes caps stored bytes; the oldest are dropped beyond it.
	// Default: unlimited (0).
	MaxBytes int64
	// DuplicateWindow is how long HeaderMsgID de-duplicates.
	// Default: DefaultDuplicateWindow.
	DuplicateWindow time.Duration
	// Replicas is the number of copies in a clustered JetStream.
	// Default: 1.
	Replicas int
	// Memory keeps the log in memory instead of on disk. Default: disk.
	Memory bool
}

// SetDefaults fills zero fields with their defaults.
func (c *EventLogConfig) SetDefaults() {
	if c.MaxAge == 0 {
		c.MaxAge = DefaultEventMaxAge
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
}

// Validate reports a config that cannot work.
func (c *EventLogConfig) Validate() error {
	switch {
	case !validStreamName(c.Stream):
		return fmt.Errorf("event log stream %q: %w", c.Stream, ErrInvalidName)
	case ValidateSubject(c.SubjectPrefix) != nil || !isLiteral(c.SubjectPrefix):
		return fmt.Errorf("event log %s prefix %q: %w", c.Stream, c.SubjectPrefix, ErrInvalidSubject)
	case c.MaxAge < 0, c.MaxMsgs < 0, c.MaxBytes < 0, c.DuplicateWindow < 0, c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("event log %s: negative limit or replicas outside 1..5", c.Stream)
	}
	return nil
}

// Event is one entry of the event log.
type Event struct {
	// Seq is the event's position in the log, from 1, without gaps except
	// where old events were dropped.
	Seq uint64
	// Kind is the kind the event was appended with.
	Kind string
	// Time is when the log stored the event.
	Time time.Time
	// Msg carries the payload and headers; Subject is the event subject.
	Msg *Msg
}

// ReplayOptions selects what [EventLog.Replay] delivers.
type ReplayOptions struct {
	// From is the first sequence number to deliver; 0 and 1 both mean the
	// oldest event kept.
	From uint64
	// Kinds, when not empty, restricts the replay to these kinds.
	Kinds []string
	// Follow keeps delivering new events after the ones stored when Replay
	// started, until ctx ends. Without it Replay returns nil once it has
	// delivered everything stored when it started.
	Follow bool
}

// EventLog is an append-only, ordered, replayable log.
type EventLog interface {
	// Config returns the log's configuration with defaults filled in.
	Config() EventLogConfig
	// Append stores m as an event of kind and returns its sequence number.
	Append(ctx context.Context, kind string, m Msg) (uint64, error)
	// Replay calls h for the events selected by opt, in sequence order, on
	// the caller's goroutine. It stops at the first error h returns and
	// returns it.
	Replay(ctx context.Context, opt ReplayOptions, h func(Event) error) error
	// LastSeq returns the sequence number of the newest event, 0 if none.
	LastSeq(ctx context.Context) (uint64, error)
}

// ---------------------------------------------------------------------------
// KV

// KVConfig describes a KV bucket. Zero fields mean their documented
// default.
type KVConfig struct {
	// Bucket is the bucket name: letters, digits, '-' and '_'.
	Bucket string
	// TTL removes entries not written within it; 0 keeps them forever.
	TTL time.Duration
	// KeyTTL allows per-key TTLs on Create (see WithTTL). Default: off.
	KeyTTL bool
	// History is how many revisions each key keeps, 1..64. Default: 1.
	History int
	// MaxValueSize caps one value in bytes. Default: unlimited (0).
	MaxValueSize int32
	// MaxBytes caps the bucket in bytes. Default: unlimited (0).
	MaxBytes int64
	// Replicas is the number of copies in a clustered JetStream.
	// Default: 1.
	Replicas int
	// Memory keeps the bucket in memory instead of on disk. Default: disk.
	Memory bool
}

// SetDefaults fills zero fields with their defaults.
func (c *KVConfig) SetDefaults() {
	if c.History == 0 {
		c.History = 1
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
}

// Validate reports a config that cannot work.
func (c *KVConfig) Validate() error {
	switch {
	case !validBucketName(c.Bucket):
		return fmt.Errorf("kv bucket %q: %w", c.Bucket, ErrInvalidName)
	case c.TTL < 0, c.MaxValueSize < 0, c.MaxBytes < 0:
		return fmt.Errorf("kv bucket %s: negative limit", c.Bucket)
	case c.History < 0 || c.History > 64:
		return fmt.Errorf("kv bucket %s: history %d outside 1..64", c.Bucket, c.History)
	case c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("kv bucket %s: replicas %d outside 1..5", c.Bucket, c.Replicas)
	}
	return nil
}

// KVOp says what a KV entry records.
type KVOp uint8

// KV operations.
const (
	KVPut    KVOp = iota // the key was set
	KVDelete             // the key was deleted (or expired)
)

// String names the operation.
func (op KVOp) String() string {
	switch op {
	case KVPut:
		return "put"
	case KVDelete:
		return "delete"
	}
	return fmt.Sprintf("KVOp(%d)", uint8(op))
}

// KVEntry is one revision of a key.
type KVEntry struct {
	Key      string
	Value    []byte // nil for KVDelete
	Revision uint64 // bucket-wide, increasing
	Created  time.Time
	Op       KVOp
}

// KVOption is a per-call extra of [KV.Create] and [KV.Put].
type KVOption func(*KVOptions)

// KVOptions is what KVOption functions set; implementations read it.
type KVOptions struct {
	// TTL is the per-key time to live (0: the bucket's TTL).
	TTL time.Duration
}

// WithTTL gives one key its own time to live; the bucket needs
// KVConfig.KeyTTL. NATS needs at least one second. On Put, every write
// sets the key's TTL anew: a writer that keeps putting a key keeps it
// alive, and the key expires TTL after the last write.
func WithTTL(d time.Duration) KVOption { return func(o *KVOptions) { o.TTL = d } }

// ApplyKVOptions folds opts into a KVOptions.
func ApplyKVOptions(opts []KVOption) KVOptions {
	var o KVOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// KV is a bucket of keys with revisions, compare-and-set and watches. Keys
// are dot-separated tokens of letters, digits and "-_=/" (build them with
// [KeyOf]); watch patterns may use "*" and a final ">".
type KV interface {
	// Config returns the bucket's configuration with defaults filled in.
	Config() KVConfig
	// Get returns the latest value of key, or ErrKeyNotFound.
	Get(ctx context.Context, key string) (KVEntry, error)
	// Put sets key and returns the new revision. WithTTL gives this
	// revision its own time to live.
	Put(ctx context.Context, key string, value []byte, opts ...KVOption) (uint64, error)
	// Create sets key only if it does not exist (or was deleted), else
	// ErrKeyExists.
	Create(ctx context.Context, key string, value []byte, opts ...KVOption) (uint64, error)
	// Update sets key only if its latest revision is rev, else
	// ErrRevisionMismatch.
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// Delete deletes key. With rev > 0 it deletes only if the key's latest
	// revision is rev, else ErrRevisionMismatch.
	Delete(ctx context.Context, key string, rev uint64) error
	// Watch calls h with the latest entry of every key matching pattern,
	// returns once those initial entries are delivered, and then calls h
	// for every change, in revision order, on a goroutine the watcher
	// owns, until Stop.
	Watch(ctx context.Context, pattern string, h func(KVEntry)) (Watcher, error)
}

// Watcher is a running KV watch.
type Watcher interface {
	// Stop ends the watch and waits for a running h to return. Safe to
	// call more than once, but not from inside h.
	Stop()
}
