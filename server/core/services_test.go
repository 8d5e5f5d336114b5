package core_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// whoService answers with the caller's user, or the error its body names.
type whoService struct{}

func (whoService) HandleCommand(_ context.Context, id core.Identity, body []byte) ([]byte, error) {
	switch string(body) {
	case "forbidden":
		return nil, jsperr.New(jsperr.Forbidden, "no")
	case "plain":
		return nil, errors.New("secret detail")
	}
	return []byte(id.User + "/" + id.Device + "/" + id.Session), nil
}

func newServiceFixture(t *testing.T, authz core.Authorizer) (*core.Core, *core.Client, bus.Subjects) {
	t.Helper()
	b := newMemBus(t)
	subj, err := bus.NewSubjects("test")
	if err != nil {
		t.Fatal(err)
	}
	reg := core.NewRegistry()
	if err := reg.Register("who", whoService{}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register("who", whoService{}); err == nil {
		t.Fatal("a service registered twice")
	}
	c, err := core.New(core.Config{Bus: b, Store: newStore(t), Subjects: &subj, Shards: testShards, Logger: quiet,
		Services: reg, Authorizer: authz})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	cl, err := core.NewClient(b, subj, testShards)
	if err != nil {
		t.Fatal(err)
	}
	return c, cl, subj
}

func TestCommandCarriesIdentity(t *testing.T) {
	_, cl, _ := newServiceFixture(t, nil)
	id := core.Identity{User: "alice", Device: "d1", Session: "s1"}
	body, err := cl.Command(core.WithIdentity(ctx(t), id), "key", "who", nil)
	if err != nil || string(body) != "alice/d1/s1" {
		t.Fatalf("command = %q, %v", body, err)
	}
	tests := []struct {
		service, body string
		code          jsperr.Code
		reason        string
	}{
		{"who", "forbidden", jsperr.Forbidden, "no"},
		{"who", "plain", jsperr.Internal, "internal error"},
		{"nobody", "", jsperr.NotFound, "no service nobody"},
	}
	for _, tt := range tests {
		_, err := cl.Command(ctx(t), "key", tt.service, []byte(tt.body))
		var je *jsperr.Error
		if !errors.As(err, &je) || je.Code != tt.code || je.Reason != tt.reason {
			t.Errorf("%s %q: %v, want %s %q", tt.service, tt.body, err, tt.code, tt.reason)
		}
	}
}

func TestAuthorizerSeesEveryOp(t *testing.T) {
	var seen []core.Action
	var who []string
	authz := core.AuthorizerFunc(func(_ context.Context, id core.Identity, a core.Action) error {
		seen = append(seen, a)
		who = append(who, id.User)
		if a.Channel == "secret" {
			return errors.New("not for you")
		}
		return nil
	})
	_, cl, _ := newServiceFixture(t, authz)
	c := core.WithIdentity(ctx(t), core.Identity{User: "bob"})
	if _, err := cl.Publish(c, "room", msg("k1", "hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.After(c, "room", 0, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Recover(c, "room", 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := cl.Authorize(c, "room"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Command(c, "room", "who", nil); err != nil {
		t.Fatal(err)
	}
	// A refusal without a registry code becomes FORBIDDEN.
	if err := cl.Authorize(c, "secret"); jsperr.CodeOf(err) != jsperr.Forbidden {
		t.Fatalf("refused subscribe: %v", err)
	}
	var ops []core.Op
	for _, a := range seen {
		ops = append(ops, a.Op)
	}
	want := []core.Op{core.OpPublish, core.OpHistory, core.OpRecover, core.OpSubscribe, core.OpCommand, core.OpSubscribe}
	if !slices.Equal(ops, want) || seen[4].Service != "who" {
		t.Fatalf("authorized %v, want %v", seen, want)
	}
	for _, u := range who {
		if u != "bob" {
			t.Fatalf("identities %v", who)
		}
	}
}

func TestEphemeralAndDrop(t *testing.T) {
	c, _, subj := newServiceFixture(t, nil)
	f := &fixture{bus: c.Bus(), subj: subj}
	ch := f.events(t, "room")
	res, err := c.Commit(ctx(t), "room", msg("k1", "stored"))
	if err != nil || res.Seq != 1 {
		t.Fatalf("commit = %+v, %v", res, err)
	}
	if err := c.Ephemeral("room", storage.Message{Sender: "a", Body: []byte("typing")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Drop("room", "bob"); err != nil {
		t.Fatal(err)
	}
	var got []core.Event
	for len(got) < 3 {
		select {
		case ev := <-ch:
			got = append(got, ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("events %+v", got)
		}
	}
	if got[0].Message.Seq != 1 || got[0].Ephemeral || string(got[0].Message.Body) != "stored" {
		t.Fatalf("committed event %+v", got[0])
	}
	if !got[1].Ephemeral || got[1].Message.Seq != 0 || string(got[1].Message.Body) != "typing" {
		t.Fatalf("ephemeral event %+v", got[1])
	}
	if !slices.Equal(got[2].Drop, []string{"bob"}) {
		t.Fatalf("drop event %+v", got[2])
	}
	// Nothing ephemeral was stored.
	info, err := c.Store().ChannelInfo(ctx(t), "room")
	if err != nil || info.Last != 1 {
		t.Fatalf("channel info %+v, %v", info, err)
	}
	// A plain event without seq is still refused by the decoder.
	if _, err := core.DecodeEvent([]byte(`{"channel":"room","message":{"seq":0}}`)); err == nil {
		t.Fatal("event without seq decoded")
	}
}
