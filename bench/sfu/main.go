// Command sfu is the SFU benchmark: a real `jsp server` process (embedded
// defaults, rooms service and media forwarding on one node) and real Go
// SDK clients (client/voice) in separate processes over loopback QUIC
// datagrams, in two shapes:
//
//   - audio: 10 talkers in one room, 50 Opus-sized frames/s each; every
//     participant subscribes to every talker but itself, 100 subscriptions
//     per talker;
//   - video: 1 VP8 camera with 3 simulcast layers (30 frames/s each) to
//     200 subscribers spread over the layers, in one room (-room-cap, 250
//     by default, is passed to jsp server --voice-max-participants; with a
//     smaller cap the camera joins as many rooms as it needs).
//
// It reports packets forwarded per second, per second of server CPU (read
// from /proc for the server process alone, since the clients share the
// machine's cores), forwarding latency p50/p99/p99.9 (the publisher's send
// time in each frame to the subscriber's receipt; open loop at a fixed
// rate; a frame that never arrives counts as later than any) and loss.
//
//	sfu -bin DIR [-scenarios audio,video] [-systems jsp,jsp-nack,livekit] [-runs 3] [-out FILE]
//	sfu client -url jsp+quic://HOST:PORT -key FILE -role pub|sub ...   (started by the orchestrator)
//	sfu -report FILE
//
// Systems: jsp (no NACK, no FEC, the SDK's jitter buffer passing frames on
// as they arrive), jsp-nack (NACK on, the jitter buffer waiting up to
// 200 ms for a repair) and livekit (LiveKit's server, one node without
// Redis, driven by its Go SDK over WebRTC from module bench/livekit).
// DIR holds `jsp`; for livekit also `livekit-server` and `lkbench`.
// `make bench-tools` builds them.
package main

import (
	"fmt"
	"os"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "client" {
		err = clientMain(os.Args[2:])
	} else {
		err = orchestrate(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sfu:", err)
		os.Exit(1)
	}
}
