package core

import (
	"encoding/binary"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/storage"
)

// Decoding errors of the binary form; sentinel values, so that a bad
// payload costs no allocation on the error path.
var (
	errCodecTruncated  = jsperr.New(jsperr.BadRequest, "core codec: payload truncated")
	errCodecVarint     = jsperr.New(jsperr.BadRequest, "core codec: varint overflows 64 bits or is not in shortest form")
	errCodecKind       = jsperr.New(jsperr.BadRequest, "core codec: payload of another kind")
	errCodecNanos      = jsperr.New(jsperr.BadRequest, "core codec: time with nanoseconds over 999999999")
	errCodecHeaderDup  = jsperr.New(jsperr.BadRequest, "core codec: duplicate header key")
	errCodecIntRange   = jsperr.New(jsperr.BadRequest, "core codec: integer out of range")
	errCodecNotBinary  = jsperr.New(jsperr.BadRequest, "core codec: not the binary form")
	errCodecTooMany    = jsperr.New(jsperr.LimitExceeded, "core codec: list over its limit")
	errCodecTooLargeIn = jsperr.New(jsperr.MessageTooLarge, "core codec: payload over its limit")
)

// reader decodes the binary form. The first failure sticks in err and
// every later read returns a zero value, so parsers read straight through
// and check err once per record.
type reader struct {
	b   []byte // the payload, or the current record's end of it
	off int
	lim CodecLimits
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	// Most flags, lengths and counts fit one byte.
	if r.off < len(r.b) && r.b[r.off] < 0x80 {
		r.off++
		return uint64(r.b[r.off-1])
	}
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		r.fail(errCodecTruncated)
		return 0
	case n < 0:
		r.fail(errCodecVarint)
		return 0
	case n > 1 && r.b[r.off+n-1] == 0:
		// A last byte of 0 adds nothing: the value fits in fewer bytes.
		// One value has one encoding, so re-encoding a payload gives the
		// same bytes.
		r.fail(errCodecVarint)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// length reads a length and checks that many bytes remain, so no
// allocation or slice follows from an unchecked length.
func (r *reader) length() int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(r.remaining()) {
		r.fail(errCodecTruncated)
		return 0
	}
	return int(n)
}

// count reads a list's item count and checks it against max and against
// the bytes left, at least minItem per item, before the caller allocates.
func (r *reader) count(max, minItem int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	switch {
	case n > uint64(max):
		r.fail(errCodecTooMany)
		return 0
	case n > uint64(r.remaining()/minItem):
		r.fail(errCodecTruncated)
		return 0
	}
	return int(n)
}

