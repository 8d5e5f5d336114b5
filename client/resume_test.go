package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/sqlite"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// clusterServer is an in-process gateway in bus mode: membus, a core and
// a SQLite store, so PUBLISHes are committed and ACKed and sessions are
// resumable.
type clusterServer struct {
	g     *gateway.Gateway
	store storage.Store
	pin   tlsconf.Fingerprint
	addr  string // TCP listener
}

func startClusterServer(t *testing.T, mod func(*gateway.Config)) *clusterServer {
	t.Helper()
	b, err := membus.New(membus.Config{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	dir := t.TempDir()
	st, err := storage.Open(context.Background(), "sqlite:"+dir+"/jsp.db", storage.Config{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	co, err := core.New(core.Config{Bus: b, Store: st, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = co.Close() })
	cfg := gateway.Config{QUICAddr: gateway.Off, TCPAddr: "127.0.0.1:0", WSAddr: gateway.Off, DataDir: dir,
		Bus: b, Sessions: st, Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = g.Close()
		<-done
	})
	return &clusterServer{g: g, store: st, pin: g.Cert().Pin, addr: g.Addrs().TCP.String()}
}

func (s *clusterServer) options() client.Options {
	o := client.Options{Pins: []tlsconf.Fingerprint{s.pin}, Logger: quietLogger()}
	o.Reconnect.Enabled = true
	o.Reconnect.InitialBackoff = 10 * time.Millisecond
	o.Reconnect.MaxBackoff = 100 * time.Millisecond
	o.Recovery.AckDelay = 20 * time.Millisecond
	return o
}

func (s *clusterServer) dial(t *testing.T, addr string, o client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(ctxT(t), "jsp+tcp://"+addr, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// cutProxy forwards TCP connections to a target; cut drops every open
// connection at once, as a network failure does (no TLS close_notify, no
// JSP close code), and down refuses new ones until up.
type cutProxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu
	down  bool                  // guarded by mu
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.l.Addr().String() }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		for _, pair := range [][2]net.Conn{{in, out}, {out, in}} {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(pair[0], pair[1])
				_ = pair[0].Close()
				_ = pair[1].Close()
			}()
		}
	}
}

// cut closes every open connection.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// received collects a subscription's events.
type received struct {
	mu   sync.Mutex
	seqs []uint64
	body []string
	more chan struct{}
}

func newReceived() *received { return &received{more: make(chan struct{}, 1)} }

func (r *received) handler(e client.Event) {
	r.mu.Lock()
	r.seqs = append(r.seqs, e.Seq)
	r.body = append(r.body, string(e.Body))
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

// waitCount waits until n events arrived.
func (r *received) waitCount(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		r.mu.Lock()
		got := len(r.seqs)
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.more:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("received %d events, want %d: %v", len(r.seqs), n, r.seqs)
		}
	}
}

// checkContiguous fails unless the events are exactly from..to in order.
func (r *received) checkContiguous(t *testing.T, from, to uint64) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if uint64(len(r.seqs)) != to-from+1 {
		t.Fatalf("received %d events %v, want %d..%d", len(r.seqs), r.seqs, from, to)
	}
	for i, s := range r.seqs {
		if s != from+uint64(i) {
			t.Fatalf("event %d has seq %d, want %d (all: %v)", i, s, from+uint64(i), r.seqs)
		}
	}
}

