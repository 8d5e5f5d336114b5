// Package storage defines the server's durable storage: one [Store]
// interface with two implementations, SQLite (server/storage/sqlite, the
// embedded default) and PostgreSQL (server/storage/postgres, for scale).
//
// A Store holds four kinds of data:
//
//   - sessions: connection metadata (who, device, gateway, transport, remote
//     address, since, last seen), upserted on connect, touched by heartbeats,
//     closed on disconnect and expired when a gateway stops touching them;
//   - the audit log: an append-only record of security-relevant events,
//     queried by time range and actor with cursor pagination;
//   - the message log: per-channel chat messages. Storage is the source of
//     truth for chat (ARCHITECTURE §1): [MessageLog.AppendMessage] assigns
//     the channel's next sequence number in the same transaction that stores
//     the message, so numbers are gapless and strictly increasing, and
//     history, pagination and recovery after reconnect all read by sequence
//     number. A message's client id is an idempotency key: a resend within
//     [Config.DedupWindow] returns the original sequence number instead of
//     storing a copy, and the de-duplication table lives in the database, so
//     it survives restarts and is bounded by the window;
//   - a key/value state cache with versions for compare-and-set and
//     expiry, the durable fallback behind the bus's shared cache.
//
// Backends register themselves under a DSN scheme ([Register]); [Open]
// picks one from the DSN: "sqlite:PATH", "sqlite::memory:" or
// "postgres://...". Import server/storage/all (or a single backend package)
// for its side effect to make the schemes available. Each backend applies
// its versioned, embedded schema migrations when it opens.
//
// Errors callers branch on are the sentinels in errors.go ([ErrNotFound],
// [ErrConflict], [ErrInvalid], [ErrTooLarge], [ErrClosed], ...); backends
// wrap them with context, so test with errors.Is.
package storage

import (
	"context"
	"encoding/json"
	"time"
)

// Seq is a message's sequence number within its channel. The first message
// of a channel gets 1; each commit gets the previous number plus one.
type Seq uint64

// AuditID identifies an audit event. IDs increase in insertion order.
type AuditID int64

