package storage

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Limits that are not configurable: they bound index keys, not payloads.
const (
	// MaxNameLen caps, in bytes, every name and id the store indexes:
	// channel, sender, client id, session id, user, device, gateway,
	// actor, action, namespace and key.
	MaxNameLen = 256
	// MaxHeaders caps the number of headers of one message.
	MaxHeaders = 64
)

// Defaults for Config's zero values.
const (
	// DefaultDedupWindow is how long a message's client id is remembered.
	// A day covers a client that resends after a long reconnect; the
	// de-duplication table then holds about one row per message per day.
	DefaultDedupWindow = 24 * time.Hour
	// DefaultPageSize is the page size when a query's limit is zero.
	DefaultPageSize = 100
	// DefaultMaxPageSize caps any query's page size.
	DefaultMaxPageSize = 1000
	// DefaultMaxMessageBytes caps a message's body plus headers; it matches
	// the protocol's maximum message size (JSP §9).
	DefaultMaxMessageBytes = protocol.DefaultMaxMessageSize
	// DefaultMaxValueBytes caps a key/value entry's value.
	DefaultMaxValueBytes protocol.ByteCount = 1 << 20
	// DefaultMaxAuditDetailBytes caps an audit event's detail JSON.
	DefaultMaxAuditDetailBytes protocol.ByteCount = 64 << 10
	// DefaultMaxConns is the size of a backend's read pool (SQLite) or
	// connection pool (PostgreSQL).
	DefaultMaxConns = 4
	// DefaultBusyTimeout is how long SQLite waits for a lock held by
	// another process before failing.
	DefaultBusyTimeout = 5 * time.Second
	// MaxConnsLimit caps Config.MaxConns: more connections than this to
	// one database is a typo, not a pool size (PostgreSQL admits 100 by
	// default), and pgx counts its pool in an int32.
	MaxConnsLimit = 4096
)

// Config tunes a store. The zero value is valid: every zero field means the
// documented default.
type Config struct {
	// Now returns the current time; default time.Now. Tests inject a fake
	// clock to drive expiry.
	Now func() time.Time
	// Logger receives migration and maintenance logs; default
	// slog.Default().
	Logger *slog.Logger
	// DedupWindow is how long a message's (sender, client id) is
	// remembered for de-duplication; default DefaultDedupWindow.
	DedupWindow time.Duration
	// DefaultPageSize is the page size of a query with limit 0; default
	// DefaultPageSize.
	DefaultPageSize int
	// MaxPageSize caps every query's page; default DefaultMaxPageSize.
	MaxPageSize int
	// MaxMessageBytes caps a message's body plus its headers; default
	// DefaultMaxMessageBytes.
	MaxMessageBytes protocol.ByteCount
	// MaxValueBytes caps a key/value entry's value; default
	// DefaultMaxValueBytes.
	MaxValueBytes protocol.ByteCount
	// MaxAuditDetailBytes caps an audit event's detail; default
	// DefaultMaxAuditDetailBytes.
	MaxAuditDetailBytes protocol.ByteCount
	// MaxConns sizes the read pool (SQLite; writes always use one
	// connection) or the connection pool (PostgreSQL); default
	// DefaultMaxConns.
	MaxConns int
	// BusyTimeout is SQLite's lock wait; default DefaultBusyTimeout.
	BusyTimeout time.Duration
	// SQLite are the SQLite backend's own settings; zero fields take that
	// backend's defaults. Open refuses a non-zero value for a DSN of
	// another scheme, where it would do nothing.
	SQLite SQLiteConfig
}

// SQLiteConfig are the SQLite backend's WAL and claim-log settings
// (docs/decisions.md D41); server/storage/sqlite.Options documents each
// field and its default, and converts from this type. They live here so
// that a store opened by DSN through [Open] can be tuned too.
type SQLiteConfig struct {
	// ClaimMergeRows is how many rows the claim log holds before it is
	// merged into the de-duplication table.
	ClaimMergeRows int
	// CheckpointBytes is the WAL growth after which a PASSIVE checkpoint
	// runs off the commit path.
	CheckpointBytes int64
	// WALLimitBytes bounds the WAL; not below CheckpointBytes.
	WALLimitBytes int64
	// CheckpointIdle is how long without a commit makes the checkpointer
	// empty the WAL.
	CheckpointIdle time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DefaultPageSize == 0 {
		c.DefaultPageSize = DefaultPageSize
	}
	if c.MaxPageSize == 0 {
		c.MaxPageSize = DefaultMaxPageSize
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxAuditDetailBytes == 0 {
		c.MaxAuditDetailBytes = DefaultMaxAuditDetailBytes
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	return c
}

// Validate reports a negative or inconsistent setting. Call it on the
// result of WithDefaults.
func (c Config) Validate() error {
	switch {
	case c.DedupWindow < 0:
		return fmt.Errorf("%w: config: negative DedupWindow %v", ErrInvalid, c.DedupWindow)
	case c.DefaultPageSize < 0 || c.MaxPageSize < 0:
		return fmt.Errorf("%w: config: negative page size", ErrInvalid)
	case c.DefaultPageSize > c.MaxPageSize:
		return fmt.Errorf("%w: config: DefaultPageSize %d above MaxPageSize %d", ErrInvalid, c.DefaultPageSize, c.MaxPageSize)
	case c.MaxMessageBytes < 0 || c.MaxValueBytes < 0 || c.MaxAuditDetailBytes < 0:
		return fmt.Errorf("%w: config: negative size limit", ErrInvalid)
	case c.MaxConns < 0 || c.MaxConns > MaxConnsLimit:
		return fmt.Errorf("%w: config: MaxConns %d outside 1 to %d", ErrInvalid, c.MaxConns, MaxConnsLimit)
	case c.BusyTimeout < 0:
		return fmt.Errorf("%w: config: negative BusyTimeout %v", ErrInvalid, c.BusyTimeout)
	}
	return nil
}

// PageLimit turns a query's limit into the page size to use: zero or
// negative means DefaultPageSize, and values above MaxPageSize are clamped.
// c must have defaults applied.
func (c Config) PageLimit(limit int) int {
	switch {
	case limit <= 0:
		return c.DefaultPageSize
	case limit > c.MaxPageSize:
		return c.MaxPageSize
	}
	return limit
}
