package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/centrifugal/centrifuge-go"

	"github.com/jetstreamproto/jsp/bench/loadgen"
)

// sourceAddr returns the i-th of n loopback source addresses, as the
// JSP idle client (bench/idle) spreads its connections.
func sourceAddr(i, n int) net.IP {
	k := i%n + 1
	return net.IPv4(127, 1, byte(k>>8), byte(k))
}

// idleCentrifugo holds idle Centrifugo WebSocket connections: each line
// on standard input is a total to grow to; it answers "at N".
func idleCentrifugo(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	addr := fs.String("addr", "ws://127.0.0.1:8000/connection/websocket", "server URL")
	sources := fs.Int("sources", 200, "loopback source addresses")
	conc := fs.Int("concurrency", 32, "connections opened at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dial := func(ctx context.Context, i int) (io.Closer, error) {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: sourceAddr(i, *sources)}}
		c := centrifuge.NewProtobufClient(*addr, centrifuge.Config{NetDialContext: nd.DialContext, HandshakeTimeout: 15 * time.Second})
		if err := connect(ctx, c); err != nil {
			c.Close()
			return nil, err
		}
		return centrifugoCloser{c}, nil
	}
	var held []io.Closer
	defer func() { loadgen.CloseAll(held) }()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			return fmt.Errorf("bad total %q", sc.Text())
		}
		if n > len(held) {
			base := len(held)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			more, err := loadgen.ConnectAll(ctx, n-base, *conc, func(ctx context.Context, i int) (io.Closer, error) {
				return loadgen.Retry(ctx, 3, func(ctx context.Context) (io.Closer, error) {
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
				fmt.Printf("error: at %d: %v\n", len(held), err)
				continue
			}
		}
		fmt.Printf("at %d\n", len(held))
	}
	return sc.Err()
}
