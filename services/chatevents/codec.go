package chatevents

import (
	"errors"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/wire"
)

// Decoder limits. The chat service enforces tighter limits when it accepts
// input (spec/JSP-chat.md §6); these only bound what a decoder allocates.
const (
	// MaxEventBytes caps an encoded event.
	MaxEventBytes = 256 << 10
	// MaxTextBytes caps a message text in an event.
	MaxTextBytes = 64 << 10
	// MaxNameBytes caps ids, user names, emoji, names and topics.
	MaxNameBytes = 1024
	// MaxListLen caps Members, Mentions and Attachments.
	MaxListLen = 10000
	// maxFields caps the entries of one map; every map has fewer keys.
	maxFields = 32
)

// ErrInvalid is wrapped by every decoding failure.
var ErrInvalid = errors.New("chatevents: invalid event")

// Append appends the CBOR encoding of e to b (deterministic: keys in
// ascending order, absent optional fields omitted; JSP §6).
func (e *Event) Append(b []byte) []byte {
	n := 5
	for _, set := range []bool{e.Seq != 0, e.Message != nil, e.Reaction != nil, e.Member != nil, e.Info != nil, e.Read != nil, len(e.Members) > 0, e.Presence != nil} {
		if set {
			n++
		}
	}
	b = wire.AppendCBORMapHeader(b, n)
	b = textField(b, 1, string(e.Type))
	b = textField(b, 2, e.ID)
	b = uintField(b, 3, uint64(max(e.Time.UnixMilli(), 0)))
	b = textField(b, 4, e.Conversation)
	if e.Seq != 0 {
		b = uintField(b, 5, e.Seq)
	}
	b = textField(b, 6, e.Actor)
	if e.Message != nil {
		b = e.Message.append(wire.AppendCBORUint(b, 7))
	}
	if e.Reaction != nil {
		r := e.Reaction
		b = wire.AppendCBORMapHeader(wire.AppendCBORUint(b, 8), 4)
		b = textField(b, 1, r.MessageID)
		b = textField(b, 2, r.Emoji)
		b = textField(b, 3, r.User)
		b = uintField(b, 4, r.Count)
	}
	if e.Member != nil {
		m := e.Member
		b = wire.AppendCBORUint(b, 9)
		b = wire.AppendCBORMapHeader(b, 1+count(m.Role != "", m.PrevRole != ""))
		b = textField(b, 1, m.User)
		if m.Role != "" {
			b = textField(b, 2, string(m.Role))
		}
		if m.PrevRole != "" {
			b = textField(b, 3, string(m.PrevRole))
		}
	}
	if e.Info != nil {
		c := e.Info
		b = wire.AppendCBORUint(b, 10)
		b = wire.AppendCBORMapHeader(b, 2+count(c.Name != "", c.Topic != "", c.Archived, c.Creator != ""))
		b = textField(b, 1, c.ID)
		b = textField(b, 2, string(c.Kind))
		if c.Name != "" {
			b = textField(b, 3, c.Name)
		}
		if c.Topic != "" {
			b = textField(b, 4, c.Topic)
		}
		if c.Archived {
			b = wire.AppendCBORBool(wire.AppendCBORUint(b, 5), true)
		}
		if c.Creator != "" {
			b = textField(b, 6, c.Creator)
		}
	}
	if e.Read != nil {
		b = wire.AppendCBORMapHeader(wire.AppendCBORUint(b, 11), 2)
		b = textField(b, 1, e.Read.User)
		b = uintField(b, 2, e.Read.Seq)
	}
	if len(e.Members) > 0 {
		b = textList(wire.AppendCBORUint(b, 12), e.Members)
	}
	if e.Presence != nil {
		p := e.Presence
		b = wire.AppendCBORMapHeader(wire.AppendCBORUint(b, 13), 2+count(p.Previous != ""))
		b = textField(b, 1, p.User)
		b = textField(b, 2, p.Status)
		if p.Previous != "" {
			b = textField(b, 3, p.Previous)
		}
	}
	return b
}

// Marshal returns the CBOR encoding of e.
func (e *Event) Marshal() []byte { return e.Append(nil) }

