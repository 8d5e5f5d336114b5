package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

// exampleServer is an in-process server for the examples: the gateway with
// its default services (echo, notify, files) on loopback ports, QUIC and
// TCP sharing one port number.
type exampleServer struct {
	g    *gateway.Gateway
	dir  string
	port string
	done chan error
}

func startExampleServer() *exampleServer {
	dir, err := os.MkdirTemp("", "jsp-example-")
	if err != nil {
		log.Fatal(err)
	}
	for range 5 {
		port, err := exampleFreePort()
		if err != nil {
			log.Fatal(err)
		}
		g, err := gateway.New(gateway.Config{
			QUICAddr: "127.0.0.1:" + port,
			TCPAddr:  "127.0.0.1:" + port,
			WSAddr:   gateway.Off,
			DataDir:  dir,
			Logger:   quietLogger(),
		})
		if err != nil {
			continue // the port was taken in the meantime
		}
		s := &exampleServer{g: g, dir: dir, port: port, done: make(chan error, 1)}
		go func() { s.done <- g.Serve(context.Background()) }()
		return s
	}
	log.Fatal("no free port for the example server")
	return nil
}

func exampleFreePort() (string, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		_, port, _ := net.SplitHostPort(l.Addr().String())
		_ = l.Close()
		if u, err := net.ListenPacket("udp", "127.0.0.1:"+port); err == nil {
			_ = u.Close()
			return port, nil
		}
	}
	return "", errors.New("no port free for UDP and TCP")
}

// url returns the server's URL for scheme.
func (s *exampleServer) url(scheme string) string { return scheme + "://127.0.0.1:" + s.port }

// options trust the server's self-signed certificate by its key's pin, as
// `jsp ping --pin` does.
func (s *exampleServer) options() client.Options {
	return client.Options{Pins: []tlsconf.Fingerprint{s.g.Cert().Pin}, Logger: quietLogger()}
}

func (s *exampleServer) Close() {
	_ = s.g.Close()
	<-s.done
	_ = os.RemoveAll(s.dir)
}

func Example() {
	srv := startExampleServer()
	defer srv.Close()
	ctx := context.Background()

	// jsp:// races QUIC against TCP and keeps the first to finish the JSP
	// handshake.
	c, err := client.Dial(ctx, srv.url(client.SchemeAuto), srv.options())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	reply, err := c.Command(ctx, "echo", []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", reply)
	// Output: hello
}

func ExampleClient_Subscribe() {
	srv := startExampleServer()
	defer srv.Close()
	ctx := context.Background()
	c, err := client.Dial(ctx, srv.url(client.SchemeQUIC), srv.options())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	events := make(chan client.Event, 2)
	sub, err := c.Subscribe(ctx, "room.1", func(e client.Event) { events <- e })
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Unsubscribe(ctx)

	for _, text := range []string{"hello", "world"} {
		if err := c.Publish(ctx, "room.1", []byte(text)); err != nil {
			log.Fatal(err)
		}
	}
	for range 2 {
		e := <-events
		fmt.Printf("%s #%d: %s\n", e.Channel, e.Seq, e.Body)
	}
	// Output:
	// room.1 #1: hello
	// room.1 #2: world
}

func ExampleClient_OnNotify() {
	srv := startExampleServer()
	defer srv.Close()
	ctx := context.Background()
	c, err := client.Dial(ctx, srv.url(client.SchemeTCP), srv.options())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	got := make(chan client.Notification, 1)
	if err := c.OnNotify(func(n client.Notification) { got <- n }); err != nil {
		log.Fatal(err)
	}
	// The server's "notify" service replies, then pushes the body back as
	// a notification.
	if _, err := c.Command(ctx, "notify", []byte("build finished")); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("notification: %s\n", (<-got).Body)
	// Output: notification: build finished
}

func ExampleClient_OpenStream() {
	srv := startExampleServer()
	defer srv.Close()
	ctx := context.Background()
	c, err := client.Dial(ctx, srv.url(client.SchemeQUIC), srv.options())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The server's "echo" stream sends every byte back.
	st, err := c.OpenStream(ctx, protocol.ClassBulk, "echo")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if _, err := io.WriteString(st, "bytes over a stream"); err != nil {
		log.Fatal(err)
	}
	if err := st.CloseWrite(); err != nil { // FIN: the echo ends after our data
		log.Fatal(err)
	}
	back, err := io.ReadAll(st)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", back)
	// Output: bytes over a stream
}

func ExampleClient_SendDatagram() {
	srv := startExampleServer()
	defer srv.Close()
	ctx := context.Background()
	// Over TCP, datagrams are dropped only when stale, which makes this
	// example's output deterministic; over QUIC they may be lost.
	c, err := client.Dial(ctx, srv.url(client.SchemeTCP), srv.options())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// 20,000 bytes is far above one transport datagram: the client splits
	// it into fragments and the server's echo arrives reassembled.
	big := make([]byte, 20000)
	if err := c.SendDatagram(big); err != nil {
		log.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	back, err := c.ReceiveDatagram(rctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("echoed datagram of", len(back), "bytes")
	// Output: echoed datagram of 20000 bytes
}

func ExampleClient_Send() {
	srv := startExampleServer()
	defer srv.Close()
	ctx := context.Background()
	c, err := client.Dial(ctx, srv.url(client.SchemeQUIC), srv.options())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The server echoes Mixed API messages with their delivery mode.
	got := make(chan client.Message, 1)
	if err := c.OnMessage(func(m client.Message) { got <- m }); err != nil {
		log.Fatal(err)
	}
	route := wire.Route{Kind: wire.RouteService, Name: "echo"}
	if err := c.Send(ctx, route, []byte("cursor moved"), client.Unordered); err != nil {
		log.Fatal(err)
	}
	m := <-got
	fmt.Printf("%s (%s)\n", m.Body, m.Delivery)
	// Output: cursor moved (reliable-unordered)
}

func ExampleReconnectOptions() {
	srv := startExampleServer()
	defer srv.Close()
	ctx := context.Background()

	resumed := make(chan struct{}, 1)
	o := srv.options()
	o.Reconnect = client.ReconnectOptions{
		Enabled: true,
		// Same server over TLS/TCP when QUIC does not come back.
		Fallback:       []string{srv.url(client.SchemeTCP)},
		OnDisconnected: func(reason error) { fmt.Println("disconnected") },
		OnResumed: func(info client.ConnInfo) {
			fmt.Println("resumed")
			resumed <- struct{}{}
		},
	}
	c, err := client.Dial(ctx, srv.url(client.SchemeQUIC), o)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The session is lost (closed here for the example); the client
	// comes back by itself.
	_ = c.Session().Close()
	<-resumed
	reply, err := c.Command(ctx, "echo", []byte("back"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", reply)
	// Output:
	// disconnected
	// resumed
	// back
}
