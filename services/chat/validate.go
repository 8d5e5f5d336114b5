package chat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/storage"
)

// checkID checks an id: 1..MaxIDBytes of UTF-8 without whitespace,
// control characters or the unit separator used in direct-chat keys.
func (s *Service) checkID(what, id string) error {
	if id == "" {
		return jsperr.Newf(jsperr.BadRequest, "empty %s", what)
	}
	if len(id) > s.cfg.MaxIDBytes {
		return jsperr.Newf(jsperr.BadRequest, "%s of %d bytes over the limit of %d", what, len(id), s.cfg.MaxIDBytes)
	}
	if !utf8.ValidString(id) {
		return jsperr.Newf(jsperr.BadRequest, "%s is not UTF-8", what)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return jsperr.Newf(jsperr.BadRequest, "%s contains whitespace or a control character", what)
		}
	}
	return nil
}

// checkText checks a free text of at most max bytes (TEXT_TOO_LONG) that
// is UTF-8 without NUL.
func checkText(what, text string, max int) error {
	if len(text) > max {
		return jsperr.Newf(jsperr.TextTooLong, "%s of %d bytes over the limit of %d", what, len(text), max)
	}
	if !utf8.ValidString(text) || strings.IndexByte(text, 0) >= 0 {
		return jsperr.Newf(jsperr.BadRequest, "%s is not UTF-8 or contains NUL", what)
	}
	return nil
}

// checkEmoji checks a reaction (INVALID_EMOJI otherwise): 1..MaxEmojiBytes
// of UTF-8, either a :shortcode: of ASCII letters, digits and _ + -, or a
// string without whitespace, control characters or ASCII letters that has
// at least one non-ASCII character (an emoji, a ZWJ sequence, a keycap such
// as 1️⃣, a flag).
func (s *Service) checkEmoji(e string) error {
	if e == "" || len(e) > s.cfg.MaxEmojiBytes || !utf8.ValidString(e) {
		return jsperr.Newf(jsperr.InvalidEmoji, "reaction of %d bytes: want 1..%d bytes of UTF-8", len(e), s.cfg.MaxEmojiBytes)
	}
	if len(e) > 2 && e[0] == ':' && e[len(e)-1] == ':' {
		for _, r := range e[1 : len(e)-1] {
			if r >= 0x80 || !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '+' || r == '-') {
				return jsperr.Newf(jsperr.InvalidEmoji, "shortcode %q: only letters, digits, _ + -", e)
			}
		}
		return nil
	}
	nonASCII := false
	for _, r := range e {
		switch {
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return jsperr.New(jsperr.InvalidEmoji, "reaction contains whitespace or a control character")
		case r < 0x80 && unicode.IsLetter(r):
			return jsperr.Newf(jsperr.InvalidEmoji, "reaction %q is text, not an emoji or :shortcode:", e)
		case r >= 0x80:
			nonASCII = true
		}
	}
	if !nonASCII {
		return jsperr.Newf(jsperr.InvalidEmoji, "reaction %q is not an emoji", e)
	}
	return nil
}

// mentionsAll are the words that mention every member.
var mentionsAll = []string{"channel", "all", "here"}

// parseMentions returns the users mentioned with @user in text, in order
// of first appearance, and whether @channel (@all, @here) appears. A
// mention ends at whitespace or punctuation other than . _ -.
func parseMentions(text string) (users []string, all bool) {
	for i := 0; i < len(text); i++ {
		if text[i] != '@' || (i > 0 && !isBoundary(rune(text[i-1]))) {
			continue
		}
		j := i + 1
		for j < len(text) {
			r, size := utf8.DecodeRuneInString(text[j:])
			if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-') {
				break
			}
			j += size
		}
		name := strings.TrimRight(text[i+1:j], ".")
		if name == "" {
			continue
		}
		if slices.Contains(mentionsAll, name) {
			all = true
		} else if !slices.Contains(users, name) {
			users = append(users, name)
		}
		i = j - 1
	}
	return users, all
}

func isBoundary(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) }

// Cursors (spec/JSP-chat.md §3.4): version byte 1, the sequence number as 8
// bytes big-endian, and the first 16 bytes of HMAC-SHA256(key, "jsp chat
// cursor" || conversation || 0x00 || seq). A cursor is only valid for the
// conversation it was made for; a forged or altered one fails the MAC.
const (
	cursorVersion = 1
	cursorMACLen  = 16
	cursorLen     = 1 + 8 + cursorMACLen
)

func (s *Service) cursorMAC(conv string, seq storage.Seq) []byte {
	m := hmac.New(sha256.New, s.cursor)
	m.Write([]byte("jsp chat cursor"))
	m.Write([]byte(conv))
	m.Write([]byte{0})
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seq))
	m.Write(b[:])
	return m.Sum(nil)[:cursorMACLen]
}

// makeCursor returns the cursor of position seq in conv.
func (s *Service) makeCursor(conv string, seq storage.Seq) []byte {
	b := make([]byte, 0, cursorLen)
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	return append(b, s.cursorMAC(conv, seq)...)
}

// parseCursor checks a cursor for conv and returns its position.
func (s *Service) parseCursor(conv string, c []byte) (storage.Seq, error) {
	if len(c) != cursorLen || c[0] != cursorVersion {
		return 0, jsperr.Newf(jsperr.InvalidCursor, "cursor of %d bytes: want %d, version %d", len(c), cursorLen, cursorVersion)
	}
	seq := storage.Seq(binary.BigEndian.Uint64(c[1:9]))
	// Constant-time comparison: the MAC must not be learnable byte by byte.
	if !hmac.Equal(c[9:], s.cursorMAC(conv, seq)) {
		return 0, jsperr.New(jsperr.InvalidCursor, "cursor is forged or belongs to another conversation")
	}
	return seq, nil
}
