package auth

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/sqlite"
)

func TestStoreDevices(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite::memory:", storage.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := NewStoreDevices(st)
	if err != nil {
		t.Fatal(err)
	}
	k, err := devicekey.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public()
	d := devicekey.Device{ID: pub.ID(), Key: pub, Owner: "alice", Name: "phone"}
	if err := reg.Register(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, d); !errors.Is(err, devicekey.ErrExists) {
		t.Fatalf("second register: %v", err)
	}
	got, err := reg.Lookup(ctx, pub.ID())
	if err != nil || got.Key != pub || got.Owner != "alice" || !got.Active() {
		t.Fatalf("lookup %+v %v", got, err)
	}
	other, _ := devicekey.GenerateKey(nil)
	if _, err := reg.Lookup(ctx, other.Public().ID()); !errors.Is(err, devicekey.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if err := reg.Revoke(ctx, other.Public().ID()); !errors.Is(err, devicekey.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	if err := reg.Revoke(ctx, pub.ID()); err != nil {
		t.Fatal(err)
	}
	if got, _ := reg.Lookup(ctx, pub.ID()); got.Active() {
		t.Fatal("revoked device still active")
	}
	list, err := reg.ListDevices(ctx, "alice", "", 10)
	if err != nil || len(list) != 1 || list[0].ID != pub.ID() || list[0].Active() {
		t.Fatalf("list %+v %v", list, err)
	}
	bad := d
	bad.ID = other.Public().ID()
	if err := reg.Register(ctx, bad); err == nil {
		t.Fatal("id that does not match the key registered")
	}
}
