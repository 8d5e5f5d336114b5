package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/transporttest"
	"github.com/jetstreamproto/jsp/transport/websocket"
	"github.com/jetstreamproto/jsp/wire"
)

// listenerPair connects a client and a server through a real listener on
// loopback.
func listenerPair(t *testing.T, listen func(*tls.Config) (transport.Listener, error),
	dial func(ctx context.Context, addr string, tc *tls.Config) (transport.Conn, error)) (transport.Conn, transport.Conn) {
	t.Helper()
	stls, ctls := transporttest.TLSConfigs(t)
	ln, err := listen(stls)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	accepted := make(chan transport.Conn, 1)
	go func() {
		c, err := ln.Accept(ctx)
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	cc, err := dial(ctx, ln.Addr().String(), ctls)
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		cc.CloseWithError(0, "")
		sc.CloseWithError(0, "")
		ln.Close()
	})
	return cc, sc
}

func quicPair(t *testing.T) (transport.Conn, transport.Conn) {
	return listenerPair(t,
		func(tc *tls.Config) (transport.Listener, error) { return quic.Listen("127.0.0.1:0", tc, quic.Config{}) },
		func(ctx context.Context, addr string, tc *tls.Config) (transport.Conn, error) {
			return quic.Dial(ctx, addr, tc, quic.Config{})
		})
}

func tcpPair(t *testing.T) (transport.Conn, transport.Conn) {
	return listenerPair(t,
		func(tc *tls.Config) (transport.Listener, error) {
			return tcptls.Listen("127.0.0.1:0", tc, mux.Config{})
		},
		func(ctx context.Context, addr string, tc *tls.Config) (transport.Conn, error) {
			return tcptls.Dial(ctx, addr, tc, mux.Config{})
		})
}

func wsPair(t *testing.T) (transport.Conn, transport.Conn) {
	return listenerPair(t,
		func(tc *tls.Config) (transport.Listener, error) {
			return websocket.Listen("127.0.0.1:0", tc, mux.Config{})
		},
		func(ctx context.Context, addr string, tc *tls.Config) (transport.Conn, error) {
			return websocket.Dial(ctx, "wss://"+addr+"/jsp", tc, mux.Config{})
		})
}

// transportFactories are the transports every session feature is checked
// on; the in-memory one runs the full suite in the other files.
var transportFactories = map[string]func(*testing.T) (transport.Conn, transport.Conn){
	"mem":  newPair,
	"quic": quicPair,
	"tcp":  tcpPair,
	"ws":   wsPair,
}

// TestSessionOverTransports runs the session's main paths over each real
// transport: handshake, command/reply, a 1 MiB stream, a fragmented
// datagram and every Mixed API mode.
func TestSessionOverTransports(t *testing.T) {
	for name, factory := range transportFactories {
		t.Run(name, func(t *testing.T) {
			cli, srv := establishOn(t, factory, Config{}, Config{}, ClientInfo{Name: name})
			out := make(chan Incoming, 16)
			go serveEcho(srv, out)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			rep, err := cli.Request(ctx, &wire.Envelope{Route: wire.Route{Kind: wire.RouteService, Name: "echo"}, Body: []byte("ping")})
			if err != nil || string(rep.Body) != "ping" {
				t.Fatalf("request: %v %v", rep, err)
			}

			payload := make([]byte, 1<<20)
			rand.Read(payload)
			errc := make(chan error, 1)
			go func() {
				st, err := srv.AcceptStream(ctx)
				if err != nil {
					errc <- err
					return
				}
				_, err = io.Copy(st, st)
				if err == nil {
					err = st.Close()
				}
				errc <- err
			}()
			st, err := cli.OpenStream(ctx, protocol.ClassBulk, "echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				st.Write(payload)
				st.Close()
			}()
			got, err := io.ReadAll(st)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("stream echo: %d bytes, %v", len(got), err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}

			dg := make([]byte, 20_000)
			rand.Read(dg)
			// Datagrams may be lost even on loopback; retry a few times.
			var ok bool
			for i := 0; i < 5 && !ok; i++ {
				if err := cli.SendDatagram(dg, protocol.ClassMedia); err != nil {
					t.Fatal(err)
				}
				dctx, dcancel := context.WithTimeout(ctx, time.Second)
				b, err := srv.ReceiveDatagram(dctx)
				dcancel()
				ok = err == nil && bytes.Equal(b, dg)
			}
			if !ok {
				t.Fatal("20 KB datagram never arrived whole")
			}

			for _, mode := range []Delivery{DeliveryOrdered, DeliveryUnordered, DeliveryUnreliable, DeliveryPartial} {
				env := &wire.Envelope{Route: wire.Route{Kind: wire.RouteUser, Name: "u"}, Class: protocol.ClassChat, Body: []byte(mode.String())}
				if mode == DeliveryPartial {
					env.TTL = 5000
				}
				if err := cli.SendMessage(ctx, env, mode); err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				select {
				case in := <-out:
					if string(in.Envelope.Body) != mode.String() {
						t.Fatalf("%s: got %q", mode, in.Envelope.Body)
					}
				case <-time.After(5 * time.Second):
					if mode != DeliveryUnreliable {
						t.Fatalf("%s: not delivered", mode)
					}
				}
			}
			if _, err := cli.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			if err := cli.Close(); err != nil {
				t.Fatal(err)
			}
			// A client's Close reaches the server as a remote NO_ERROR.
			if err := srv.Wait(); jsperr.CodeOf(err) != jsperr.NoError {
				t.Fatalf("server ended with %v, want NO_ERROR", err)
			}
		})
	}
}