func (m *Message) append(b []byte) []byte {
	b = wire.AppendCBORMapHeader(b, 2+count(m.Text != "", m.ReplyTo != "", m.Thread != "", len(m.Mentions) > 0,
		m.MentionsAll, len(m.Attachments) > 0, m.Edited, m.Deleted, m.Seq != 0))
	b = textField(b, 1, m.ID)
	b = textField(b, 2, m.Author)
	if m.Text != "" {
		b = textField(b, 3, m.Text)
	}
	if m.ReplyTo != "" {
		b = textField(b, 4, m.ReplyTo)
	}
	if m.Thread != "" {
		b = textField(b, 5, m.Thread)
	}
	if len(m.Mentions) > 0 {
		b = textList(wire.AppendCBORUint(b, 6), m.Mentions)
	}
	if m.MentionsAll {
		b = wire.AppendCBORBool(wire.AppendCBORUint(b, 7), true)
	}
	if len(m.Attachments) > 0 {
		b = wire.AppendCBORArrayHeader(wire.AppendCBORUint(b, 8), len(m.Attachments))
		for _, a := range m.Attachments {
			b = wire.AppendCBORMapHeader(b, 4)
			b = textField(b, 1, a.ID)
			b = textField(b, 2, a.Name)
			b = uintField(b, 3, a.Size)
			b = textField(b, 4, a.SHA256)
		}
	}
	if m.Edited {
		b = wire.AppendCBORBool(wire.AppendCBORUint(b, 9), true)
	}
	if m.Deleted {
		b = wire.AppendCBORBool(wire.AppendCBORUint(b, 10), true)
	}
	if m.Seq != 0 {
		b = uintField(b, 11, m.Seq)
	}
	return b
}

