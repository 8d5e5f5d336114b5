package quic

import (
	"context"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/transporttest"
)

// TestConformance runs the transport conformance suite over loopback QUIC.
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) (transport.Conn, transport.Conn) {
		srvTLS, cliTLS := transporttest.TLSConfigs(t)
		ln, err := Listen("127.0.0.1:0", srvTLS, Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		accepted := make(chan transport.Conn, 1)
		go func() {
			c, err := ln.Accept(ctx)
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}()
		client, err := Dial(ctx, ln.Addr().String(), cliTLS, Config{})
		if err != nil {
			t.Fatal(err)
		}
		server, ok := <-accepted
		if !ok {
			client.CloseWithError(0, "")
			t.Fatal("Accept failed")
		}
		return client, server
	})
}
