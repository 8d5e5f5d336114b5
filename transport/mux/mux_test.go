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
	cases := []struct{ streams, size int }{{1, 64 << 10}, {4, 64 << 10}, {4, 256}}
	for _, tc := range cases {
		b.Run(fmt.Sprintf("mem/streams=%d/write=%d", tc.streams, tc.size), func(b *testing.B) {
			var client *mux.Conn
			transporttest.BenchmarkThroughput(b, func(b *testing.B) (transport.Conn, transport.Conn) {
				c, s := memtransport.NewPair(mux.Config{})
				client = c
				return c, s
			}, tc.streams, tc.size)
			st := client.Stats()
			b.ReportMetric(float64(st.FramesWritten)/float64(st.Writes), "frames/write")
		})
	}
}
