package bwe

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/wire"
)

// TestProbeOverSession runs a bandwidth test on media flow 9 of a real
// session pair over the in-memory transport. Counts are asserted; the
// rates, which depend on the machine, only have to be positive.
func TestProbeOverSession(t *testing.T) {
	cc, sc := memtransport.NewPair(mux.Config{DatagramMaxAge: time.Minute, DatagramQueueLength: 1024, DatagramRecvQueueLength: 1024})
	defer cc.CloseWithError(0, "")
	defer sc.CloseWithError(0, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := session.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), AcceptQueueLength: 1024}
	srvCh := make(chan *session.Session, 1)
	errCh := make(chan error, 1)
	go func() {
		s, err := session.Accept(ctx, sc, cfg, session.ServerOptions{})
		srvCh <- s
		errCh <- err
	}()
	cli, err := session.Dial(ctx, cc, session.ClientInfo{Name: "probe-test"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv := <-srvCh
	if err := <-errCh; err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	const flow = wire.FlowID(9)
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var st ReflectorStats
	wg.Add(1)
	go func() {
		defer wg.Done()
		st, _ = ServeProbes(sctx, FlowConn{Session: srv, Flow: flow}, ReflectorConfig{})
	}()
	res, err := RunProbe(ctx, FlowConn{Session: cli, Flow: flow}, ProbeConfig{Up: TrainShape{Count: 30, Rate: 5 * Mbps}, Down: TrainShape{Count: 30, Rate: 5 * Mbps}})
	stop()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("over a session: %+v", res)
	if res.UpReceived != 30 || res.DownReceived != 30 || res.RTT <= 0 || res.Up <= 0 || res.Down <= 0 {
		t.Fatalf("result %+v", res)
	}
	if st.Trains != 1 || st.DownTrains != 1 {
		t.Fatalf("reflector %+v", st)
	}
}
