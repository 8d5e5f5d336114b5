package storagetest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func init() {
	sessionTests = append(sessionTests, test{"TouchSessions", testTouchSessions})
}

// sessionToucher is a store that touches many sessions at once (the
// gateway uses it for its periodic pass when the store has it).
type sessionToucher interface {
	TouchSessions(ctx context.Context, ids []string) error
}

// testTouchSessions checks that TouchSessions moves LastSeen of the open
// sessions given, across more than one internal batch, and skips closed
// and unknown ones; an invalid id is refused.
func testTouchSessions(t *testing.T, e *env) {
	s := e.open()
	tt, ok := s.(sessionToucher)
	if !ok {
		t.Skip("store without TouchSessions")
	}
	var ids []string
	for i := range 1100 { // over one batch of every backend
		id := fmt.Sprint("s", i)
		_, err := s.UpsertSession(ctx, sess(id, "u", "gw"))
		must(t, err)
		ids = append(ids, id)
	}
	must(t, s.CloseSession(ctx, "s7"))
	before := e.clock.Now()
	e.clock.Advance(time.Minute)
	after := e.clock.Now()
	must(t, tt.TouchSessions(ctx, append(ids, "unknown")))
	for _, id := range []string{"s0", "s511", "s512", "s1023", "s1024", "s1099", "s7"} {
		got, err := s.GetSession(ctx, id)
		must(t, err)
		want := after
		if id == "s7" {
			want = before // closed: not touched
		}
		if !got.LastSeen.Equal(want) {
			t.Fatalf("%s: last seen %v, want %v", id, got.LastSeen, want)
		}
	}
	if err := tt.TouchSessions(ctx, []string{""}); err == nil {
		t.Fatal("empty session id accepted")
	}
}
