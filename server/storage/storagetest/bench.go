package storagetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
)

// Bench runs the shared benchmarks against fresh databases from newDSN:
// append throughput with one writer and with eight concurrent writers on
// one channel, and reading a 50-message history page.
func Bench(b *testing.B, newDSN NewDSN) {
	// open opens a store on a fresh database that lives as long as owner;
	// failures stop tb, the benchmark running the call.
	open := func(tb, owner testing.TB) storage.Store {
		s, err := storage.Open(context.Background(), newDSN(owner), storage.Config{Logger: Quiet})
		if err != nil {
			tb.Fatal(err)
		}
		owner.Cleanup(func() { s.Close() })
		return s
	}
	body := make([]byte, 200)
	b.Run("AppendSequential", func(b *testing.B) {
		s := open(b, b)
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.AppendMessage(ctx, "bench", storage.Message{Sender: "u", ClientID: fmt.Sprint(i), Body: body}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("AppendConcurrent8", func(b *testing.B) {
		s := open(b, b)
		concurrently(b, 8, func(i int64) error {
			_, err := s.AppendMessage(ctx, "bench", storage.Message{Sender: "u", ClientID: fmt.Sprint(i), Body: body})
			return err
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	// Session records as a crowd of clients connecting writes them: one
	// upsert per new session, from many gateway goroutines at once.
	b.Run("UpsertSessionConcurrent8", func(b *testing.B) {
		s := open(b, b)
		concurrently(b, 8, func(i int64) error {
			_, err := s.UpsertSession(ctx, storage.Session{ID: fmt.Sprint("s", i), UserID: fmt.Sprint("u", i%100),
				DeviceID: "d", Gateway: "gw-1", Transport: "wss", RemoteAddr: "127.0.0.1:1"})
			return err
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	})
	// The history store is filled once and shared by every round of the
	// benchmark: filling it is a thousand durable commits.
	var (
		history     storage.Store
		historyOnce sync.Once
	)
	const held = 1000
	b.Run("HistoryPage50", func(hb *testing.B) {
		historyOnce.Do(func() {
			history = open(hb, b)
			for range held {
				if _, err := history.AppendMessage(ctx, "bench", storage.Message{Sender: "u", Body: body}); err != nil {
					hb.Fatal(err)
				}
			}
		})
		hb.ResetTimer()
		for i := range hb.N {
			before := storage.Seq(held + 1 - (i*97)%(held-50))
			msgs, err := history.MessagesBefore(ctx, "bench", before, 50)
			if err != nil || len(msgs) != 50 {
				hb.Fatalf("page before %d: %d messages, %v", before, len(msgs), err)
			}
		}
		hb.ReportMetric(float64(hb.N)/hb.Elapsed().Seconds(), "pages/s")
	})
}

// concurrently runs op for i = 1..b.N on writers goroutines and fails b
// on the first error; the timer runs from the first op to the last.
func concurrently(b *testing.B, writers int, op func(i int64) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.ResetTimer()
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
