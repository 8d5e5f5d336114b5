package gateway

import "time"

// Defaults of the session registry, presence and the gateway registry
// (registry.go); each is what a zero Config field means.
const (
	// DefaultRegistryHeartbeat is how often a gateway refreshes its own
	// entry in the gateway registry (NATS KV); its sessions' entries are
	// written on change only (D39). The entry expires after
	// RegistryTTLBeats heartbeats without a refresh, and a killed
	// gateway's sessions go offline with it.
	DefaultRegistryHeartbeat = 10 * time.Second
	// DefaultAwayAfter is how long a session may send nothing before its
	// presence is "away".
	DefaultAwayAfter = 5 * time.Minute
	// DefaultSessionRetention is how long closed session records stay in
	// storage before the janitor deletes them.
	DefaultSessionRetention = 30 * 24 * time.Hour
)

// RegistryTTLBeats is the number of heartbeats after which a gateway's
// entry that was not refreshed expires (at least a second: the shortest
// per-key TTL NATS takes).
const RegistryTTLBeats = 3
