// Package sqlcommon holds what the SQL backends of server/storage share so
// that they behave alike: argument checks, time normalisation, header
// encoding, the idempotency digest and the migration plan.
package sqlcommon

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/server/storage"
)

// Time returns t as both backends store it: UTC with microsecond precision
// (PostgreSQL's timestamptz resolution), so a value round-trips exactly on
// either backend.
func Time(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Micros returns t as Unix microseconds; zero time maps to 0.
func Micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return Time(t).UnixMicro()
}

// FromMicros is the inverse of Micros.
func FromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// Name checks a required name or id: non-empty, valid UTF-8, at most
// storage.MaxNameLen bytes.
func Name(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", storage.ErrInvalid, what)
	}
	return OptionalName(what, s)
}

// OptionalName checks a name that may be empty.
func OptionalName(what, s string) error {
	if len(s) > storage.MaxNameLen {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", storage.ErrInvalid, what, len(s), storage.MaxNameLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", storage.ErrInvalid, what)
	}
	// NUL is rejected because PostgreSQL text cannot hold it; the backends
	// must accept the same inputs.
	if bytes.IndexByte([]byte(s), 0) >= 0 {
		return fmt.Errorf("%w: %s contains NUL", storage.ErrInvalid, what)
	}
	return nil
}

// Session checks a session for UpsertSession.
func Session(s storage.Session) error {
	for _, f := range []struct{ what, v string }{{"session id", s.ID}, {"user id", s.UserID}, {"gateway", s.Gateway}} {
		if err := Name(f.what, f.v); err != nil {
			return err
		}
	}
	for _, f := range []struct{ what, v string }{{"device id", s.DeviceID}, {"transport", s.Transport}, {"remote address", s.RemoteAddr}} {
		if err := OptionalName(f.what, f.v); err != nil {
			return err
		}
	}
	return nil
}

// SessionQuery checks a ListSessions query.
func SessionQuery(q storage.SessionQuery) error {
	if (q.UserID == "") == (q.Gateway == "") {
		return fmt.Errorf("%w: session query needs exactly one of UserID and Gateway", storage.ErrInvalid)
	}
	if err := OptionalName("user id", q.UserID); err != nil {
		return err
	}
	if err := OptionalName("gateway", q.Gateway); err != nil {
		return err
	}
	return OptionalName("cursor", q.After)
}

// Audit checks an audit event and returns its detail as the bytes to store,
// nil when empty.
func Audit(cfg storage.Config, e storage.AuditEvent) ([]byte, error) {
	if err := Name("actor", e.Actor); err != nil {
		return nil, err
	}
	if err := Name("action", e.Action); err != nil {
		return nil, err
	}
	if err := OptionalName("target", e.Target); err != nil {
		return nil, err
	}
	if err := OptionalName("remote address", e.RemoteAddr); err != nil {
		return nil, err
	}
	d := bytes.TrimSpace(e.Detail)
	if len(d) == 0 {
		return nil, nil
	}
	if protocol.ByteCount(len(d)) > cfg.MaxAuditDetailBytes {
		return nil, fmt.Errorf("%w: audit detail is %d bytes, limit %d", storage.ErrTooLarge, len(d), cfg.MaxAuditDetailBytes)
	}
	// An object, not any JSON value, so that operators can query fields
	// of every event's detail the same way.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(d, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: audit detail is not a JSON object", storage.ErrInvalid)
	}
	// PostgreSQL's jsonb rejects \u0000 in strings; refuse it on both
	// backends so they accept the same events.
	if bytes.Contains(d, []byte(`\u0000`)) {
		return nil, fmt.Errorf("%w: audit detail contains \\u0000", storage.ErrInvalid)
	}
	return d, nil
}

// AuditQuery checks a QueryAudit query.
func AuditQuery(q storage.AuditQuery) error {
	if err := OptionalName("actor", q.Actor); err != nil {
		return err
	}
	if err := OptionalName("action", q.Action); err != nil {
		return err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return fmt.Errorf("%w: audit query Until %v before Since %v", storage.ErrInvalid, q.Until, q.Since)
	}
	return nil
}

// Message checks a message for AppendMessage and returns its encoded
// headers (nil when none) and its idempotency digest.
func Message(cfg storage.Config, channel string, m storage.Message) (headers, digest []byte, err error) {
	if err := Name("channel", channel); err != nil {
		return nil, nil, err
	}
	if err := Name("sender", m.Sender); err != nil {
		return nil, nil, err
	}
	if err := OptionalName("client id", m.ClientID); err != nil {
		return nil, nil, err
	}
	if len(m.Headers) > storage.MaxHeaders {
		return nil, nil, fmt.Errorf("%w: %d headers, limit %d", storage.ErrInvalid, len(m.Headers), storage.MaxHeaders)
	}
	for k, v := range m.Headers {
		if err := Name("header name", k); err != nil {
			return nil, nil, err
		}
		if !utf8.ValidString(v) || bytes.IndexByte([]byte(v), 0) >= 0 {
			return nil, nil, fmt.Errorf("%w: header %q value is not NUL-free UTF-8", storage.ErrInvalid, k)
		}
	}
	headers, err = EncodeHeaders(m.Headers)
	if err != nil {
		return nil, nil, err
	}
	if size := protocol.ByteCount(len(m.Body) + len(headers)); size > cfg.MaxMessageBytes {
		return nil, nil, fmt.Errorf("%w: message is %d bytes, limit %d", storage.ErrTooLarge, size, cfg.MaxMessageBytes)
	}
	return headers, Digest(m.Body, headers), nil
}

// EncodeHeaders encodes headers as a JSON object; encoding/json sorts map
// keys, so equal maps encode to equal bytes. Empty headers encode to nil.
func EncodeHeaders(h map[string]string) ([]byte, error) {
	if len(h) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode headers: %w", err)
	}
	return b, nil
}

// DecodeHeaders is the inverse of EncodeHeaders.
func DecodeHeaders(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var h map[string]string
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("decode stored headers: %w", err)
	}
	if len(h) == 0 {
		return nil, nil
	}
	return h, nil
}

// Digest identifies a message's content for idempotency checks: a resend
// under the same client id must carry the same body and headers. Each part
// is length-prefixed so that moving bytes between body and headers changes
// the digest.
func Digest(body, headers []byte) []byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(body)))
	h.Write(n[:])
	h.Write(body)
	binary.BigEndian.PutUint64(n[:], uint64(len(headers)))
	h.Write(n[:])
	h.Write(headers)
	return h.Sum(nil)
}

// KV checks a key/value write.
func KV(cfg storage.Config, namespace, key string, value []byte) error {
	if err := Name("namespace", namespace); err != nil {
		return err
	}
	if err := Name("key", key); err != nil {
		return err
	}
	if protocol.ByteCount(len(value)) > cfg.MaxValueBytes {
		return fmt.Errorf("%w: value is %d bytes, limit %d", storage.ErrTooLarge, len(value), cfg.MaxValueBytes)
	}
	return nil
}

// KVKey checks a key/value lookup.
func KVKey(namespace, key string) error {
	if err := Name("namespace", namespace); err != nil {
		return err
	}
	return Name("key", key)
}

// Expiry returns the expiry time for a ttl written at now: zero (never)
// when ttl <= 0.
func Expiry(now time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return Time(now.Add(ttl))
}

// Keep checks TrimMessages' keep argument.
func Keep(keep int) error {
	if keep < 0 {
		return fmt.Errorf("%w: negative keep %d", storage.ErrInvalid, keep)
	}
	return nil
}
