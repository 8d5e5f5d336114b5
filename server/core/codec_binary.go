package core

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/storage"
)

// The binary form of the core protocol (codec.go, docs/bus.md). Each
// struct is a flags varint whose bits, in field order, say which fields
// follow; a field is left out when JSON would leave it out or decode it
// to the same zero value, so both encodings decode to equal structs.

// Request fields, in encoding order.
//
//	Op:string Channel:string Message:record(Message)
//	Messages:list(record(Message)) After:uvarint Before:uvarint Latest:-
//	Limit:zigzag Identity:record(Identity) Command:record(Command)
const (
	reqOp = 1 << iota
	reqChannel
	reqMessage
	reqMessages
	reqAfter
	reqBefore
	reqLatest
	reqLimit
	reqIdentity
	reqCommand
)

// Reply fields, in encoding order.
//
//	Code:uvarint Reason:string RetryAfterMS:zigzag Seq:uvarint Time:time
//	Duplicate:- Messages:list(record(Message)) More:-
//	Info:record(ChannelInfo) Recoverable:- Body:bytes
//	Results:list(record(PublishResult))
const (
	repCode = 1 << iota
	repReason
	repRetryAfter
	repSeq
	repTime
	repDuplicate
	repMessages
	repMore
	repInfo
	repRecoverable
	repBody
	repResults
)

// Event fields, in encoding order.
//
//	Channel:string Message:record(Message) Ephemeral:- Drop:list(string)
//	Messages:list(record(Message))
const (
	evChannel = 1 << iota
	evMessage
	evEphemeral
	evDrop
	evMessages
)

// storage.Message record fields, in encoding order.
//
//	Channel:string Seq:uvarint ClientID:string Sender:string Body:bytes
//	Headers:list(string string), keys sorted and unique Time:time
const (
	msgChannel = 1 << iota
	msgSeq
	msgClientID
	msgSender
	msgBody
	msgHeaders
	msgTime
)

// Identity record fields: User, Device, Session:string Scopes:list(string).
const (
	idUser = 1 << iota
	idDevice
	idSession
	idScopes
)

// Command record fields: Service:string Body:bytes.
const (
	cmdService = 1 << iota
	cmdBody
)

// PublishResult record fields: Code:uvarint Reason:string
// RetryAfterMS:zigzag Seq:uvarint Time:time Duplicate:-.
const (
	resCode = 1 << iota
	resReason
	resRetryAfter
	resSeq
	resTime
	resDuplicate
)

// storage.ChannelInfo record fields: Name:string Oldest, Last:uvarint.
const (
	infoName = 1 << iota
	infoOldest
	infoLast
)

// ---------------------------------------------------------------------------
// Encoding

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