// TestResumeAfterNetworkCut cuts a subscriber's and publisher's network
// repeatedly while messages flow: each cut is followed by a RESUME, the
// subscriber receives every message once and in order, and every message
// the publisher published during the cuts is stored once. It logs the
// time from each cut to the resumed session (p50, p99).
func TestResumeAfterNetworkCut(t *testing.T) {
	srv := startClusterServer(t, nil)
	proxy := newCutProxy(t, srv.addr)
	resumedAt := make(chan time.Time, 64)
	o := srv.options()
	o.Reconnect.OnResumed = func(client.ConnInfo) { resumedAt <- time.Now() }
	sub := srv.dial(t, proxy.addr(), o)
	got := newReceived()
	if _, err := sub.Subscribe(ctxT(t), "cut", got.handler); err != nil {
		t.Fatal(err)
	}
	pubOpts := srv.options()
	pubOpts.Reconnect.OnResumed = func(client.ConnInfo) {}
	pub := srv.dial(t, proxy.addr(), pubOpts)

	const cuts, perRound = 10, 20
	var resumeTimes []time.Duration
	total := 0
	for round := range cuts {
		errs := make(chan error, perRound)
		var wg sync.WaitGroup
		for i := range perRound {
			wg.Go(func() {
				// PublishAcked waits through the cut: the PUBLISH is sent
				// again on the resumed session with the same id.
				errs <- pub.PublishAcked(ctxT(t), "cut", fmt.Appendf(nil, "r%d-%d", round, i))
			})
			if i == perRound/2 {
				cutAt := time.Now()
				proxy.cut()
				select {
				case at := <-resumedAt:
					resumeTimes = append(resumeTimes, at.Sub(cutAt))
				case <-time.After(testTimeout):
					t.Fatalf("round %d: subscriber not resumed", round)
				}
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		total += perRound
	}
	got.waitCount(t, total)
	got.checkContiguous(t, 1, uint64(total))
	info, err := srv.store.ChannelInfo(ctxT(t), "cut")
	if err != nil || info.Last != storage.Seq(total) {
		t.Fatalf("stored %+v %v, want %d messages", info, err, total)
	}
	st := sub.Stats()
	if st.Resumes < cuts {
		t.Fatalf("subscriber resumed %d times in %d cuts (stats %+v)", st.Resumes, cuts, st)
	}
	sort.Slice(resumeTimes, func(i, j int) bool { return resumeTimes[i] < resumeTimes[j] })
	t.Logf("network cuts: %d; messages published %d, stored %d, received %d; subscriber resumes %d, duplicates dropped %d; "+
		"publisher resumes %d, PUBLISHes resent %d; time from cut to resumed p50 %v p99 %v",
		cuts, total, info.Last, len(got.seqs), st.Resumes, st.Duplicates, pub.Stats().Resumes, pub.Stats().Resent,
		resumeTimes[len(resumeTimes)/2], resumeTimes[len(resumeTimes)*99/100])
}

// TestRecoveryFailedRefetchesHistory: the subscriber is cut off while
// messages are published and trimmed; its resume gets RECOVERY_IMPOSSIBLE,
// the app is told, and the latest history and then live events follow in
// order.
func TestRecoveryFailedRefetchesHistory(t *testing.T) {
	srv := startClusterServer(t, nil)
	proxy := newCutProxy(t, srv.addr)
	failed := make(chan string, 4)
	o := srv.options()
	o.Recovery.RecoveryHistory = 3
	o.Recovery.OnRecoveryFailed = func(ch string) { failed <- ch }
	sub := srv.dial(t, proxy.addr(), o)
	got := newReceived()
	if _, err := sub.Subscribe(ctxT(t), "trim", got.handler, client.Since(0)); err != nil {
		t.Fatal(err)
	}
	pub := srv.dial(t, srv.addr, srv.options())
	if err := pub.PublishAcked(ctxT(t), "trim", []byte("m1")); err != nil {
		t.Fatal(err)
	}
	got.waitCount(t, 1)
	time.Sleep(3 * o.Recovery.AckDelay) // the cursor 1 reaches the server

	proxy.setDown(true)
	proxy.cut()
	for i := 2; i <= 10; i++ {
		if err := pub.PublishAcked(ctxT(t), "trim", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.store.TrimMessages(ctxT(t), "trim", 5); err != nil {
		t.Fatal(err)
	}
	proxy.setDown(false)
	select {
	case ch := <-failed:
		if ch != "trim" {
			t.Fatalf("OnRecoveryFailed(%q)", ch)
		}
	case <-time.After(testTimeout):
		t.Fatal("OnRecoveryFailed not called")
	}
	// The latest 3 of the retained 6..10 are delivered after 1.
	got.waitCount(t, 4)
	if err := pub.PublishAcked(ctxT(t), "trim", []byte("m11")); err != nil {
		t.Fatal(err)
	}
	got.waitCount(t, 5)
	got.mu.Lock()
	defer got.mu.Unlock()
	if want := []uint64{1, 8, 9, 10, 11}; !slices.Equal(got.seqs, want) {
		t.Fatalf("received %v, want %v", got.seqs, want)
	}
	if st := sub.Stats(); st.RecoveryFailures != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestGapRepairedFromHistory: a replay capped by the gateway's MaxReplay
// leaves a gap before the next live event; the SDK fetches the missing
// events from history and delivers everything in order.
func TestGapRepairedFromHistory(t *testing.T) {
	srv := startClusterServer(t, func(c *gateway.Config) { c.MaxReplay = 3 })
	pub := srv.dial(t, srv.addr, srv.options())
	for i := 1; i <= 10; i++ {
		if err := pub.PublishAcked(ctxT(t), "gap", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	sub := srv.dial(t, srv.addr, srv.options())
	got := newReceived()
	if _, err := sub.Subscribe(ctxT(t), "gap", got.handler, client.Since(0)); err != nil {
		t.Fatal(err)
	}
	got.waitCount(t, 3)
	if err := pub.PublishAcked(ctxT(t), "gap", []byte("m11")); err != nil {
		t.Fatal(err)
	}
	got.waitCount(t, 11)
	got.checkContiguous(t, 1, 11)
	if st := sub.Stats(); st.GapsSkipped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// PublishAcked against a server without storage fails with ErrNoAcks
// instead of waiting for an ACK that never comes.
func TestPublishAckedWithoutStorage(t *testing.T) {
	srv := startServer(t, serverOpts{noWS: true})
	c := srv.dial(t, client.SchemeTCP)
	if err := c.PublishAcked(ctxT(t), "x", []byte("y")); !errors.Is(err, client.ErrNoAcks) {
		t.Fatalf("PublishAcked: %v, want ErrNoAcks", err)
	}
}

func TestRecoveryOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*client.RecoveryOptions)
	}{
		{"negative AckEvery", func(r *client.RecoveryOptions) { r.AckEvery = -1 }},
		{"negative AckDelay", func(r *client.RecoveryOptions) { r.AckDelay = -1 }},
		{"negative ReorderLimit", func(r *client.RecoveryOptions) { r.ReorderLimit = -1 }},
		{"negative RepairTimeout", func(r *client.RecoveryOptions) { r.RepairTimeout = -1 }},
		{"negative RecoveryHistory", func(r *client.RecoveryOptions) { r.RecoveryHistory = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o client.Options
			tt.mod(&o.Recovery)
			if _, err := client.Dial(context.Background(), "jsp+tcp://127.0.0.1:1", o); err == nil {
				t.Fatal("Dial accepted invalid RecoveryOptions")
			}
		})
	}
}
