package storage

import "errors"

// Sentinel errors. Backends wrap them with context ("storage/sqlite: append
// to channel \"x\": storage: invalid argument: ..."), so test with
// errors.Is.
var (
	// ErrNotFound: the session, key or other row does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict: a condition on current state failed: a compare-and-set
	// version mismatch, a session id owned by another user, or a reused
	// idempotency key with different content.
	ErrConflict = errors.New("storage: conflict")
	// ErrInvalid: an argument is malformed (empty required name, name too
	// long, detail not a JSON object).
	ErrInvalid = errors.New("storage: invalid argument")
	// ErrTooLarge: a body, value or detail exceeds its configured limit.
	ErrTooLarge = errors.New("storage: too large")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("storage: closed")
	// ErrUnknownBackend: no backend is registered for the DSN's scheme.
	ErrUnknownBackend = errors.New("storage: unknown backend")
	// ErrSchemaTooNew: the database was migrated by a newer build than
	// this one; running would risk misreading it.
	ErrSchemaTooNew = errors.New("storage: database schema is newer than this build")
	// ErrSchemaMismatch: an applied migration differs from the one this
	// build embeds (edited after release, or another application's table).
	ErrSchemaMismatch = errors.New("storage: applied migration differs from the embedded one")
)
