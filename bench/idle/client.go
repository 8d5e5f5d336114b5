package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	ws "github.com/coder/websocket"
	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/bench"
	"github.com/jetstreamproto/jsp/bench/loadgen"
	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
)

// SourceAddr returns the i-th of n loopback source addresses,
// 127.1.0.1 upwards, so that no address carries more than a few hundred
// connections (per-address caps, and ephemeral ports per address).
func SourceAddr(i, n int) net.IP {
	k := i%n + 1
	return net.IPv4(127, 1, byte(k>>8), byte(k))
}

// tlsStream closes the socket directly (as transport/tcptls does), so
// that closing ten thousand idle links does not wait on close_notify.
type tlsStream struct {
	*tls.Conn
	raw net.Conn
}

func (s tlsStream) Close() error { return s.raw.Close() }

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// dialer opens one idle connection of a kind from a source address.
type dialer struct {
	kind    string
	addr    string
	sources int
	tls     *tls.Config
	udp     []*net.UDPConn
	quicTr  []*quicgo.Transport
	jspQUIC []*jspquic.Dialer
	sessCfg session.Config
}

func newDialer(kind, addr string, sources int) (*dialer, error) {
	d := &dialer{kind: kind, addr: addr, sources: sources,
		tls:     &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{protocol.ALPN}},
		sessCfg: session.Config{Logger: slog.New(slog.DiscardHandler)}}
	if kind == "quic" || kind == "jsp-quic" {
		// QUIC connections, bare and JSP alike, share one UDP socket (one
		// quic-go Transport) per source address: a socket and a
		// transport per connection would put 19,000 sockets and 38,000
		// goroutines into the client process, near the machine's limit
		// of 20,000 open files, and slow its connects far below the
		// bare client's.
		for i := range sources {
			uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: SourceAddr(i, sources)})
			if err != nil {
				d.close()
				return nil, err
			}
			d.udp = append(d.udp, uc)
			if kind == "quic" {
				d.quicTr = append(d.quicTr, &quicgo.Transport{Conn: uc})
				continue
			}
			jd, err := jspquic.NewDialer(uc, jspquic.Config{})
			if err != nil {
				d.close()
				return nil, err
			}
			d.jspQUIC = append(d.jspQUIC, jd)
		}
	}
	return d, nil
}

func (d *dialer) tcp(ctx context.Context, i int) (net.Conn, error) {
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: SourceAddr(i, d.sources)}}
	return nd.DialContext(ctx, "tcp", d.addr)
}

func (d *dialer) dial(ctx context.Context, i int) (io.Closer, error) {
	switch d.kind {
	case "tls", "jsp-tcp":
		nc, err := d.tcp(ctx, i)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(nc, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		if d.kind == "tls" {
			return nc, nil
		}
		return d.session(ctx, mux.New(tlsStream{tc, nc}, mux.Config{Kind: transport.KindTCP}, true))
	case "jsp-ws", "jsp-wss":
		scheme, tr := "ws://", &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.tcp(ctx, i)
		}}
		if d.kind == "jsp-wss" {
			scheme = "wss://"
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
		}
		hc := &http.Client{Transport: tr}
		c, _, err := ws.Dial(ctx, scheme+d.addr+"/jsp", &ws.DialOptions{HTTPClient: hc,
			Subprotocols: []string{protocol.WebSocketSubprotocol}, CompressionMode: ws.CompressionDisabled})
		if err != nil {
			return nil, err
		}
		c.SetReadLimit(-1)
		return d.session(ctx, mux.New(ws.NetConn(context.Background(), c, ws.MessageBinary), mux.Config{Kind: transport.KindWebSocket}, true))
	case "jsp-quic":
		tc, err := d.jspQUIC[i%d.sources].Dial(ctx, d.addr, d.tls)
		if err != nil {
			return nil, err
		}
		return d.session(ctx, tc)
	case "quic":
		ua, err := net.ResolveUDPAddr("udp", d.addr)
		if err != nil {
			return nil, err
		}
		qc, err := d.quicTr[i%d.sources].Dial(ctx, ua, d.tls, bench.QUICConfig())
		if err != nil {
			return nil, err
		}
		return closerFunc(func() error { return qc.CloseWithError(0, "") }), nil
	}
	return nil, fmt.Errorf("unknown kind %q", d.kind)
}

func (d *dialer) session(ctx context.Context, tc transport.Conn) (io.Closer, error) {
	s, err := session.Dial(ctx, tc, session.ClientInfo{Name: "idle-bench"}, d.sessCfg)
	if err != nil {
		_ = tc.CloseWithError(0, "")
		return nil, err
	}
	return s, nil
}

func (d *dialer) close() {
	for _, t := range d.quicTr {
		_ = t.Close()
	}
	for _, jd := range d.jspQUIC {
		_ = jd.Close()
	}
	for _, u := range d.udp {
		_ = u.Close()
	}
}

// clientMain holds idle connections: each line on standard input is a
// total to grow to; it answers "at N" on standard output when there.
// End of input closes everything.
func clientMain(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	kind := fs.String("kind", "jsp-tcp", "jsp-tcp, jsp-ws, jsp-wss, jsp-quic, tls or quic")
	addr := fs.String("addr", "127.0.0.1:7400", "server address")
	sources := fs.Int("sources", 200, "loopback source addresses to spread over")
	conc := fs.Int("concurrency", 32, "connections opened at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := newDialer(*kind, *addr, *sources)
	if err != nil {
		return err
	}
	defer d.close()
	return HoldLoop(os.Stdin, os.Stdout, *conc, d.dial)
}

// dialAttempts is how often HoldLoop tries one connection before it gives
// up on the count: on the shared two-core machine a handshake sometimes
// times out while other benchmarks run, and one lost connection in
// 19,000 should not void the measurement.
const dialAttempts = 6

// HoldLoop reads totals from in, grows the held connections to each with
// dial, and reports "at N" (or "error: ...") on out; at the end of in it
// closes them all.
func HoldLoop(in io.Reader, out io.Writer, concurrency int, dial func(ctx context.Context, i int) (io.Closer, error)) error {
	var held []io.Closer
	defer func() { loadgen.CloseAll(held) }()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			return fmt.Errorf("bad total %q", sc.Text())
		}
		if n > len(held) {
			base := len(held)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			more, err := loadgen.ConnectAll(ctx, n-base, concurrency, func(ctx context.Context, i int) (io.Closer, error) {
				return loadgen.Retry(ctx, dialAttempts, func(ctx context.Context) (io.Closer, error) {
					cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
					defer ccancel()
					return dial(cctx, base+i)
				})
			})
			cancel()
			for _, c := range more {
				if c != nil {
					held = append(held, c)
				}
			}
			if err != nil {
				fmt.Fprintf(out, "error: at %d: %v\n", len(held), err)
				continue
			}
		}
		fmt.Fprintf(out, "at %d\n", len(held))
	}
	return sc.Err()
}
