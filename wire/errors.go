package wire

import (
	"errors"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Decoding errors of the CBOR bodies, envelopes and link payloads. They are
// sentinel values so that decoding never allocates on its error path; each
// carries the registry code a receiver closes with (JSP §10). Errors with the
// same code match each other under errors.Is, so a caller may test for the
// code (e.g. ErrInvalidCBOR) or for the specific condition.
var (
	// ErrInvalidCBOR: a body is not well-formed CBOR (JSP §6).
	ErrInvalidCBOR = jsperr.New(jsperr.InvalidCbor, "wire: CBOR item not well-formed")
	// ErrNonCanonical: a head is not in its shortest form, or an optional
	// field is present with its default value (JSP §6.2).
	ErrNonCanonical = jsperr.New(jsperr.InvalidCbor, "wire: CBOR not in deterministic form")
	// ErrIndefiniteLength: an indefinite-length string, array or map (JSP §6).
	ErrIndefiniteLength = jsperr.New(jsperr.InvalidCbor, "wire: CBOR indefinite length")
	// ErrWrongType: a field has the wrong CBOR type (JSP §6).
	ErrWrongType = jsperr.New(jsperr.InvalidCbor, "wire: CBOR field of the wrong type")
	// ErrKeyOrder: map keys are not in ascending order (JSP §6.2).
	ErrKeyOrder = jsperr.New(jsperr.InvalidCbor, "wire: CBOR map keys out of order")
	// ErrInvalidUTF8: a text string is not valid UTF-8 (JSP §6).
	ErrInvalidUTF8 = jsperr.New(jsperr.InvalidCbor, "wire: text is not valid UTF-8")
	// ErrFieldRange: a value, length or count is outside the range the spec
	// allows for its field (JSP §9).
	ErrFieldRange = jsperr.New(jsperr.InvalidCbor, "wire: field out of range")
	// ErrTooDeep: a skipped item nests deeper than MaxCBORDepth (JSP §6).
	ErrTooDeep = jsperr.New(jsperr.InvalidCbor, "wire: CBOR nesting too deep")
	// ErrDuplicateField: a map repeats a key (JSP §6.2).
	ErrDuplicateField = jsperr.New(jsperr.DuplicateField, "wire: duplicate CBOR map key")
	// ErrMissingField: a required field is absent (JSP §6.2).
	ErrMissingField = jsperr.New(jsperr.MissingField, "wire: required field missing")
	// ErrMessageTooLarge: an envelope body exceeds the message size limit (JSP §9).
	ErrMessageTooLarge = jsperr.New(jsperr.MessageTooLarge, "wire: message body over limit")
	// ErrDatagramTooLarge: a DATAGRAM payload exceeds its limit (JSP §5.13, §9).
	ErrDatagramTooLarge = jsperr.New(jsperr.DatagramTooLarge, "wire: datagram over limit")
	// ErrTrailingBytes: a frame payload continues after the item it carries
	// (JSP §3.1).
	ErrTrailingBytes = jsperr.New(jsperr.MalformedFrame, "wire: trailing bytes after payload")
	// ErrBadFragment: a fragment header has a count of 0 or above
	// MaxFragments, or an index not below the count (JSP §5.13).
	ErrBadFragment = jsperr.New(jsperr.MalformedFrame, "wire: invalid fragment header")
	// ErrKindMismatch: an envelope's kind does not match the frame that
	// carries it, e.g. a COMMAND frame holding a reply (JSP §5.8-§5.10).
	ErrKindMismatch = jsperr.New(jsperr.ProtocolViolation, "wire: envelope kind does not match frame type")
	// ErrNotSessionFrame: a link frame (JSP §3.4) was handed to the session
	// message decoder; on a QUIC connection it is a protocol violation.
	ErrNotSessionFrame = jsperr.New(jsperr.ProtocolViolation, "wire: link frame is not a session message")
)

// ErrUnknownFrame is returned by DecodeMessage for a frame type that JSP/1
// does not define. It is deliberately not a protocol error: receivers skip
// such frames (JSP §8.3) so that a later minor version can add frame types
// without breaking older peers.
var ErrUnknownFrame = errors.New("wire: unknown frame type (skip it)")
