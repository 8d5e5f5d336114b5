package core

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/storage"
)

// The bus codec (decision D42; byte layout in docs/bus.md). Every
// published message crosses the bus at least twice (the request to the
// core, the event to each gateway with subscribers) and its answer once;
// in JSON, with bodies in base64 and times as RFC 3339 text, decoding
// alone was a tenth of the server's CPU. The binary form carries the same
// structs field for field:
//
//	payload = 0x01 (version 1) kind fields
//	kind    = 0x01 Request | 0x02 Reply | 0x03 Event
//	fields  = flags:uvarint, then each field whose flag bit is set, in
//	          bit order; what follows the known fields is skipped
//	record  = len:uvarint fields (a Message, Identity, Command,
//	          PublishResult or ChannelInfo: len bounds it, so a record
//	          may grow fields that older decoders skip)
//	string  = len:uvarint bytes      bytes = len:uvarint bytes
//	time    = unix seconds:zigzag varint, nanoseconds:uvarint (< 1e9);
//	          the instant, decoded in UTC
//	list    = count:uvarint items
//
// Varints are encoding/binary's (LEB128), in their shortest form. JSON
// encodes an object, whose first byte is '{', so the first byte tells the
// encodings apart and decoders take both: a node reads what a node of an
// earlier release sends (docs/operations.md, rolling upgrades).

// Codec is how a node encodes core messages on the bus. The zero value is
// CodecBinary.
type Codec uint8

// Codecs.
const (
	// CodecBinary is the compact binary form (docs/bus.md). Default.
	CodecBinary Codec = iota
	// CodecJSON is the JSON form every release reads; operators keep it
	// while nodes of a release without the binary decoder remain.
	CodecJSON
)

// ParseCodec parses a codec name: "binary" (or "") or "json".
func ParseCodec(s string) (Codec, error) {
	switch s {
	case "", "binary":
		return CodecBinary, nil
	case "json":
		return CodecJSON, nil
	}
	return 0, fmt.Errorf("core: bus codec %q: want binary or json", s)
}

// String returns the codec's name as ParseCodec takes it.
func (c Codec) String() string {
	if c == CodecJSON {
		return "json"
	}
	return "binary"
}

// Leading bytes of the binary form.
const (
	binaryV1    = 0x01
	kindRequest = 0x01
	kindReply   = 0x02
	kindEvent   = 0x03
)

// Defaults of CodecLimits; each is what a zero field means.
const (
	// DefaultMaxBusMessages caps the messages (or publish results) of one
	// decoded request, reply or event: a merged run's (maxMergedMessages),
	// above a publish window and a history page.
	DefaultMaxBusMessages = maxMergedMessages
	// DefaultMaxBusHeaders caps the headers of one message.
	DefaultMaxBusHeaders = 256
	// DefaultMaxBusStrings caps a list of strings: an identity's scopes,
	// the users of a Drop event.
	DefaultMaxBusStrings = 4096
)

// CodecLimits bound what a decoder accepts, in either encoding; the
// binary decoder checks them before allocating. Zero fields mean their
// defaults.
type CodecLimits struct {
	// MaxBytes caps a payload. Default: DefaultMaxRequestBytes.
	MaxBytes int
	// MaxMessages caps the messages or results of one payload.
	// Default: DefaultMaxBusMessages.
	MaxMessages int
	// MaxHeaders caps the headers of one message.
	// Default: DefaultMaxBusHeaders.
	MaxHeaders int
	// MaxStrings caps a list of strings. Default: DefaultMaxBusStrings.
	MaxStrings int
}

func (l *CodecLimits) setDefaults() {
	if l.MaxBytes == 0 {
		l.MaxBytes = DefaultMaxRequestBytes
	}
	if l.MaxMessages == 0 {
		l.MaxMessages = DefaultMaxBusMessages
	}
	if l.MaxHeaders == 0 {
		l.MaxHeaders = DefaultMaxBusHeaders
	}
	if l.MaxStrings == 0 {
		l.MaxStrings = DefaultMaxBusStrings
	}
}

func (l *CodecLimits) validate() error {
	if l.MaxBytes < 0 || l.MaxMessages < 0 || l.MaxHeaders < 0 || l.MaxStrings < 0 {
		return fmt.Errorf("core: negative codec limit %+v", *l)
	}
	return nil
}

// withDefaults returns *l with defaults filled; nil means all defaults.
func (l *CodecLimits) withDefaults() CodecLimits {
	var c CodecLimits
	if l != nil {
		c = *l
	}
	c.setDefaults()
	return c
}

// EncodeRequest encodes req in codec c.
func (c Codec) EncodeRequest(req *Request) ([]byte, error) {
	if c == CodecJSON {
		return json.Marshal(req)
	}
	if err := checkTimes(req.Message, req.Messages); err != nil {
		return nil, err
	}
	return AppendRequest(make([]byte, 0, RequestLen(req)), req), nil
}

// EncodeReply encodes rep in codec c.
func (c Codec) EncodeReply(rep *Reply) ([]byte, error) {
	if c == CodecJSON {
		return json.Marshal(rep)
	}
	if err := checkTimes(nil, rep.Messages); err != nil {
		return nil, err
	}
	if !timeInRange(rep.Time) {
		return nil, errTimeRange
	}
	for i := range rep.Results {
		if !timeInRange(rep.Results[i].Time) {
			return nil, errTimeRange
		}
	}
	return AppendReply(make([]byte, 0, ReplyLen(rep)), rep), nil
}

