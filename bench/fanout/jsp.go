package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"

	"github.com/jetstreamproto/jsp/bench/loadgen"
	"github.com/jetstreamproto/jsp/client"
)

// jspSystem drives the real `jsp server` with Go SDK clients: one Client
// per subscriber, subscribed to one channel (JSP §5.7), and one Client
// that publishes (JSP §5.8).
type jspSystem struct{ url string }

func (s jspSystem) options() client.Options {
	return client.Options{
		// The server's certificate is the harness's own; trusting it without
		// verification costs the client what checking a pin would.
		TLS:                &tls.Config{},
		InsecureSkipVerify: true,
		Logger:             slog.New(slog.DiscardHandler),
		// A subscriber's handler only records a timestamp; a deeper queue
		// lets a burst wait instead of being dropped after HandlerPatience.
		HandlerQueueLength: 4096,
	}
}

func (s jspSystem) Subscribe(ctx context.Context, _ int, channel string, rec *loadgen.Recorder) (io.Closer, error) {
	c, err := client.Dial(ctx, s.url, s.options())
	if err != nil {
		return nil, err
	}
	if _, err := c.Subscribe(ctx, channel, func(ev client.Event) { rec.Deliver(ev.Body) }); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("subscribe %s: %w", channel, err)
	}
	return c, nil
}

func (s jspSystem) Publisher(ctx context.Context) (loadgen.Target, io.Closer, error) {
	c, err := client.Dial(ctx, s.url, s.options())
	if err != nil {
		return nil, nil, err
	}
	return loadgen.TargetFunc(func(ctx context.Context, ch int, p []byte) error {
		return c.Publish(ctx, loadgen.ChannelName(ch), p)
	}), c, nil
}
