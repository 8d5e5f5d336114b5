package storage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// OpenFunc opens a store for a DSN of the scheme it was registered under.
// It receives the whole DSN and a config with defaults applied and
// validated.
type OpenFunc func(ctx context.Context, dsn string, cfg Config) (Store, error)

var (
	registryMu sync.Mutex
	registry   = map[string]OpenFunc{} // guarded by registryMu
)

// Register makes a backend available to Open under a DSN scheme (the part
// before the first ':', such as "sqlite" or "postgres"). Backends call it
// from init. Registering a scheme twice panics, as a duplicate import of
// two backends claiming one scheme is a build error in all but name.
func Register(scheme string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if scheme == "" || strings.ContainsAny(scheme, ":/") || open == nil {
		panic(fmt.Sprintf("storage: Register(%q): invalid scheme or nil OpenFunc", scheme))
	}
	if _, dup := registry[scheme]; dup {
		panic(fmt.Sprintf("storage: Register(%q): scheme already registered", scheme))
	}
	registry[scheme] = open
}

// Backends returns the registered schemes, sorted.
func Backends() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	var s []string
	for k := range registry {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Scheme returns a DSN's scheme: the text before the first ':', lower-cased.
func Scheme(dsn string) (string, error) {
	i := strings.IndexByte(dsn, ':')
	if i <= 0 {
		return "", fmt.Errorf("%w: DSN %q has no scheme (want sqlite:PATH, sqlite::memory: or postgres://...)", ErrInvalid, Redact(dsn))
	}
	return strings.ToLower(dsn[:i]), nil
}

// sqliteScheme is the scheme of the backend that Config.SQLite tunes (the
// sqlite package's Scheme, which imports this one).
const sqliteScheme = "sqlite"

// Open opens the store a DSN names: "sqlite:PATH", "sqlite::memory:" or
// "postgres://user@host/db" ("postgresql://" too). The backend must be
// registered: import server/storage/all or the backend's package. The
// config's zero fields take their defaults; a non-zero cfg.SQLite with a
// DSN of another scheme is refused with ErrInvalid.
func Open(ctx context.Context, dsn string, cfg Config) (Store, error) {
	scheme, err := Scheme(dsn)
	if err != nil {
		return nil, err
	}
	registryMu.Lock()
	open := registry[scheme]
	registryMu.Unlock()
	if open == nil {
		return nil, fmt.Errorf("%w: %q (registered: %s; import server/storage/all)", ErrUnknownBackend, scheme, strings.Join(Backends(), ", "))
	}
	if cfg.SQLite != (SQLiteConfig{}) && scheme != sqliteScheme {
		return nil, fmt.Errorf("%w: Config.SQLite is for %s: DSNs, not %s", ErrInvalid, sqliteScheme, Redact(dsn))
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := open(ctx, dsn, cfg)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s store %s: %w", scheme, Redact(dsn), err)
	}
	return s, nil
}

// Redact returns dsn with any password in a URL-style DSN replaced, for
// logs and errors.
func Redact(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	at := strings.LastIndexByte(rest, '@')
	slash := strings.IndexByte(rest, '/')
	if at < 0 || (slash >= 0 && slash < at) {
		return dsn
	}
	user := rest[:at]
	if name, _, hasPw := strings.Cut(user, ":"); hasPw {
		return scheme + "://" + name + ":xxxxx" + rest[at:]
	}
	return dsn
}