// EncodeEvent encodes ev in codec c.
func (c Codec) EncodeEvent(ev *Event) ([]byte, error) {
	if c == CodecJSON {
		return json.Marshal(ev)
	}
	if err := checkTimes(&ev.Message, ev.Messages); err != nil {
		return nil, err
	}
	return AppendEvent(make([]byte, 0, EventLen(ev)), ev), nil
}

// IsBinary reports whether a payload is in the binary form; a decoder
// answers a request in the request's own encoding, which its sender reads.
func IsBinary(data []byte) bool { return len(data) > 0 && data[0] == binaryV1 }

// isJSON reports whether a payload starts as a JSON object may: '{' after
// optional white space (RFC 8259 §2).
func isJSON(data []byte) bool {
	for _, b := range data {
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// decodePayload checks a payload's size and decodes it as JSON into v
// (when it is JSON) or returns false for the binary decoder to run.
func decodePayload(data []byte, lim *CodecLimits, v any) (isBin bool, err error) {
	if len(data) > lim.MaxBytes {
		return false, jsperr.Newf(jsperr.MessageTooLarge, "core payload of %d bytes over limit %d", len(data), lim.MaxBytes)
	}
	switch {
	case IsBinary(data):
		return true, nil
	case isJSON(data):
		if err := json.Unmarshal(data, v); err != nil {
			return false, jsperr.Wrap(jsperr.BadRequest, fmt.Errorf("decode core payload: %w", err))
		}
		return false, nil
	case len(data) == 0:
		return false, jsperr.New(jsperr.BadRequest, "empty core payload")
	}
	return false, jsperr.Newf(jsperr.BadRequest, "core payload in unknown encoding (first byte 0x%02x)", data[0])
}

// DecodeRequest decodes a request in either encoding within lim (nil:
// the defaults).
func DecodeRequest(data []byte, lim *CodecLimits) (Request, error) {
	l := lim.withDefaults()
	var req Request
	isBin, err := decodePayload(data, &l, &req)
	switch {
	case err != nil:
		return Request{}, err
	case isBin:
		req, _, err = ParseRequest(data, &l)
		return req, err
	}
	if err := l.checkMessages(req.Messages); err != nil {
		return Request{}, err
	}
	if req.Message != nil {
		if err := l.checkHeaders(req.Message); err != nil {
			return Request{}, err
		}
	}
	if req.Identity != nil && len(req.Identity.Scopes) > l.MaxStrings {
		return Request{}, overLimit("scopes", len(req.Identity.Scopes), l.MaxStrings)
	}
	return req, nil
}

// DecodeReply decodes a reply in either encoding within lim (nil: the
// defaults).
func DecodeReply(data []byte, lim *CodecLimits) (Reply, error) {
	l := lim.withDefaults()
	var rep Reply
	isBin, err := decodePayload(data, &l, &rep)
	switch {
	case err != nil:
		return Reply{}, err
	case isBin:
		rep, _, err = ParseReply(data, &l)
		return rep, err
	}
	if err := l.checkMessages(rep.Messages); err != nil {
		return Reply{}, err
	}
	if len(rep.Results) > l.MaxMessages {
		return Reply{}, overLimit("results", len(rep.Results), l.MaxMessages)
	}
	return rep, nil
}

// decodeEvent decodes an event in either encoding within lim.
func decodeEvent(data []byte, lim *CodecLimits) (Event, error) {
	l := lim.withDefaults()
	var ev Event
	isBin, err := decodePayload(data, &l, &ev)
	switch {
	case err != nil:
		return Event{}, err
	case isBin:
		ev, _, err = ParseEvent(data, &l)
		return ev, err
	}
	if err := l.checkMessages(ev.Messages); err != nil {
		return Event{}, err
	}
	if err := l.checkHeaders(&ev.Message); err != nil {
		return Event{}, err
	}
	if len(ev.Drop) > l.MaxStrings {
		return Event{}, overLimit("drop users", len(ev.Drop), l.MaxStrings)
	}
	return ev, nil
}

// checkMessages applies the count limits to messages decoded from JSON,
// so that both encodings accept the same payloads.
func (l *CodecLimits) checkMessages(msgs []storage.Message) error {
	if len(msgs) > l.MaxMessages {
		return overLimit("messages", len(msgs), l.MaxMessages)
	}
	for i := range msgs {
		if err := l.checkHeaders(&msgs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (l *CodecLimits) checkHeaders(m *storage.Message) error {
	if len(m.Headers) > l.MaxHeaders {
		return overLimit("headers", len(m.Headers), l.MaxHeaders)
	}
	return nil
}

func overLimit(what string, n, max int) error {
	return jsperr.Newf(jsperr.LimitExceeded, "core payload with %d %s over limit %d", n, what, max)
}

// Time range of the binary form: the years 1 to 9999, the range JSON's
// RFC 3339 text carries, so both encodings refuse the same times.
const (
	minUnixSeconds = -62135596800 // 0001-01-01T00:00:00Z
	maxUnixSeconds = 253402300799 // 9999-12-31T23:59:59Z
)

var errTimeRange = jsperr.New(jsperr.BadRequest, "core codec: time outside the years 1 to 9999")

func timeInRange(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	s := t.Unix()
	return s >= minUnixSeconds && s <= maxUnixSeconds
}

func checkTimes(m *storage.Message, msgs []storage.Message) error {
	if m != nil && !timeInRange(m.Time) {
		return errTimeRange
	}
	for i := range msgs {
		if !timeInRange(msgs[i].Time) {
			return errTimeRange
		}
	}
	return nil
}
