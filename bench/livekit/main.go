// Command lkbench drives LiveKit's server in the SFU benchmark
// (bench/sfu -systems livekit) with LiveKit's Go SDK: the same shapes,
// schedule, frame header and result lines as the JSP clients (package
// bench/sfu/load), over WebRTC (pion) instead of JSP.
//
//	lkbench client -url ws://127.0.0.1:7880 -api-key K -api-secret S -role pub|sub ...
//
// Audio frames are Opus packets (a TOC byte, then the header); video
// frames carry a VP8 frame tag (and, for key frames, the start code and
// size) before the header, so that the forwarder sees key frames where
// the schedule puts them. Subscribers read RTP packets as they arrive (no
// jitter buffer) and take a frame as received at its last packet (the
// RTP marker), as the JSP clients take it when the SDK has it whole.
//
// It lives in a module of its own so that the project's module never
// depends on LiveKit's SDK or pion.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "client" {
		fmt.Fprintln(os.Stderr, "usage: lkbench client [flags]")
		os.Exit(2)
	}
	if err := clientMain(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "lkbench:", err)
		os.Exit(1)
	}
}
