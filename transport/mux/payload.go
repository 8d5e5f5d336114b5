package mux

import (
	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// Link frame payloads are encoded by package wire (JSP §3.4); these helpers
// add the frame header and keep the codes encodable.

// wireCode clamps a code to what a varint can carry; callers may pass any
// uint64, and the encoder must not panic on it.
func wireCode(c jsperr.Code) uint64 {
	if uint64(c) > wire.MaxVarint {
		return uint64(jsperr.Internal)
	}
	return uint64(c)
}

// appendVarintFrame appends a control frame whose payload is the single
// varint v. Control frames carry flags 0 (JSP §3.4).
func appendVarintFrame(b []byte, t wire.FrameType, sid protocol.StreamID, v uint64) []byte {
	b = wire.AppendHeader(b, wire.Header{Type: t, StreamID: sid, Length: uint64(wire.VarintLen(v))})
	return wire.AppendVarintPayload(b, v)
}

// appendLinkClose appends a LINK_CLOSE frame: code (vi) | reason.
func appendLinkClose(b []byte, code jsperr.Code, reason string) []byte {
	p := wire.AppendLinkClose(nil, jsperr.Code(wireCode(code)), reason)
	return wire.AppendFrame(b, wire.FrameLinkClose, 0, 0, p)
}

// parseVarintPayload decodes a payload that must be exactly one varint,
// naming the frame in the error.
func parseVarintPayload(t wire.FrameType, p []byte) (uint64, error) {
	v, err := wire.ParseVarintPayload(p)
	if err != nil {
		return 0, jsperr.Newf(jsperr.CodeOf(err), "mux: %s payload: %v", t, err)
	}
	return v, nil
}

// parseLinkClose decodes a LINK_CLOSE payload (JSP §3.4): a reason that is
// too long or not UTF-8 is dropped and the code kept.
func parseLinkClose(p []byte) (jsperr.Code, string, error) {
	code, reason, err := wire.ParseLinkClose(p)
	if err != nil {
		return 0, "", jsperr.Newf(jsperr.CodeOf(err), "mux: LINK_CLOSE payload: %v", err)
	}
	return code, reason, nil
}
