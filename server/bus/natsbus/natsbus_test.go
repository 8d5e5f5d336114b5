package natsbus_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"testing"

	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/bustest"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

func embedded(t testing.TB, edit func(*natsbus.EmbeddedConfig)) *natsbus.Bus {
	t.Helper()
	cfg := natsbus.EmbeddedConfig{
		Server: natsbus.ServerConfig{DataDir: t.TempDir(), Logger: quiet},
		Client: natsbus.ClientConfig{Logger: quiet},
	}
	if edit != nil {
		edit(&cfg)
	}
	b, err := natsbus.Embedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bus.Bus { return embedded(t, nil) })
}

func TestServerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  natsbus.ServerConfig
		want string
	}{
		{"no data dir", natsbus.ServerConfig{}, "DataDir is required"},
		{"tls without listener", natsbus.ServerConfig{DataDir: dir, TLS: &tls.Config{}}, "TLS needs Listen"},
		{"map without users", natsbus.ServerConfig{DataDir: dir, Listen: "127.0.0.1:0", TLS: &tls.Config{}, VerifyAndMap: true}, "VerifyAndMap"},
		{"routes without listener", natsbus.ServerConfig{DataDir: dir, Cluster: natsbus.ClusterConfig{Routes: []string{"nats-route://127.0.0.1:1"}}}, "Cluster.Listen"},
		{"bad listen address", natsbus.ServerConfig{DataDir: dir, Listen: "nohost"}, "address"},
		// The server itself refuses a JetStream cluster without routes;
		// the start reports its reason rather than a timeout.
		{"cluster without routes", natsbus.ServerConfig{DataDir: dir, Cluster: natsbus.ClusterConfig{Listen: "127.0.0.1:0"}, Logger: quiet}, "routes"},
	}
	for _, tt := range tests {
		srv, err := natsbus.StartServer(tt.cfg)
		if err == nil {
			srv.Shutdown()
			t.Errorf("%s: started", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q does not mention %q", tt.name, err, tt.want)
		}
	}
}

func TestClientConfigErrors(t *testing.T) {
	for _, cfg := range []natsbus.ClientConfig{
		{CertFile: "c.pem"},
		{TLS: &tls.Config{}, CAFile: "ca.pem"},
		{InboxPrefix: "a.*"},
		{DrainTimeout: -1},
		{CAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := natsbus.Connect([]string{"nats://127.0.0.1:1"}, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	if _, err := natsbus.Connect(nil, natsbus.ClientConfig{}); err == nil {
		t.Error("no URL accepted")
	}
}

// TestReconnect restarts the server under a TCP client: the bus reconnects
// by itself and its subscriptions work again.
func TestReconnect(t *testing.T) {
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	cfg := natsbus.ServerConfig{DataDir: dir, Listen: fmt.Sprintf("127.0.0.1:%d", port), Logger: quiet}
	srv, err := natsbus.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsbus.Connect([]string{srv.ClientURL()}, natsbus.ClientConfig{ReconnectWait: 50 * time.Millisecond, Logger: quiet})
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan struct{}, 16)
	if _, err := b.Subscribe("jsp.r.ping", func(*bus.Msg) { got <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv, err = natsbus.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	retry(t, "message after reconnect", func() error {
		if err := b.Publish("jsp.r.ping", bus.Msg{}); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		case <-time.After(50 * time.Millisecond):
			return errors.New("nothing yet")
		}
	})
	if st := b.Stats(); st.Disconnects == 0 || st.Reconnects == 0 {
		t.Fatalf("stats %+v, want a disconnect and a reconnect", st)
	}
}

// TestWorkQueueTermRemovesJob checks on JetStream itself that a job
// dropped after its last delivery leaves the stream.
func TestWorkQueueTermRemovesJob(t *testing.T) {
	b := embedded(t, nil)
	s, _ := bus.NewSubjects("t")
	cfg, _ := s.WorkQueue("term")
	cfg.MaxDeliver = 1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := b.WorkQueue(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, bus.Msg{Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	dead := make(chan struct{})
	c, err := q.Consume(ctx, func(context.Context, bus.Job) error { return errors.New("fail") },
		bus.ConsumeConfig{OnDeadLetter: func(bus.Job, error) { close(dead) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	<-dead
	js, err := jetstream.New(b.Conn())
	if err != nil {
		t.Fatal(err)
	}
	retry(t, "stream empty", func() error {
		st, err := js.Stream(ctx, cfg.Stream)
		if err != nil {
			return err
		}
		if n := st.CachedInfo().State.Msgs; n != 0 {
			return fmt.Errorf("%d messages left", n)
		}
		return nil
	})
}
