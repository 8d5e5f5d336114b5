package keys

import (
	"context"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/msgsig"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/wire"
)

func TestLookup(t *testing.T) {
	now := time.UnixMilli(1_767_225_600_000)
	reg, err := devicekey.NewMemoryRegistry(devicekey.MemoryConfig{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	add := func(owner string) devicekey.PublicKey {
		k, err := devicekey.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Register(ctx, devicekey.Device{ID: k.Public().ID(), Key: k.Public(), Owner: owner}); err != nil {
			t.Fatal(err)
		}
		return k.Public()
	}
	alice, bob := add("alice"), add("bob")
	if err := reg.Revoke(ctx, bob.ID()); err != nil {
		t.Fatal(err)
	}
	svc, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := services.NewRegistry()
	if err := svc.Register(r); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Command(Command); !ok {
		t.Fatalf("%s not registered", Command)
	}
	unknown, _ := devicekey.GenerateKey(nil)
	tests := []struct {
		name    string
		body    []byte
		want    jsperr.Code
		key     devicekey.PublicKey
		owner   string
		revoked bool
	}{
		{"by device", (&msgsig.KeyRequest{Device: alice.ID()}).Append(nil), jsperr.NoError, alice, "alice", false},
		{"by user and device", (&msgsig.KeyRequest{Device: alice.ID(), User: "alice"}).Append(nil), jsperr.NoError, alice, "alice", false},
		{"revoked is answered", (&msgsig.KeyRequest{Device: bob.ID()}).Append(nil), jsperr.NoError, bob, "bob", true},
		{"other user's device", (&msgsig.KeyRequest{Device: alice.ID(), User: "bob"}).Append(nil), jsperr.NotFound, devicekey.PublicKey{}, "", false},
		{"unknown device", (&msgsig.KeyRequest{Device: unknown.Public().ID()}).Append(nil), jsperr.NotFound, devicekey.PublicKey{}, "", false},
		{"malformed", []byte{0xa0}, jsperr.BadRequest, devicekey.PublicKey{}, "", false},
	}
	caller := services.NewCaller(services.Identity{SessionID: "s1"}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := svc.HandleCommand(ctx, caller, &wire.Envelope{Body: tt.body})
			if got := jsperr.CodeOf(err); got != tt.want {
				t.Fatalf("code %s (%v), want %s", got, err, tt.want)
			}
			if err != nil {
				return
			}
			rep, err := msgsig.ParseKeyReply(body)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Key != tt.key || rep.Owner != tt.owner || rep.Revoked.IsZero() == tt.revoked || !rep.Registered.Equal(now) {
				t.Fatalf("reply %+v", rep)
			}
		})
	}
	if _, err := New(nil); err == nil {
		t.Fatal("New(nil) accepted")
	}
}
