package session

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

func TestRefreshCodec(t *testing.T) {
	tok := "v1.abc.def"
	got, err := ParseRefreshRequest(AppendRefreshRequest(nil, tok))
	if err != nil || got != tok {
		t.Fatalf("request round trip: %q %v", got, err)
	}
	exp := time.UnixMilli(1_900_000_000_123).UTC()
	gotExp, err := ParseRefreshReply(AppendRefreshReply(nil, exp))
	if err != nil || !gotExp.Equal(exp) {
		t.Fatalf("reply round trip: %v %v", gotExp, err)
	}
	if never, err := ParseRefreshReply(AppendRefreshReply(nil, time.Time{})); err != nil || !never.IsZero() {
		t.Fatalf("never: %v %v", never, err)
	}
	bad := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"empty map", []byte{0xa0}},
		{"no token", []byte{0xa1, 0x02, 0x61, 'x'}},
		{"token not text", []byte{0xa1, 0x01, 0x01}},
		{"trailing", append(AppendRefreshRequest(nil, "t"), 0)},
		{"oversize", AppendRefreshRequest(nil, strings.Repeat("x", MaxRefreshToken+1))},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseRefreshRequest(tt.body); jsperr.CodeOf(err) != jsperr.MalformedFrame {
				t.Fatalf("err %v, want MALFORMED_FRAME", err)
			}
		})
	}
	if _, err := ParseRefreshReply([]byte{0xa0}); jsperr.CodeOf(err) != jsperr.MalformedFrame {
		t.Fatalf("reply without expiry: %v", err)
	}
	// No proper prefix of a valid request parses.
	full := AppendRefreshRequest(nil, tok)
	for i := range full {
		if _, err := ParseRefreshRequest(full[:i]); err == nil {
			t.Fatalf("prefix of %d bytes parsed", i)
		}
	}
}

func FuzzParseRefreshRequest(f *testing.F) {
	f.Add(AppendRefreshRequest(nil, "v1.abc.def"))
	f.Add(AppendRefreshReply(nil, time.UnixMilli(1_900_000_000_000)))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := ParseRefreshRequest(b)
		if err != nil {
			return
		}
		again, err := ParseRefreshRequest(AppendRefreshRequest(nil, tok))
		if err != nil || again != tok {
			t.Fatalf("re-encode: %q %v", again, err)
		}
		_, _ = ParseRefreshReply(b)
	})
}

// TestRefreshSpecExamples checks the byte examples of JSP §5.9.1.
func TestRefreshSpecExamples(t *testing.T) {
	if got := hex.EncodeToString(AppendRefreshRequest(nil, "jspt.abcde")); got != "a1016a6a7370742e6162636465" {
		t.Fatalf("request %s", got)
	}
	if got := hex.EncodeToString(AppendRefreshReply(nil, time.UnixMilli(1900000000576))); got != "a1011b000001ba60d33a40" {
		t.Fatalf("reply %s", got)
	}
}
