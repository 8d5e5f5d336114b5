package gateway

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/breaker"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// downStore fails every append while down is set.
type downStore struct {
	storage.Store
	down atomic.Bool
}

func (d *downStore) AppendMessage(ctx context.Context, ch string, m storage.Message) (storage.AppendResult, error) {
	if d.down.Load() {
		return storage.AppendResult{}, errors.New("database unreachable")
	}
	return d.Store.AppendMessage(ctx, ch, m)
}

// TestStorageBreakerReachesClient: once the core's storage breaker opens,
// a client's PUBLISH is answered at once with ERROR CIRCUIT_OPEN carrying
// the rest of the cool-down as retry_after_ms.
func TestStorageBreakerReachesClient(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	st, err := storage.Open(context.Background(), "sqlite::memory:", storage.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ds := &downStore{Store: st}
	gs, err := core.GuardStore(ds, breaker.Config{ConsecutiveFailures: 2, CoolDown: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	c, err := core.New(core.Config{Bus: b, Store: gs, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	g := startGateway(t, Config{Bus: b})
	s := g.dial(t, transport.KindMem)

	publish := func(id string) *wire.ErrorMessage {
		t.Helper()
		env := &wire.Envelope{ID: []byte(id), Route: wire.Route{Kind: wire.RouteChannel, Name: "room"}, Class: protocol.ClassChat, Body: []byte("x")}
		if err := s.SendEnvelope(wire.FramePublish, env); err != nil {
			t.Fatal(err)
		}
		for {
			in, err := s.Recv(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			switch m := in.Message.(type) {
			case *wire.Ack:
				return nil
			case *wire.ErrorMessage:
				if !bytes.Equal(m.Ref, []byte(id)) {
					t.Fatalf("ERROR ref %q", m.Ref)
				}
				return m
			}
		}
	}
	if m := publish("ok"); m != nil {
		t.Fatalf("healthy publish: %v", m.Code)
	}
	ds.down.Store(true)
	for _, id := range []string{"f1", "f2"} {
		if m := publish(id); m == nil || m.Code != jsperr.Internal {
			t.Fatalf("failing publish %s: %+v", id, m)
		}
	}
	m := publish("refused")
	if m == nil || m.Code != jsperr.CircuitOpen || m.RetryAfterMS == 0 || m.RetryAfterMS > uint64(time.Minute/time.Millisecond) {
		t.Fatalf("open breaker: %+v, want CIRCUIT_OPEN with retry_after_ms in (0, 60000]", m)
	}
	if st := gs.Breaker().Stats(); st.State != breaker.Open || st.Rejected != 1 {
		t.Fatalf("breaker %+v", st)
	}
}
