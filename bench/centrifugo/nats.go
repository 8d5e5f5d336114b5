package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/jetstreamproto/jsp/bench/loadgen"
)

// natsSystem is the floor: raw NATS core pub/sub, one connection per
// subscriber, no TLS, no storage, no sessions.
type natsSystem struct{ url string }

type natsCloser struct{ nc *nats.Conn }

func (c natsCloser) Close() error { c.nc.Close(); return nil }

func (s natsSystem) conn() (*nats.Conn, error) {
	return nats.Connect(s.url, nats.MaxReconnects(0), nats.ReconnectBufSize(-1))
}

func (s natsSystem) Subscribe(ctx context.Context, _ int, channel string, rec *loadgen.Recorder) (io.Closer, error) {
	nc, err := s.conn()
	if err != nil {
		return nil, err
	}
	sub, err := nc.Subscribe(channel, func(m *nats.Msg) { rec.Deliver(m.Data) })
	if err == nil {
		// The client library's own pending limit must not be what drops.
		err = sub.SetPendingLimits(1<<20, 1<<28)
	}
	if err == nil {
		err = nc.FlushTimeout(10 * time.Second)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe %s: %w", channel, err)
	}
	return natsCloser{nc}, nil
}

func (s natsSystem) Publisher(context.Context) (loadgen.Target, io.Closer, error) {
	nc, err := s.conn()
	if err != nil {
		return nil, nil, err
	}
	return loadgen.TargetFunc(func(_ context.Context, ch int, p []byte) error {
		return nc.Publish(loadgen.ChannelName(ch), p)
	}), natsCloser{nc}, nil
}

// serveNATS runs a plain NATS server (no JetStream, no TLS) until
// SIGINT or SIGTERM, and prints "ready" once it accepts connections.
func serveNATS(args []string) error {
	fs := flag.NewFlagSet("serve-nats", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:4222", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	ns, err := server.NewServer(&server.Options{Host: host, Port: p, NoSigs: true, MaxConn: 1 << 20,
		MaxPending: 256 << 20, WriteDeadline: 10 * time.Second})
	if err != nil {
		return err
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats server not ready")
	}
	fmt.Fprintln(os.Stdout, "ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}
