package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jetstreamproto/jsp/bench/procs"
)

// LiveKit's development credentials (`livekit-server --dev`): the API key
// and secret its dev mode accepts, public in its documentation.
const (
	liveKitKey    = "devkey"
	liveKitSecret = "secret"
)

// startLiveKit starts LiveKit's server in dev mode on loopback (one node,
// no Redis) with its signalling on port and its media on UDP ports next
// to it; the clients are lkbench processes (module bench/livekit) that
// speak the same pipe protocol as `sfu client`.
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
	p, err := procs.Start("livekit", bin, []string{"--dev", "--bind", "127.0.0.1", "--node-ip", "127.0.0.1",
		"--port", fmt.Sprint(port), "--udp-port", fmt.Sprint(udp)},
		procs.Listening(fmt.Sprintf("127.0.0.1:%d", port)), 30*time.Second)
	if err != nil {
		return nil, err
	}
	return &server{proc: p, clientBin: drv, clientArgs: []string{"client", "-url", fmt.Sprintf("ws://127.0.0.1:%d", port),
		"-api-key", liveKitKey, "-api-secret", liveKitSecret}}, nil
}