func timeLen(t time.Time) int {
	return uvarintLen(zigzag(t.Unix())) + uvarintLen(uint64(t.Nanosecond()))
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func recordLen(n int) int { return uvarintLen(uint64(n)) + n }

func stringsLen(ss []string) int {
	n := uvarintLen(uint64(len(ss)))
	for _, s := range ss {
		n += stringLen(s)
	}
	return n
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func messageFlags(m *storage.Message) uint64 {
	var f uint64
	if m.Channel != "" {
		f |= msgChannel
	}
	if m.Seq != 0 {
		f |= msgSeq
	}
	if m.ClientID != "" {
		f |= msgClientID
	}
	if m.Sender != "" {
		f |= msgSender
	}
	// JSON keeps a non-nil empty body ("") apart from a nil one (null),
	// and so does the flag.
	if m.Body != nil {
		f |= msgBody
	}
	if m.Headers != nil {
		f |= msgHeaders
	}
	if !m.Time.IsZero() {
		f |= msgTime
	}
	return f
}

// messageFieldsLen is the length of a message record's content.
func messageFieldsLen(m *storage.Message, f uint64) int {
	n := uvarintLen(f)
	if f&msgChannel != 0 {
		n += stringLen(m.Channel)
	}
	if f&msgSeq != 0 {
		n += uvarintLen(uint64(m.Seq))
	}
	if f&msgClientID != 0 {
		n += stringLen(m.ClientID)
	}
	if f&msgSender != 0 {
		n += stringLen(m.Sender)
	}
	if f&msgBody != 0 {
		n += uvarintLen(uint64(len(m.Body))) + len(m.Body)
	}
	if f&msgHeaders != 0 {
		n += uvarintLen(uint64(len(m.Headers)))
		for k, v := range m.Headers {
			n += stringLen(k) + stringLen(v)
		}
	}
	if f&msgTime != 0 {
		n += timeLen(m.Time)
	}
	return n
}

func messageLen(m *storage.Message) int { return recordLen(messageFieldsLen(m, messageFlags(m))) }

func appendMessage(b []byte, m *storage.Message) []byte {
	f := messageFlags(m)
	b = binary.AppendUvarint(b, uint64(messageFieldsLen(m, f)))
	b = binary.AppendUvarint(b, f)
	if f&msgChannel != 0 {
		b = appendString(b, m.Channel)
	}
	if f&msgSeq != 0 {
		b = binary.AppendUvarint(b, uint64(m.Seq))
	}
	if f&msgClientID != 0 {
		b = appendString(b, m.ClientID)
	}
	if f&msgSender != 0 {
		b = appendString(b, m.Sender)
	}
	if f&msgBody != 0 {
		b = appendBytes(b, m.Body)
	}
	if f&msgHeaders != 0 {
		b = appendHeaders(b, m.Headers)
	}
	if f&msgTime != 0 {
		b = appendTime(b, m.Time)
	}
	return b
}

// appendHeaders writes the headers sorted by key, so that one message
// always encodes to the same bytes (map order is random).
func appendHeaders(b []byte, h map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(h)))
	// A few headers sort in a stack array; the slice grows past it only
	// for larger maps.
	var arr [8]string
	keys := arr[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, h[k])
	}
	return b
}

func messagesLen(msgs []storage.Message) int {
	n := uvarintLen(uint64(len(msgs)))
	for i := range msgs {
		n += messageLen(&msgs[i])
	}
	return n
}

func appendMessages(b []byte, msgs []storage.Message) []byte {
	b = binary.AppendUvarint(b, uint64(len(msgs)))
	for i := range msgs {
		b = appendMessage(b, &msgs[i])
	}
	return b
}

func identityFlags(id *Identity) uint64 {
	var f uint64
	if id.User != "" {
		f |= idUser
	}
	if id.Device != "" {
		f |= idDevice
	}
	if id.Session != "" {
		f |= idSession
	}
	if len(id.Scopes) > 0 {
		f |= idScopes
	}
	return f
}

func identityFieldsLen(id *Identity, f uint64) int {
	n := uvarintLen(f)
	if f&idUser != 0 {
		n += stringLen(id.User)
	}
	if f&idDevice != 0 {
		n += stringLen(id.Device)
	}
	if f&idSession != 0 {
		n += stringLen(id.Session)
	}
	if f&idScopes != 0 {
		n += stringsLen(id.Scopes)
	}
	return n
}

func appendIdentity(b []byte, id *Identity) []byte {
	f := identityFlags(id)
	b = binary.AppendUvarint(b, uint64(identityFieldsLen(id, f)))
	b = binary.AppendUvarint(b, f)
	if f&idUser != 0 {
		b = appendString(b, id.User)
	}
	if f&idDevice != 0 {
		b = appendString(b, id.Device)
	}
	if f&idSession != 0 {
		b = appendString(b, id.Session)
	}
	if f&idScopes != 0 {
		b = appendStrings(b, id.Scopes)
	}
	return b
}

func commandFlags(c *Command) uint64 {
	var f uint64
	if c.Service != "" {
		f |= cmdService
	}
	if len(c.Body) > 0 {
		f |= cmdBody
	}
	return f
}

func commandFieldsLen(c *Command, f uint64) int {
	n := uvarintLen(f)
	if f&cmdService != 0 {
		n += stringLen(c.Service)
	}
	if f&cmdBody != 0 {
		n += uvarintLen(uint64(len(c.Body))) + len(c.Body)
	}
	return n
}