// bytes returns the next length-prefixed bytes as a slice of the payload,
// without a copy: a bus payload is never reused by its bus (nats.go gives
// every message its own buffer, membus copies on publish) and receivers
// treat it as read-only (bus.Msg). The capacity is cut at the field's end
// so that an append to the slice copies instead of overwriting the bytes
// after it.
func (r *reader) bytes() []byte {
	n := r.length()
	if r.err != nil {
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

func (r *reader) str() string {
	n := r.length()
	if r.err != nil {
		return ""
	}
	s := string(r.b[r.off : r.off+n])
	r.off += n
	return s
}

// strAs reads a string and returns prev when the bytes equal it: the
// channel and sender repeat in every message of a run, and the comparison
// does not allocate, where a new string would.
func (r *reader) strAs(prev string) string {
	n := r.length()
	if r.err != nil {
		return ""
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	if string(p) == prev {
		return prev
	}
	return string(p)
}

func (r *reader) strings() []string {
	n := r.count(r.lim.MaxStrings, 1)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = r.str()
	}
	return ss
}

func (r *reader) time() time.Time {
	s := r.varint()
	ns := r.uvarint()
	switch {
	case r.err != nil:
		return time.Time{}
	case ns >= 1e9:
		r.fail(errCodecNanos)
		return time.Time{}
	case s < minUnixSeconds || s > maxUnixSeconds:
		r.fail(errTimeRange)
		return time.Time{}
	}
	return time.Unix(s, int64(ns)).UTC()
}

// int reads a zigzag varint that must fit an int.
func (r *reader) int() int {
	v := r.varint()
	if int64(int(v)) != v {
		r.fail(errCodecIntRange)
		return 0
	}
	return int(v)
}

// record enters a length-prefixed record: reads past its end fail as
// truncated until leave.
func (r *reader) record() (outer []byte, end int) {
	n := r.length()
	outer, end = r.b, r.off+n
	r.b = r.b[:end]
	return outer, end
}

// leave ends a record, skipping what follows its known fields: fields a
// later release appends to the record (docs/bus.md).
func (r *reader) leave(outer []byte, end int) {
	r.b = outer
	if r.err == nil {
		r.off = end
	}
}

// header checks the version and kind bytes.
func (r *reader) header(kind byte) {
	switch {
	case len(r.b) < 2:
		r.fail(errCodecTruncated)
	case r.b[0] != binaryV1:
		r.fail(errCodecNotBinary)
	case r.b[1] != kind:
		r.fail(errCodecKind)
	default:
		r.off = 2
	}
}

// message reads a message record into m. The channel and the sender are
// compared with channel and prevSender, which they usually repeat.
func (r *reader) message(m *storage.Message, channel, prevSender string) {
	outer, end := r.record()
	f := r.uvarint()
	if f&msgChannel != 0 {
		m.Channel = r.strAs(channel)
	}
	if f&msgSeq != 0 {
		m.Seq = storage.Seq(r.uvarint())
	}
	if f&msgClientID != 0 {
		m.ClientID = r.str()
	}
	if f&msgSender != 0 {
		m.Sender = r.strAs(prevSender)
	}
	if f&msgBody != 0 {
		m.Body = r.bytes()
	}
	if f&msgHeaders != 0 {
		m.Headers = r.headers()
	}
	if f&msgTime != 0 {
		m.Time = r.time()
	}
	r.leave(outer, end)
}

func (r *reader) headers() map[string]string {
	n := r.count(r.lim.MaxHeaders, 2)
	if r.err != nil {
		return nil
	}
	h := make(map[string]string, n)
	for range n {
		k, v := r.str(), r.str()
		if r.err != nil {
			return nil
		}
		if _, dup := h[k]; dup {
			r.fail(errCodecHeaderDup)
			return nil
		}
		h[k] = v
	}
	return h
}

// messages reads a list of message records. The sender of each record is
// compared with the previous one's, so a run from one sender shares one
// string.
func (r *reader) messages(channel string) []storage.Message {
	// A record is at least its length and its flags.
	n := r.count(r.lim.MaxMessages, 2)
	if n == 0 {
		return nil
	}
	msgs := make([]storage.Message, n)
	prev := ""
	for i := range msgs {
		r.message(&msgs[i], channel, prev)
		prev = msgs[i].Sender
		if r.err != nil {
			return nil
		}
	}
	return msgs
}

func (r *reader) identity() *Identity {
	id := new(Identity)
	outer, end := r.record()
	f := r.uvarint()
	if f&idUser != 0 {
		id.User = r.str()
	}
	if f&idDevice != 0 {
		id.Device = r.str()
	}
	if f&idSession != 0 {
		id.Session = r.str()
	}
	if f&idScopes != 0 {
		id.Scopes = r.strings()
	}
	r.leave(outer, end)
	return id
}

func (r *reader) command() *Command {
	c := new(Command)
	outer, end := r.record()
	f := r.uvarint()
	if f&cmdService != 0 {
		c.Service = r.str()
	}
	if f&cmdBody != 0 {
		c.Body = r.bytes()
	}
	r.leave(outer, end)
	return c
}

func (r *reader) result(res *PublishResult) {
	outer, end := r.record()
	r.outcome(r.uvarint(), res)
	r.leave(outer, end)
}

// outcome reads the fields a PublishResult and a Reply share (D42).
func (r *reader) outcome(f uint64, res *PublishResult) {
	if f&resCode != 0 {
		res.Code = jsperr.Code(r.uvarint())
	}
	if f&resReason != 0 {
		res.Reason = r.str()
	}
	if f&resRetryAfter != 0 {
		res.RetryAfterMS = r.varint()
	}
	if f&resSeq != 0 {
		res.Seq = storage.Seq(r.uvarint())
	}
	if f&resTime != 0 {
		res.Time = r.time()
	}
	res.Duplicate = f&resDuplicate != 0
}

func (r *reader) info() *storage.ChannelInfo {
	in := new(storage.ChannelInfo)
	outer, end := r.record()
	f := r.uvarint()
	if f&infoName != 0 {
		in.Name = r.str()
	}
	if f&infoOldest != 0 {
		in.Oldest = storage.Seq(r.uvarint())
	}
	if f&infoLast != 0 {
		in.Last = storage.Seq(r.uvarint())
	}
	r.leave(outer, end)
	return in
}

// newReader returns a reader of b within lim (nil: the defaults). The
// limits are copied in: a pointer to them would move them to the heap.
func newReader(b []byte, lim *CodecLimits) reader {
	r := reader{b: b, lim: lim.withDefaults()}
	if len(b) > r.lim.MaxBytes {
		r.fail(errCodecTooLargeIn)
	}
	return r
}

// ParseRequest decodes a request's binary form within lim (nil: the
// defaults) and returns it with the bytes consumed: all of b, as what
// follows the known fields is skipped.
func ParseRequest(b []byte, lim *CodecLimits) (Request, int, error) {
	r := newReader(b, lim)
	r.header(kindRequest)
	var req Request
	f := r.uvarint()
	if f&reqOp != 0 {
		req.Op = r.op()
	}
	if f&reqChannel != 0 {
		req.Channel = r.str()
	}
	if f&reqMessage != 0 {
		req.Message = new(storage.Message)
		r.message(req.Message, req.Channel, "")
	}
	if f&reqMessages != 0 {
		req.Messages = r.messages(req.Channel)
	}
	if f&reqAfter != 0 {
		req.After = storage.Seq(r.uvarint())
	}
	if f&reqBefore != 0 {
		req.Before = storage.Seq(r.uvarint())
	}
	req.Latest = f&reqLatest != 0
	if f&reqLimit != 0 {
		req.Limit = r.int()
	}
	if f&reqIdentity != 0 {
		req.Identity = r.identity()
	}
	if f&reqCommand != 0 {
		req.Command = r.command()
	}
	if r.err != nil {
		return Request{}, 0, r.err
	}
	return req, len(b), nil
}

// op reads an operation name; the known ones are returned without
// allocating.
func (r *reader) op() Op {
	n := r.length()
	if r.err != nil {
		return ""
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	switch Op(p) {
	case OpPublish:
		return OpPublish
	case OpHistory:
		return OpHistory
	case OpRecover:
		return OpRecover
	case OpSubscribe:
		return OpSubscribe
	case OpCommand:
		return OpCommand
	}
	return Op(p)
}

// ParseReply decodes a reply's binary form within lim (nil: the
// defaults) and returns it with the bytes consumed (all of b).
func ParseReply(b []byte, lim *CodecLimits) (Reply, int, error) {
	r := newReader(b, lim)
	r.header(kindReply)
	var rep Reply
	f := r.uvarint()
	var o PublishResult
	r.outcome(f, &o)
	rep.Code, rep.Reason, rep.RetryAfterMS = o.Code, o.Reason, o.RetryAfterMS
	rep.Seq, rep.Time, rep.Duplicate = o.Seq, o.Time, o.Duplicate
	if f&repMessages != 0 {
		rep.Messages = r.messages("")
	}
	rep.More = f&repMore != 0
	if f&repInfo != 0 {
		rep.Info = r.info()
	}
	rep.Recoverable = f&repRecoverable != 0
	if f&repBody != 0 {
		rep.Body = r.bytes()
	}
	if f&repResults != 0 {
		if n := r.count(r.lim.MaxMessages, 2); n > 0 {
			rep.Results = make([]PublishResult, n)
			for i := range rep.Results {
				r.result(&rep.Results[i])
			}
		}
	}
	if r.err != nil {
		return Reply{}, 0, r.err
	}
	return rep, len(b), nil
}

// ParseEvent decodes an event's binary form within lim (nil: the
// defaults) and returns it with the bytes consumed (all of b). It checks
// the form only; DecodeEvent checks the event's meaning too.
func ParseEvent(b []byte, lim *CodecLimits) (Event, int, error) {
	r := newReader(b, lim)
	r.header(kindEvent)
	var ev Event
	f := r.uvarint()
	if f&evChannel != 0 {
		ev.Channel = r.str()
	}
	if f&evMessage != 0 {
		r.message(&ev.Message, ev.Channel, "")
	}
	ev.Ephemeral = f&evEphemeral != 0
	if f&evDrop != 0 {
		ev.Drop = r.strings()
	}
	if f&evMessages != 0 {
		ev.Messages = r.messages(ev.Channel)
	}
	if r.err != nil {
		return Event{}, 0, r.err
	}
	return ev, len(b), nil
}
