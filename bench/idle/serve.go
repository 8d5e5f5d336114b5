package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/bench"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// memStats is what a server's control endpoint reports.
type memStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Goroutines int    `json:"goroutines"`
}

// serveCtl serves /mem (Go heap after a forced GC, or ?gcs=N of them) and the pprof
// handlers on addr: /debug/pprof/heap is the heap profile (exact per
// object with -memprofilerate 1), /debug/pprof/goroutine the goroutines.
func serveCtl(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/mem", func(w http.ResponseWriter, r *http.Request) {
		// ?gcs=2 collects twice: a sync.Pool keeps what it holds through
		// one collection (quic-go's 20 KiB send buffers, for one), so the
		// second reading is the heap the connections themselves hold.
		gcs, _ := strconv.Atoi(r.URL.Query().Get("gcs"))
		for range max(gcs, 1) {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = json.NewEncoder(w).Encode(memStats{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc,
			StackInuse: ms.StackInuse, Goroutines: runtime.NumGoroutine()})
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}

func serve(kind string, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	transport := fs.String("transport", "tcp", "tcp, ws, wss or quic (jsp only)")
	addr := fs.String("addr", "127.0.0.1:7400", "listen address")
	ctl := fs.String("ctl", "127.0.0.1:7499", "control address (/mem, pprof)")
	certFile := fs.String("cert", "", "PEM certificate")
	keyFile := fs.String("key", "", "PEM key")
	memRate := fs.Int("memprofilerate", 0, "bytes per heap profile sample (runtime.MemProfileRate; 1 records every allocation, for exact per-session heap profiles; 0 keeps Go's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *memRate > 0 {
		// Set before anything is allocated that the profile should show.
		runtime.MemProfileRate = *memRate
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	if err := serveCtl(*ctl); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch kind {
	case "jsp":
		return serveJSP(ctx, *transport, *addr, cert)
	case "tls":
		return serveTLS(ctx, *addr, cert)
	case "quic":
		return serveQUIC(ctx, *addr, cert)
	}
	return fmt.Errorf("serve %q: want jsp, tls or quic", kind)
}

// serveJSP runs the gateway with one listener. Without a bus it needs no
// NATS or database; an idle session holds no bus or storage state either
// way (its record is a row on disk, its subscriptions are none).
func serveJSP(ctx context.Context, transport, addr string, cert tls.Certificate) error {
	dir, err := os.MkdirTemp("", "idle-jsp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := gateway.Config{
		QUICAddr: gateway.Off, TCPAddr: gateway.Off, WSAddr: gateway.Off,
		DataDir: dir, Certificate: &cert,
		MaxSessions: 40000, MaxConnsPerIP: 40000, MaxHandshakes: 1024,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	cfg.DDoS.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.DDoS.MaxHandshakesPerIP = 1024
	cfg.RateLimits.ConnAttemptsPerIP = gateway.Rate{PerSecond: -1}
	switch transport {
	case "tcp":
		cfg.TCPAddr = addr
	case "quic":
		cfg.QUICAddr = addr
	case "ws":
		cfg.WSAddr = addr
		cfg.WSBehindTLSProxy = true
	case "wss":
		cfg.WSAddr = addr // the gateway terminates TLS (D40)
	default:
		return fmt.Errorf("transport %q", transport)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	go func() { <-ctx.Done(); _ = g.Close() }()
	if err := g.Serve(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// serveTLS is the TLS floor: a crypto/tls server with the JSP TLS
// configuration, one goroutine per connection blocked in Read with a
// 1 KiB buffer, which is what any Go server holding an idle TLS
// connection needs at least.
func serveTLS(ctx context.Context, addr string, cert tls.Certificate) error {
	ln, err := tls.Listen("tcp", addr, tlsconf.Server(cert))
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); _ = ln.Close() }()
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 1024)
			for {
				if _, err := c.Read(buf); err != nil {
					if err != io.EOF {
						return
					}
					return
				}
			}
		}()
	}
}

// serveQUIC is the QUIC floor: quic-go with the settings transport/quic
// uses (bench.QUICConfig), one goroutine per connection waiting for a
// stream, which is what any quic-go server holding an idle connection
// needs at least.
func serveQUIC(ctx context.Context, addr string, cert tls.Certificate) error {
	ln, err := quicgo.ListenAddr(addr, tlsconf.Server(cert), bench.QUICConfig())
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); _ = ln.Close() }()
	fmt.Println("ready")
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			for {
				s, err := c.AcceptStream(context.Background())
				if err != nil {
					return
				}
				s.CancelRead(0)
				s.CancelWrite(0)
			}
		}()
	}
}
