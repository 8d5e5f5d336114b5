package wire

import (
	"encoding/hex"
	"fmt"
)

// The "meaning" of a vector is its decoded value as JSON, with the field
// names of spec/jsp.cddl, byte strings as lower-case hex, absent fields
// omitted, and integers above 2^53-1 as decimal strings (JSON numbers lose
// precision there in some languages). See spec/vectors/README.md.

type obj = map[string]any

func num(v uint64) any {
	if v > 1<<53-1 {
		return fmt.Sprintf("%d", v)
	}
	return v
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func putUint(o obj, k string, v uint64) {
	if v != 0 {
		o[k] = num(v)
	}
}

func putStr(o obj, k, v string) {
	if v != "" {
		o[k] = v
	}
}

func putBytes(o obj, k string, v []byte) {
	if len(v) != 0 {
		o[k] = hx(v)
	}
}

func putList(o obj, k string, v []string) {
	if len(v) != 0 {
		o[k] = v
	}
}

func envelopeMeaning(m *Envelope) obj {
	o := obj{"id": hx(m.ID), "route": obj{"kind": uint64(m.Route.Kind), "name": m.Route.Name}}
	putUint(o, "kind", uint64(m.Kind))
	putUint(o, "class", uint64(m.Class))
	putUint(o, "ts", m.Timestamp)
	putUint(o, "ttl", m.TTL)
	putStr(o, "sender", m.Sender)
	putBytes(o, "reply_to", m.ReplyTo)
	putUint(o, "seq", m.Seq)
	putBytes(o, "nonce", m.Nonce)
	putBytes(o, "sig", m.Signature)
	if len(m.Headers) != 0 {
		o["headers"] = m.Headers
	}
	putUint(o, "err_code", uint64(m.ErrCode))
	putStr(o, "err_reason", m.ErrReason)
	putBytes(o, "body", m.Body)
	return o
}

func versions[V ~uint32](l []V) []any {
	out := make([]any, len(l))
	for i, v := range l {
		out[i] = uint64(v)
	}
	return out
}

func limitsMeaning(l Limits) obj {
	o := obj{}
	putUint(o, "max_frame", uint64(l.MaxFrame))
	putUint(o, "max_message", uint64(l.MaxMessage))
	putUint(o, "max_streams", uint64(l.MaxStreams))
	putUint(o, "max_datagram", uint64(l.MaxDatagram))
	putUint(o, "max_datagram_message", uint64(l.MaxDatagramMessage))
	return o
}

func fragmentMeaning(h FragmentHeader) obj {
	return obj{"msg_id": num(h.MsgID), "index": uint64(h.Index), "count": uint64(h.Count)}
}

// meaningOf returns the JSON meaning of a decoded message.
func meaningOf(msg Message) obj {
	o := obj{}
	switch m := msg.(type) {
	case *EnvelopeFrame:
		return envelopeMeaning(&m.Envelope)
	case *Hello:
		o["versions"] = versions(m.Versions)
		putStr(o, "client_name", m.ClientName)
		putStr(o, "client_version", m.ClientVersion)
		putStr(o, "platform", m.Platform)
		putBytes(o, "auth", m.Auth)
		if m.Resume != nil {
			o["resume"] = obj{"session_id": hx(m.Resume.SessionID), "resume_token": hx(m.Resume.Token)}
		}
		putList(o, "caps", m.Caps)
		putUint(o, "heartbeat_ms", m.HeartbeatMS)
		putUint(o, "max_frame", m.MaxFrame)
		if m.Battery {
			o["battery"] = true
		}
	case *Welcome:
		o["version"] = uint64(m.Version)
		o["session_id"] = hx(m.SessionID)
		putBytes(o, "resume_token", m.ResumeToken)
		putUint(o, "heartbeat_ms", m.HeartbeatMS)
		putUint(o, "idle_timeout_ms", m.IdleTimeoutMS)
		if m.Limits != (Limits{}) {
			o["limits"] = limitsMeaning(m.Limits)
		}
		putUint(o, "server_time", m.ServerTime)
		putList(o, "caps", m.Caps)
		putList(o, "gateways", m.Gateways)
		if m.Resumed {
			o["resumed"] = true
		}
	case *ErrorMessage:
		o["code"] = num(uint64(m.Code))
		putStr(o, "reason", m.Reason)
		putUint(o, "retry_after_ms", m.RetryAfterMS)
		if len(m.Supported) != 0 {
			o["supported"] = versions(m.Supported)
		}
		putBytes(o, "ref", m.Ref)
		putStr(o, "channel", m.Channel)
	case *Ping:
		putUint(o, "id", m.ID)
		putUint(o, "ts", m.Timestamp)
	case *Pong:
		putUint(o, "id", m.ID)
		putUint(o, "ts", m.Timestamp)
	case *Goaway:
		putUint(o, "code", uint64(m.Code))
		putStr(o, "reason", m.Reason)
		putList(o, "alternatives", m.Alternatives)
		putUint(o, "grace_ms", m.GraceMS)
	case *Ack:
		if len(m.IDs) != 0 {
			ids := make([]any, len(m.IDs))
			for i, id := range m.IDs {
				ids[i] = hx(id)
			}
			o["ids"] = ids
		}
		if len(m.Cursors) != 0 {
			cs := make([]any, len(m.Cursors))
			for i, c := range m.Cursors {
				cs[i] = []any{c.Channel, num(c.Seq)}
			}
			o["cursors"] = cs
		}
	case *Nack:
		putUint(o, "flow", uint64(m.Flow))
		seqs := make([]any, len(m.Seqs))
		for i, s := range m.Seqs {
			seqs[i] = num(s)
		}
		o["seqs"] = seqs
	case *Subscribe:
		o["channel"] = m.Channel
		if m.HasSince {
			o["since"] = num(m.Since)
		}
		putBytes(o, "req", m.ReqID)
	case *Unsubscribe:
		o["channel"] = m.Channel
		putBytes(o, "req", m.ReqID)
	case *StreamOpen:
		putUint(o, "class", uint64(m.Class))
		putStr(o, "label", m.Label)
		if len(m.Metadata) != 0 {
			o["metadata"] = m.Metadata
		}
	case *Announce:
		putUint(o, "uses", uint64(m.Uses))
	case *Datagram:
		o = fragmentMeaning(m.Fragment)
		o["data"] = hx(m.Data)
	default:
		panic(fmt.Sprintf("meaningOf(%T)", msg))
	}
	return o
}

// linkPayloadMeaning decodes a link frame payload (JSP §3.4) into its
// meaning and re-encodes it.
func linkPayloadMeaning(t FrameType, p []byte) (obj, []byte, error) {
	switch t {
	case FrameStream, FrameLinkDatagram:
		return obj{"data": hx(p)}, append([]byte(nil), p...), nil
	case FrameWindowUpdate:
		v, err := ParseVarintPayload(p)
		return obj{"increment": num(v)}, AppendVarintPayload(nil, v), err
	case FrameResetStream, FrameStopSending:
		v, err := ParseVarintPayload(p)
		return obj{"code": num(v)}, AppendVarintPayload(nil, v), err
	case FrameLinkClose:
		c, r, err := ParseLinkClose(p)
		o := obj{"code": num(uint64(c))}
		putStr(o, "reason", r)
		return o, AppendLinkClose(nil, c, r), err
	}
	panic("not a link frame")
}

func headerMeaning(h Header) obj {
	return obj{"type": num(uint64(h.Type)), "flags": uint64(h.Flags), "stream_id": num(uint64(h.StreamID)), "length": num(h.Length)}
}

// decodeVector decodes b as a value of the named vector type, consuming all
// of b, and returns its meaning and its re-encoding.
func decodeVector(typ string, b []byte) (obj, []byte, error) {
	maxFrame := uint64(DefaultLimits().MaxFrame)
	whole := func(n int) error {
		if n != len(b) {
			return ErrTrailingBytes
		}
		return nil
	}
	switch typ {
	case "varint":
		v, n, err := ParseVarint(b)
		if err == nil {
			err = whole(n)
		}
		return obj{"value": num(v)}, AppendVarint(nil, v), err
	case "header":
		h, n, err := ParseHeader(b, maxFrame)
		if err == nil {
			err = whole(n)
		}
		return headerMeaning(h), AppendHeader(nil, h), err
	case "fragment_header":
		h, n, err := ParseFragmentHeader(b)
		if err == nil {
			err = whole(n)
		}
		return fragmentMeaning(h), AppendFragmentHeader(nil, h), err
	case "varint_payload":
		v, err := ParseVarintPayload(b)
		return obj{"value": num(v)}, AppendVarintPayload(nil, v), err
	case "link_close":
		c, r, err := ParseLinkClose(b)
		o := obj{"code": num(uint64(c))}
		putStr(o, "reason", r)
		return o, AppendLinkClose(nil, c, r), err
	case "frame":
		h, p, n, err := ParseFrame(b, maxFrame)
		if err != nil {
			return nil, nil, err
		}
		if err := whole(n); err != nil {
			return nil, nil, err
		}
		o := headerMeaning(h)
		var payload obj
		var re []byte
		switch {
		case h.Type >= FrameStream && h.Type <= FrameLinkClose:
			payload, re, err = linkPayloadMeaning(h.Type, p)
		default:
			var m Message
			m, err = DecodeMessage(h.Type, p)
			switch {
			case err == ErrUnknownFrame:
				// Skipped, not fatal (JSP §8.3); kept as raw bytes.
				payload, re, err = obj{"skipped": true, "data": hx(p)}, append([]byte(nil), p...), nil
			case err == nil:
				payload, re = meaningOf(m), m.Append(nil)
			}
		}
		if err != nil {
			return nil, nil, err
		}
		o["payload"] = payload
		return o, AppendFrame(nil, h.Type, h.Flags, h.StreamID, re), nil
	}
	parse, ok := parsers[typ]
	if !ok {
		return nil, nil, fmt.Errorf("unknown vector type %q", typ)
	}
	m, n, err := parse(b)
	if err != nil {
		return nil, nil, err
	}
	if err := whole(n); err != nil {
		return nil, nil, err
	}
	return meaningOf(m), m.Append(nil), nil
}
