package gateway

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
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

// maxIdleServerGoroutinesWS bounds the goroutines the gateway end of an
// idle wss:// session costs, on average over idleSessions: none, as on
// plain WebSocket behind a proxy and TLS/TCP (D33, D40). The fraction
// leaves room for one gateway-wide goroutine that starts meanwhile.
const maxIdleServerGoroutinesWS = 0.1

// clientLabel marks the goroutines of the test's client ends (pprof
// labels pass to the goroutines a labelled one starts), so that the
// gateway's can be counted apart.
var clientLabel = pprof.Labels("idle-end", "client")

// gatewayGoroutines counts the goroutines without clientLabel.
func gatewayGoroutines() int {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	n, group := 0, 0
	for line := range strings.Lines(b.String()) {
		if c, _, ok := strings.Cut(line, " @ "); ok {
			if k, err := strconv.Atoi(c); err == nil {
				n, group = n+group, k
				continue
			}
		}
		if strings.HasPrefix(line, "# labels:") && strings.Contains(line, `"idle-end":"client"`) {
			group = 0
		}
	}
	return n + group
}

// TestIdleSessionFootprint reports the Go heap and goroutines one idle
// session costs (client and gateway ends together, both in this process),
// and checks the goroutine count. The heap figure is reported only.
func TestIdleSessionFootprint(t *testing.T) {
	for _, kind := range []transport.Kind{transport.KindMem, transport.KindTCP, transport.KindWebSocket, transport.KindQUIC} {
		t.Run(string(kind), func(t *testing.T) {
			bound := float64(maxIdleGoroutinesPerPair)
			if kind == transport.KindQUIC {
				bound = maxIdleGoroutinesPerQUICPair
			}
			g := startGateway(t, Config{TCPAddr: "127.0.0.1:0", QUICAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
			// A first session warms up pools and lazily built state.
			warm := g.dial(t, kind)
			waitSessions(t, g, 1)
			g0, h0 := settledFootprint()
			s0 := gatewayGoroutines()
			var open []*session.Session
			pprof.Do(context.Background(), clientLabel, func(context.Context) {
				for range idleSessions {
					open = append(open, g.dial(t, kind))
				}
			})
			waitSessions(t, g, idleSessions+1)
			g1, h1 := settledFootprint()
			s1 := gatewayGoroutines()
			perG := float64(g1-g0) / idleSessions
			perS := float64(s1-s0) / idleSessions
			perH := float64(int64(h1)-int64(h0)) / idleSessions
			t.Logf("%s: %.1f goroutines (%.2f on the gateway end) and %.0f heap bytes per idle session (client and gateway ends)", kind, perG, perS, perH)
			if kind == transport.KindWebSocket {
				// The client end runs on the WebSocket library, whose
				// connections hold goroutines of their own; the bound
				// is on the gateway's end.
				if perS > maxIdleServerGoroutinesWS {
					t.Errorf("%.2f gateway goroutines per idle wss session, want none", perS)
				}
			} else if perG > bound {
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
