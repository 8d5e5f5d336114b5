package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/services/files"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// realKinds are the transports the integration tests run over; each is
// enabled on a 127.0.0.1:0 address.
var realKinds = []transport.Kind{transport.KindQUIC, transport.KindTCP, transport.KindWebSocket}

func allListeners(cfg Config) Config {
	cfg.QUICAddr, cfg.TCPAddr, cfg.WSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"all off", Config{QUICAddr: Off, TCPAddr: Off, WSAddr: Off}, false},
		{"relative ws path", Config{WSPath: "jsp"}, false},
		{"ws path on healthz", Config{WSPath: "/healthz"}, false},
		{"cert without key", Config{CertFile: "c.pem"}, false},
		{"negative grace", Config{DrainGrace: -time.Second}, false},
		{"negative sessions", Config{MaxSessions: -1}, false},
		{"negative per ip", Config{MaxConnsPerIP: -1}, false},
		{"negative handshakes", Config{MaxHandshakes: -1}, false},
		{"negative inflight", Config{MaxInflight: -1}, false},
		{"negative streams", Config{MaxStreamHandlers: -1}, false},
		{"negative file size", Config{MaxFileSize: -1}, false},
	}
	for _, tt := range tests {
		if err := tt.cfg.validate(); (err == nil) != tt.ok {
			t.Errorf("%s: validate = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	var c Config
	c.setDefaults()
	want := Config{
		QUICAddr: ":7400", TCPAddr: ":7400", WSAddr: ":7401", WSPath: "/jsp", DataDir: ".jsp-data",
		DrainGrace: 10 * time.Second, MaxSessions: DefaultMaxSessions, MaxConnsPerIP: DefaultMaxConnsPerIP,
		MaxHandshakes: DefaultMaxHandshakes, MaxInflight: DefaultMaxInflight, MaxStreamHandlers: DefaultMaxStreamHandlers,
		MaxFileSize: files.DefaultMaxFileSize,
	}
	if c.QUICAddr != want.QUICAddr || c.TCPAddr != want.TCPAddr || c.WSAddr != want.WSAddr || c.WSPath != want.WSPath ||
		c.DataDir != want.DataDir || c.DrainGrace != want.DrainGrace || c.MaxSessions != want.MaxSessions ||
		c.MaxConnsPerIP != want.MaxConnsPerIP || c.MaxHandshakes != want.MaxHandshakes || c.MaxInflight != want.MaxInflight ||
		c.MaxStreamHandlers != want.MaxStreamHandlers || c.MaxFileSize != want.MaxFileSize ||
		c.Logger == nil || c.Now == nil || c.Rand == nil || c.Session.Logger == nil {
		t.Fatalf("defaults = %+v", c)
	}
}

// TestIntegration runs the protocol-core features over every real
// transport against one gateway with real TLS.
func TestIntegration(t *testing.T) {
	g := startGateway(t, allListeners(Config{}))
	a := g.Addrs()
	if a.QUIC == nil || a.TCP == nil || a.WebSocket == nil {
		t.Fatalf("Addrs = %+v", a)
	}
	for _, kind := range realKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Run("command", func(t *testing.T) { testCommands(t, g, kind) })
			t.Run("notify", func(t *testing.T) { testNotify(t, g, kind) })
			t.Run("pubsub", func(t *testing.T) { testPubSub(t, g, kind) })
			t.Run("stream", func(t *testing.T) { testStreamEcho(t, g, kind) })
			t.Run("datagram", func(t *testing.T) { testDatagramEcho(t, g, kind) })
			t.Run("message", func(t *testing.T) { testMessageEcho(t, g, kind) })
		})
	}
	t.Run("files", func(t *testing.T) { testFiles(t, g, transport.KindQUIC) })
	t.Run("mixed transports", func(t *testing.T) { testMixedFanOut(t, g) })
}

func command(t *testing.T, s *session.Session, route wire.Route, body string) (*wire.Envelope, error) {
	t.Helper()
	return s.Request(ctxT(t), &wire.Envelope{Route: route, Class: protocol.ClassChat, Body: []byte(body)})
}

