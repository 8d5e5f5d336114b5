package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// heldCore is a fake core on the bus: it answers publishes at once, except
// those to channel hold, which wait until release is closed. It logs the
// publishes it receives as channel:messages; the test adds the release.
type heldCore struct {
	hold    string
	release chan struct{}

	mu  sync.Mutex
	log []string
	got chan string // each publish's channel as it arrives
}

func (c *heldCore) handle(b bus.Bus) func(*bus.Msg) {
	return func(m *bus.Msg) {
		req, err := core.DecodeRequest(m.Data, nil)
		if err != nil || req.Op != core.OpPublish {
			data, _ := json.Marshal(&core.Reply{})
			_ = b.Publish(m.Reply, bus.Msg{Data: data})
			return
		}
		n := len(req.Messages)
		if req.Message != nil {
			n = 1
		}
		c.mu.Lock()
		c.log = append(c.log, fmt.Sprintf("%s:%d", req.Channel, n))
		c.mu.Unlock()
		c.got <- req.Channel
		reply := func() {
			rep := core.Reply{Seq: 1}
			if n > 1 || req.Message == nil {
				rep = core.Reply{Results: make([]core.PublishResult, n)}
			}
			data, _ := json.Marshal(&rep)
			_ = b.Publish(m.Reply, bus.Msg{Data: data})
		}
		if req.Channel != c.hold {
			reply()
			return
		}
		// Answered from its own goroutine, so the bus keeps delivering
		// the requests behind it (as the core's lanes do).
		go func() {
			<-c.release
			reply()
		}()
	}
}

// TestPublishRounds checks that a session's publish rounds are committed
// concurrently across channels (D36): while a round's request to one
// channel is held in the core, the next round's request to another channel
// is sent and committed, the later PUBLISHes to the held channel wait for
// it and then go as one request, and the ACKs still come in the order
// sent (JSP §5.6). With one round at a time (D23) the second request is
// never sent while the first is held.
func TestPublishRounds(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	subj, err := bus.NewSubjects(core.DefaultCluster)
	if err != nil {
		t.Fatal(err)
	}
	fc := &heldCore{hold: "slow", release: make(chan struct{}), got: make(chan string, 16)}
	for i := range core.DefaultShards {
		sub, err := b.QueueSubscribe(subj.CoreCmd(i), bus.CoreQueue, fc.handle(b))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	released := false
	defer func() {
		if !released {
			close(fc.release)
		}
	}()
	// A window of two PUBLISHes, so that two waiting for one channel can
	// go as one request; room for 16 unanswered.
	g := startGateway(t, Config{Bus: b, NodeID: "gw", PublishWindow: 2, PublishRounds: 8})
	pub := g.dial(t, transport.KindMem)
	send := func(id, channel string) {
		t.Helper()
		env := &wire.Envelope{ID: []byte(id), Route: wire.Route{Kind: wire.RouteChannel, Name: channel}, Class: protocol.ClassChat,
			Timestamp: 1_700_000_000_000, Body: []byte(id)}
		if err := pub.SendEnvelope(wire.FramePublish, env); err != nil {
			t.Fatal(err)
		}
	}
	wantGot := func(channel string) {
		t.Helper()
		select {
		case got := <-fc.got:
			if got != channel {
				t.Fatalf("core got a publish to %q, want %q", got, channel)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no publish to %q reached the core while %q is held", channel, fc.hold)
		}
	}
	send("p1", "slow")
	wantGot("slow")
	send("p2", "fast")
	wantGot("fast")
	send("p3", "slow") // waits for p1
	send("p4", "fast")
	wantGot("fast")
	send("p5", "slow") // joins p3's request
	// p5 is in the session's queue once p6, sent after it on the same
	// stream, has reached the core.
	send("p6", "fast")
	wantGot("fast")
	fc.mu.Lock()
	fc.log = append(fc.log, "release")
	fc.mu.Unlock()
	close(fc.release)
	released = true
	wantGot("slow")

	var acked []string
	for len(acked) < 6 {
		in, err := pub.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("after ACKs %q: %v", acked, err)
		}
		if m, ok := in.Message.(*wire.Ack); ok {
			for _, id := range m.IDs {
				acked = append(acked, string(id))
			}
		}
	}
	if got := strings.Join(acked, " "); got != "p1 p2 p3 p4 p5 p6" {
		t.Fatalf("ACKs %s, want p1 p2 p3 p4 p5 p6", got)
	}
	fc.mu.Lock()
	log := fmt.Sprint(fc.log)
	fc.mu.Unlock()
	if want := "[slow:1 fast:1 fast:1 fast:1 release slow:2]"; log != want {
		t.Fatalf("core saw %s, want %s", log, want)
	}
}

// TestPublishRoundsLimit checks the PublishRounds limit: its default and
// its validation.
func TestPublishRoundsLimit(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.PublishRounds != DefaultPublishRounds {
		t.Fatalf("default PublishRounds %d, want %d", c.PublishRounds, DefaultPublishRounds)
	}
	for _, tt := range []struct {
		rounds int
		ok     bool
	}{{-1, false}, {0, true}, {1, true}, {16, true}} {
		cfg := Config{PublishRounds: tt.rounds}
		if err := cfg.validate(); (err == nil) != tt.ok {
			t.Errorf("PublishRounds %d: validate = %v, want ok=%v", tt.rounds, err, tt.ok)
		}
	}
}
