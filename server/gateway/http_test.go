package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

func (g *testGateway) httpClient(t *testing.T) *http.Client {
	t.Helper()
	tc := g.clientTLS(t)
	tc.NextProtos = []string{"http/1.1"}
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHealthAndMetrics(t *testing.T) {
	g := startGateway(t, Config{QUICAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", DrainGrace: time.Hour})
	base := "https://" + g.Addrs().WebSocket.String()
	c := g.httpClient(t)
	s := g.dial(t, transport.KindQUIC)
	if _, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one session", func() bool { return g.Health().Sessions == 1 })
	// A session holds a hub subscriber once it has subscribed (D34).
	if st := g.hub.Stats(); st.Subscribers != 0 {
		t.Fatalf("%d hub subscribers before any SUBSCRIBE, want 0", st.Subscribers)
	}
	subscribe(t, s, "metrics")

	code, body := get(t, c, base+"/healthz")
	var h Health
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusOK || h.Status != "ok" ||
		h.Sessions != 1 || h.Transports["quic"] != 1 || h.Transports["tcp"] != 0 {
		t.Fatalf("/healthz = %d %s (%v)", code, body, err)
	}
	code, body = get(t, c, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics status %d", code)
	}
	for _, want := range []string{
		`jsp_sessions{transport="quic"} 1`,
		`jsp_sessions_accepted_total{transport="quic"} 1`,
		`jsp_messages_in_total{type="COMMAND"} 1`,
		`jsp_messages_in_total{type="SUBSCRIBE"} 1`,
		`jsp_messages_out_total{type="REPLY"} 1`,
		"jsp_pubsub_subscribers 1",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if code, _ := get(t, c, base+"/nothing"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}

	// While draining, /healthz says so with 503 for load balancers.
	ctx, cancel := context.WithCancel(context.Background())
	shut := make(chan error, 1)
	go func() { shut <- g.Shutdown(ctx) }()
	<-s.GoingAway()
	code, body = get(t, c, base+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"status":"draining"`) {
		t.Fatalf("/healthz while draining = %d %s", code, body)
	}
	cancel()
	<-shut
}
