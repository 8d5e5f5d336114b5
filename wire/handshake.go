package wire

import (
	"errors"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// Hello is the first frame a client sends on the control stream (JSP §5.1).
// Its CBOR map keys:
//
//	 1 versions       [uint]            required, 1..16 entries, each 1..2^32-1
//	 2 client_name    text ..256
//	 3 client_version text ..256
//	 4 platform       text ..256
//	 5 auth           bytes ..8192      opaque credential
//	 6 resume         {1 session_id, 2 resume_token}
//	 7 caps           [text]            1..32 entries, each 1..64 bytes
//	 8 heartbeat_ms   uint              requested heartbeat interval
//	 9 max_frame      uint              largest frame payload the client accepts
//	10 battery        bool              true = battery mode (JSP §11.5)
type Hello struct {
	Versions      []protocol.Version
	ClientName    string
	ClientVersion string
	Platform      string
	Auth          []byte
	Resume        *Resume // nil = a new session
	Caps          []string
	HeartbeatMS   uint64
	MaxFrame      uint64
	Battery       bool
}

// Resume asks the server to resume an earlier session (JSP §5.1, §11.1).
// Both fields are required when the resume map is present:
//
//	1 session_id   bytes 1..256
//	2 resume_token bytes 1..256
type Resume struct {
	SessionID []byte
	Token     []byte
}

// Hello map keys (JSP §5.1).
const (
	helloVersions      = 1
	helloClientName    = 2
	helloClientVersion = 3
	helloPlatform      = 4
	helloAuth          = 5
	helloResume        = 6
	helloCaps          = 7
	helloHeartbeat     = 8
	helloMaxFrame      = 9
	helloBattery       = 10
)

// FrameType returns FrameHello.
func (m *Hello) FrameType() FrameType { return FrameHello }

// Append appends the deterministic encoding of m to b (JSP §5.1).
func (m *Hello) Append(b []byte) []byte {
	b, at := beginBody(b)
	b = AppendCBORUint(b, helloVersions)
	b = appendVersionList(b, m.Versions)
	n := 1
	if m.ClientName != "" {
		b, n = appendTextField(b, helloClientName, m.ClientName), n+1
	}
	if m.ClientVersion != "" {
		b, n = appendTextField(b, helloClientVersion, m.ClientVersion), n+1
	}
	if m.Platform != "" {
		b, n = appendTextField(b, helloPlatform, m.Platform), n+1
	}
	if len(m.Auth) != 0 {
		b, n = appendBytesField(b, helloAuth, m.Auth), n+1
	}
	if m.Resume != nil {
		b = AppendCBORUint(b, helloResume)
		b = AppendCBORMapHeader(b, 2)
		b = appendBytesField(b, 1, m.Resume.SessionID)
		b, n = appendBytesField(b, 2, m.Resume.Token), n+1
	}
	if len(m.Caps) != 0 {
		b = AppendCBORUint(b, helloCaps)
		b, n = appendTextList(b, m.Caps), n+1
	}
	if m.HeartbeatMS != 0 {
		b, n = appendUintField(b, helloHeartbeat, m.HeartbeatMS), n+1
	}
	if m.MaxFrame != 0 {
		b, n = appendUintField(b, helloMaxFrame, m.MaxFrame), n+1
	}
	if m.Battery {
		b = AppendCBORUint(b, helloBattery)
		b, n = AppendCBORBool(b, true), n+1
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *Hello) Len() int {
	n := 1 + 1 + versionListLen(m.Versions)
	if m.ClientName != "" {
		n += strFieldLen(helloClientName, len(m.ClientName))
	}
	if m.ClientVersion != "" {
		n += strFieldLen(helloClientVersion, len(m.ClientVersion))
	}
	if m.Platform != "" {
		n += strFieldLen(helloPlatform, len(m.Platform))
	}
	if len(m.Auth) != 0 {
		n += strFieldLen(helloAuth, len(m.Auth))
	}
	if m.Resume != nil {
		n += 2 + strFieldLen(1, len(m.Resume.SessionID)) + strFieldLen(2, len(m.Resume.Token))
	}
	if len(m.Caps) != 0 {
		n += 1 + textListLen(m.Caps)
	}
	if m.HeartbeatMS != 0 {
		n += uintFieldLen(helloHeartbeat, m.HeartbeatMS)
	}
	if m.MaxFrame != 0 {
		n += uintFieldLen(helloMaxFrame, m.MaxFrame)
	}
	if m.Battery {
		n += 2
	}
	return n
}

// ParseHello decodes a HELLO body from the front of b (JSP §5.1).
func ParseHello(b []byte) (Hello, int, error) {
	var m Hello
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return Hello{}, 0, err
	}
	var resume Resume
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return Hello{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case helloVersions:
			m.Versions, err = d.versionList()
		case helloClientName:
			m.ClientName, err = d.optText(MaxNameLen)
		case helloClientVersion:
			m.ClientVersion, err = d.optText(MaxNameLen)
		case helloPlatform:
			m.Platform, err = d.optText(MaxNameLen)
		case helloAuth:
			m.Auth, err = d.optBytes(MaxAuthLen)
		case helloResume:
			resume, err = d.resume()
			m.Resume = &resume
		case helloCaps:
			m.Caps, err = d.textList(MaxCaps, MaxCapLen)
		case helloHeartbeat:
			m.HeartbeatMS, err = d.optUint()
		case helloMaxFrame:
			m.MaxFrame, err = d.optUint()
		case helloBattery:
			m.Battery, err = d.optTrue()
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return Hello{}, 0, err
		}
	}
	if !mp.Has(helloVersions) {
		return Hello{}, 0, ErrMissingField
	}
	a := make(arena, 0, len(m.Auth)+len(resume.SessionID)+len(resume.Token))
	m.Auth = a.clone(m.Auth)
	if m.Resume != nil {
		m.Resume.SessionID, m.Resume.Token = a.clone(resume.SessionID), a.clone(resume.Token)
	}
	return m, d.Offset(), nil
}

