package storagetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

func device(i int, owner string) storage.Device {
	key := bytes.Repeat([]byte{byte(i)}, 32)
	return storage.Device{ID: fmt.Sprintf("%064x", i), PublicKey: key, Owner: owner, Name: fmt.Sprintf("device %d", i)}
}

func deviceIDs(ds []storage.Device) string {
	var b bytes.Buffer
	for _, d := range ds {
		fmt.Fprintf(&b, "%s ", d.ID[60:])
	}
	return b.String()
}

var deviceTests = []test{
	{"RegisterGetRevoke", func(t *testing.T, e *env) {
		s := e.open()
		in := device(1, "alice")
		got, err := s.RegisterDevice(ctx, in)
		must(t, err)
		equal(t, "registered", got.Registered, e.clock.Now())
		equal(t, "active", got.Active(), true)
		back, err := s.GetDevice(ctx, in.ID)
		must(t, err)
		equal(t, "owner", back.Owner, "alice")
		equal(t, "name", back.Name, in.Name)
		equal(t, "key", string(back.PublicKey), string(in.PublicKey))
		e.clock.Advance(time.Minute)
		rev, err := s.RevokeDevice(ctx, in.ID)
		must(t, err)
		equal(t, "revoked", rev.Revoked, e.clock.Now())
		first := rev.Revoked
		e.clock.Advance(time.Minute)
		rev, err = s.RevokeDevice(ctx, in.ID)
		must(t, err)
		equal(t, "revoked again keeps the first time", rev.Revoked, first)
		back, err = s.GetDevice(ctx, in.ID)
		must(t, err)
		equal(t, "stored revocation", back.Revoked, first)
	}},
	{"RevokedIDNeverReturns", func(t *testing.T, e *env) {
		s := e.open()
		in := device(2, "alice")
		_, err := s.RegisterDevice(ctx, in)
		must(t, err)
		_, err = s.RegisterDevice(ctx, in)
		mustIs(t, err, storage.ErrConflict)
		_, err = s.RevokeDevice(ctx, in.ID)
		must(t, err)
		_, err = s.RegisterDevice(ctx, in)
		mustIs(t, err, storage.ErrConflict)
	}},
	{"NotFoundAndInvalid", func(t *testing.T, e *env) {
		s := e.open()
		_, err := s.GetDevice(ctx, "ff")
		mustIs(t, err, storage.ErrNotFound)
		_, err = s.RevokeDevice(ctx, "ff")
		mustIs(t, err, storage.ErrNotFound)
		bad := device(3, "alice")
		bad.PublicKey = bad.PublicKey[:31]
		_, err = s.RegisterDevice(ctx, bad)
		mustIs(t, err, storage.ErrInvalid)
		bad = device(3, "")
		_, err = s.RegisterDevice(ctx, bad)
		mustIs(t, err, storage.ErrInvalid)
		_, err = s.ListDevices(ctx, storage.DeviceQuery{Limit: -1})
		mustIs(t, err, storage.ErrInvalid)
	}},
	{"ListPagesByOwner", func(t *testing.T, e *env) {
		s := e.open()
		for i, owner := range []string{"alice", "bob", "alice", "alice", "bob"} {
			_, err := s.RegisterDevice(ctx, device(i+1, owner))
			must(t, err)
		}
		_, err := s.RevokeDevice(ctx, device(3, "").ID)
		must(t, err)
		all, err := s.ListDevices(ctx, storage.DeviceQuery{IncludeRevoked: true})
		must(t, err)
		equal(t, "all", deviceIDs(all), "0001 0002 0003 0004 0005 ")
		active, err := s.ListDevices(ctx, storage.DeviceQuery{Owner: "alice"})
		must(t, err)
		equal(t, "alice active", deviceIDs(active), "0001 0004 ")
		page, err := s.ListDevices(ctx, storage.DeviceQuery{Owner: "alice", IncludeRevoked: true, Limit: 2})
		must(t, err)
		equal(t, "page 1", deviceIDs(page), "0001 0003 ")
		page, err = s.ListDevices(ctx, storage.DeviceQuery{Owner: "alice", IncludeRevoked: true, Limit: 2, After: page[1].ID})
		must(t, err)
		equal(t, "page 2", deviceIDs(page), "0004 ")
	}},
	{"SurvivesReopen", func(t *testing.T, e *env) {
		s := e.open()
		_, err := s.RegisterDevice(ctx, device(9, "carol"))
		must(t, err)
		must(t, s.Close())
		s = e.open()
		d, err := s.GetDevice(ctx, device(9, "").ID)
		must(t, err)
		equal(t, "owner after reopen", d.Owner, "carol")
	}},
}
