package wire

import (
	"fmt"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// Kind is what an envelope carries (JSP §4.2).
type Kind uint8

// Envelope kinds (JSP §4.2).
const (
	KindEvent        Kind = 0 // published to a channel, fanned out to subscribers
	KindCommand      Kind = 1 // a request that expects one reply
	KindReply        Kind = 2 // the answer to a command, with reply_to set
	KindNotification Kind = 3 // a server push addressed to one user
	numKinds              = 4
)

// String returns the spec name of k.
func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindCommand:
		return "command"
	case KindReply:
		return "reply"
	case KindNotification:
		return "notification"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// RouteKind is the kind of address a route names (JSP §4.1).
type RouteKind uint8

// Route kinds (JSP §4.1).
const (
	RouteChannel  RouteKind = 0 // a pub/sub channel, e.g. "room.42"
	RouteUser     RouteKind = 1 // one user, on all of their sessions
	RouteService  RouteKind = 2 // a server-side service, e.g. "chat.history"
	numRouteKinds           = 3
)

// String returns the spec name of k.
func (k RouteKind) String() string {
	switch k {
	case RouteChannel:
		return "channel"
	case RouteUser:
		return "user"
	case RouteService:
		return "service"
	}
	return fmt.Sprintf("route(%d)", uint8(k))
}

// Route is an envelope's destination (JSP §4.1), encoded as the array
// [kind, name]. Name is 1..MaxRouteNameLen bytes of UTF-8.
type Route struct {
	Kind RouteKind
	Name string
}

// Envelope is an application message (JSP §4). Its CBOR map keys:
//
//	 1 id         bytes 1..64       required; client-chosen, idempotency key
//	 2 route      [kind, name]      required
//	 3 kind       uint 0..3         event if absent
//	 4 class      uint 0..3         QoS class, system if absent
//	 5 ts         uint              sender's unix time, ms
//	 6 ttl        uint              ms; absent = no expiry
//	 7 sender     text 1..256       set by the server on delivery
//	 8 reply_to   bytes 1..64       id of the command a reply answers
//	 9 seq        uint              per-channel sequence, server-assigned
//	10 nonce      bytes 1..32       replay protection for signed envelopes
//	11 sig        bytes 64          Ed25519 over SigningBytes
//	12 headers    {text => text}    at most 64 entries
//	13 err_code   uint              registry code of a failed reply
//	14 err_reason text ..1024
//	15 body       bytes             at most Limits.MaxMessage
//
// Optional fields are omitted when zero; decoders reject them when present
// with their zero value (JSP §6.2). Decoded byte slices never alias the
// decoder's input.
type Envelope struct {
	ID        []byte
	Route     Route
	Kind      Kind
	Class     protocol.Class
	Timestamp uint64 // unix ms
	TTL       uint64 // ms, 0 = none
	Sender    string
	ReplyTo   []byte
	Seq       uint64
	Nonce     []byte
	Signature []byte
	Headers   map[string]string
	ErrCode   jsperr.Code
	ErrReason string
	Body      []byte
}

// Envelope map keys (JSP §4).
const (
	envID        = 1
	envRoute     = 2
	envKind      = 3
	envClass     = 4
	envTS        = 5
	envTTL       = 6
	envSender    = 7
	envReplyTo   = 8
	envSeq       = 9
	envNonce     = 10
	envSig       = 11
	envHeaders   = 12
	envErrCode   = 13
	envErrReason = 14
	envBody      = 15
)

// SigningContext prefixes the bytes an envelope signature covers (JSP
// §4.3). It separates envelope signatures from anything else the same device
// key signs (such as the TLS channel binding), so that no signature made for
// one purpose verifies for another.
const SigningContext = "JSP/1 envelope signature\x00"

// Append appends the deterministic encoding of m to b (JSP §4).
func (m *Envelope) Append(b []byte) []byte { return m.appendBody(b, false) }

// SigningBytes appends to b the bytes an envelope signature covers (JSP
// §4.3): SigningContext followed by the encoding of m without key 11 (sig)
// and without keys 7 (sender) and 9 (seq), which the server sets on
// delivery after the originator signed. Signer and verifier both compute it
// from the decoded envelope, which re-encodes to the bytes that were sent
// because decoding accepts only the deterministic form.
func (m *Envelope) SigningBytes(b []byte) []byte {
	return m.appendBody(append(b, SigningContext...), true)
}

// appendBody encodes m; forSigning leaves out the fields a signature does
// not cover.
func (m *Envelope) appendBody(b []byte, forSigning bool) []byte {
	b, at := beginBody(b)
	n := 2
	b = appendBytesField(b, envID, m.ID)
	b = AppendCBORUint(b, envRoute)
	b = AppendCBORArrayHeader(b, 2)
	b = AppendCBORUint(b, uint64(m.Route.Kind))
	b = AppendCBORText(b, m.Route.Name)
	if m.Kind != 0 {
		b, n = appendUintField(b, envKind, uint64(m.Kind)), n+1
	}
	if m.Class != 0 {
		b, n = appendUintField(b, envClass, uint64(m.Class)), n+1
	}
	if m.Timestamp != 0 {
		b, n = appendUintField(b, envTS, m.Timestamp), n+1
	}
	if m.TTL != 0 {
		b, n = appendUintField(b, envTTL, m.TTL), n+1
	}
	if m.Sender != "" && !forSigning {
		b, n = appendTextField(b, envSender, m.Sender), n+1
	}
	if len(m.ReplyTo) != 0 {
		b, n = appendBytesField(b, envReplyTo, m.ReplyTo), n+1
	}
	if m.Seq != 0 && !forSigning {
		b, n = appendUintField(b, envSeq, m.Seq), n+1
	}
	if len(m.Nonce) != 0 {
		b, n = appendBytesField(b, envNonce, m.Nonce), n+1
	}
	if len(m.Signature) != 0 && !forSigning {
		b, n = appendBytesField(b, envSig, m.Signature), n+1
	}
	if len(m.Headers) != 0 {
		b = AppendCBORUint(b, envHeaders)
		b, n = appendTextMap(b, m.Headers), n+1
	}
	if m.ErrCode != 0 {
		b, n = appendUintField(b, envErrCode, uint64(m.ErrCode)), n+1
	}
	if m.ErrReason != "" {
		b, n = appendTextField(b, envErrReason, m.ErrReason), n+1
	}
	if len(m.Body) != 0 {
		b, n = appendBytesField(b, envBody, m.Body), n+1
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *Envelope) Len() int {
	n := 1 + strFieldLen(envID, len(m.ID)) +
		1 + 1 + cborHeadLen(uint64(m.Route.Kind)) + cborStrLen(len(m.Route.Name))
	if m.Kind != 0 {
		n += uintFieldLen(envKind, uint64(m.Kind))
	}
	if m.Class != 0 {
		n += uintFieldLen(envClass, uint64(m.Class))
	}
	if m.Timestamp != 0 {
		n += uintFieldLen(envTS, m.Timestamp)
	}
	if m.TTL != 0 {
		n += uintFieldLen(envTTL, m.TTL)
	}
	if m.Sender != "" {
		n += strFieldLen(envSender, len(m.Sender))
	}
	if len(m.ReplyTo) != 0 {
		n += strFieldLen(envReplyTo, len(m.ReplyTo))
	}
	if m.Seq != 0 {
		n += uintFieldLen(envSeq, m.Seq)
	}
	if len(m.Nonce) != 0 {
		n += strFieldLen(envNonce, len(m.Nonce))
	}
	if len(m.Signature) != 0 {
		n += strFieldLen(envSig, len(m.Signature))
	}
	if len(m.Headers) != 0 {
		n += 1 + textMapLen(m.Headers)
	}
	if m.ErrCode != 0 {
		n += uintFieldLen(envErrCode, uint64(m.ErrCode))
	}
	if m.ErrReason != "" {
		n += strFieldLen(envErrReason, len(m.ErrReason))
	}
	if len(m.Body) != 0 {
		n += strFieldLen(envBody, len(m.Body))
	}
	return n
}

// Validate reports whether m satisfies the field ranges a receiver enforces
// (JSP §4, §9), with lim (nil = defaults) bounding the body. Encoders do not
// check; a sender calls Validate to catch a bad envelope before the peer
// rejects it.
func (m *Envelope) Validate(lim *Limits) error {
	l := lim.withDefaults()
	switch {
	case len(m.ID) == 0 || len(m.ID) > MaxIDLen:
		return fmt.Errorf("wire: envelope id of %d bytes (want 1..%d): %w", len(m.ID), MaxIDLen, ErrFieldRange)
	case m.Route.Kind >= numRouteKinds:
		return fmt.Errorf("wire: envelope route kind %d: %w", m.Route.Kind, ErrFieldRange)
	case len(m.Route.Name) == 0 || len(m.Route.Name) > MaxRouteNameLen:
		return fmt.Errorf("wire: envelope route name of %d bytes (want 1..%d): %w", len(m.Route.Name), MaxRouteNameLen, ErrFieldRange)
	case m.Kind >= numKinds:
		return fmt.Errorf("wire: envelope kind %d: %w", m.Kind, ErrFieldRange)
	case m.Class >= protocol.NumClasses:
		return fmt.Errorf("wire: envelope class %d: %w", m.Class, ErrFieldRange)
	case len(m.Sender) > MaxSenderLen:
		return fmt.Errorf("wire: envelope sender of %d bytes: %w", len(m.Sender), ErrFieldRange)
	case len(m.ReplyTo) > MaxIDLen:
		return fmt.Errorf("wire: envelope reply_to of %d bytes: %w", len(m.ReplyTo), ErrFieldRange)
	case len(m.Nonce) > MaxNonceLen:
		return fmt.Errorf("wire: envelope nonce of %d bytes: %w", len(m.Nonce), ErrFieldRange)
	case len(m.Signature) != 0 && len(m.Signature) != SignatureLen:
		return fmt.Errorf("wire: envelope signature of %d bytes (want %d): %w", len(m.Signature), SignatureLen, ErrFieldRange)
	case len(m.Headers) > MaxHeaders:
		return fmt.Errorf("wire: envelope has %d headers (max %d): %w", len(m.Headers), MaxHeaders, ErrFieldRange)
	case len(m.ErrReason) > MaxReasonLen:
		return fmt.Errorf("wire: envelope err_reason of %d bytes: %w", len(m.ErrReason), ErrFieldRange)
	case protocol.ByteCount(len(m.Body)) > l.MaxMessage:
		return fmt.Errorf("wire: envelope body of %d bytes (max %d): %w", len(m.Body), l.MaxMessage, ErrMessageTooLarge)
	}
	for k, v := range m.Headers {
		if len(k) == 0 || len(k) > MaxHeaderKeyLen || len(v) > MaxHeaderValueLen {
			return fmt.Errorf("wire: envelope header %q: key or value length out of range: %w", k, ErrFieldRange)
		}
	}
	return nil
}

// ParseEnvelope decodes an envelope from the front of b with the default
// limits and returns it with the number of bytes consumed.
func ParseEnvelope(b []byte) (Envelope, int, error) { return parseEnvelope(b, &defaultLimits) }

// ParseEnvelope decodes an envelope from the front of b, bounding the body
// by l.MaxMessage (zero = default).
func (l *Limits) ParseEnvelope(b []byte) (Envelope, int, error) {
	c := l.withDefaults()
	return parseEnvelope(b, &c)
}

func parseEnvelope(b []byte, l *Limits) (Envelope, int, error) {
	var m Envelope
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return Envelope{}, 0, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return Envelope{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case envID:
			m.ID, err = d.Bytes(MaxIDLen)
			if err == nil && len(m.ID) == 0 {
				err = ErrFieldRange
			}
		case envRoute:
			m.Route, err = d.route()
		case envKind:
			var v uint64
			v, err = d.optUint()
			if err == nil && v >= numKinds {
				err = ErrFieldRange
			}
			m.Kind = Kind(v)
		case envClass:
			var v uint64
			v, err = d.optUint()
			if err == nil && v >= protocol.NumClasses {
				err = ErrFieldRange
			}
			m.Class = protocol.Class(v)
		case envTS:
			m.Timestamp, err = d.optUint()
		case envTTL:
			m.TTL, err = d.optUint()
		case envSender:
			m.Sender, err = d.optInterned(MaxSenderLen)
		case envReplyTo:
			m.ReplyTo, err = d.optBytes(MaxIDLen)
		case envSeq:
			m.Seq, err = d.optUint()
		case envNonce:
			m.Nonce, err = d.optBytes(MaxNonceLen)
		case envSig:
			m.Signature, err = d.Bytes(SignatureLen)
			if err == nil && len(m.Signature) != SignatureLen {
				err = ErrFieldRange
			}
		case envHeaders:
			m.Headers, err = d.textMap()
		case envErrCode:
			var v uint64
			v, err = d.optUint()
			m.ErrCode = jsperr.Code(v)
		case envErrReason:
			m.ErrReason, err = d.optText(MaxReasonLen)
		case envBody:
			m.Body, err = d.optBytes(int(l.MaxMessage))
			if err == ErrFieldRange {
				err = ErrMessageTooLarge
			}
		default:
			// Unknown keys are skipped so later minor versions can add
			// fields (JSP §8.3).
			err = d.Skip()
		}
		if err != nil {
			return Envelope{}, 0, err
		}
	}
	if !mp.Has(envID) || !mp.Has(envRoute) {
		return Envelope{}, 0, ErrMissingField
	}
	a := make(arena, 0, len(m.ID)+len(m.ReplyTo)+len(m.Nonce)+len(m.Signature)+len(m.Body))
	m.ID, m.ReplyTo, m.Nonce = a.clone(m.ID), a.clone(m.ReplyTo), a.clone(m.Nonce)
	m.Signature, m.Body = a.clone(m.Signature), a.clone(m.Body)
	return m, d.Offset(), nil
}

// route reads the route array [kind, name] (JSP §4.1).
func (d *CBORDecoder) route() (Route, error) {
	n, err := d.ArrayHeader(2)
	if err != nil {
		return Route{}, err
	}
	if n != 2 {
		return Route{}, ErrFieldRange
	}
	k, err := d.uintMax(numRouteKinds - 1)
	if err != nil {
		return Route{}, err
	}
	name, err := d.TextBytes(MaxRouteNameLen)
	if err != nil {
		return Route{}, err
	}
	if len(name) == 0 {
		return Route{}, ErrFieldRange
	}
	return Route{Kind: RouteKind(k), Name: internBytes(name)}, nil
}