// resume reads the resume map of HELLO; both keys are required.
func (d *CBORDecoder) resume() (Resume, error) {
	var r Resume
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return r, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return r, err
		}
		if !ok {
			break
		}
		switch key {
		case 1:
			r.SessionID, err = d.Bytes(MaxTokenLen)
		case 2:
			r.Token, err = d.Bytes(MaxTokenLen)
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return r, err
		}
	}
	if !mp.Has(1) || !mp.Has(2) {
		return r, ErrMissingField
	}
	if len(r.SessionID) == 0 || len(r.Token) == 0 {
		return r, ErrFieldRange
	}
	return r, nil
}

// Welcome is the server's answer to an acceptable HELLO (JSP §5.2). Its
// CBOR map keys:
//
//	 1 version         uint        required, the chosen version
//	 2 session_id      bytes 1..256 required
//	 3 resume_token    bytes ..256
//	 4 heartbeat_ms    uint        heartbeat interval the client must use
//	 5 idle_timeout_ms uint
//	 6 limits          {1 max_frame, 2 max_message, 3 max_streams,
//	                    4 max_datagram, 5 max_datagram_message}
//	 7 server_time     uint        unix ms
//	 8 caps            [text]      capabilities in effect
//	 9 gateways        [text]      other gateway addresses, ..16 entries
//	10 resumed         bool        true = the session in HELLO was resumed
type Welcome struct {
	Version       protocol.Version
	SessionID     []byte
	ResumeToken   []byte
	HeartbeatMS   uint64
	IdleTimeoutMS uint64
	// Limits are the server's limits; a zero field is omitted on the wire
	// and means the default (JSP §9).
	Limits     Limits
	ServerTime uint64 // unix ms
	Caps       []string
	Gateways   []string
	Resumed    bool
}

// Welcome map keys (JSP §5.2).
const (
	welVersion     = 1
	welSessionID   = 2
	welResumeToken = 3
	welHeartbeat   = 4
	welIdleTimeout = 5
	welLimits      = 6
	welServerTime  = 7
	welCaps        = 8
	welGateways    = 9
	welResumed     = 10
)

