// Command benchpeer drives the systems JSP is compared with in the
// fan-out and idle-connection benchmarks, with the load generator of
// package bench/loadgen:
//
//	benchpeer driver centrifugo -addr wss://127.0.0.1:8000/connection/websocket [loadgen flags]
//	benchpeer driver nats -addr nats://127.0.0.1:4222 [loadgen flags]
//	benchpeer serve-nats -addr 127.0.0.1:4222
//	benchpeer idle centrifugo -addr ws://127.0.0.1:8000/connection/websocket -n 10000
//
// It lives in a module of its own so that the project's module never
// depends on Centrifugo's client, and so that the raw NATS floor can use
// NATS directly (in the project's module only server/bus may import it).
// The Centrifugo server itself is built from the module in ./server.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchpeer:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: benchpeer driver|serve-nats|idle ...")
	}
	switch args[0] {
	case "driver":
		if len(args) < 2 {
			return fmt.Errorf("usage: benchpeer driver centrifugo|nats [flags]")
		}
		return driver(args[1], args[2:])
	case "serve-nats":
		return serveNATS(args[1:])
	case "idle":
		if len(args) < 2 || args[1] != "centrifugo" {
			return fmt.Errorf("usage: benchpeer idle centrifugo [flags]")
		}
		return idleCentrifugo(args[2:])
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
}
