package bustest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// texts records the payloads received by one subscription, leaving out
// the "ready" markers.
type texts struct {
	mu    sync.Mutex
	got   []string // guarded by mu
	ready bool     // guarded by mu: a marker arrived
}

func (x *texts) handle(m *bus.Msg) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if string(m.Data) == "ready" {
		x.ready = true
		return
	}
	x.got = append(x.got, string(m.Data))
}

func (x *texts) isReady() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.ready
}

// wait returns the payloads once there are n of them.
func (x *texts) wait(t *testing.T, who string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		x.mu.Lock()
		got := slices.Clone(x.got)
		x.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s received %q, want %d messages", who, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// testNoEcho checks bus.NoEchoOpener (decision D44): a no-echo
// connection's subscriptions receive what the bus and other connections
// publish, never what it published itself, and closing it leaves the bus
// open. Buses without the interface skip it.
func testNoEcho(t *testing.T, b bus.Bus) {
	if _, ok := b.(bus.NoEchoOpener); !ok {
		t.Skipf("%T opens no no-echo connections", b)
	}
	e1, err := bus.OpenNoEcho(b, "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	e2, err := bus.OpenNoEcho(b, "edge-2")
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	const subj = "jsp.conf.ch.noecho"
	var onBus, on1, on2 texts
	mustSub(t, b, subj, onBus.handle)
	mustSub(t, e1, subj, on1.handle)
	mustSub(t, e2, subj, on2.handle)
	// Subscriptions reach the server asynchronously: publish markers
	// until every one of them has seen one.
	deadline := time.Now().Add(Timeout)
	for !onBus.isReady() || !on1.isReady() || !on2.isReady() {
		if time.Now().After(deadline) {
			t.Fatal("subscriptions never ready")
		}
		if err := b.Publish(subj, bus.Msg{Data: []byte("ready")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Each step waits for the bus's own subscription, which sees
	// everything: by then the server has routed the message to every
	// subscription, so a copy echoed to its sender would come before
	// the next step's message.
	pub := func(c bus.Bus, text string, n int) {
		t.Helper()
		if err := c.Publish(subj, bus.Msg{Data: []byte(text)}); err != nil {
			t.Fatal(err)
		}
		onBus.wait(t, "the bus", n)
	}
	pub(e1, "1", 1)
	pub(e2, "2", 2)
	pub(b, "3", 3)
	if got := on1.wait(t, "edge 1", 2); !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("edge 1 received %q, want [2 3] (not its own 1)", got)
	}
	if got := on2.wait(t, "edge 2", 2); !slices.Equal(got, []string{"1", "3"}) {
		t.Fatalf("edge 2 received %q, want [1 3] (not its own 2)", got)
	}
	if got := onBus.wait(t, "the bus", 3); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("the bus received %q, want [1 2 3]", got)
	}
	// Closing a no-echo connection leaves the bus and the other one.
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e1.Publish(subj, bus.Msg{Data: []byte("late")}); err == nil {
		t.Fatal("publish on a closed no-echo connection succeeded")
	}
	pub(b, "4", 4)
	if got := on2.wait(t, "edge 2", 3); got[2] != "4" {
		t.Fatalf("edge 2 received %q after edge 1 closed, want 4 last", got)
	}
	if got := on1.wait(t, "edge 1", 2); len(got) != 2 {
		t.Fatalf("closed edge 1 received %q", got)
	}
}
