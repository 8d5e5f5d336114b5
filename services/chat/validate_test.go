package chat

import (
	"slices"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
)

func testService(t *testing.T) *Service {
	t.Helper()
	cfg := Config{CursorKey: []byte("0123456789abcdef0123456789abcdef")}
	cfg.setDefaults()
	return &Service{cfg: cfg, cursor: cfg.CursorKey}
}

func TestCheckEmoji(t *testing.T) {
	s := testService(t)
	tests := []struct {
		in string
		ok bool
	}{
		{"👍", true},
		{"👨‍👩‍👧‍👦", true},
		{"1️⃣", true},
		{"🇫🇷", true},
		{":thumbs_up:", true},
		{":+1:", true},
		{"", false},
		{"lol", false},
		{"1", false},
		{"👍 ", false},
		{"\x00👍", false},
		{":bad code:", false},
		{":é:", false},
		{strings.Repeat("😀", 9), false}, // 36 bytes > DefaultMaxEmojiBytes
		{"\xff", false},
	}
	for _, tt := range tests {
		err := s.checkEmoji(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("checkEmoji(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
		if err != nil && jsperr.CodeOf(err) != jsperr.InvalidEmoji {
			t.Errorf("checkEmoji(%q) code %s", tt.in, jsperr.CodeOf(err))
		}
	}
}

func TestParseMentions(t *testing.T) {
	tests := []struct {
		text  string
		users []string
		all   bool
	}{
		{"hi @bob and @carol.", []string{"bob", "carol"}, false},
		{"@channel look", nil, true},
		{"mail me at bob@example.com", nil, false},
		{"(@alice) @alice @a.b-c_d", []string{"alice", "a.b-c_d"}, false},
		{"@ nobody, @here", nil, true},
		{"@José!", []string{"José"}, false},
	}
	for _, tt := range tests {
		users, all := parseMentions(tt.text)
		if !slices.Equal(users, tt.users) || all != tt.all {
			t.Errorf("parseMentions(%q) = %v %v, want %v %v", tt.text, users, all, tt.users, tt.all)
		}
	}
}

func TestCursor(t *testing.T) {
	s := testService(t)
	c := s.makeCursor("conv", 42)
	seq, err := s.parseCursor("conv", c)
	if err != nil || seq != 42 {
		t.Fatalf("parseCursor = %d, %v", seq, err)
	}
	other := testService(t)
	other.cursor = []byte("another key, also 32 bytes long!")
	bad := map[string]struct {
		conv string
		c    []byte
		s    *Service
	}{
		"other conversation": {"conv2", c, s},
		"other key":          {"conv", c, other},
		"flipped seq":        {"conv", flip(c, 8), s},
		"flipped mac":        {"conv", flip(c, len(c)-1), s},
		"short":              {"conv", c[:len(c)-1], s},
		"long":               {"conv", append(slices.Clone(c), 0), s},
		"version":            {"conv", flip(c, 0), s},
		"empty":              {"conv", nil, s},
	}
	for name, b := range bad {
		if _, err := b.s.parseCursor(b.conv, b.c); jsperr.CodeOf(err) != jsperr.InvalidCursor {
			t.Errorf("%s: %v, want INVALID_CURSOR", name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestCheckText(t *testing.T) {
	if err := checkText("text", strings.Repeat("x", 10), 10); err != nil {
		t.Fatal(err)
	}
	if jsperr.CodeOf(checkText("text", strings.Repeat("x", 11), 10)) != jsperr.TextTooLong {
		t.Fatal("over the limit accepted")
	}
	if jsperr.CodeOf(checkText("text", "a\x00b", 10)) != jsperr.BadRequest {
		t.Fatal("NUL accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{},
		{Host: nil, Store: nil},
	}
	for i, c := range bad {
		if c.validate() == nil {
			t.Errorf("config %d accepted", i)
		}
	}
}
