package websocket_test

import (
	"context"
	"testing"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// BenchmarkDatagrams measures one small datagram at a time over wss://,
// from the server to the client (a fan-out delivery: the server's write
// path) and back (the server's read path). Both ends run in this process;
// the client end is the WebSocket library's either way.
func BenchmarkDatagrams(b *testing.B) {
	l, clientTLS, url := listen(b)
	c, s := dialAccept(b, l, url, clientTLS)
	defer c.CloseWithError(0, "")
	defer s.CloseWithError(0, "")
	ctx := context.Background()
	msg := make([]byte, 200)
	for _, dir := range []struct {
		name     string
		from, to interface {
			SendDatagram([]byte, protocol.Class) error
			ReceiveDatagram(context.Context) ([]byte, error)
		}
	}{{"down", s, c}, {"up", c, s}} {
		b.Run(dir.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := dir.from.SendDatagram(msg, protocol.ClassChat); err != nil {
					b.Fatal(err)
				}
				if _, err := dir.to.ReceiveDatagram(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
