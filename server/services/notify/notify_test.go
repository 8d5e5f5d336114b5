package notify

import (
	"context"
	"testing"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/wire"
)

func TestCommand(t *testing.T) {
	var pushed []*wire.Envelope
	c := services.NewCaller(services.Identity{SessionID: "s1"}, func(env *wire.Envelope) error {
		pushed = append(pushed, env)
		return nil
	})
	cmd := &wire.Envelope{
		ID:      []byte("c1"),
		Route:   wire.Route{Kind: wire.RouteService, Name: Command},
		Kind:    wire.KindCommand,
		Class:   protocol.ClassChat,
		Headers: map[string]string{"k": "v"},
		Body:    []byte("ping me"),
	}
	reply, err := Service{}.HandleCommand(context.Background(), c, cmd)
	if err != nil || len(reply) != 0 {
		t.Fatalf("HandleCommand = %q, %v", reply, err)
	}
	if len(pushed) != 1 {
		t.Fatalf("pushed %d notifications", len(pushed))
	}
	n := pushed[0]
	if string(n.Body) != "ping me" || n.Kind != wire.KindNotification || n.Class != protocol.ClassChat ||
		n.Route != cmd.Route || n.Headers["k"] != "v" {
		t.Fatalf("notification = %+v", n)
	}
	n.Headers["k"] = "changed"
	if cmd.Headers["k"] != "v" {
		t.Fatal("notification shares the command's headers")
	}
	// Without a sink the command fails with the sink's error.
	if _, err := (Service{}).HandleCommand(context.Background(), services.NewCaller(services.Identity{}, nil), cmd); jsperr.CodeOf(err) != jsperr.NotFound {
		t.Fatalf("without a sink: %v", err)
	}
	r := services.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Command(Command); !ok {
		t.Fatal("not registered")
	}
}
