// Command idle is the idle-connection benchmark: server memory (resident
// set and Go heap) per idle session at two connection counts (default
// 10,000 and 19,000), over TLS/TCP, WebSocket and QUIC, compared like with
// like in one run:
//
//	transport  JSP                         compared with
//	ws         gateway, plain WebSocket    Centrifugo v6, plain WebSocket
//	           (behind a TLS proxy)
//	tcp        gateway, TLS 1.3 over TCP   bare crypto/tls server (floor)
//	quic       gateway, QUIC               bare quic-go server (floor)
//	wss        gateway, WebSocket with     bare crypto/tls server (floor)
//	           TLS ended by the gateway
//	           (only with -transports wss)
//
// Usage:
//
//	idle -bin DIR [-sessions 10000,19000] [-runs 1] [-out FILE]
//	idle serve jsp|tls|quic -transport tcp|ws|wss|quic -addr A -ctl C -cert F -key F
//	idle client -kind jsp-tcp|jsp-ws|jsp-wss|jsp-quic|tls|quic -addr A [-sources 200]
//	idle -report FILE
//
// Each measurement starts a fresh server and a client process. The
// client spreads its connections over -sources loopback addresses
// (127.1.x.y), QUIC clients sharing one UDP socket per address, and grows
// to each count when told on standard input; the orchestrator then reads
// the server's VmRSS from /proc and its Go heap (after a forced GC for the
// servers built here, the Prometheus figure for Centrifugo) and divides
// the growth since before the first connection by the count.
package main

import (
	"fmt"
	"os"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 2 && os.Args[1] == "serve":
		err = serve(os.Args[2], os.Args[3:])
	case len(os.Args) > 1 && os.Args[1] == "client":
		err = clientMain(os.Args[2:])
	default:
		err = orchestrate(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}
