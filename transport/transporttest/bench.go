package transporttest

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
)

// BenchFactory returns a fresh connected pair for a benchmark.
type BenchFactory func(b *testing.B) (client, server transport.Conn)

// BenchmarkThroughput measures one-way stream throughput: the client
// writes b.N blocks of writeSize bytes, spread over the given number of
// concurrent streams, and the server reads and discards them. The figure
// is reported as MB/s, counting payload bytes only.
func BenchmarkThroughput(b *testing.B, newPair BenchFactory, streams, writeSize int) {
	client, server := newPair(b)
	defer client.CloseWithError(jsperr.NoError, "")
	defer server.CloseWithError(jsperr.NoError, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	received := make(chan int64, streams)
	go func() {
		var wg sync.WaitGroup
		for i := 0; i < streams; i++ {
			s, err := server.AcceptStream(ctx)
			if err != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, _ := io.Copy(io.Discard, s)
				s.Close()
				received <- n
			}()
		}
		wg.Wait()
	}()

	buf := make([]byte, writeSize)
	b.SetBytes(int64(writeSize))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		n := b.N / streams
		if i < b.N%streams {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := client.OpenStream(ctx, protocol.ClassBulk)
			if err != nil {
				errs <- err
				return
			}
			for j := 0; j < n; j++ {
				if _, err := s.Write(buf); err != nil {
					errs <- err
					return
				}
			}
			s.Close()
			// Wait for the server's FIN: the data has been read by then.
			io.Copy(io.Discard, s)
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var total int64
	for i := 0; i < streams; i++ {
		total += <-received
	}
	if want := int64(b.N) * int64(writeSize); total != want {
		b.Fatal(fmt.Sprintf("server received %d bytes, want %d", total, want))
	}
}
