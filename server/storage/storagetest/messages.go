package storagetest

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

func msg(sender, clientID, body string) storage.Message {
	return storage.Message{Sender: sender, ClientID: clientID, Body: []byte(body)}
}

func appendN(t testing.TB, s storage.Store, channel string, n int) {
	t.Helper()
	for i := range n {
		_, err := s.AppendMessage(ctx, channel, msg("u", "", fmt.Sprintf("m%d", i+1)))
		must(t, err)
	}
}

// seqs renders the sequence numbers of msgs, checking each body is "mN"
// with N its sequence number (as appendN writes them).
func seqs(t testing.TB, msgs []storage.Message) string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		if want := fmt.Sprintf("m%d", m.Seq); string(m.Body) != want {
			t.Fatalf("message %d has body %q, want %q", m.Seq, m.Body, want)
		}
		out = append(out, fmt.Sprint(m.Seq))
	}
	return strings.Join(out, ",")
}

func info(t testing.TB, s storage.Store, channel string) storage.ChannelInfo {
	t.Helper()
	i, err := s.ChannelInfo(ctx, channel)
	must(t, err)
	return i
}

var messageTests = []test{
	{"AppendRead", func(t *testing.T, e *env) {
		s := e.open()
		in := storage.Message{
			ClientID: "c-1", Sender: "alice", Body: []byte{0, 1, 2, 0xff},
			Headers: map[string]string{"content-type": "application/cbor", "reply-to": "7"},
		}
		t0 := e.clock.Now()
		res, err := s.AppendMessage(ctx, "general", in)
		must(t, err)
		equal(t, "result", res, storage.AppendResult{Seq: 1, Time: t0})
		got, err := s.MessagesAfter(ctx, "general", 0, 10)
		must(t, err)
		if len(got) != 1 {
			t.Fatalf("read %d messages, want 1", len(got))
		}
		g := got[0]
		if g.Channel != "general" || g.Seq != 1 || g.ClientID != "c-1" || g.Sender != "alice" ||
			!bytes.Equal(g.Body, in.Body) || !maps.Equal(g.Headers, in.Headers) || !g.Time.Equal(t0) {
			t.Fatalf("read %+v, want %+v", g, in)
		}
		// An empty body and no headers round-trip too.
		_, err = s.AppendMessage(ctx, "general", storage.Message{Sender: "bob"})
		must(t, err)
		got, err = s.MessagesAfter(ctx, "general", 1, 10)
		must(t, err)
		if len(got) != 1 || len(got[0].Body) != 0 || got[0].Headers != nil {
			t.Fatalf("empty message read back as %+v", got)
		}
	}},
	{"Pages", func(t *testing.T, e *env) {
		s := e.open()
		appendN(t, s, "c", 10)
		for _, tc := range []struct {
			name   string
			before bool
			seq    storage.Seq
			limit  int
			want   string
		}{
			{"after0", false, 0, 3, "1,2,3"},
			{"after3", false, 3, 3, "4,5,6"},
			{"afterTail", false, 8, 5, "9,10"},
			{"afterEnd", false, 10, 5, ""},
			{"afterHuge", false, 1 << 63, 5, ""},
			{"afterAll", false, 0, 0, "1,2,3,4,5,6,7,8,9,10"},
			{"beforeEnd", true, 0, 3, "8,9,10"},
			{"before8", true, 8, 3, "5,6,7"},
			{"before3", true, 3, 5, "1,2"},
			{"before1", true, 1, 5, ""},
			{"beforeHuge", true, 1<<63 + 5, 2, "9,10"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				read := s.MessagesAfter
				if tc.before {
					read = s.MessagesBefore
				}
				got, err := read(ctx, "c", tc.seq, tc.limit)
				must(t, err)
				equal(t, "seqs", seqs(t, got), tc.want)
			})
		}
		got, err := s.MessagesAfter(ctx, "unknown", 0, 10)
		must(t, err)
		equal(t, "unknown channel", len(got), 0)
	}},
	{"ChannelsIndependent", func(t *testing.T, e *env) {
		s := e.open()
		appendN(t, s, "a", 3)
		appendN(t, s, "b", 2)
		appendN(t, s, "a", 1)
		equal(t, "a", info(t, s, "a"), storage.ChannelInfo{Name: "a", Oldest: 1, Last: 4})
		equal(t, "b", info(t, s, "b"), storage.ChannelInfo{Name: "b", Oldest: 1, Last: 2})
		equal(t, "unknown", info(t, s, "z"), storage.ChannelInfo{Name: "z", Oldest: 1, Last: 0})
		appendN(t, s, "c", 1)
		chans, err := s.Channels(ctx, "", 2)
		must(t, err)
		if len(chans) != 2 || chans[0].Name != "a" || chans[1].Name != "b" || chans[0].Last != 4 {
			t.Fatalf("channels page 1 = %+v", chans)
		}
		chans, err = s.Channels(ctx, "b", 2)
		must(t, err)
		if len(chans) != 1 || chans[0].Name != "c" {
			t.Fatalf("channels page 2 = %+v", chans)
		}
	}},
	{"Dedup", func(t *testing.T, e *env) {
		s := e.open()
		first, err := s.AppendMessage(ctx, "c", msg("alice", "k1", "hello"))
		must(t, err)
		appendN(t, s, "c", 1)
		e.clock.Advance(time.Minute)
		again, err := s.AppendMessage(ctx, "c", msg("alice", "k1", "hello"))
		must(t, err)
		equal(t, "resend", again, storage.AppendResult{Seq: first.Seq, Time: first.Time, Duplicate: true})
		equal(t, "last after resend", info(t, s, "c").Last, 2)

		// Client ids are per sender.
		other, err := s.AppendMessage(ctx, "c", msg("bob", "k1", "hello"))
		must(t, err)
		equal(t, "other sender", other.Seq, 3)
		// A reused key with other content or on another channel is a
		// conflict, not a duplicate; nothing is stored and no number used.
		_, err = s.AppendMessage(ctx, "c", msg("alice", "k1", "changed"))
		mustIs(t, err, storage.ErrConflict)
		withHeader := msg("alice", "k1", "hello")
		withHeader.Headers = map[string]string{"a": "b"}
		_, err = s.AppendMessage(ctx, "c", withHeader)
		mustIs(t, err, storage.ErrConflict)
		_, err = s.AppendMessage(ctx, "d", msg("alice", "k1", "hello"))
		mustIs(t, err, storage.ErrConflict)
		equal(t, "last after conflicts", info(t, s, "c").Last, 3)
		equal(t, "d untouched", info(t, s, "d").Last, 0)

		// Past the window the key is free again.
		e.clock.Advance(e.cfg.DedupWindow)
		late, err := s.AppendMessage(ctx, "c", msg("alice", "k1", "hello"))
		must(t, err)
		equal(t, "after window", late, storage.AppendResult{Seq: 4, Time: e.clock.Now()})
	}},
	{"DedupSurvivesRestart", func(t *testing.T, e *env) {
		s := e.open()
		first, err := s.AppendMessage(ctx, "c", msg("alice", "k1", "hello"))
		must(t, err)
		must(t, s.Close())
		s = e.open()
		again, err := s.AppendMessage(ctx, "c", msg("alice", "k1", "hello"))
		must(t, err)
		equal(t, "resend after restart", again, storage.AppendResult{Seq: first.Seq, Time: first.Time, Duplicate: true})
		next, err := s.AppendMessage(ctx, "c", msg("alice", "k2", "more"))
		must(t, err)
		equal(t, "numbering continues after restart", next.Seq, 2)
	}},
	{"DedupSurvivesTrim", func(t *testing.T, e *env) {
		s := e.open()
		first, err := s.AppendMessage(ctx, "c", msg("alice", "k1", "hello"))
		must(t, err)
		_, err = s.TrimMessages(ctx, "c", 0)
		must(t, err)
		again, err := s.AppendMessage(ctx, "c", msg("alice", "k1", "hello"))
		must(t, err)
		equal(t, "resend of trimmed message", again.Seq, first.Seq)
	}},
	{"ConcurrentAppenders", func(t *testing.T, e *env) {
		// Two stores on one database stand for two server processes.
		stores := []storage.Store{e.open(), e.open()}
		s := stores[0]
		const writers, each = 8, 25
		type claim struct {
			res storage.AppendResult
			id  string
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			results []claim
			errs    []error
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					// Each message is also sent by a second writer, as a
					// client resending over another connection would.
					id := fmt.Sprintf("k%d", (w/2)*each+i)
					res, err := stores[(w+i)%2].AppendMessage(ctx, "hot", msg("alice", id, "body-"+id))
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						results = append(results, claim{res, id})
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			t.Fatal(err)
		}
		const unique = writers / 2 * each
		seqOf := map[string]storage.Seq{}
		dups := 0
		for _, c := range results {
			if c.res.Duplicate {
				dups++
			}
			if prev, ok := seqOf[c.id]; ok && prev != c.res.Seq {
				t.Fatalf("client id %s got seqs %d and %d", c.id, prev, c.res.Seq)
			}
			seqOf[c.id] = c.res.Seq
		}
		equal(t, "duplicates", dups, writers*each-unique)
		equal(t, "last", info(t, s, "hot").Last, unique)
		got, err := s.MessagesAfter(ctx, "hot", 0, unique+10)
		must(t, err)
		equal(t, "stored", len(got), unique)
		for i, m := range got {
			if m.Seq != storage.Seq(i+1) {
				t.Fatalf("message %d has seq %d: gap or reorder", i, m.Seq)
			}
			if seqOf[m.ClientID] != m.Seq || string(m.Body) != "body-"+m.ClientID {
				t.Fatalf("seq %d holds %q/%q, acknowledged as %d", m.Seq, m.ClientID, m.Body, seqOf[m.ClientID])
			}
		}
	}},
	{"Trim", func(t *testing.T, e *env) {
		s := e.open()
		appendN(t, s, "c", 10)
		n, err := s.TrimMessages(ctx, "c", 4)
		must(t, err)
		equal(t, "trimmed", n, 6)
		i := info(t, s, "c")
		equal(t, "info", i, storage.ChannelInfo{Name: "c", Oldest: 7, Last: 10})
		equal(t, "count", i.Count(), 4)
		for _, tc := range []struct {
			after storage.Seq
			ok    bool
		}{{0, false}, {5, false}, {6, true}, {9, true}, {10, true}} {
			equal(t, fmt.Sprintf("can recover after %d", tc.after), i.CanRecover(tc.after), tc.ok)
		}
		got, err := s.MessagesAfter(ctx, "c", 0, 100)
		must(t, err)
		equal(t, "retained", seqs(t, got), "7,8,9,10")
		n, err = s.TrimMessages(ctx, "c", 10)
		must(t, err)
		equal(t, "trim to more than held", n, 0)
		n, err = s.TrimMessages(ctx, "unknown", 1)
		must(t, err)
		equal(t, "trim unknown", n, 0)
		// Numbers are never reused after a trim to zero.
		n, err = s.TrimMessages(ctx, "c", 0)
		must(t, err)
		equal(t, "trim all", n, 4)
		equal(t, "info after trim all", info(t, s, "c"), storage.ChannelInfo{Name: "c", Oldest: 11, Last: 10})
		res, err := s.AppendMessage(ctx, "c", msg("u", "", "m11"))
		must(t, err)
		equal(t, "seq after trim all", res.Seq, 11)
		_, err = s.TrimMessages(ctx, "c", -1)
		mustIs(t, err, storage.ErrInvalid)
	}},
	{"TrimBefore", func(t *testing.T, e *env) {
		s := e.open()
		appendN(t, s, "c", 3)
		e.clock.Advance(time.Hour)
		cut := e.clock.Now()
		appendN(t, s, "c", 2)
		n, err := s.TrimMessagesBefore(ctx, "c", cut)
		must(t, err)
		equal(t, "trimmed", n, 3)
		equal(t, "info", info(t, s, "c"), storage.ChannelInfo{Name: "c", Oldest: 4, Last: 5})
		n, err = s.TrimMessagesBefore(ctx, "c", cut)
		must(t, err)
		equal(t, "trimmed again", n, 0)
		n, err = s.TrimMessagesBefore(ctx, "c", cut.Add(time.Hour))
		must(t, err)
		equal(t, "trimmed rest", n, 2)
		equal(t, "info after", info(t, s, "c"), storage.ChannelInfo{Name: "c", Oldest: 6, Last: 5})
	}},
	{"Limits", func(t *testing.T, e *env) {
		e.cfg.MaxMessageBytes = 100
		e.cfg.DefaultPageSize = 2
		e.cfg.MaxPageSize = 3
		s := e.open()
		_, err := s.AppendMessage(ctx, "c", storage.Message{Sender: "u", Body: make([]byte, 101)})
		mustIs(t, err, storage.ErrTooLarge)
		// Headers count toward the limit.
		_, err = s.AppendMessage(ctx, "c", storage.Message{Sender: "u", Body: make([]byte, 95), Headers: map[string]string{"k": "v"}})
		mustIs(t, err, storage.ErrTooLarge)
		_, err = s.AppendMessage(ctx, "c", storage.Message{Sender: "u", Body: make([]byte, 100)})
		must(t, err)
		many := map[string]string{}
		for i := range storage.MaxHeaders + 1 {
			many[fmt.Sprint(i)] = ""
		}
		_, err = s.AppendMessage(ctx, "c", storage.Message{Sender: "u", Headers: many})
		mustIs(t, err, storage.ErrInvalid)
		for _, tc := range []struct {
			channel string
			m       storage.Message
		}{
			{"", msg("u", "", "")},
			{"c", msg("", "", "")},
			{strings.Repeat("c", storage.MaxNameLen+1), msg("u", "", "")},
			{"c", msg("u", strings.Repeat("k", storage.MaxNameLen+1), "")},
			{"c", storage.Message{Sender: "u", Headers: map[string]string{"": "v"}}},
			{"c", storage.Message{Sender: "u", Headers: map[string]string{"k": "\x00"}}},
		} {
			_, err := s.AppendMessage(ctx, tc.channel, tc.m)
			mustIs(t, err, storage.ErrInvalid)
		}
		appendN(t, s, "p", 5)
		got, err := s.MessagesAfter(ctx, "p", 0, 0)
		must(t, err)
		equal(t, "default page", seqs(t, got), "1,2")
		got, err = s.MessagesAfter(ctx, "p", 0, 100)
		must(t, err)
		equal(t, "clamped page", seqs(t, got), "1,2,3")
		got, err = s.MessagesBefore(ctx, "p", 0, 100)
		must(t, err)
		equal(t, "clamped history page", seqs(t, got), "3,4,5")
	}},
}
