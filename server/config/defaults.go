package config

import (
	"time"

	"github.com/jetstreamproto/jsp/security/ddos"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
)

// Default returns the configuration every key starts from: the gateway's,
// the core's and the connection filter's defaults, so that the file, the
// flags and the packages cannot disagree.
func Default() Config {
	return Config{
		Server: Server{
			DataDir: gateway.DefaultDataDir,
			Role:    "all",
			Cluster: core.DefaultCluster,
		},
		Listen: Listen{
			QUIC:   gateway.DefaultQUICAddr,
			TCP:    gateway.DefaultTCPAddr,
			WS:     gateway.DefaultWSAddr,
			WSPath: gateway.DefaultWSPath,
			Ops:    gateway.Off,
		},
		// OpenWait is natsbus.DefaultOpenWait (a test in cmd/jsp keeps
		// them equal; this package does not import NATS).
		Bus: Bus{KVReplicas: 1, EventLogReplicas: 1, WorkQueueReplicas: 1, OpenWait: 2 * time.Minute, Codec: core.CodecBinary.String()},
		// The SQLite values are server/storage/sqlite's defaults (a test
		// in cmd/jsp keeps them equal; this package does not import a
		// database driver).
		Storage: Storage{
			SessionRetention:      gateway.DefaultSessionRetention,
			DedupWindow:           storage.DefaultDedupWindow,
			MaxConns:              storage.DefaultMaxConns,
			SQLiteBusyTimeout:     storage.DefaultBusyTimeout,
			SQLiteCheckpointBytes: 16 << 20,
			SQLiteWALLimitBytes:   64 << 20,
			SQLiteCheckpointIdle:  2 * time.Second,
			SQLiteClaimMergeRows:  8192,
		},
		Gateway: Gateway{
			DrainGrace:         gateway.DefaultDrainGrace,
			MaxSessions:        gateway.DefaultMaxSessions,
			MaxConnsPerIP:      gateway.DefaultMaxConnsPerIP,
			MaxHandshakesPerIP: ddos.DefaultMaxHandshakesPerIP,
			Heartbeat:          gateway.DefaultRegistryHeartbeat,
			CoreTimeout:        gateway.DefaultCoreTimeout,
			AwayAfter:          gateway.DefaultAwayAfter,
		},
		Auth: Auth{Mode: "anonymous", Audience: "jsp"},
		Voice: Voice{
			MaxRooms:        voiceproto.DefaultMaxRooms,
			MaxParticipants: voiceproto.DefaultMaxParticipants,
			MaxTracks:       voiceproto.DefaultMaxTracks,
		},
		Limits: Limits{
			RateConnAttempt: gateway.DefaultConnAttemptsPerSecond,
			RateConn:        gateway.DefaultConnMessagesPerSecond,
			RateUser:        gateway.DefaultUserMessagesPerSecond,
			RateChannel:     gateway.DefaultChannelPublishesPerSecond,
			RateCommand:     gateway.DefaultCommandsPerSecond,
			ListPoll:        ddos.DefaultListPoll,
		},
		Log:    Log{Level: "info", Format: "text"},
		Events: Events{VAPIDSubject: DefaultVAPIDSubject},
	}
}

// DefaultVAPIDSubject is the VAPID contact when none is configured.
const DefaultVAPIDSubject = "mailto:admin@localhost"