func testCommands(t *testing.T, g *testGateway, kind transport.Kind) {
	s := g.dial(t, kind)
	tests := []struct {
		name  string
		route wire.Route
		body  string
		code  jsperr.Code
	}{
		{"echo", wire.Route{Kind: wire.RouteService, Name: "echo"}, "hello " + string(kind), jsperr.NoError},
		{"echo empty", wire.Route{Kind: wire.RouteService, Name: "echo"}, "", jsperr.NoError},
		{"unknown service", wire.Route{Kind: wire.RouteService, Name: "nope"}, "x", jsperr.NotFound},
		{"channel route", wire.Route{Kind: wire.RouteChannel, Name: "echo"}, "x", jsperr.NotFound},
		{"files bad request", wire.Route{Kind: wire.RouteService, Name: "files"}, "list", jsperr.BadRequest},
		{"files missing", wire.Route{Kind: wire.RouteService, Name: "files"}, "stat missing", jsperr.NotFound},
	}
	for _, tt := range tests {
		rep, err := command(t, s, tt.route, tt.body)
		if closeCode(err) != tt.code && !(tt.code == jsperr.NoError && err == nil) {
			t.Fatalf("%s: err %v, want %s", tt.name, err, tt.code)
		}
		if tt.code == jsperr.NoError && string(rep.Body) != tt.body {
			t.Fatalf("%s: reply %q, want %q", tt.name, rep.Body, tt.body)
		}
	}
}

func testNotify(t *testing.T, g *testGateway, kind transport.Kind) {
	s := g.dial(t, kind)
	rep, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: "notify"}, "push me")
	if err != nil || len(rep.Body) != 0 {
		t.Fatalf("notify command: %v, %+v", err, rep)
	}
	in := recvType(t, s, wire.FrameNotify)
	if string(in.Envelope.Body) != "push me" || in.Envelope.Kind != wire.KindNotification || len(in.Envelope.ID) == 0 {
		t.Fatalf("notification = %+v", in.Envelope)
	}
}

func subscribe(t testing.TB, s *session.Session, channel string) {
	t.Helper()
	req := []byte("sub-" + channel)
	if err := s.Send(&wire.Subscribe{Channel: channel, ReqID: req}); err != nil {
		t.Fatal(err)
	}
	in := recvType(t, s, wire.FrameAck)
	if ack := in.Message.(*wire.Ack); len(ack.IDs) != 1 || !bytes.Equal(ack.IDs[0], req) {
		t.Fatalf("ACK = %+v, want id %q", ack, req)
	}
}

func publish(t *testing.T, s *session.Session, channel, body string) {
	t.Helper()
	env := &wire.Envelope{ID: []byte(body), Route: wire.Route{Kind: wire.RouteChannel, Name: channel}, Class: protocol.ClassChat, Body: []byte(body)}
	if err := s.SendEnvelope(wire.FramePublish, env); err != nil {
		t.Fatal(err)
	}
}

