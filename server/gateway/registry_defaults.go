package gateway

import "time"

// Defaults of the session registry, presence and the gateway registry
// (registry.go); each is what a zero Config field means.
const (
	// DefaultRegistryHeartbeat is how often a gateway refreshes its own
	// entry in the gateway registry and its sessions' registry and
	// presence entries in NATS KV. An entry expires after
	// RegistryTTLBeats heartbeats without a refresh, so a killed gateway's
	// sessions go offline within that time.
	DefaultRegistryHeartbeat = 10 * time.Second
	// DefaultAwayAfter is how long a session may send nothing before its
	// presence is "away".
	DefaultAwayAfter = 5 * time.Minute
	// DefaultSessionRetention is how long closed session records stay in
	// storage before the janitor deletes them.
	DefaultSessionRetention = 30 * 24 * time.Hour
)

// RegistryTTLBeats is the number of heartbeats after which an entry that
// was not refreshed expires.
const RegistryTTLBeats = 3
