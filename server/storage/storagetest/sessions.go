package storagetest

import (
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

func sess(id, user, gw string) storage.Session {
	return storage.Session{ID: id, UserID: user, DeviceID: "dev-" + id, Gateway: gw, Transport: "quic", RemoteAddr: "192.0.2.1:4433"}
}

func sessionIDs(ss []storage.Session) string {
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	return strings.Join(ids, ",")
}

var sessionTests = []test{
	{"UpsertGet", func(t *testing.T, e *env) {
		s := e.open()
		t0 := e.clock.Now()
		got, err := s.UpsertSession(ctx, sess("s1", "alice", "gw1"))
		must(t, err)
		want := sess("s1", "alice", "gw1")
		want.Since, want.LastSeen = t0, t0
		equal(t, "upserted", got, want)
		got, err = s.GetSession(ctx, "s1")
		must(t, err)
		equal(t, "get", got, want)
		if !got.Open() {
			t.Fatal("new session is not open")
		}
		_, err = s.GetSession(ctx, "nope")
		mustIs(t, err, storage.ErrNotFound)
	}},
	{"UpsertResumeKeepsSince", func(t *testing.T, e *env) {
		s := e.open()
		t0 := e.clock.Now()
		_, err := s.UpsertSession(ctx, sess("s1", "alice", "gw1"))
		must(t, err)
		must(t, s.CloseSession(ctx, "s1"))
		e.clock.Advance(time.Minute)
		moved := sess("s1", "alice", "gw2")
		moved.Transport, moved.RemoteAddr = "ws", "[2001:db8::1]:443"
		got, err := s.UpsertSession(ctx, moved)
		must(t, err)
		want := moved
		want.Since, want.LastSeen = t0, e.clock.Now()
		equal(t, "resumed", got, want)
	}},
	{"UpsertOtherUserConflicts", func(t *testing.T, e *env) {
		s := e.open()
		_, err := s.UpsertSession(ctx, sess("s1", "alice", "gw1"))
		must(t, err)
		_, err = s.UpsertSession(ctx, sess("s1", "mallory", "gw1"))
		mustIs(t, err, storage.ErrConflict)
		got, err := s.GetSession(ctx, "s1")
		must(t, err)
		equal(t, "owner", got.UserID, "alice")
	}},
	{"TouchAndClose", func(t *testing.T, e *env) {
		s := e.open()
		_, err := s.UpsertSession(ctx, sess("s1", "alice", "gw1"))
		must(t, err)
		e.clock.Advance(30 * time.Second)
		must(t, s.TouchSession(ctx, "s1"))
		got, err := s.GetSession(ctx, "s1")
		must(t, err)
		equal(t, "last seen", got.LastSeen, e.clock.Now())
		closedAt := e.clock.Now()
		must(t, s.CloseSession(ctx, "s1"))
		e.clock.Advance(time.Second)
		// A second close keeps the first close time.
		must(t, s.CloseSession(ctx, "s1"))
		got, err = s.GetSession(ctx, "s1")
		must(t, err)
		equal(t, "closed at", got.ClosedAt, closedAt)
		mustIs(t, s.TouchSession(ctx, "s1"), storage.ErrNotFound)
		mustIs(t, s.TouchSession(ctx, "nope"), storage.ErrNotFound)
		mustIs(t, s.CloseSession(ctx, "nope"), storage.ErrNotFound)
	}},
	{"List", func(t *testing.T, e *env) {
		s := e.open()
		for _, x := range []storage.Session{
			sess("a1", "alice", "gw1"), sess("a2", "alice", "gw2"), sess("a3", "alice", "gw1"),
			sess("b1", "bob", "gw1"),
		} {
			_, err := s.UpsertSession(ctx, x)
			must(t, err)
		}
		must(t, s.CloseSession(ctx, "a2"))
		for _, tc := range []struct {
			q    storage.SessionQuery
			want string
		}{
			{storage.SessionQuery{UserID: "alice"}, "a1,a3"},
			{storage.SessionQuery{UserID: "alice", IncludeClosed: true}, "a1,a2,a3"},
			{storage.SessionQuery{UserID: "alice", IncludeClosed: true, Limit: 2}, "a1,a2"},
			{storage.SessionQuery{UserID: "alice", IncludeClosed: true, After: "a2"}, "a3"},
			{storage.SessionQuery{Gateway: "gw1"}, "a1,a3,b1"},
			{storage.SessionQuery{Gateway: "gw2"}, ""},
			{storage.SessionQuery{UserID: "carol"}, ""},
		} {
			got, err := s.ListSessions(ctx, tc.q)
			must(t, err)
			equal(t, "list", sessionIDs(got), tc.want)
		}
		for _, q := range []storage.SessionQuery{{}, {UserID: "alice", Gateway: "gw1"}} {
			_, err := s.ListSessions(ctx, q)
			mustIs(t, err, storage.ErrInvalid)
		}
	}},
	{"ExpireCloseGatewayPurge", func(t *testing.T, e *env) {
		s := e.open()
		for _, x := range []storage.Session{sess("s1", "u", "gw1"), sess("s2", "u", "gw1"), sess("s3", "u", "gw2")} {
			_, err := s.UpsertSession(ctx, x)
			must(t, err)
		}
		e.clock.Advance(time.Minute)
		must(t, s.TouchSession(ctx, "s2"))
		n, err := s.ExpireSessions(ctx, e.clock.Now().Add(-30*time.Second))
		must(t, err)
		equal(t, "expired", n, 2)
		got, err := s.ListSessions(ctx, storage.SessionQuery{UserID: "u"})
		must(t, err)
		equal(t, "open after expiry", sessionIDs(got), "s2")
		expiredAt := e.clock.Now()

		e.clock.Advance(time.Minute)
		n, err = s.CloseGatewaySessions(ctx, "gw1")
		must(t, err)
		equal(t, "closed on gw1", n, 1)
		n, err = s.CloseGatewaySessions(ctx, "gw1")
		must(t, err)
		equal(t, "closed on gw1 again", n, 0)

		n, err = s.PurgeSessions(ctx, expiredAt.Add(time.Second))
		must(t, err)
		equal(t, "purged", n, 2)
		got, err = s.ListSessions(ctx, storage.SessionQuery{UserID: "u", IncludeClosed: true})
		must(t, err)
		equal(t, "left after purge", sessionIDs(got), "s2")
	}},
	{"InvalidArguments", func(t *testing.T, e *env) {
		s := e.open()
		long := strings.Repeat("x", storage.MaxNameLen+1)
		for _, x := range []storage.Session{
			sess("", "u", "gw"), sess("s", "", "gw"), sess("s", "u", ""),
			sess(long, "u", "gw"), sess("s", "u\x00", "gw"), sess("s", "\xff", "gw"),
		} {
			_, err := s.UpsertSession(ctx, x)
			mustIs(t, err, storage.ErrInvalid)
		}
		// The limit itself is accepted.
		x := sess("s", "u", "gw")
		x.ID = long[1:]
		_, err := s.UpsertSession(ctx, x)
		must(t, err)
	}},
}