// Store is the whole storage interface. Every method takes a context that
// bounds the call; all methods are safe for concurrent use. Times passed in
// and returned are stored with microsecond precision and returned in UTC.
type Store interface {
	SessionStore
	AuditLog
	MessageLog
	KVStore
	WebhookStore
	NotifyStore
	DeviceStore

	// Purge deletes rows whose time has passed: de-duplication entries
	// older than the window and expired key/value entries. Expired rows
	// are already ignored by reads; Purge reclaims their space. The server
	// calls it periodically.
	Purge(ctx context.Context) (PurgeStats, error)
	// SchemaVersion reports the highest applied migration.
	SchemaVersion(ctx context.Context) (int, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the store's connections. Calls after Close fail with
	// ErrClosed. Close is idempotent.
	Close() error
}

// PurgeStats counts the rows a Purge deleted.
type PurgeStats struct {
	// Dedup is the number of expired de-duplication entries removed.
	Dedup int64
	// KV is the number of expired key/value entries removed.
	KV int64
}

// Session is the metadata of one client connection.
type Session struct {
	// ID is the session id (the gateway's lower-case hex id). Required.
	ID string
	// UserID is the authenticated user. Required; it never changes for a
	// session id.
	UserID string
	// DeviceID is the client's device, empty when unknown.
	DeviceID string
	// Gateway names the gateway node holding the connection. Required.
	Gateway string
	// Transport is the transport kind ("quic", "tcp", "ws").
	Transport string
	// RemoteAddr is the client's network address.
	RemoteAddr string
	// Since is when the session was first stored; set by the store.
	Since time.Time
	// LastSeen is the last connect or touch; set by the store.
	LastSeen time.Time
	// ClosedAt is when the session closed or expired; zero while open.
	ClosedAt time.Time
}

// Open reports whether the session has not been closed.
func (s Session) Open() bool { return s.ClosedAt.IsZero() }

// SessionQuery selects sessions for ListSessions. Exactly one of UserID and
// Gateway must be set.
type SessionQuery struct {
	// UserID lists the sessions of one user.
	UserID string
	// Gateway lists the sessions held by one gateway.
	Gateway string
	// IncludeClosed also lists closed sessions not yet purged.
	IncludeClosed bool
	// After is a cursor: only sessions whose ID sorts after it are listed.
	// Pass the last ID of the previous page.
	After string
	// Limit caps the page; zero means Config.DefaultPageSize and values
	// above Config.MaxPageSize are clamped.
	Limit int
}

// SessionStore stores connection metadata.
type SessionStore interface {
	// UpsertSession records a connect or resume: it inserts the session or,
	// when the id exists, updates its device, gateway, transport and
	// remote address and reopens it. Since is kept from the first insert;
	// LastSeen becomes now. A session id that exists for another user fails
	// with ErrConflict. It returns the stored session.
	UpsertSession(ctx context.Context, s Session) (Session, error)
	// TouchSession sets an open session's LastSeen to now. It fails with
	// ErrNotFound when the session does not exist or is closed.
	TouchSession(ctx context.Context, id string) error
	// CloseSession marks a session closed now. Closing a closed session
	// keeps its first close time; an unknown id fails with ErrNotFound.
	CloseSession(ctx context.Context, id string) error
	// GetSession returns one session or ErrNotFound.
	GetSession(ctx context.Context, id string) (Session, error)
	// ListSessions returns sessions by user or by gateway, ordered by ID.
	ListSessions(ctx context.Context, q SessionQuery) ([]Session, error)
	// ExpireSessions closes every open session whose LastSeen is before
	// staleBefore (its gateway stopped touching it) and returns how many.
	ExpireSessions(ctx context.Context, staleBefore time.Time) (int64, error)
	// CloseGatewaySessions closes every open session of one gateway, as a
	// restarting gateway does for the sessions of its previous run.
	CloseGatewaySessions(ctx context.Context, gateway string) (int64, error)
	// PurgeSessions deletes sessions closed before closedBefore.
	PurgeSessions(ctx context.Context, closedBefore time.Time) (int64, error)
}

// AuditEvent is one entry of the audit log.
type AuditEvent struct {
	// ID is assigned by AppendAudit.
	ID AuditID
	// Time is when the event happened; zero means now.
	Time time.Time
	// Actor is who acted (a user, session or service name). Required.
	Actor string
	// Action names what happened ("auth.login", "auth.failed",
	// "acl.denied"). Required.
	Action string
	// Target is what the action applied to, empty when none.
	Target string
	// Detail is a JSON object with event-specific fields, or empty.
	// PostgreSQL stores it as jsonb, so key order and whitespace are not
	// preserved; compare decoded values.
	Detail json.RawMessage
	// RemoteAddr is the network address the action came from, if any.
	RemoteAddr string
}

// AuditCursor is a position in the audit log's (Time, ID) order. The zero
// cursor is the start (or, for a reverse query, the end).
type AuditCursor struct {
	Time time.Time
	ID   AuditID
}

// IsZero reports whether c is the zero cursor.
func (c AuditCursor) IsZero() bool { return c.Time.IsZero() && c.ID == 0 }

// AuditQuery selects audit events, ordered by (Time, ID).
type AuditQuery struct {
	// Since and Until bound Time to [Since, Until); zero means unbounded.
	Since, Until time.Time
	// Actor, when set, selects one actor's events.
	Actor string
	// Action, when set, selects one action.
	Action string
	// After continues a previous page: pass its Next cursor.
	After AuditCursor
	// Reverse lists newest first.
	Reverse bool
	// Limit caps the page; zero means Config.DefaultPageSize and values
	// above Config.MaxPageSize are clamped.
	Limit int
}

// AuditPage is one page of an audit query.
type AuditPage struct {
	// Events are the page's events in query order.
	Events []AuditEvent
	// Next continues the query; it is zero when no events remain.
	Next AuditCursor
}

// AuditLog is the append-only log of security-relevant events. Events are
// never updated; PurgeAudit is the retention cut an operator applies.
type AuditLog interface {
	// AppendAudit stores an event and returns its ID. Detail must be a JSON
	// object (ErrInvalid otherwise) of at most Config.MaxAuditDetailBytes
	// (ErrTooLarge).
	AppendAudit(ctx context.Context, e AuditEvent) (AuditID, error)
	// QueryAudit returns one page of events.
	QueryAudit(ctx context.Context, q AuditQuery) (AuditPage, error)
	// PurgeAudit deletes events older than before and returns how many.
	PurgeAudit(ctx context.Context, before time.Time) (int64, error)
}

// Message is one chat message of the message log.
type Message struct {
	// Channel is the channel's name; set by the store on reads.
	Channel string
	// Seq is the message's sequence number; assigned by AppendMessage.
	Seq Seq
	// ClientID is the sender's idempotency key; empty disables
	// de-duplication for this message.
	ClientID string
	// Sender is who sent the message. Required.
	Sender string
	// Body is the application payload.
	Body []byte
	// Headers are application metadata (content type, reply-to, ...).
	Headers map[string]string
	// Time is the commit time; assigned by AppendMessage.
	Time time.Time
}

// AppendResult is the outcome of an AppendMessage.
type AppendResult struct {
	// Seq is the message's sequence number; for a duplicate, the original
	// message's number.
	Seq Seq
	// Time is the commit time of the (original) message.
	Time time.Time
	// Duplicate reports that the client id was already committed within
	// the de-duplication window, so nothing new was stored.
	Duplicate bool
}

// ChannelInfo describes the retained part of a channel's log.
type ChannelInfo struct {
	// Name is the channel's name.
	Name string
	// Oldest is the lowest sequence number still stored, or Last+1 when
	// nothing is stored (never-used channels report Oldest 1, Last 0).
	Oldest Seq
	// Last is the highest sequence number ever assigned.
	Last Seq
}

// CanRecover reports whether a client that has seen every message up to
// and including after can get all later messages from the log. When it
// cannot, messages were trimmed and the client must refetch history
// (ARCHITECTURE §4: the server says recovery is impossible).
func (c ChannelInfo) CanRecover(after Seq) bool { return after+1 >= c.Oldest }

// Count returns the number of retained messages.
func (c ChannelInfo) Count() uint64 { return uint64(c.Last + 1 - c.Oldest) }

// MessageLog is the per-channel message log.
type MessageLog interface {
	// AppendMessage commits m to channel and assigns it the channel's next
	// sequence number. The call returns only after a durable commit.
	// Concurrent appenders to one channel get gapless, strictly increasing
	// numbers. When m.ClientID is set and the same sender committed the
	// same client id within Config.DedupWindow, nothing is stored and the
	// original number is returned with Duplicate set; if that earlier
	// message went to another channel or had another body or headers, the
	// call fails with ErrConflict (a reused idempotency key). An error
	// other than a validation error does not prove that nothing was
	// stored (the commit may have succeeded as the context ended or the
	// connection broke): resending with the same ClientID tells.
	AppendMessage(ctx context.Context, channel string, m Message) (AppendResult, error)
	// MessagesAfter returns up to limit messages with Seq > after in
	// ascending order: the recovery and forward-pagination read.
	MessagesAfter(ctx context.Context, channel string, after Seq, limit int) ([]Message, error)
	// MessagesBefore returns the up to limit newest messages with Seq <
	// before, in ascending order: the history read. before == 0 reads
	// from the end of the log.
	MessagesBefore(ctx context.Context, channel string, before Seq, limit int) ([]Message, error)
	// ChannelInfo reports the retained range of a channel.
	ChannelInfo(ctx context.Context, channel string) (ChannelInfo, error)
	// Channels lists channels with a log, ordered by name, after the given
	// name (a cursor), up to limit.
	Channels(ctx context.Context, after string, limit int) ([]ChannelInfo, error)
	// TrimMessages keeps only the newest keep messages of a channel and
	// returns how many it deleted. Sequence numbers are never reused.
	TrimMessages(ctx context.Context, channel string, keep int) (int64, error)
	// TrimMessagesBefore deletes the channel's oldest messages committed
	// before the given time and returns how many. It deletes a prefix of
	// the log (it stops at the first message committed at or after
	// before), so the retained log stays contiguous.
	TrimMessagesBefore(ctx context.Context, channel string, before time.Time) (int64, error)
}

// KVEntry is one entry of the key/value state cache.
type KVEntry struct {
	// Namespace groups keys (one per service or cache).
	Namespace string
	// Key names the entry within the namespace.
	Key string
	// Value is the stored value.
	Value []byte
	// Version identifies this revision of the entry. Versions come from
	// one store-wide counter, so a key that is deleted and created again
	// never repeats an earlier version (no ABA for compare-and-set).
	Version uint64
	// ExpiresAt is when the entry disappears; zero means never.
	ExpiresAt time.Time
	// Updated is when this version was written.
	Updated time.Time
}

// KVStore is the durable key/value state cache. Expired entries behave as
// absent.
type KVStore interface {
	// KVGet returns an entry or ErrNotFound.
	KVGet(ctx context.Context, namespace, key string) (KVEntry, error)
	// KVPut writes an entry unconditionally and returns its new version.
	// A ttl <= 0 means the entry does not expire.
	KVPut(ctx context.Context, namespace, key string, value []byte, ttl time.Duration) (uint64, error)
	// KVCompareAndSet writes an entry only if its current version is
	// expect; expect 0 means the key must be absent (create). A mismatch
	// fails with ErrConflict.
	KVCompareAndSet(ctx context.Context, namespace, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error)
	// KVDelete removes an entry; a missing entry is not an error.
	KVDelete(ctx context.Context, namespace, key string) error
	// KVCompareAndDelete removes an entry only if its current version is
	// expect; otherwise it fails with ErrConflict.
	KVCompareAndDelete(ctx context.Context, namespace, key string, expect uint64) error
	// KVList returns a namespace's live entries ordered by key, after the
	// given key (a cursor), up to limit.
	KVList(ctx context.Context, namespace, after string, limit int) ([]KVEntry, error)
}
