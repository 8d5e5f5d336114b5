package storagetest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

// sameJSON compares JSON documents by value: PostgreSQL's jsonb does not
// keep key order or whitespace.
func sameJSON(t testing.TB, got, want json.RawMessage) {
	t.Helper()
	if len(want) == 0 {
		if len(got) != 0 {
			t.Fatalf("detail = %s, want none", got)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("stored detail %q: %v", got, err)
	}
	must(t, json.Unmarshal(want, &w))
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("detail = %s, want %s", got, want)
	}
}

// auditLog appends n events, one second apart, alternating two actors, and
// returns them as stored.
func auditLog(t *testing.T, e *env, s storage.Store, n int) []storage.AuditEvent {
	var out []storage.AuditEvent
	for i := range n {
		ev := storage.AuditEvent{
			Actor:      []string{"alice", "bob"}[i%2],
			Action:     []string{"auth.login", "acl.denied", "auth.failed"}[i%3],
			Target:     "channel/general",
			Detail:     json.RawMessage(`{"i": ` + strings.Repeat("1", i%3+1) + `, "note": "x"}`),
			RemoteAddr: "198.51.100.7:5000",
		}
		id, err := s.AppendAudit(ctx, ev)
		must(t, err)
		ev.ID, ev.Time = id, e.clock.Now()
		out = append(out, ev)
		e.clock.Advance(time.Second)
	}
	return out
}

func checkEvents(t testing.TB, got, want []storage.AuditEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		sameJSON(t, g.Detail, w.Detail)
		g.Detail, w.Detail = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

// walk pages through a query and returns every event.
func walk(t testing.TB, s storage.Store, q storage.AuditQuery) []storage.AuditEvent {
	t.Helper()
	var all []storage.AuditEvent
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("audit pagination does not end")
		}
		p, err := s.QueryAudit(ctx, q)
		must(t, err)
		all = append(all, p.Events...)
		if p.Next.IsZero() {
			return all
		}
		q.After = p.Next
	}
}

var auditTests = []test{
	{"AppendQuery", func(t *testing.T, e *env) {
		s := e.open()
		evs := auditLog(t, e, s, 3)
		for i := 1; i < len(evs); i++ {
			if evs[i].ID <= evs[i-1].ID {
				t.Fatalf("ids not increasing: %d after %d", evs[i].ID, evs[i-1].ID)
			}
		}
		p, err := s.QueryAudit(ctx, storage.AuditQuery{})
		must(t, err)
		checkEvents(t, p.Events, evs)
		equal(t, "next of last page", p.Next, storage.AuditCursor{})

		// An explicit time is kept; no detail stays empty.
		at := time.Date(2001, 2, 3, 4, 5, 6, 789_000, time.UTC)
		ev := storage.AuditEvent{Time: at, Actor: "svc", Action: "ca.issue"}
		ev.ID, err = s.AppendAudit(ctx, ev)
		must(t, err)
		p, err = s.QueryAudit(ctx, storage.AuditQuery{Actor: "svc"})
		must(t, err)
		checkEvents(t, p.Events, []storage.AuditEvent{ev})
	}},
	{"Filters", func(t *testing.T, e *env) {
		s := e.open()
		evs := auditLog(t, e, s, 12)
		pick := func(keep func(i int, ev storage.AuditEvent) bool) []storage.AuditEvent {
			var out []storage.AuditEvent
			for i, ev := range evs {
				if keep(i, ev) {
					out = append(out, ev)
				}
			}
			return out
		}
		for _, tc := range []struct {
			name string
			q    storage.AuditQuery
			want []storage.AuditEvent
		}{
			{"range", storage.AuditQuery{Since: evs[3].Time, Until: evs[7].Time}, evs[3:7]},
			{"since", storage.AuditQuery{Since: evs[10].Time}, evs[10:]},
			{"until", storage.AuditQuery{Until: evs[2].Time}, evs[:2]},
			{"actor", storage.AuditQuery{Actor: "bob"}, pick(func(i int, _ storage.AuditEvent) bool { return i%2 == 1 })},
			{"actor+range", storage.AuditQuery{Actor: "alice", Since: evs[4].Time, Until: evs[9].Time},
				pick(func(i int, _ storage.AuditEvent) bool { return i%2 == 0 && i >= 4 && i < 9 })},
			{"action", storage.AuditQuery{Action: "auth.failed"}, pick(func(i int, _ storage.AuditEvent) bool { return i%3 == 2 })},
			{"nobody", storage.AuditQuery{Actor: "carol"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) { checkEvents(t, walk(t, s, tc.q), tc.want) })
		}
	}},
	{"Pagination", func(t *testing.T, e *env) {
		s := e.open()
		evs := auditLog(t, e, s, 7)
		// Two events at the same instant are ordered by id.
		e.clock.Advance(-time.Second)
		extra := auditLog(t, e, s, 1)
		evs = append(evs, extra...)
		p, err := s.QueryAudit(ctx, storage.AuditQuery{Limit: 3})
		must(t, err)
		checkEvents(t, p.Events, evs[:3])
		equal(t, "next", p.Next, storage.AuditCursor{Time: evs[2].Time, ID: evs[2].ID})
		checkEvents(t, walk(t, s, storage.AuditQuery{Limit: 3}), evs)

		rev := walk(t, s, storage.AuditQuery{Limit: 2, Reverse: true})
		var want []storage.AuditEvent
		for i := len(evs) - 1; i >= 0; i-- {
			want = append(want, evs[i])
		}
		checkEvents(t, rev, want)
	}},
	{"Purge", func(t *testing.T, e *env) {
		s := e.open()
		evs := auditLog(t, e, s, 5)
		n, err := s.PurgeAudit(ctx, evs[2].Time)
		must(t, err)
		equal(t, "purged", n, 2)
		checkEvents(t, walk(t, s, storage.AuditQuery{}), evs[2:])
	}},
	{"InvalidDetail", func(t *testing.T, e *env) {
		s := e.open()
		for _, tc := range []struct {
			detail string
			want   error
		}{
			{`[1,2]`, storage.ErrInvalid},
			{`"str"`, storage.ErrInvalid},
			{`null`, storage.ErrInvalid},
			{`{"a":`, storage.ErrInvalid},
			{`{"a":"\u0000"}`, storage.ErrInvalid},
			{`{"a":"` + strings.Repeat("x", int(storage.DefaultMaxAuditDetailBytes)) + `"}`, storage.ErrTooLarge},
		} {
			_, err := s.AppendAudit(ctx, storage.AuditEvent{Actor: "a", Action: "b", Detail: json.RawMessage(tc.detail)})
			mustIs(t, err, tc.want)
		}
		_, err := s.AppendAudit(ctx, storage.AuditEvent{Action: "b"})
		mustIs(t, err, storage.ErrInvalid)
		_, err = s.AppendAudit(ctx, storage.AuditEvent{Actor: "a"})
		mustIs(t, err, storage.ErrInvalid)
		_, err = s.QueryAudit(ctx, storage.AuditQuery{Since: e.clock.Now(), Until: e.clock.Now().Add(-time.Second)})
		mustIs(t, err, storage.ErrInvalid)
	}},
}
