package core_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// gatedStore blocks appends to one channel until released.
type gatedStore struct {
	storage.Store
	channel string
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) AppendMessage(ctx context.Context, channel string, m storage.Message) (storage.AppendResult, error) {
	if channel == g.channel {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Store.AppendMessage(ctx, channel, m)
}

// TestLanes checks the worker lanes: with one shard, a publish to a
// channel whose append is stuck does not hold back a channel on another
// lane, and the stuck channel's later requests wait behind it, in order.
func TestLanes(t *testing.T) {
	const workers = 8
	b := newMemBus(t)
	subj, err := bus.NewSubjects("test")
	if err != nil {
		t.Fatal(err)
	}
	gs := &gatedStore{Store: newStore(t), channel: "slow", entered: make(chan struct{}, 1), release: make(chan struct{})}
	c, cl := startCore(t, core.Config{Bus: b, Store: gs, Subjects: &subj, Shards: 1, Workers: workers, Logger: quiet})
	// A channel on another lane than "slow" (the lane is the name's hash
	// modulo Workers).
	fast := ""
	for i := 0; fast == ""; i++ {
		if n := fmt.Sprint("fast", i); bus.HashName(n)%workers != bus.HashName("slow")%workers {
			fast = n
		}
	}
	slowDone := make(chan storage.Seq, 2)
	go func() {
		for _, id := range []string{"s1", "s2"} {
			rep, err := cl.Publish(ctx(t), "slow", msg(id, id))
			if err != nil {
				slowDone <- 0
				continue
			}
			slowDone <- rep.Seq
		}
	}()
	<-gs.entered
	if _, err := cl.Publish(ctx(t), fast, msg("f1", "f")); err != nil {
		t.Fatalf("publish on another lane while one is stuck: %v", err)
	}
	select {
	case <-slowDone:
		t.Fatal("stuck publish answered before release")
	case <-time.After(20 * time.Millisecond):
	}
	close(gs.release)
	go func() {
		for range gs.entered {
		}
	}()
	if s1, s2 := <-slowDone, <-slowDone; s1 != 1 || s2 != 2 {
		t.Fatalf("slow channel seqs %d, %d; want 1, 2", s1, s2)
	}
	_ = c.Close()
	close(gs.entered)
}

// TestWorkersLimit checks the Workers limit: default and validation.
func TestWorkersLimit(t *testing.T) {
	if core.DefaultWorkers < 1 {
		t.Fatalf("DefaultWorkers %d", core.DefaultWorkers)
	}
	b := newMemBus(t)
	if _, err := core.New(core.Config{Bus: b, Store: newStore(t), Workers: -1}); err == nil {
		t.Fatal("negative Workers accepted")
	}
	// Workers 1 serves everything on one lane, still in order.
	subj, _ := bus.NewSubjects("test")
	_, cl := startCore(t, core.Config{Bus: b, Store: newStore(t), Subjects: &subj, Shards: 2, Workers: 1, Logger: quiet})
	for i := range 3 {
		rep, err := cl.Publish(ctx(t), "one", msg(fmt.Sprint(i), "x"))
		if err != nil || rep.Seq != storage.Seq(i+1) {
			t.Fatalf("publish %d: seq %v err %v", i, rep, err)
		}
	}
}
