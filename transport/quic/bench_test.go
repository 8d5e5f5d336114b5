package quic

import (
	"io"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// BenchmarkStreamTransfer64MiB sends 64 MiB on one stream over loopback per
// iteration; the server reads it to the end and answers with an empty FIN.
// The "gso" metric is 1 when quic-go sends with GSO.
func BenchmarkStreamTransfer64MiB(b *testing.B) {
	const size = 64 << 20
	client, server := pair(b, Config{}, Config{})
	ctx := testCtx(b, 10*time.Minute)

	serverErr := make(chan error, 1)
	go func() {
		for {
			s, err := server.AcceptStream(ctx)
			if err != nil {
				serverErr <- nil // connection closed at the end
				return
			}
			if _, err := io.Copy(io.Discard, s); err != nil {
				serverErr <- err
				return
			}
			s.Close()
		}
	}()

	chunk := make([]byte, 64<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		s, err := client.OpenStream(ctx, protocol.ClassBulk)
		if err != nil {
			b.Fatal(err)
		}
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := s.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		if _, err := io.Copy(io.Discard, s); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	gso := 0.0
	if client.GSO() {
		gso = 1
	}
	b.ReportMetric(gso, "gso")
	client.CloseWithError(0, "")
	server.CloseWithError(0, "")
	if err := <-serverErr; err != nil {
		b.Fatal(err)
	}
}