func appendCommand(b []byte, c *Command) []byte {
	f := commandFlags(c)
	b = binary.AppendUvarint(b, uint64(commandFieldsLen(c, f)))
	b = binary.AppendUvarint(b, f)
	if f&cmdService != 0 {
		b = appendString(b, c.Service)
	}
	if f&cmdBody != 0 {
		b = appendBytes(b, c.Body)
	}
	return b
}

func resultFlags(r *PublishResult) uint64 {
	var f uint64
	if r.Code != jsperr.NoError {
		f |= resCode
	}
	if r.Reason != "" {
		f |= resReason
	}
	if r.RetryAfterMS != 0 {
		f |= resRetryAfter
	}
	if r.Seq != 0 {
		f |= resSeq
	}
	if !r.Time.IsZero() {
		f |= resTime
	}
	if r.Duplicate {
		f |= resDuplicate
	}
	return f
}

func resultFieldsLen(r *PublishResult, f uint64) int {
	return uvarintLen(f) + outcomeLen(r, f)
}

// outcomeLen is the length of the fields a PublishResult and a Reply share
// (D42: the same flag bits in both, outcomeBits).
func outcomeLen(r *PublishResult, f uint64) int {
	n := 0
	if f&resCode != 0 {
		n += uvarintLen(uint64(r.Code))
	}
	if f&resReason != 0 {
		n += stringLen(r.Reason)
	}
	if f&resRetryAfter != 0 {
		n += uvarintLen(zigzag(r.RetryAfterMS))
	}
	if f&resSeq != 0 {
		n += uvarintLen(uint64(r.Seq))
	}
	if f&resTime != 0 {
		n += timeLen(r.Time)
	}
	return n
}

func appendResult(b []byte, r *PublishResult) []byte {
	f := resultFlags(r)
	b = binary.AppendUvarint(b, uint64(resultFieldsLen(r, f)))
	b = binary.AppendUvarint(b, f)
	return appendOutcome(b, r, f)
}

// appendOutcome appends the fields a PublishResult and a Reply share.
func appendOutcome(b []byte, r *PublishResult, f uint64) []byte {
	if f&resCode != 0 {
		b = binary.AppendUvarint(b, uint64(r.Code))
	}
	if f&resReason != 0 {
		b = appendString(b, r.Reason)
	}
	if f&resRetryAfter != 0 {
		b = binary.AppendVarint(b, r.RetryAfterMS)
	}
	if f&resSeq != 0 {
		b = binary.AppendUvarint(b, uint64(r.Seq))
	}
	if f&resTime != 0 {
		b = appendTime(b, r.Time)
	}
	return b
}

// outcomeBits are the flag bits of the shared fields, equal in a Reply
// and a PublishResult.
const outcomeBits = resCode | resReason | resRetryAfter | resSeq | resTime | resDuplicate

// The shared fields have the same bits in both flag sets.
var _ = [1]struct{}{}[(repCode^resCode)|(repReason^resReason)|(repRetryAfter^resRetryAfter)|
	(repSeq^resSeq)|(repTime^resTime)|(repDuplicate^resDuplicate)]

// outcome returns the fields of rep a PublishResult shares.
func (rep *Reply) outcome() PublishResult {
	return PublishResult{Code: rep.Code, Reason: rep.Reason, RetryAfterMS: rep.RetryAfterMS,
		Seq: rep.Seq, Time: rep.Time, Duplicate: rep.Duplicate}
}

func infoFlags(in *storage.ChannelInfo) uint64 {
	var f uint64
	if in.Name != "" {
		f |= infoName
	}
	if in.Oldest != 0 {
		f |= infoOldest
	}
	if in.Last != 0 {
		f |= infoLast
	}
	return f
}