func count(set ...bool) int {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

func textField(b []byte, key uint64, s string) []byte {
	return wire.AppendCBORText(wire.AppendCBORUint(b, key), s)
}

func uintField(b []byte, key, v uint64) []byte {
	return wire.AppendCBORUint(wire.AppendCBORUint(b, key), v)
}

func textList(b []byte, l []string) []byte {
	b = wire.AppendCBORArrayHeader(b, len(l))
	for _, s := range l {
		b = wire.AppendCBORText(b, s)
	}
	return b
}

// Decode decodes one CBOR event that fills data exactly. Unknown keys are
// skipped (JSP §8.3); a missing required field, a duplicate or misordered
// key, an oversize string or list, or trailing bytes fail with ErrInvalid.
func Decode(data []byte) (Event, error) {
	if len(data) > MaxEventBytes {
		return Event{}, fmt.Errorf("%w: %d bytes over %d", ErrInvalid, len(data), MaxEventBytes)
	}
	d := wire.NewCBORDecoder(data)
	var e Event
	if err := e.decode(&d); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if d.Remaining() != 0 {
		return Event{}, fmt.Errorf("%w: %d trailing bytes", ErrInvalid, d.Remaining())
	}
	return e, nil
}

func (e *Event) decode(d *wire.CBORDecoder) error {
	m, err := d.Map(maxFields)
	if err != nil {
		return err
	}
	for {
		k, ok, err := m.Next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		var t string
		var ms uint64
		switch k {
		case 1:
			t, err = d.Text(MaxNameBytes)
			e.Type = Type(t)
		case 2:
			e.ID, err = d.Text(MaxNameBytes)
		case 3:
			ms, err = d.Uint()
			if err == nil && ms > 1<<53 {
				err = errors.New("time out of range")
			}
			e.Time = time.UnixMilli(int64(ms)).UTC()
		case 4:
			e.Conversation, err = d.Text(MaxNameBytes)
		case 5:
			e.Seq, err = d.Uint()
		case 6:
			e.Actor, err = d.Text(MaxNameBytes)
		case 7:
			e.Message = new(Message)
			err = e.Message.decode(d)
		case 8:
			e.Reaction = new(Reaction)
			err = e.Reaction.decode(d)
		case 9:
			e.Member = new(Member)
			err = e.Member.decode(d)
		case 10:
			e.Info = new(Conversation)
			err = e.Info.decode(d)
		case 11:
			e.Read = new(Read)
			err = e.Read.decode(d)
		case 12:
			e.Members, err = decodeTextList(d)
		case 13:
			e.Presence = new(Presence)
			err = e.Presence.decode(d)
		default:
			err = d.Skip()
		}
		if err != nil {
			return fmt.Errorf("key %d: %w", k, err)
		}
	}
	for _, k := range []uint64{1, 2, 3, 4, 6} {
		if !m.Has(k) {
			return fmt.Errorf("missing key %d", k)
		}
	}
	if !e.Type.Valid() {
		return fmt.Errorf("unknown type %q", e.Type)
	}
	return nil
}

func decodeTextList(d *wire.CBORDecoder) ([]string, error) {
	n, err := d.ArrayHeader(MaxListLen)
	if err != nil {
		return nil, err
	}
	// n is bounded by MaxListLen and by the bytes left (ArrayHeader checks
	// that every item can take at least one byte).
	out := make([]string, 0, n)
	for range n {
		s, err := d.Text(MaxNameBytes)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// fields runs one map's decode loop, calling f for each key; f reads the
// value or returns handled false to have it skipped. It then checks that
// every key in required was present.
func fields(d *wire.CBORDecoder, required []uint64, f func(k uint64) (bool, error)) error {
	m, err := d.Map(maxFields)
	if err != nil {
		return err
	}
	for {
		k, ok, err := m.Next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		handled, err := f(k)
		if err == nil && !handled {
			err = d.Skip()
		}
		if err != nil {
			return fmt.Errorf("key %d: %w", k, err)
		}
	}
	for _, k := range required {
		if !m.Has(k) {
			return fmt.Errorf("missing key %d", k)
		}
	}
	return nil
}

func (m *Message) decode(d *wire.CBORDecoder) error {
	return fields(d, []uint64{1, 2}, func(k uint64) (bool, error) {
		var err error
		switch k {
		case 1:
			m.ID, err = d.Text(MaxNameBytes)
		case 2:
			m.Author, err = d.Text(MaxNameBytes)
		case 3:
			m.Text, err = d.Text(MaxTextBytes)
		case 4:
			m.ReplyTo, err = d.Text(MaxNameBytes)
		case 5:
			m.Thread, err = d.Text(MaxNameBytes)
		case 6:
			m.Mentions, err = decodeTextList(d)
		case 7:
			m.MentionsAll, err = d.Bool()
		case 8:
			var n int
			if n, err = d.ArrayHeader(MaxListLen); err != nil {
				return true, err
			}
			m.Attachments = make([]Attachment, 0, n)
			for range n {
				var a Attachment
				if err := a.decode(d); err != nil {
					return true, err
				}
				m.Attachments = append(m.Attachments, a)
			}
		case 9:
			m.Edited, err = d.Bool()
		case 10:
			m.Deleted, err = d.Bool()
		case 11:
			m.Seq, err = d.Uint()
		default:
			return false, nil
		}
		return true, err
	})
}

func (a *Attachment) decode(d *wire.CBORDecoder) error {
	return fields(d, []uint64{1, 3, 4}, func(k uint64) (bool, error) {
		var err error
		switch k {
		case 1:
			a.ID, err = d.Text(MaxNameBytes)
		case 2:
			a.Name, err = d.Text(MaxNameBytes)
		case 3:
			a.Size, err = d.Uint()
		case 4:
			a.SHA256, err = d.Text(MaxNameBytes)
		default:
			return false, nil
		}
		return true, err
	})
}

func (r *Reaction) decode(d *wire.CBORDecoder) error {
	return fields(d, []uint64{1, 2, 3}, func(k uint64) (bool, error) {
		var err error
		switch k {
		case 1:
			r.MessageID, err = d.Text(MaxNameBytes)
		case 2:
			r.Emoji, err = d.Text(MaxNameBytes)
		case 3:
			r.User, err = d.Text(MaxNameBytes)
		case 4:
			r.Count, err = d.Uint()
		default:
			return false, nil
		}
		return true, err
	})
}

func (m *Member) decode(d *wire.CBORDecoder) error {
	return fields(d, []uint64{1}, func(k uint64) (bool, error) {
		var err error
		var s string
		switch k {
		case 1:
			m.User, err = d.Text(MaxNameBytes)
		case 2:
			s, err = d.Text(MaxNameBytes)
			m.Role = Role(s)
		case 3:
			s, err = d.Text(MaxNameBytes)
			m.PrevRole = Role(s)
		default:
			return false, nil
		}
		return true, err
	})
}

func (c *Conversation) decode(d *wire.CBORDecoder) error {
	return fields(d, []uint64{1, 2}, func(k uint64) (bool, error) {
		var err error
		var s string
		switch k {
		case 1:
			c.ID, err = d.Text(MaxNameBytes)
		case 2:
			s, err = d.Text(MaxNameBytes)
			c.Kind = Kind(s)
		case 3:
			c.Name, err = d.Text(MaxNameBytes)
		case 4:
			c.Topic, err = d.Text(MaxNameBytes)
		case 5:
			c.Archived, err = d.Bool()
		case 6:
			c.Creator, err = d.Text(MaxNameBytes)
		default:
			return false, nil
		}
		return true, err
	})
}

func (r *Read) decode(d *wire.CBORDecoder) error {
	return fields(d, []uint64{1, 2}, func(k uint64) (bool, error) {
		var err error
		switch k {
		case 1:
			r.User, err = d.Text(MaxNameBytes)
		case 2:
			r.Seq, err = d.Uint()
		default:
			return false, nil
		}
		return true, err
	})
}

func (p *Presence) decode(d *wire.CBORDecoder) error {
	return fields(d, []uint64{1, 2}, func(k uint64) (bool, error) {
		var err error
		switch k {
		case 1:
			p.User, err = d.Text(MaxNameBytes)
		case 2:
			p.Status, err = d.Text(MaxNameBytes)
		case 3:
			p.Previous, err = d.Text(MaxNameBytes)
		default:
			return false, nil
		}
		return true, err
	})
}
