// Command fanout is the fan-out benchmark: JSP (`jsp server` with Go SDK
// clients over WebSocket), Centrifugo v6 (memory broker, WebSocket, its Go
// client) and raw NATS pub/sub (the floor) side by side in one run, driven
// by the same open-loop load generator (bench/loadgen).
//
//	fanout -bin DIR [-cases 1x1,1x100,1x10000,1000x10] [-deliveries 20000,100000] [-runs 3] [-out FILE]
//	fanout -bin DIR -find-max [-deliveries START] [-step 1.5] [-max-p99 1s] [-max-deliveries N] [...]
//	fanout driver jsp -addr wss://127.0.0.1:PORT/jsp [loadgen flags]
//	fanout -report FILE [-max-p99 1s]
//
// The first form offers fixed rates; -find-max raises the offered rate per
// system until it no longer keeps up and reports each system's capacity
// (findmax.go).
//
// Every measurement starts a fresh server process and a fresh driver
// process: the driver opens one connection per subscriber, subscribes it,
// publishes at a fixed rate (offered deliveries per second divided by the
// subscribers per channel) and prints one result line; the orchestrator
// adds the server's CPU time and resident memory and appends the line to
// -out. DIR holds the binaries `jsp`, `centrifugo` and `benchpeer` (the
// Centrifugo and NATS drivers, module bench/centrifugo); `make bench`
// builds them.
package main

import (
	"fmt"
	"os"
)

func main() {
	var err error
	if len(os.Args) > 2 && os.Args[1] == "driver" {
		err = driverMain(os.Args[2], os.Args[3:])
	} else {
		err = orchestrate(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}