// FrameType returns FrameWelcome.
func (m *Welcome) FrameType() FrameType { return FrameWelcome }

// Append appends the deterministic encoding of m to b (JSP §5.2).
func (m *Welcome) Append(b []byte) []byte {
	b, at := beginBody(b)
	b = appendUintField(b, welVersion, uint64(m.Version))
	b = appendBytesField(b, welSessionID, m.SessionID)
	n := 2
	if len(m.ResumeToken) != 0 {
		b, n = appendBytesField(b, welResumeToken, m.ResumeToken), n+1
	}
	if m.HeartbeatMS != 0 {
		b, n = appendUintField(b, welHeartbeat, m.HeartbeatMS), n+1
	}
	if m.IdleTimeoutMS != 0 {
		b, n = appendUintField(b, welIdleTimeout, m.IdleTimeoutMS), n+1
	}
	if m.Limits != (Limits{}) {
		b = AppendCBORUint(b, welLimits)
		b, n = m.Limits.appendMap(b), n+1
	}
	if m.ServerTime != 0 {
		b, n = appendUintField(b, welServerTime, m.ServerTime), n+1
	}
	if len(m.Caps) != 0 {
		b = AppendCBORUint(b, welCaps)
		b, n = appendTextList(b, m.Caps), n+1
	}
	if len(m.Gateways) != 0 {
		b = AppendCBORUint(b, welGateways)
		b, n = appendTextList(b, m.Gateways), n+1
	}
	if m.Resumed {
		b = AppendCBORUint(b, welResumed)
		b, n = AppendCBORBool(b, true), n+1
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *Welcome) Len() int {
	n := 1 + uintFieldLen(welVersion, uint64(m.Version)) + strFieldLen(welSessionID, len(m.SessionID))
	if len(m.ResumeToken) != 0 {
		n += strFieldLen(welResumeToken, len(m.ResumeToken))
	}
	if m.HeartbeatMS != 0 {
		n += uintFieldLen(welHeartbeat, m.HeartbeatMS)
	}
	if m.IdleTimeoutMS != 0 {
		n += uintFieldLen(welIdleTimeout, m.IdleTimeoutMS)
	}
	if m.Limits != (Limits{}) {
		n += 1 + m.Limits.mapLen()
	}
	if m.ServerTime != 0 {
		n += uintFieldLen(welServerTime, m.ServerTime)
	}
	if len(m.Caps) != 0 {
		n += 1 + textListLen(m.Caps)
	}
	if len(m.Gateways) != 0 {
		n += 1 + textListLen(m.Gateways)
	}
	if m.Resumed {
		n += 2
	}
	return n
}

// limitValues lists the limits in key order (keys 1..5 of the WELCOME
// limits map). Negative values are a programming error; Validate reports them.
func (l *Limits) limitValues() [5]uint64 {
	return [5]uint64{uint64(l.MaxFrame), uint64(l.MaxMessage), uint64(l.MaxStreams),
		uint64(l.MaxDatagram), uint64(l.MaxDatagramMessage)}
}

func (l *Limits) appendMap(b []byte) []byte {
	b, at := beginBody(b)
	n := 0
	for i, v := range l.limitValues() {
		if v != 0 {
			b, n = appendUintField(b, uint64(i+1), v), n+1
		}
	}
	return endBody(b, at, n)
}

func (l *Limits) mapLen() int {
	n := 1
	for i, v := range l.limitValues() {
		if v != 0 {
			n += uintFieldLen(uint64(i+1), v)
		}
	}
	return n
}

// limits reads the WELCOME limits map: every key optional and non-zero,
// sizes at most MaxVarint, streams at most 2^31-1.
func (d *CBORDecoder) limits() (Limits, error) {
	var l Limits
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return l, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return l, err
		}
		if !ok {
			break
		}
		if key < 1 || key > 5 {
			if err := d.Skip(); err != nil { // JSP §8.3
				return l, err
			}
			continue
		}
		v, err := d.optUint()
		if err != nil {
			return l, err
		}
		max := uint64(MaxVarint)
		if key == 3 {
			max = math.MaxInt32
		}
		if v > max {
			return l, ErrFieldRange
		}
		switch key {
		case 1:
			l.MaxFrame = protocol.ByteCount(v)
		case 2:
			l.MaxMessage = protocol.ByteCount(v)
		case 3:
			l.MaxStreams = int(v)
		case 4:
			l.MaxDatagram = protocol.ByteCount(v)
		case 5:
			l.MaxDatagramMessage = protocol.ByteCount(v)
		}
	}
	if l == (Limits{}) {
		// An empty map is the non-canonical form of an absent one.
		return l, ErrNonCanonical
	}
	return l, nil
}

