package mux_test

import (
	"fmt"
	"testing"

	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/transporttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) (transport.Conn, transport.Conn) {
		c, s := memtransport.NewPair(mux.Config{})
		return c, s
	})
}

func BenchmarkThroughput(b *testing.B) {
	for _, streams := range []int{1, 4} {
		b.Run(fmt.Sprintf("mem/streams=%d", streams), func(b *testing.B) {
			transporttest.BenchmarkThroughput(b, func(b *testing.B) (transport.Conn, transport.Conn) {
				c, s := memtransport.NewPair(mux.Config{})
				return c, s
			}, streams, 64<<10)
		})
	}
}
