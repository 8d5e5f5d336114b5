package session

import (
	"context"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport"
)

// TestQoSUnderBulkSaturation saturates a bulk stream whose reader is slow
// (so its flow-control window stays full and the sender always has bulk data
// queued) and checks that system frames (PING/PONG) and media datagrams are
// still delivered, each within a bound expressed in bulk progress: at most
// 1 MiB of bulk data may be consumed while one ping is outstanding. The slow
// reader paces itself at 64 KiB per 10 ms, so the bound is at least 160 ms
// of wall time, while a prioritised ping needs well under a millisecond on
// loopback; the test asserts the ordering property, not a speed.
func TestQoSUnderBulkSaturation(t *testing.T) {
	if testing.Short() {
		t.Skip("saturation test in -short mode")
	}
	for _, name := range []string{"mem", "tcp", "quic"} {
		t.Run(name, func(t *testing.T) { testQoSUnderBulkSaturation(t, transportFactories[name]) })
	}
}

func testQoSUnderBulkSaturation(t *testing.T, factory func(*testing.T) (transport.Conn, transport.Conn)) {
	cli, srv := establishOn(t, factory, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var bulkRead atomic.Int64
	readerDone := make(chan error, 1)
	go func() {
		st, err := srv.AcceptStream(ctx)
		if err != nil {
			readerDone <- err
			return
		}
		buf := make([]byte, 64<<10)
		for {
			n, err := io.ReadFull(st, buf)
			bulkRead.Add(int64(n))
			if err != nil {
				readerDone <- nil
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	bulk, err := cli.OpenStream(ctx, protocol.ClassBulk, "bulk", nil)
	if err != nil {
		t.Fatal(err)
	}
	writerDone := make(chan struct{})
	stopWriting := make(chan struct{})
	go func() {
		defer close(writerDone)
		chunk := make([]byte, 256<<10)
		for {
			select {
			case <-stopWriting:
				bulk.Close()
				return
			default:
			}
			if _, err := bulk.Write(chunk); err != nil {
				return
			}
		}
	}()
	// Let the bulk stream fill its window.
	for bulkRead.Load() < 512<<10 {
		time.Sleep(5 * time.Millisecond)
	}

	const pings = 20
	var worst int64
	var rtts []time.Duration
	for i := 0; i < pings; i++ {
		before := bulkRead.Load()
		rtt, err := cli.Ping(ctx)
		if err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		rtts = append(rtts, rtt)
		if d := bulkRead.Load() - before; d > worst {
			worst = d
		}
		// A media datagram on the same connection gets through too.
		if err := cli.SendDatagram([]byte{byte(i)}, protocol.ClassMedia); err != nil {
			t.Fatal(err)
		}
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := srv.ReceiveDatagram(dctx)
		dcancel()
		if err != nil || len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("media datagram %d: %v %v", i, got, err)
		}
	}
	slices.Sort(rtts)
	t.Logf("worst bulk progress during one ping: %d bytes; bulk consumed in total: %d bytes; ping RTT p50 %v max %v",
		worst, bulkRead.Load(), rtts[len(rtts)/2], rtts[len(rtts)-1])
	if worst > 1<<20 {
		t.Fatalf("a ping waited while %d bytes of bulk data were consumed (bound 1 MiB)", worst)
	}
	close(stopWriting)
	cli.Close()
	<-writerDone
	<-readerDone
}