// ParseWelcome decodes a WELCOME body from the front of b (JSP §5.2).
func ParseWelcome(b []byte) (Welcome, int, error) {
	var m Welcome
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return Welcome{}, 0, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return Welcome{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case welVersion:
			var v uint64
			v, err = d.uintMax(math.MaxUint32)
			if err == nil && v == 0 {
				err = ErrFieldRange
			}
			m.Version = protocol.Version(v)
		case welSessionID:
			m.SessionID, err = d.Bytes(MaxTokenLen)
			if err == nil && len(m.SessionID) == 0 {
				err = ErrFieldRange
			}
		case welResumeToken:
			m.ResumeToken, err = d.optBytes(MaxTokenLen)
		case welHeartbeat:
			m.HeartbeatMS, err = d.optUint()
		case welIdleTimeout:
			m.IdleTimeoutMS, err = d.optUint()
		case welLimits:
			m.Limits, err = d.limits()
		case welServerTime:
			m.ServerTime, err = d.optUint()
		case welCaps:
			m.Caps, err = d.textList(MaxCaps, MaxCapLen)
		case welGateways:
			m.Gateways, err = d.textList(MaxGateways, MaxNameLen)
		case welResumed:
			m.Resumed, err = d.optTrue()
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return Welcome{}, 0, err
		}
	}
	if !mp.Has(welVersion) || !mp.Has(welSessionID) {
		return Welcome{}, 0, ErrMissingField
	}
	a := make(arena, 0, len(m.SessionID)+len(m.ResumeToken))
	m.SessionID, m.ResumeToken = a.clone(m.SessionID), a.clone(m.ResumeToken)
	return m, d.Offset(), nil
}

// ErrorMessage is the body of an ERROR frame (JSP §5.3). On the control
// stream it ends the session; elsewhere it fails the message named by Ref.
// Its CBOR map keys:
//
//	1 code           uint     required, registry code (JSP §10)
//	2 reason         text ..1024
//	3 retry_after_ms uint
//	4 supported      [uint]   versions, for UNSUPPORTED_VERSION
//	5 ref            bytes 1..64  id of the message this error answers
//	6 channel        text 1..256  the channel a subscription error is about
type ErrorMessage struct {
	Code         jsperr.Code
	Reason       string
	RetryAfterMS uint64
	Supported    []protocol.Version
	Ref          []byte
	// Channel names the subscription an error is about when no request
	// id can (RECOVERY_IMPOSSIBLE after a resume, JSP §5.3, §11.1).
	Channel string
}

// ErrorMessage map keys (JSP §5.3).
const (
	errCode       = 1
	errReason     = 2
	errRetryAfter = 3
	errSupported  = 4
	errRef        = 5
	errChannel    = 6
)

