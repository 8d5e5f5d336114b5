package events

import (
	"context"
	"fmt"
	"testing"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

// TestConsumerOverJetStream: publish, consume, stop and resume on the
// embedded NATS server's JSP_EVENTS stream.
func TestConsumerOverJetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded NATS server")
	}
	nb, err := natsbus.Embedded(natsbus.EmbeddedConfig{
		Server: natsbus.ServerConfig{DataDir: t.TempDir(), Logger: quiet},
		Client: natsbus.ClientConfig{Logger: quiet},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	ctx := context.Background()
	subj, _ := bus.NewSubjects("c1")
	log, err := OpenLog(ctx, nb, subj, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(log, PublisherConfig{})
	publishN(t, p, "message.created", 0, 3)
	publishN(t, p, "member.joined", 0, 2)
	// A re-published event (same id) is stored once by the stream.
	if _, seq, err := p.Publish(ctx, Event{Type: "message.created", ID: "message.created-0", Conversation: "room"}); err != nil || seq != 1 {
		t.Fatalf("republish: seq %d, %v", seq, err)
	}
	cursors := &MemCursors{}
	rec := newRecorder()
	c, err := Consume(ctx, log, ConsumerConfig{Name: "x", Filters: []string{"message.created"}, Handler: rec.handle, Cursors: cursors, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rec.wait(t, 3)
	c.Stop()
	publishN(t, p, "message.created", 3, 2)
	c, err = Consume(ctx, log, ConsumerConfig{Name: "x", Filters: []string{"message.created"}, Handler: rec.handle, Cursors: cursors, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, 5)
	c.Stop()
	for i, d := range got {
		if want := fmt.Sprintf("message.created-%d", i); d.Event.ID != want || d.Event.Conversation != "room" {
			t.Fatalf("event %d = %+v, want id %s", i, d.Event, want)
		}
	}
	if len(got) != 5 {
		t.Fatalf("%d events, want 5", len(got))
	}
}
