package bus_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/server/bus"
)

func TestEncodeToken(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{"room-1", "room-1"},
		{"Room42", "Room42"},
		{"room.1", "room_2E1"},
		{"a_b", "a_5Fb"},
		{"*", "_2A"},
		{">", "_3E"},
		{"a b\tc", "a_20b_09c"},
		{"ü", "_C3_BC"},
		{"_", "_5F"},
		{"a/b=c", "a_2Fb_3Dc"},
		{"\x00", "_00"},
	}
	for _, tt := range tests {
		got, err := bus.EncodeToken(tt.name)
		if err != nil || got != tt.want {
			t.Errorf("EncodeToken(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
			continue
		}
		if n := bus.EncodedLen(tt.name); n != len(got) {
			t.Errorf("EncodedLen(%q) = %d, want %d", tt.name, n, len(got))
		}
		back, err := bus.DecodeToken(got)
		if err != nil || back != tt.name {
			t.Errorf("DecodeToken(%q) = %q, %v; want %q", got, back, err, tt.name)
		}
	}
}

func TestEncodeTokenLimits(t *testing.T) {
	if _, err := bus.EncodeToken(""); !errors.Is(err, bus.ErrInvalidName) {
		t.Errorf("empty name: %v", err)
	}
	longest := strings.Repeat(".", bus.MaxNameLen)
	tok, err := bus.EncodeToken(longest)
	if err != nil || len(tok) != bus.MaxTokenLen {
		t.Errorf("name of MaxNameLen escaped bytes: %d bytes, %v; want %d", len(tok), err, bus.MaxTokenLen)
	}
	if _, err := bus.EncodeToken(longest + "a"); !errors.Is(err, bus.ErrInvalidName) {
		t.Errorf("name over MaxNameLen: %v", err)
	}
}

func TestDecodeTokenRejectsNonCanonical(t *testing.T) {
	for _, tok := range []string{
		"", "a.b", "a*", "a>", "a b",
		"_2e",  // lower-case hex
		"_41",  // 'A' must be written plainly
		"_2D",  // '-' must be written plainly
		"_2",   // truncated escape
		"_",    // lone escape
		"a_G0", // not hex
		strings.Repeat("a", bus.MaxTokenLen+1),
	} {
		if got, err := bus.DecodeToken(tok); !errors.Is(err, bus.ErrInvalidName) {
			t.Errorf("DecodeToken(%q) = %q, %v; want ErrInvalidName", tok, got, err)
		}
	}
}

// FuzzToken checks that every encoding is a valid single subject token and
// KV key, decodes back, and that DecodeToken accepts only canonical input.
func FuzzToken(f *testing.F) {
	for _, s := range []string{"room-1", "room.1", "a_b", "ü", "*", ">", " ", "_5F", "_2e"} {
		f.Add(s)
		if tok, err := bus.EncodeToken(s); err == nil {
			f.Add(tok)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := bus.EncodeToken(s)
		if err == nil {
			if strings.ContainsAny(tok, ".*> \t\r\n") || bus.ValidateKey(tok) != nil || bus.ValidateSubject(tok) != nil {
				t.Fatalf("EncodeToken(%q) = %q is not a valid token", s, tok)
			}
			back, err := bus.DecodeToken(tok)
			if err != nil || back != s {
				t.Fatalf("round trip %q -> %q -> %q, %v", s, tok, back, err)
			}
		}
		if name, err := bus.DecodeToken(s); err == nil {
			again, err := bus.EncodeToken(name)
			if err != nil || again != s {
				t.Fatalf("DecodeToken accepted non-canonical %q (re-encodes to %q)", s, again)
			}
		}
	})
}

func TestValidateSubject(t *testing.T) {
	tests := []struct {
		s       string
		ok      bool
		literal bool
	}{
		{"a", true, true},
		{"jsp.c.ch.room-1", true, true},
		{"jsp.*.ch", true, false},
		{"jsp.>", true, false},
		{">", true, false},
		{"*", true, false},
		{"", false, false},
		{"a..b", false, false},
		{".a", false, false},
		{"a.", false, false},
		{"a.>.b", false, false},
		{"a.b*", false, false},
		{"a.>b", false, false},
		{"a b", false, false},
		{"a\tb", false, false},
		{strings.Repeat("a", bus.MaxSubjectLen+1), false, false},
	}
	for _, tt := range tests {
		err := bus.ValidateSubject(tt.s)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateSubject(%q) = %v, want ok=%v", tt.s, err, tt.ok)
		}
		if err != nil && !errors.Is(err, bus.ErrInvalidSubject) {
			t.Errorf("ValidateSubject(%q) error %v is not ErrInvalidSubject", tt.s, err)
		}
		if got := bus.IsLiteral(tt.s); got != tt.literal {
			t.Errorf("IsLiteral(%q) = %v, want %v", tt.s, got, tt.literal)
		}
	}
}

