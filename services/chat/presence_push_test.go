package chat_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	chatsdk "github.com/jetstreamproto/jsp/client/chat"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/acl"
	"github.com/jetstreamproto/jsp/services/chat"
	"github.com/jetstreamproto/jsp/services/chatevents"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

// Presence timing of the cluster test: short, so that idling into "away"
// and a dead gateway's entries expiring take about a second.
const (
	pushHeartbeat = 150 * time.Millisecond
	pushAwayAfter = 1200 * time.Millisecond
)

// cluster is an embedded NATS server, one core with the chat service and
// its presence feed on its own bus connection, and gateways that each have
// their own connection, as separate processes would.
type cluster struct {
	t     *testing.T
	srv   *natsbus.Server
	store storage.Store
	feed  *chat.PresenceFeed
}

// pushGateway is one gateway of the cluster with its own bus connection.
type pushGateway struct {
	t    *testing.T
	gw   *gateway.Gateway
	bus  *natsbus.Bus
	url  string
	pin  tlsconf.Fingerprint
	done chan error
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := ctxT(t)
	srv, err := natsbus.StartServer(natsbus.ServerConfig{DataDir: t.TempDir(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown) // after every connection closed (cleanups run last first)
	must(t, srv.WaitJetStream(ctx))
	st, err := storage.Open(ctx, "sqlite:"+t.TempDir()+"/jsp.db", storage.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b, err := srv.Connect(natsbus.ClientConfig{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	reg := core.NewRegistry()
	c, err := core.New(core.Config{Bus: b, Store: st, Logger: quiet(), Services: reg, Authorizer: &acl.Authorizer{Store: st}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := chat.Setup(ctx, c, reg, chat.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Start())
	t.Cleanup(func() { _ = c.Close() })
	p, err := core.OpenPresence(ctx, core.PresenceConfig{Bus: b, TTL: gateway.RegistryTTLBeats * pushHeartbeat, AwayAfter: pushAwayAfter})
	if err != nil {
		t.Fatal(err)
	}
	// A long grace: a dead gateway's sessions must go offline through the
	// bucket's expiry markers, not through the feed's own sweep.
	feed, err := svc.StartPresenceFeed(ctx, chat.PresenceFeedConfig{Presence: p, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.Close)
	return &cluster{t: t, srv: srv, store: st, feed: feed}
}

func (c *cluster) gateway(node string) *pushGateway {
	t := c.t
	t.Helper()
	b, err := c.srv.Connect(natsbus.ClientConfig{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	g, err := gateway.New(gateway.Config{
		QUICAddr: gateway.Off, WSAddr: gateway.Off, TCPAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), Bus: b, Logger: quiet(), NodeID: node,
		RegistryHeartbeat: pushHeartbeat, AwayAfter: pushAwayAfter,
		RateLimits: gateway.RateLimits{ConnAttemptsPerIP: unlimited, Conn: unlimited, User: unlimited, Command: unlimited},
		Authenticate: func(_ context.Context, h *wire.Hello, _ transport.Conn) (session.Identity, error) {
			return session.Identity{User: string(h.Auth)}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pg := &pushGateway{t: t, gw: g, bus: b, url: "jsp+tcp://" + g.Addrs().TCP.String(), pin: g.Cert().Pin, done: make(chan error, 1)}
	go func() { pg.done <- g.Serve(context.Background()) }()
	t.Cleanup(pg.close)
	return pg
}

// close stops the gateway once; a second call is a no-op.
func (g *pushGateway) close() {
	_ = g.gw.Close()
	if g.done == nil {
		return
	}
	if err := <-g.done; !errors.Is(err, gateway.ErrServerClosed) {
		g.t.Errorf("gateway Serve: %v", err)
	}
	g.done = nil
}

func (g *pushGateway) connect(t *testing.T, name string) *user {
	t.Helper()
	o := client.Options{Pins: []tlsconf.Fingerprint{g.pin}, Logger: quiet()}
	o.Info.Auth = []byte(name)
	c, err := client.Dial(ctxT(t), g.url, o)
	if err != nil {
		t.Fatalf("dial as %s: %v", name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	u := &user{name: name, c: c, chat: chatsdk.New(c)}
	if _, err := u.chat.Me(ctxT(t)); err != nil {
		t.Fatalf("%s: me: %v", name, err)
	}
	return u
}

// presenceOf returns the presence changes of who in evs, in order.
func presenceOf(evs []chatsdk.Event, who string) []string {
	var out []string
	for _, e := range evs {
		if e.Type == chatevents.PresenceChanged && e.Presence != nil && e.Presence.User == who {
			out = append(out, e.Presence.Previous+">"+e.Presence.Status)
		}
	}
	return out
}

// TestPresencePushAcrossGateways checks that a member receives the
// presence changes of the others as live events, whichever gateway they
// use: connecting on another gateway (online), idling (away), acting
// again (online), disconnecting (offline), and their gateway dying
// without removing its sessions (offline once the entries expire).
func TestPresencePushAcrossGateways(t *testing.T) {
	cl := newCluster(t)
	ctx := ctxT(t)
	gwA, gwB := cl.gateway("gw-a"), cl.gateway("gw-b")
	for _, u := range []string{"bob", "carol", "dave"} {
		if _, err := cl.store.PutUser(ctx, storage.ChatUser{ID: u, DisplayName: u}); err != nil {
			t.Fatal(err)
		}
	}
	alice := gwA.connect(t, "alice")
	group, err := alice.chat.Create(ctx, chatevents.KindGroup, "team", "", "bob", "carol")
	must(t, err)
	// dave shares no conversation with alice: his changes must not reach
	// her.
	in := alice.subscribe(t, group.ID, 0)

	bob := gwB.connect(t, "bob")
	in.wait(t, "bob online", func(evs []chatsdk.Event) bool { return len(presenceOf(evs, "bob")) >= 1 })
	carol := gwB.connect(t, "carol")
	_ = gwA.connect(t, "dave")
	in.wait(t, "carol online", func(evs []chatsdk.Event) bool { return len(presenceOf(evs, "carol")) >= 1 })

	// carol sends nothing: after AwayAfter she is away; one command
	// brings her back.
	in.wait(t, "carol away", func(evs []chatsdk.Event) bool { return len(presenceOf(evs, "carol")) >= 2 })
	_, err = carol.chat.Me(ctx)
	must(t, err)
	in.wait(t, "carol back online", func(evs []chatsdk.Event) bool { return len(presenceOf(evs, "carol")) >= 3 })
	// A clean disconnect: her gateway removes the entry at once.
	must(t, carol.c.Close())
	in.wait(t, "carol offline", func(evs []chatsdk.Event) bool {
		p := presenceOf(evs, "carol")
		return len(p) >= 4 && strings.HasSuffix(p[len(p)-1], ">offline")
	})
	// A loaded machine may let her idle into away again before the
	// close; the rest is exact.
	got := presenceOf(in.snapshot(), "carol")
	if want := []string{"offline>online", "online>away", "away>online"}; len(got) < 4 || fmt.Sprint(got[:3]) != fmt.Sprint(want) ||
		!strings.HasSuffix(got[len(got)-1], ">offline") {
		t.Fatalf("carol's presence events %v, want %v then offline", got, want)
	}

	// bob's gateway dies: its bus connection goes first, so it can
	// neither remove nor refresh bob's entry, which then expires.
	must(t, gwB.bus.Close())
	gwB.close()
	evs := in.wait(t, "bob offline after his gateway died", func(evs []chatsdk.Event) bool {
		p := presenceOf(evs, "bob")
		return len(p) > 0 && (p[len(p)-1] == "online>offline" || p[len(p)-1] == "away>offline")
	})
	if _, err := bob.chat.Me(ctx); err == nil {
		t.Fatal("bob's client still answered after his gateway closed")
	}
	for _, e := range evs {
		if e.Type == chatevents.PresenceChanged {
			if e.Seq != 0 || e.Conversation != group.ID || e.Actor != e.Presence.User {
				t.Fatalf("presence event %+v: want seq 0, the group, actor = user", e.Event)
			}
		}
	}
	if got := presenceOf(evs, "dave"); len(got) != 0 {
		t.Fatalf("alice got dave's presence %v without sharing a conversation", got)
	}
}
