package gateway

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
)

// idleSessions is how many sessions TestIdleSessionFootprint opens per
// transport: enough to average out the noise, few enough for a quick test.
const idleSessions = 40

// maxIdleGoroutinesPerPair bounds the goroutines one idle session costs
// this process with both ends in it, over the in-memory pipe and TLS/TCP
// (both mux links, which report input by callback): the two link readers
// (the in-memory pipe's included). The link writers, the session senders,
// control readers, stream and datagram intake and the gateway host's
// message hand-off run only while there is work (D27, D34). The bound is
// a behaviour (goroutines that only wait are folded, D24, D27, D34), not
// a speed.
const maxIdleGoroutinesPerPair = 2

// maxIdleGoroutinesPerQUICPair is the same bound over QUIC, where quic-go
// has no readiness callbacks: per end, quic-go's connection loop and send
// queue and the session's control reader, blocked (3 on the gateway end);
// the client end also runs its stream acceptor and datagram receiver, and
// its own quic-go Transport's socket reader and send queue (7). The
// gateway end starts its acceptor and receiver only when the client
// announces streams or datagrams (JSP §5.14, D38), which an idle client
// never does (12 before); the gateway host holds none (D34).
const maxIdleGoroutinesPerQUICPair = 10

// TestIdleSessionFootprint reports the Go heap and goroutines one idle
// session costs (client and gateway ends together, both in this process),
// and checks the goroutine count. The heap figure is reported only.
func TestIdleSessionFootprint(t *testing.T) {
	for _, kind := range []transport.Kind{transport.KindMem, transport.KindTCP, transport.KindQUIC} {
		t.Run(string(kind), func(t *testing.T) {
			bound := float64(maxIdleGoroutinesPerPair)
			if kind == transport.KindQUIC {
				bound = maxIdleGoroutinesPerQUICPair
			}
			g := startGateway(t, Config{TCPAddr: "127.0.0.1:0", QUICAddr: "127.0.0.1:0"})
			// A first session warms up pools and lazily built state.
			warm := g.dial(t, kind)
			waitSessions(t, g, 1)
			g0, h0 := settledFootprint()
			var open []*session.Session
			for range idleSessions {
				open = append(open, g.dial(t, kind))
			}
			waitSessions(t, g, idleSessions+1)
			g1, h1 := settledFootprint()
			perG := float64(g1-g0) / idleSessions
			perH := float64(int64(h1)-int64(h0)) / idleSessions
			t.Logf("%s: %.1f goroutines and %.0f heap bytes per idle session (client and gateway ends)", kind, perG, perH)
			if perG > bound {
				t.Errorf("%.1f goroutines per idle session, want at most %.0f", perG, bound)
			}
			for _, s := range open {
				_ = s.Close()
			}
			_ = warm.Close()
			waitSessions(t, g, 0)
		})
	}
}

// waitSessions waits until the gateway hosts n sessions.
func waitSessions(t *testing.T, g *testGateway, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d sessions", n), func() bool { return g.Health().Sessions == n })
}

// settledFootprint returns the goroutine count and live heap bytes once the
// goroutine count has stopped moving (sessions start their loops after
// the gateway has counted them).
func settledFootprint() (int, uint64) {
	n, same := runtime.NumGoroutine(), 0 // settles the sessions' start
	for deadline := time.Now().Add(5 * time.Second); same < 5 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	// Writers and senders give their batch buffers back, and end, after
	// 200 ms without work (D24, D27); measure after that.
	// Two collections: a sync.Pool keeps what it holds through one.
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}