func TestMatchSubject(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.*", "a", false},
		{"a.>", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{">", "a", true},
		{"*.b.*", "a.b.c", true},
		{"*.b.*", "a.x.c", false},
		{"a.b.c", "a.b", false},
		{"a.b", "a.b.c", false},
		{"jsp.c.core.cmd.*", "jsp.c.core.cmd.7", true},
		{"jsp.c.core.cmd.*", "jsp.c.ch.x", false},
	}
	for _, tt := range tests {
		if got := bus.MatchSubject(tt.pattern, tt.subject); got != tt.want {
			t.Errorf("MatchSubject(%q, %q) = %v, want %v", tt.pattern, tt.subject, got, tt.want)
		}
	}
}

func TestValidateKey(t *testing.T) {
	for _, k := range []string{"a", "a.b", "A-b_c=d/e", "ann._2E"} {
		if err := bus.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", ".a", "a.", "a..b", "a b", "a*", "a>", "ü", "a:b"} {
		if err := bus.ValidateKey(k); !errors.Is(err, bus.ErrInvalidName) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidName", k, err)
		}
	}
	for _, p := range []string{"a.*", "a.>", ">", "*.b"} {
		if err := bus.ValidateKeyPattern(p); err != nil {
			t.Errorf("ValidateKeyPattern(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"a.ü", "a..*", "a.>.b"} {
		if err := bus.ValidateKeyPattern(p); err == nil {
			t.Errorf("ValidateKeyPattern(%q) accepted", p)
		}
	}
}

func TestSubjects(t *testing.T) {
	s, err := bus.NewSubjects("eu-1")
	if err != nil {
		t.Fatal(err)
	}
	must := func(v string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct{ got, want string }{
		{s.Cluster(), "eu-1"},
		{s.All(), "jsp.eu-1.>"},
		{must(s.Channel("room.1")), "jsp.eu-1.ch.room_2E1"},
		{s.Channels(), "jsp.eu-1.ch.>"},
		{must(s.User("ann@example")), "jsp.eu-1.user.ann_40example"},
		{s.Users(), "jsp.eu-1.user.>"},
		{s.CoreCmd(7), "jsp.eu-1.core.cmd.7"},
		{s.CoreCmds(), "jsp.eu-1.core.cmd.*"},
		{must(s.Node(bus.RoleGateway, "gw.a")), "jsp.eu-1.gw.gw_2Ea"},
		{must(s.Node(bus.RoleCore, "c1")), "jsp.eu-1.core.node.c1"},
		{must(s.Gateway("g1", "kick")), "jsp.eu-1.gw.g1.kick"},
		{s.Gateways(), "jsp.eu-1.gw.>"},
		{must(s.Inbox(bus.RoleGateway, "g1")), "jsp.eu-1.gw.g1.reply"},
		{must(s.Inbox(bus.RoleCore, "c1")), "jsp.eu-1.core.node.c1.reply"},
		{s.Work(), "jsp.eu-1.work.>"},
		{s.Events(), "jsp.eu-1.events.>"},
		{must(bus.SessionKey("s.1")), "s_2E1"},
		{must(bus.PresenceKey("ann", "s1")), "ann.s1"},
		{must(bus.PresencePattern("ann")), "ann.*"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
	wq := must(func() (string, error) { c, err := s.WorkQueue(bus.WorkWebhook); return c.Stream + " " + c.Subject, err }())
	if wq != "JSP_WORK_WEBHOOK jsp.eu-1.work.webhook" {
		t.Errorf("work queue %q", wq)
	}
	if el := s.EventLog(); el.Stream != bus.StreamEvents || el.SubjectPrefix != "jsp.eu-1.events" {
		t.Errorf("event log %+v", el)
	}
	ch, err := s.ChannelOf("jsp.eu-1.ch.room_2E1")
	if err != nil || ch != "room.1" {
		t.Errorf("ChannelOf = %q, %v", ch, err)
	}
	for _, bad := range []string{"jsp.eu-2.ch.x", "jsp.eu-1.ch.a.b", "jsp.eu-1.user.x", "jsp.eu-1.ch._2e"} {
		if _, err := s.ChannelOf(bad); err == nil {
			t.Errorf("ChannelOf(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "a.b", "a b", "a_b", strings.Repeat("a", bus.MaxClusterLen+1)} {
		if _, err := bus.NewSubjects(bad); !errors.Is(err, bus.ErrInvalidName) {
			t.Errorf("NewSubjects(%q) = %v", bad, err)
		}
	}
	if _, err := s.Node("admin", "x"); !errors.Is(err, bus.ErrInvalidName) {
		t.Errorf("unknown role: %v", err)
	}
	if _, err := s.WorkQueue("bad.name"); !errors.Is(err, bus.ErrInvalidName) {
		t.Errorf("bad work queue name: %v", err)
	}
	// Every built subject is a valid literal, however odd the name.
	for _, name := range []string{"a", "a.b.c", "*", ">", "white space", "ü", strings.Repeat("x", bus.MaxNameLen)} {
		subj := must(s.Channel(name))
		if !bus.IsLiteral(subj) || !utf8.ValidString(subj) {
			t.Errorf("Channel(%q) = %q is not a literal subject", name, subj)
		}
	}
}
