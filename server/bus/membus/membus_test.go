package membus_test

import (
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/bustest"
	"github.com/jetstreamproto/jsp/server/bus/membus"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

func newBus(t *testing.T, cfg membus.Config) *membus.Bus {
	t.Helper()
	b, err := membus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bus.Bus { return newBus(t, membus.Config{}) })
}

func TestConfigValidate(t *testing.T) {
	if _, err := membus.New(membus.Config{PendingLimit: -1}); err == nil {
		t.Fatal("negative PendingLimit accepted")
	}
}

// TestSlowConsumerDrops checks the PendingLimit: a blocked subscription
// loses messages beyond it and other subscriptions are unaffected.
func TestSlowConsumerDrops(t *testing.T) {
	b := newBus(t, membus.Config{PendingLimit: 4})
	block := make(chan struct{})
	defer close(block) // before the cleanup's Close, which drains the handler
	var once sync.Once
	entered := make(chan struct{})
	if _, err := b.Subscribe("s", func(*bus.Msg) {
		once.Do(func() { close(entered) })
		<-block
	}); err != nil {
		t.Fatal(err)
	}
	fast := make(chan struct{}, 100)
	if _, err := b.Subscribe("s", func(*bus.Msg) { fast <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := b.Publish("s", bus.Msg{}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-entered // the slow handler holds message 1; 4 more fit its queue
		}
		select {
		case <-fast:
		case <-time.After(5 * time.Second):
			t.Fatal("fast subscriber starved by the slow one")
		}
	}
	st := b.Stats()
	if st.Dropped != 5 || st.Published != 10 || st.Subscriptions != 2 {
		t.Fatalf("stats %+v, want 5 dropped of 10 published", st)
	}
}
