// Package bench measures JSP side by side with the raw transport it runs on,
// on 127.0.0.1 with real TLS 1.3 (JSP §7.4), so that the cost JSP adds over
// QUIC (JSP §7.1) and over TLS on TCP (JSP §7.2) is a measured number.
//
// Three workloads, each served by one server per stack under test:
//
//	bulk        client                         server
//	  JSP:      OpenStream(bulk, "bulk") ─ n bytes, FIN ─> count (and hash)
//	            <───────────── ack: count, digest, FIN ──
//	  raw QUIC: new stream, mode byte ── n bytes, FIN ──> same
//	  raw TLS:  one connection; per op: length header, n bytes ──> same
//
//	round trip
//	  JSP:      Request(COMMAND, body) ───────────────> Reply(body)
//	  raw:      one stream / connection: write p ─────> echo what arrives
//
//	handshake   dial + TLS 1.3 (+ HELLO/WELCOME for JSP), then close
//
// The raw peers use the same TLS configuration (tlsconf: TLS 1.3, ALPN
// "jsp/1", the development certificate pinned by SPKI) and, for QUIC, a
// quic-go configuration with the values transport/quic uses, so that the
// difference between a JSP result and its raw partner is what the session
// layer, the link layer (on TCP) and the transport binding add.
//
// The benchmarks live in the package's tests and run only with -bench;
// bench/cmd/benchreport runs them repeatedly and prints medians and JSP/raw
// ratios. The harness types here are exported so that the tests and the
// benchmarks share one implementation.
package bench
