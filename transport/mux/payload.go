package mux

import (
	"strings"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// Link frame payloads (JSP §3.4). Each control payload is one varint, except
// LINK_CLOSE, which adds a UTF-8 reason.

// maxReasonLen caps the reason sent in LINK_CLOSE so that the frame stays
// small whatever the caller passes.
const maxReasonLen = 1024

// wireCode clamps a code to what a varint can carry; callers may pass any
// uint64, and the encoder must not panic on it.
func wireCode(c jsperr.Code) uint64 {
	if uint64(c) > wire.MaxVarint {
		return uint64(jsperr.Internal)
	}
	return uint64(c)
}

// appendVarintFrame appends a frame whose payload is the single varint v.
func appendVarintFrame(b []byte, t wire.FrameType, f wire.Flags, sid protocol.StreamID, v uint64) []byte {
	b = wire.AppendHeader(b, wire.Header{Type: t, Flags: f, StreamID: sid, Length: uint64(wire.VarintLen(v))})
	return wire.AppendVarint(b, v)
}

// appendLinkClose appends a LINK_CLOSE frame: code (vi) | reason.
func appendLinkClose(b []byte, code jsperr.Code, reason string) []byte {
	if len(reason) > maxReasonLen {
		reason = strings.ToValidUTF8(reason[:maxReasonLen], "")
	}
	v := wireCode(code)
	b = wire.AppendHeader(b, wire.Header{Type: wire.FrameLinkClose, Length: uint64(wire.VarintLen(v) + len(reason))})
	b = wire.AppendVarint(b, v)
	return append(b, reason...)
}

// parseVarintPayload decodes a payload that must be exactly one varint.
func parseVarintPayload(t wire.FrameType, p []byte) (uint64, error) {
	v, n, err := wire.ParseVarint(p)
	if err != nil {
		return 0, jsperr.Newf(jsperr.CodeOf(err), "mux: %s payload: %v", t, err)
	}
	if n != len(p) {
		return 0, jsperr.Newf(jsperr.MalformedFrame, "mux: %s payload has %d trailing bytes", t, len(p)-n)
	}
	return v, nil
}

// parseLinkClose decodes a LINK_CLOSE payload. The reason is informative
// only, so invalid UTF-8 in it is repaired rather than rejected.
func parseLinkClose(p []byte) (jsperr.Code, string, error) {
	v, n, err := wire.ParseVarint(p)
	if err != nil {
		return 0, "", jsperr.Newf(jsperr.CodeOf(err), "mux: LINK_CLOSE payload: %v", err)
	}
	return jsperr.Code(v), strings.ToValidUTF8(string(p[n:]), "\uFFFD"), nil
}