func infoFieldsLen(in *storage.ChannelInfo, f uint64) int {
	n := uvarintLen(f)
	if f&infoName != 0 {
		n += stringLen(in.Name)
	}
	if f&infoOldest != 0 {
		n += uvarintLen(uint64(in.Oldest))
	}
	if f&infoLast != 0 {
		n += uvarintLen(uint64(in.Last))
	}
	return n
}

func appendInfo(b []byte, in *storage.ChannelInfo) []byte {
	f := infoFlags(in)
	b = binary.AppendUvarint(b, uint64(infoFieldsLen(in, f)))
	b = binary.AppendUvarint(b, f)
	if f&infoName != 0 {
		b = appendString(b, in.Name)
	}
	if f&infoOldest != 0 {
		b = binary.AppendUvarint(b, uint64(in.Oldest))
	}
	if f&infoLast != 0 {
		b = binary.AppendUvarint(b, uint64(in.Last))
	}
	return b
}

func requestFlags(req *Request) uint64 {
	var f uint64
	if req.Op != "" {
		f |= reqOp
	}
	if req.Channel != "" {
		f |= reqChannel
	}
	if req.Message != nil {
		f |= reqMessage
	}
	if len(req.Messages) > 0 {
		f |= reqMessages
	}
	if req.After != 0 {
		f |= reqAfter
	}
	if req.Before != 0 {
		f |= reqBefore
	}
	if req.Latest {
		f |= reqLatest
	}
	if req.Limit != 0 {
		f |= reqLimit
	}
	if req.Identity != nil {
		f |= reqIdentity
	}
	if req.Command != nil {
		f |= reqCommand
	}
	return f
}

// RequestLen returns the length of req's binary form.
func RequestLen(req *Request) int {
	f := requestFlags(req)
	n := 2 + uvarintLen(f)
	if f&reqOp != 0 {
		n += stringLen(string(req.Op))
	}
	if f&reqChannel != 0 {
		n += stringLen(req.Channel)
	}
	if f&reqMessage != 0 {
		n += messageLen(req.Message)
	}
	if f&reqMessages != 0 {
		n += messagesLen(req.Messages)
	}
	if f&reqAfter != 0 {
		n += uvarintLen(uint64(req.After))
	}
	if f&reqBefore != 0 {
		n += uvarintLen(uint64(req.Before))
	}
	if f&reqLimit != 0 {
		n += uvarintLen(zigzag(int64(req.Limit)))
	}
	if f&reqIdentity != 0 {
		n += recordLen(identityFieldsLen(req.Identity, identityFlags(req.Identity)))
	}
	if f&reqCommand != 0 {
		n += recordLen(commandFieldsLen(req.Command, commandFlags(req.Command)))
	}
	return n
}

// AppendRequest appends req's binary form to b. Times must lie in the
// years 1 to 9999 (Codec.EncodeRequest checks).
func AppendRequest(b []byte, req *Request) []byte {
	f := requestFlags(req)
	b = append(b, binaryV1, kindRequest)
	b = binary.AppendUvarint(b, f)
	if f&reqOp != 0 {
		b = appendString(b, string(req.Op))
	}
	if f&reqChannel != 0 {
		b = appendString(b, req.Channel)
	}
	if f&reqMessage != 0 {
		b = appendMessage(b, req.Message)
	}
	if f&reqMessages != 0 {
		b = appendMessages(b, req.Messages)
	}
	if f&reqAfter != 0 {
		b = binary.AppendUvarint(b, uint64(req.After))
	}
	if f&reqBefore != 0 {
		b = binary.AppendUvarint(b, uint64(req.Before))
	}
	if f&reqLimit != 0 {
		b = binary.AppendVarint(b, int64(req.Limit))
	}
	if f&reqIdentity != 0 {
		b = appendIdentity(b, req.Identity)
	}
	if f&reqCommand != 0 {
		b = appendCommand(b, req.Command)
	}
	return b
}

