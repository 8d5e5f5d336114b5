package gateway

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

func TestHistogram(t *testing.T) {
	h := newHistogram("jsp_x_seconds", "X.")
	for _, d := range []time.Duration{100 * time.Microsecond, 3 * time.Millisecond, time.Minute, -time.Second} {
		h.observe(d)
	}
	var b strings.Builder
	bw := bufio.NewWriter(&b)
	h.write(bw)
	_ = bw.Flush()
	out := b.String()
	for _, want := range []string{
		"# TYPE jsp_x_seconds histogram\n",
		`jsp_x_seconds_bucket{le="0.0005"} 2` + "\n", // the negative one counts as 0
		`jsp_x_seconds_bucket{le="0.005"} 3` + "\n",
		`jsp_x_seconds_bucket{le="10"} 3` + "\n",
		`jsp_x_seconds_bucket{le="+Inf"} 4` + "\n",
		"jsp_x_seconds_count 4\n",
		"jsp_x_seconds_sum 60.0031\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

// TestOpsMetrics publishes through a core and checks the class,
// direction and latency metrics it leaves.
func TestOpsMetrics(t *testing.T) {
	f := newClusterFixture(t, embeddedBus(t))
	g := f.gateway(t, "gw-metrics")
	// Subscriber and publisher on separate sessions: publishAcked skips
	// the events that arrive before the ACK.
	s := g.dial(t, transport.KindMem)
	if err := s.Send(&wire.Subscribe{Channel: "m", ReqID: []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	recvType(t, s, wire.FrameAck)
	pub := g.dial(t, transport.KindMem)
	if err := publishAcked(t, pub, "m", "p1", "hello"); err != nil {
		t.Fatal(err)
	}
	recvType(t, s, wire.FrameEvent)
	// The hub counts an EVENT once it is queued on the session (D26),
	// which may be after the client has read it.
	var out string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		var b strings.Builder
		if err := g.WriteMetrics(&b); err != nil {
			t.Fatal(err)
		}
		out = b.String()
		if strings.Contains(out, `jsp_messages_total{class="chat",direction="out"} 1`+"\n") || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{
		`jsp_messages_total{class="chat",direction="in"} 1`,
		`jsp_messages_total{class="chat",direction="out"} 1`,
		`jsp_messages_total{class="system",direction="in"} 1`, // the SUBSCRIBE
		`jsp_sessions{transport="mem"} 2`,
		"jsp_handshake_seconds_count 2",
		"jsp_publish_commit_seconds_count 1",
		"jsp_delivery_seconds_count 1",
		`jsp_queue_depth{queue="publish"} 0`,
		`jsp_drops_total{reason="rate_limited"} 0`,
		`jsp_bus_errors_total{op="core_request"} 0`,
		"jsp_store_errors_total 0",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestReadyz checks that /readyz follows the dependency checks and the
// drain.
func TestReadyz(t *testing.T) {
	failing := errors.New("bus down")
	var fail bool
	g := startGateway(t, Config{ReadyChecks: map[string]ReadyCheck{"bus": func(*http.Request) error {
		if fail {
			return failing
		}
		return nil
	}}})
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		g.serveReady(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != 200 || body != "ready\n" {
		t.Fatalf("ready: %d %q", code, body)
	}
	fail = true
	if code, body := get(); code != 503 || !strings.Contains(body, "bus: bus down") {
		t.Fatalf("bus down: %d %q", code, body)
	}
	fail = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.Shutdown(ctx)
	if code, body := get(); code != 503 || !strings.Contains(body, "gateway draining") {
		t.Fatalf("draining: %d %q", code, body)
	}
}

// TestSweepSessions checks the storage side of the janitor: records of a
// gateway that stopped touching them are closed, closed records past the
// retention are deleted.
func TestSweepSessions(t *testing.T) {
	f := newClusterFixture(t, embeddedBus(t))
	ctx := context.Background()
	for _, id := range []string{"old-open", "old-closed"} {
		if _, err := f.store.UpsertSession(ctx, storage.Session{ID: id, UserID: "u", Gateway: "gone"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.CloseSession(ctx, "old-closed"); err != nil {
		t.Fatal(err)
	}
	// Ten minutes on: the open record missed three touches and closes;
	// the closed one is within the retention and stays.
	var clock atomic.Int64
	clock.Store(time.Now().Add(10 * time.Minute).UnixNano())
	g := startGateway(t, Config{Sessions: f.store, NodeID: "sweeper", Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	g.sweepSessions(ctx)
	if s, err := f.store.GetSession(ctx, "old-open"); err != nil || s.Open() {
		t.Fatalf("stale open record: %+v %v", s, err)
	}
	if _, err := f.store.GetSession(ctx, "old-closed"); err != nil {
		t.Fatalf("closed record within retention: %v", err)
	}
	// Past the retention both go.
	clock.Store(time.Now().Add(DefaultSessionRetention + time.Hour).UnixNano())
	g.sweepSessions(ctx)
	for _, id := range []string{"old-open", "old-closed"} {
		if _, err := f.store.GetSession(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s past retention: %v", id, err)
		}
	}
}
