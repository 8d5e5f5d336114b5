package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/centrifugal/centrifuge-go"

	"github.com/jetstreamproto/jsp/bench/loadgen"
)

// centrifugoSystem drives a Centrifugo server over WebSocket with its Go
// client and its binary (Protobuf) protocol: one client per subscriber,
// one that publishes (client-side publish, allowed in the server's
// configuration).
type centrifugoSystem struct{ url string }

func (s centrifugoSystem) newClient() *centrifuge.Client {
	return centrifuge.NewProtobufClient(s.url, centrifuge.Config{
		TLSConfig: &tls.Config{InsecureSkipVerify: true},
		// The machine is shared and ten thousand handshakes queue up: give
		// them the time the JSP client gets (its 15 s dial timeout).
		HandshakeTimeout: 15 * time.Second,
		// Reconnection would hide a lost connection; the run should see it.
		MinReconnectDelay: 0,
	})
}

// connect starts c and waits until it is connected.
func connect(ctx context.Context, c *centrifuge.Client) error {
	done := make(chan error, 1)
	c.OnConnected(func(centrifuge.ConnectedEvent) {
		select {
		case done <- nil:
		default:
		}
	})
	c.OnError(func(e centrifuge.ErrorEvent) {
		select {
		case done <- e.Error:
		default:
		}
	})
	if err := c.Connect(); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type centrifugoCloser struct{ c *centrifuge.Client }

func (c centrifugoCloser) Close() error { c.c.Close(); return nil }

func (s centrifugoSystem) Subscribe(ctx context.Context, _ int, channel string, rec *loadgen.Recorder) (io.Closer, error) {
	c := s.newClient()
	if err := connect(ctx, c); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	sub, err := c.NewSubscription(channel)
	if err != nil {
		c.Close()
		return nil, err
	}
	ok := make(chan error, 1)
	sub.OnSubscribed(func(centrifuge.SubscribedEvent) {
		select {
		case ok <- nil:
		default:
		}
	})
	sub.OnError(func(e centrifuge.SubscriptionErrorEvent) {
		select {
		case ok <- e.Error:
		default:
		}
	})
	sub.OnPublication(func(e centrifuge.PublicationEvent) { rec.Deliver(e.Data) })
	if err := sub.Subscribe(); err != nil {
		c.Close()
		return nil, err
	}
	select {
	case err = <-ok:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribe %s: %w", channel, err)
	}
	return centrifugoCloser{c}, nil
}

func (s centrifugoSystem) Publisher(ctx context.Context) (loadgen.Target, io.Closer, error) {
	c := s.newClient()
	if err := connect(ctx, c); err != nil {
		c.Close()
		return nil, nil, err
	}
	return loadgen.TargetFunc(func(ctx context.Context, ch int, p []byte) error {
		_, err := c.Publish(ctx, loadgen.ChannelName(ch), p)
		return err
	}), centrifugoCloser{c}, nil
}

func driver(name string, args []string) error {
	open := func(f *loadgen.DriverFlags) (loadgen.System, error) {
		switch name {
		case "centrifugo":
			return centrifugoSystem{url: f.Addr}, nil
		case "nats":
			return natsSystem{url: f.Addr}, nil
		}
		return nil, errors.New("unknown system " + name)
	}
	return loadgen.DriverMain(name, args, os.Stdout, open)
}
