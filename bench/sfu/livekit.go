package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jetstreamproto/jsp/bench/procs"
)

// The API key and secret the benchmark's LiveKit server accepts; the
// clients sign their join tokens with them.
const (
	liveKitKey    = "benchkey"
	liveKitSecret = "bench-secret-0123456789abcdefghijklmnop"
)

// liveKitConfig is the server's configuration: one node without Redis
// (the in-memory router, as dev mode runs), signalling on port, all media
// on one UDP port on loopback, logs at warn (dev mode's debug logs would
// cost more than the forwarding).
func liveKitConfig(port, udp int) string {
	return fmt.Sprintf(`port: %d
bind_addresses: ["127.0.0.1"]
rtc:
  udp_port: %d
  tcp_port: 0
  node_ip: 127.0.0.1
  use_external_ip: false
keys:
  %s: %s
logging:
  level: warn
`, port, udp, liveKitKey, liveKitSecret)
}

// startLiveKit starts LiveKit's server on loopback; the clients are
// lkbench processes (module bench/livekit) that speak the same pipe
// protocol as `sfu client`.
func (o *orchestrator) startLiveKit(port int) (*server, error) {
	bin := filepath.Join(o.bin, "livekit-server")
	drv := filepath.Join(o.bin, "lkbench")
	for _, b := range []string{bin, drv} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("livekit: %w (make bench-tools builds it from module bench/livekit)", err)
		}
	}
	udp, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	p, err := procs.Start("livekit", bin, []string{"--config-body", liveKitConfig(port, udp)},
		procs.Listening(fmt.Sprintf("127.0.0.1:%d", port)), 30*time.Second)
	if err != nil {
		return nil, err
	}
	return &server{proc: p, clientBin: drv, clientArgs: []string{"client", "-url", fmt.Sprintf("ws://127.0.0.1:%d", port),
		"-api-key", liveKitKey, "-api-secret", liveKitSecret}}, nil
}