// ErrorMessageFrom builds the ERROR body that reports err to the peer: its
// registry code (INTERNAL for errors without one), reason, retry delay and
// supported versions. Errors without a code are reported as INTERNAL with a
// generic reason, so local details do not leak. The reason is cut to MaxReasonLen at a UTF-8 boundary.
func ErrorMessageFrom(err error) ErrorMessage {
	m := ErrorMessage{Code: jsperr.CodeOf(err)}
	if err == nil {
		return m
	}
	var e *jsperr.Error
	if !errors.As(err, &e) {
		// Details of a local failure stay local; the peer learns the code.
		m.Reason = "internal error"
		return m
	}
	m.Reason = truncateUTF8(e.Reason, MaxReasonLen)
	if e.RetryAfter > 0 {
		m.RetryAfterMS = uint64(e.RetryAfter.Milliseconds())
	}
	for _, v := range e.Supported {
		m.Supported = append(m.Supported, protocol.Version(v))
	}
	return m
}

// Err returns the remote protocol error that m reports.
func (m *ErrorMessage) Err() *jsperr.Error {
	e := &jsperr.Error{Code: m.Code, Reason: m.Reason, Remote: true,
		RetryAfter: time.Duration(m.RetryAfterMS) * time.Millisecond}
	for _, v := range m.Supported {
		e.Supported = append(e.Supported, uint32(v))
	}
	return e
}

// FrameType returns FrameError.
func (m *ErrorMessage) FrameType() FrameType { return FrameError }

// Append appends the deterministic encoding of m to b (JSP §5.3).
func (m *ErrorMessage) Append(b []byte) []byte {
	b, at := beginBody(b)
	b = appendUintField(b, errCode, uint64(m.Code))
	n := 1
	if m.Reason != "" {
		b, n = appendTextField(b, errReason, m.Reason), n+1
	}
	if m.RetryAfterMS != 0 {
		b, n = appendUintField(b, errRetryAfter, m.RetryAfterMS), n+1
	}
	if len(m.Supported) != 0 {
		b = AppendCBORUint(b, errSupported)
		b, n = appendVersionList(b, m.Supported), n+1
	}
	if len(m.Ref) != 0 {
		b, n = appendBytesField(b, errRef, m.Ref), n+1
	}
	if m.Channel != "" {
		b, n = appendTextField(b, errChannel, m.Channel), n+1
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *ErrorMessage) Len() int {
	n := 1 + uintFieldLen(errCode, uint64(m.Code))
	if m.Reason != "" {
		n += strFieldLen(errReason, len(m.Reason))
	}
	if m.RetryAfterMS != 0 {
		n += uintFieldLen(errRetryAfter, m.RetryAfterMS)
	}
	if len(m.Supported) != 0 {
		n += 1 + versionListLen(m.Supported)
	}
	if len(m.Ref) != 0 {
		n += strFieldLen(errRef, len(m.Ref))
	}
	if m.Channel != "" {
		n += strFieldLen(errChannel, len(m.Channel))
	}
	return n
}

// ParseErrorMessage decodes an ERROR body from the front of b (JSP §5.3).
func ParseErrorMessage(b []byte) (ErrorMessage, int, error) {
	var m ErrorMessage
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return ErrorMessage{}, 0, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return ErrorMessage{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case errCode:
			var v uint64
			v, err = d.Uint()
			m.Code = jsperr.Code(v)
		case errReason:
			m.Reason, err = d.optText(MaxReasonLen)
		case errRetryAfter:
			m.RetryAfterMS, err = d.optUint()
		case errSupported:
			m.Supported, err = d.versionList()
		case errRef:
			m.Ref, err = d.optBytes(MaxIDLen)
		case errChannel:
			m.Channel, err = d.optText(MaxRouteNameLen)
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return ErrorMessage{}, 0, err
		}
	}
	if !mp.Has(errCode) {
		return ErrorMessage{}, 0, ErrMissingField
	}
	a := make(arena, 0, len(m.Ref))
	m.Ref = a.clone(m.Ref)
	return m, d.Offset(), nil
}

// truncateUTF8 cuts s to at most max bytes without splitting a character.
// Invalid UTF-8 (a local error string may hold any bytes) is first replaced
// with U+FFFD, since the peer rejects invalid text.
func truncateUTF8(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= max {
		return s
	}
	i := max
	// Back up over continuation bytes (10xxxxxx) to a character start.
	for i > 0 && s[i]&0xc0 == 0x80 {
		i--
	}
	return s[:i]
}
