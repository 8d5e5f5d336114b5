package wire

import (
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Payload codecs of the link frames (JSP §3.4). A varint payload is exact:
// bytes after the varint are MALFORMED_FRAME, since a link frame's length is
// the length of its fields.

// AppendVarintPayload appends the one-varint payload of WINDOW_UPDATE (the
// credit increment), RESET_STREAM and STOP_SENDING (the error code).
func AppendVarintPayload(b []byte, v uint64) []byte { return AppendVarint(b, v) }

// ParseVarintPayload decodes a payload that is exactly one varint (JSP
// §3.4): WINDOW_UPDATE, RESET_STREAM, STOP_SENDING.
func ParseVarintPayload(p []byte) (uint64, error) {
	v, n, err := ParseVarint(p)
	if err != nil {
		return 0, err
	}
	if n != len(p) {
		return 0, ErrTrailingBytes
	}
	return v, nil
}

// AppendLinkClose appends a LINK_CLOSE payload: the error code as a varint,
// then the reason as UTF-8 (JSP §3.4). A reason longer than
// MaxCloseReasonLen is cut at a character boundary, because a close must
// still go out when the error text is long.
func AppendLinkClose(b []byte, code jsperr.Code, reason string) []byte {
	b = AppendVarint(b, uint64(code))
	return append(b, truncateUTF8(reason, MaxCloseReasonLen)...)
}

// ParseLinkClose decodes a LINK_CLOSE payload (JSP §3.4). The reason is
// informative and the link is closing anyway, so a reason that is not valid
// UTF-8 or is longer than MaxCloseReasonLen does not fail the frame: it is
// returned as "" and the peer's code is kept. Only a bad code varint is an
// error.
func ParseLinkClose(p []byte) (jsperr.Code, string, error) {
	v, n, err := ParseVarint(p)
	if err != nil {
		return 0, "", err
	}
	r := p[n:]
	if len(r) > MaxCloseReasonLen || !utf8.Valid(r) {
		return jsperr.Code(v), "", nil
	}
	return jsperr.Code(v), string(r), nil
}