func testPubSub(t *testing.T, g *testGateway, kind transport.Kind) {
	channel := "room." + string(kind)
	const subscribers, messages = 3, 20
	var subs []*session.Session
	for range subscribers {
		s := g.dial(t, kind)
		subscribe(t, s, channel)
		subs = append(subs, s)
	}
	pub := g.dial(t, kind)
	for i := range messages {
		publish(t, pub, channel, fmt.Sprint("m", i))
	}
	pubID := hex.EncodeToString(pub.ID())
	for n, s := range subs {
		for i := range messages {
			ev := recvType(t, s, wire.FrameEvent).Envelope
			if ev.Seq != uint64(i+1) || string(ev.Body) != fmt.Sprint("m", i) || ev.Sender != pubID ||
				ev.Route.Name != channel || ev.Kind != wire.KindEvent {
				t.Fatalf("subscriber %d event %d = seq %d body %q sender %q route %v", n, i, ev.Seq, ev.Body, ev.Sender, ev.Route)
			}
		}
	}
	// After UNSUBSCRIBE the first subscriber hears nothing more; the
	// others still do.
	if err := subs[0].Send(&wire.Unsubscribe{Channel: channel, ReqID: []byte("u")}); err != nil {
		t.Fatal(err)
	}
	recvType(t, subs[0], wire.FrameAck)
	publish(t, pub, channel, "after")
	for _, s := range subs[1:] {
		if ev := recvType(t, s, wire.FrameEvent).Envelope; ev.Seq != messages+1 || string(ev.Body) != "after" {
			t.Fatalf("event after unsubscribe = %d %q", ev.Seq, ev.Body)
		}
	}
	// The unsubscribed session gets the reply to a command, not an event.
	if _, err := command(t, subs[0], wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if in, err := subs[0].Recv(ctx); err == nil {
		t.Fatalf("unsubscribed session received %s", in.Type)
	}
}

func testStreamEcho(t *testing.T, g *testGateway, kind transport.Kind) {
	s := g.dial(t, kind)
	ctx := ctxT(t)
	size := 4 << 20
	if testing.Short() {
		size = 256 << 10
	}
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	st, err := s.OpenStream(ctx, protocol.ClassBulk, "echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(data)
		if err == nil {
			err = st.Close()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, st)
	if err != nil {
		t.Fatalf("read echo after %d bytes: %v", n, err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	var got [sha256.Size]byte
	h.Sum(got[:0])
	if n != int64(len(data)) || got != want {
		t.Fatalf("echoed %d bytes, sha256 %x, want %d bytes %x", n, got, len(data), want)
	}
	// An unknown label is refused.
	st2, err := s.OpenStream(ctx, protocol.ClassBulk, "no.such.label", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = st2.Close()
	if _, err := io.ReadAll(st2); err == nil {
		t.Fatal("stream with an unknown label was not reset")
	}
}

func testDatagramEcho(t *testing.T, g *testGateway, kind transport.Kind) {
	s := g.dial(t, kind)
	ctx := ctxT(t)
	// Datagrams may be lost even on loopback; send until one comes back.
	// A resent datagram of an earlier size may still echo after its size
	// is done: those are skipped, anything else is a wrong echo.
	var earlier [][]byte
	for _, size := range []int{10, 3000} { // 3000 needs fragmentation
		payload := bytes.Repeat([]byte{byte(size)}, size)
		got := make(chan []byte, 1)
		rctx, cancel := context.WithCancel(ctx)
		stale := earlier
		go func() {
			defer close(got)
			for {
				b, err := s.ReceiveDatagram(rctx)
				if err != nil {
					return
				}
				if !slices.ContainsFunc(stale, func(p []byte) bool { return bytes.Equal(p, b) }) {
					got <- b
					return
				}
			}
		}()
		earlier = append(earlier, payload)
		tick := time.NewTicker(50 * time.Millisecond)
	loop:
		for {
			if err := s.SendDatagram(payload, protocol.ClassMedia); err != nil {
				t.Fatalf("SendDatagram(%d): %v", size, err)
			}
			select {
			case b := <-got:
				if !bytes.Equal(b, payload) {
					t.Fatalf("echoed datagram of %d bytes, want %d", len(b), size)
				}
				break loop
			case <-tick.C:
			case <-ctx.Done():
				t.Fatalf("no datagram echo of %d bytes", size)
			}
		}
		tick.Stop()
		cancel()
		for range got {
		}
	}
}

func testMessageEcho(t *testing.T, g *testGateway, kind transport.Kind) {
	s := g.dial(t, kind)
	ctx := ctxT(t)
	sender := hex.EncodeToString(s.ID())
	newEnv := func(mode session.Delivery) *wire.Envelope {
		env := &wire.Envelope{
			Route: wire.Route{Kind: wire.RouteUser, Name: "me"},
			Class: protocol.ClassChat,
			Body:  []byte("mixed " + mode.String()),
		}
		if mode == session.DeliveryPartial {
			env.TTL = 10000
		}
		return env
	}
	check := func(in session.Incoming, mode session.Delivery) {
		t.Helper()
		if in.Type != wire.FrameMessage || string(in.Envelope.Body) != "mixed "+mode.String() || in.Delivery != mode || in.Envelope.Sender != sender {
			t.Fatalf("%s: echo %s %q via %s sender %q", mode, in.Type, in.Envelope.Body, in.Delivery, in.Envelope.Sender)
		}
	}
	for _, mode := range []session.Delivery{session.DeliveryOrdered, session.DeliveryUnordered, session.DeliveryPartial} {
		if err := s.SendMessage(ctx, newEnv(mode), mode); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		check(recvType(t, s, wire.FrameMessage), session.Delivery(mode))
	}
	// Unreliable messages may be lost, even on loopback: resend until an
	// echo arrives. It is the last mode tested, so late duplicates do not
	// matter.
	for {
		if err := s.SendMessage(ctx, newEnv(session.DeliveryUnreliable), session.DeliveryUnreliable); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		in, err := s.Recv(rctx)
		cancel()
		if err == nil {
			check(in, session.DeliveryUnreliable)
			return
		}
		if ctx.Err() != nil {
			t.Fatal("no echo of an unreliable message")
		}
	}
}

func testFiles(t *testing.T, g *testGateway, kind transport.Kind) {
	s := g.dial(t, kind)
	ctx := ctxT(t)
	data := make([]byte, 256<<10+123)
	rand.Read(data)
	d := sha256.Sum256(data)
	sum := hex.EncodeToString(d[:])
	st, err := s.OpenStream(ctx, protocol.ClassBulk, files.LabelPut, map[string]string{
		files.MetaName: "upload.bin", files.MetaSize: fmt.Sprint(len(data)), files.MetaSHA256: sum,
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if _, err := st.Write(data); err == nil {
			_ = st.Close()
		}
	}()
	status, err := io.ReadAll(st)
	if err != nil || string(status) != fmt.Sprintf("OK %d %s\n", len(data), sum) {
		t.Fatalf("put status %q, %v", status, err)
	}
	rep, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: files.Command}, "stat upload.bin")
	if err != nil {
		t.Fatal(err)
	}
	var info files.Info
	if err := json.Unmarshal(rep.Body, &info); err != nil || info.Size != int64(len(data)) || info.SHA256 != sum {
		t.Fatalf("stat = %s", rep.Body)
	}
	get, err := s.OpenStream(ctx, protocol.ClassBulk, files.LabelGet, map[string]string{files.MetaName: "upload.bin"})
	if err != nil {
		t.Fatal(err)
	}
	_ = get.Close()
	all, err := io.ReadAll(get)
	if err != nil {
		t.Fatal(err)
	}
	header, body, _ := strings.Cut(string(all), "\n")
	if header != fmt.Sprintf("OK %d %s", len(data), sum) || body != string(data) {
		t.Fatalf("get: header %q, %d bytes", header, len(body))
	}
	// A traversal attempt is refused with a status line.
	bad, err := s.OpenStream(ctx, protocol.ClassBulk, files.LabelPut, map[string]string{
		files.MetaName: "../../escape", files.MetaSize: "1", files.MetaSHA256: sum,
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = bad.Close()
	status, _ = io.ReadAll(bad)
	if !strings.HasPrefix(string(status), "ERR BAD_REQUEST ") {
		t.Fatalf("traversal status %q", status)
	}
}

// testMixedFanOut publishes from one transport to subscribers on all the
// others.
func testMixedFanOut(t *testing.T, g *testGateway) {
	const channel = "mixed"
	var subs []*session.Session
	for _, k := range append(slices.Clone(realKinds), transport.KindMem) {
		s := g.dial(t, k)
		subscribe(t, s, channel)
		subs = append(subs, s)
	}
	publish(t, subs[0], channel, "to all")
	var wg sync.WaitGroup
	errs := make(chan error, len(subs))
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, err := s.Recv(ctxT(t))
			if err != nil || in.Type != wire.FrameEvent || string(in.Envelope.Body) != "to all" {
				errs <- fmt.Errorf("over %s: %v %v", s.Conn().Kind(), in.Type, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