func replyFlags(rep *Reply) uint64 {
	o := rep.outcome()
	f := resultFlags(&o)
	if len(rep.Messages) > 0 {
		f |= repMessages
	}
	if rep.More {
		f |= repMore
	}
	if rep.Info != nil {
		f |= repInfo
	}
	if rep.Recoverable {
		f |= repRecoverable
	}
	if len(rep.Body) > 0 {
		f |= repBody
	}
	if len(rep.Results) > 0 {
		f |= repResults
	}
	return f
}

// ReplyLen returns the length of rep's binary form.
func ReplyLen(rep *Reply) int {
	f := replyFlags(rep)
	o := rep.outcome()
	n := 2 + uvarintLen(f) + outcomeLen(&o, f&outcomeBits)
	if f&repMessages != 0 {
		n += messagesLen(rep.Messages)
	}
	if f&repInfo != 0 {
		n += recordLen(infoFieldsLen(rep.Info, infoFlags(rep.Info)))
	}
	if f&repBody != 0 {
		n += uvarintLen(uint64(len(rep.Body))) + len(rep.Body)
	}
	if f&repResults != 0 {
		n += uvarintLen(uint64(len(rep.Results)))
		for i := range rep.Results {
			r := &rep.Results[i]
			n += recordLen(resultFieldsLen(r, resultFlags(r)))
		}
	}
	return n
}

// AppendReply appends rep's binary form to b. Times must lie in the
// years 1 to 9999 (Codec.EncodeReply checks).
func AppendReply(b []byte, rep *Reply) []byte {
	f := replyFlags(rep)
	b = append(b, binaryV1, kindReply)
	b = binary.AppendUvarint(b, f)
	o := rep.outcome()
	b = appendOutcome(b, &o, f&outcomeBits)
	if f&repMessages != 0 {
		b = appendMessages(b, rep.Messages)
	}
	if f&repInfo != 0 {
		b = appendInfo(b, rep.Info)
	}
	if f&repBody != 0 {
		b = appendBytes(b, rep.Body)
	}
	if f&repResults != 0 {
		b = binary.AppendUvarint(b, uint64(len(rep.Results)))
		for i := range rep.Results {
			b = appendResult(b, &rep.Results[i])
		}
	}
	return b
}

// isZeroMessage reports whether m is the zero Message, which JSON decodes
// from the object it writes for it; the binary form leaves it out.
func isZeroMessage(m *storage.Message) bool {
	return m.Channel == "" && m.Seq == 0 && m.ClientID == "" && m.Sender == "" &&
		m.Body == nil && m.Headers == nil && m.Time.IsZero()
}

func eventFlags(ev *Event) uint64 {
	var f uint64
	if ev.Channel != "" {
		f |= evChannel
	}
	if !isZeroMessage(&ev.Message) {
		f |= evMessage
	}
	if ev.Ephemeral {
		f |= evEphemeral
	}
	if len(ev.Drop) > 0 {
		f |= evDrop
	}
	if len(ev.Messages) > 0 {
		f |= evMessages
	}
	return f
}

// EventLen returns the length of ev's binary form.
func EventLen(ev *Event) int {
	f := eventFlags(ev)
	n := 2 + uvarintLen(f)
	if f&evChannel != 0 {
		n += stringLen(ev.Channel)
	}
	if f&evMessage != 0 {
		n += messageLen(&ev.Message)
	}
	if f&evDrop != 0 {
		n += stringsLen(ev.Drop)
	}
	if f&evMessages != 0 {
		n += messagesLen(ev.Messages)
	}
	return n
}

// AppendEvent appends ev's binary form to b. Times must lie in the years
// 1 to 9999 (Codec.EncodeEvent checks).
func AppendEvent(b []byte, ev *Event) []byte {
	f := eventFlags(ev)
	b = append(b, binaryV1, kindEvent)
	b = binary.AppendUvarint(b, f)
	if f&evChannel != 0 {
		b = appendString(b, ev.Channel)
	}
	if f&evMessage != 0 {
		b = appendMessage(b, &ev.Message)
	}
	if f&evDrop != 0 {
		b = appendStrings(b, ev.Drop)
	}
	if f&evMessages != 0 {
		b = appendMessages(b, ev.Messages)
	}
	return b
}
