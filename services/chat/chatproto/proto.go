package chatproto

import (
	"fmt"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/services/chatevents"
)

// Service is the chat service's name: the route name of its COMMANDs.
const Service = "chat"

// HeaderKey is the COMMAND envelope header whose value routes the command
// to a core shard: the conversation id, or the peer's user id for a direct
// message. Commands of one key are handled in order.
const HeaderKey = "key"

// Op names a chat command (spec/JSP-chat.md §3).
type Op string

// Commands.
const (
	OpUserAdd     Op = "user.add"     // admin: User, DisplayName, Admin
	OpUserList    Op = "user.list"    // admin: Cursor (after user id as text), Limit
	OpUserDisable Op = "user.disable" // admin: User
	OpUserEnable  Op = "user.enable"  // admin: User
	OpWhoami      Op = "user.me"      // the caller's account

	OpCreate    Op = "conv.create"    // Kind, Name, Topic, Members
	OpList      Op = "conv.list"      // Kind ("channel": public channels to join; else mine), Cursor, Limit
	OpGet       Op = "conv.get"       // Conversation
	OpJoin      Op = "conv.join"      // Conversation (public channels)
	OpLeave     Op = "conv.leave"     // Conversation
	OpInvite    Op = "conv.invite"    // Conversation, User, Role
	OpKick      Op = "conv.kick"      // Conversation, User
	OpSetRole   Op = "conv.role"      // Conversation, User, Role
	OpRename    Op = "conv.rename"    // Conversation, Name
	OpTopic     Op = "conv.topic"     // Conversation, Topic
	OpArchive   Op = "conv.archive"   // Conversation, Archived
	OpConfigure Op = "conv.configure" // Conversation, Overrides
	OpMembers   Op = "conv.members"   // Conversation, Cursor, Limit

	OpPost    Op = "msg.post"    // Conversation or User (direct), Text, ReplyTo, Attachments, ClientID
	OpEdit    Op = "msg.edit"    // Conversation, Message, Text
	OpDelete  Op = "msg.delete"  // Conversation, Message
	OpHistory Op = "msg.history" // Conversation, Cursor, Limit, Backward
	OpEdits   Op = "msg.edits"   // Conversation, Message

	OpReact   Op = "react.add"    // Conversation, Message, Emoji
	OpUnreact Op = "react.remove" // Conversation, Message, Emoji

	OpRead     Op = "read.mark"    // Conversation, Seq
	OpTyping   Op = "typing"       // Conversation, Typing
	OpPresence Op = "presence.get" // Members (user ids)
)

// Request is a COMMAND body. Which fields an op reads is listed with it.
type Request struct {
	Op           Op                      // key 1
	Conversation string                  // key 2
	Text         string                  // key 3
	Message      string                  // key 4: message id
	ReplyTo      string                  // key 5
	Emoji        string                  // key 6
	User         string                  // key 7
	Role         chatevents.Role         // key 8
	Name         string                  // key 9
	Topic        string                  // key 10
	Kind         chatevents.Kind         // key 11
	Cursor       []byte                  // key 12
	Limit        uint64                  // key 13
	Backward     bool                    // key 14: history toward older messages
	Members      []string                // key 15
	Seq          uint64                  // key 16
	Attachments  []chatevents.Attachment // key 17
	ClientID     string                  // key 18: idempotency key of a post
	Archived     bool                    // key 19
	Overrides    map[string]string       // key 20: action -> role, as [a, r, a, r, ...]
	DisplayName  string                  // key 21
	Typing       bool                    // key 22
	Admin        bool                    // key 23
}

// Marshal encodes r.
func (r *Request) Marshal() []byte {
	m := Map{}
	m.putStr(1, string(r.Op))
	m.putStr(2, r.Conversation)
	m.putStr(3, r.Text)
	m.putStr(4, r.Message)
	m.putStr(5, r.ReplyTo)
	m.putStr(6, r.Emoji)
	m.putStr(7, r.User)
	m.putStr(8, string(r.Role))
	m.putStr(9, r.Name)
	m.putStr(10, r.Topic)
	m.putStr(11, string(r.Kind))
	m.putBytes(12, r.Cursor)
	m.putUint(13, r.Limit)
	m.putBool(14, r.Backward)
	m.putStrs(15, r.Members)
	m.putUint(16, r.Seq)
	if len(r.Attachments) > 0 {
		var as []Map
		for _, a := range r.Attachments {
			as = append(as, attachmentMap(a))
		}
		m.putMaps(17, as)
	}
	m.putStr(18, r.ClientID)
	m.putBool(19, r.Archived)
	if len(r.Overrides) > 0 {
		keys := make([]string, 0, len(r.Overrides))
		for k := range r.Overrides {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var pairs []string
		for _, k := range keys {
			pairs = append(pairs, k, r.Overrides[k])
		}
		m.putStrs(20, pairs)
	}
	m.putStr(21, r.DisplayName)
	m.putBool(22, r.Typing)
	m.putBool(23, r.Admin)
	return m.Append(nil)
}

func attachmentMap(a chatevents.Attachment) Map {
	m := Map{}
	m.putStr(1, a.ID)
	m.putStr(2, a.Name)
	m.putUint(3, a.Size)
	m.putStr(4, a.SHA256)
	return m
}

// getter reads typed fields and keeps the first error.
type getter struct {
	m   Map
	err error
}

func (g *getter) str(k uint64) string {
	s, err := g.m.Str(k)
	g.keep(err)
	return s
}

func (g *getter) uint(k uint64) uint64 {
	u, err := g.m.Uint(k)
	g.keep(err)
	return u
}

func (g *getter) bool(k uint64) bool {
	b, err := g.m.Bool(k)
	g.keep(err)
	return b
}

func (g *getter) bytes(k uint64) []byte {
	b, err := g.m.Bytes(k)
	g.keep(err)
	return b
}

func (g *getter) strs(k uint64) []string {
	l, err := g.m.Strs(k)
	g.keep(err)
	return l
}

func (g *getter) maps(k uint64) []Map {
	l, err := g.m.Maps(k)
	g.keep(err)
	return l
}

func (g *getter) keep(err error) {
	if g.err == nil {
		g.err = err
	}
}

func attachmentOf(m Map) (chatevents.Attachment, error) {
	g := getter{m: m}
	a := chatevents.Attachment{ID: g.str(1), Name: g.str(2), Size: g.uint(3), SHA256: g.str(4)}
	return a, g.err
}

// DecodeRequest decodes a COMMAND body.
func DecodeRequest(data []byte) (Request, error) {
	m, err := DecodeMap(data)
	if err != nil {
		return Request{}, err
	}
	g := getter{m: m}
	r := Request{
		Op: Op(g.str(1)), Conversation: g.str(2), Text: g.str(3), Message: g.str(4), ReplyTo: g.str(5),
		Emoji: g.str(6), User: g.str(7), Role: chatevents.Role(g.str(8)), Name: g.str(9), Topic: g.str(10),
		Kind: chatevents.Kind(g.str(11)), Cursor: g.bytes(12), Limit: g.uint(13), Backward: g.bool(14),
		Members: g.strs(15), Seq: g.uint(16), ClientID: g.str(18), Archived: g.bool(19),
		DisplayName: g.str(21), Typing: g.bool(22), Admin: g.bool(23),
	}
	for _, am := range g.maps(17) {
		a, err := attachmentOf(am)
		g.keep(err)
		r.Attachments = append(r.Attachments, a)
	}
	if pairs := g.strs(20); len(pairs) > 0 {
		if len(pairs)%2 != 0 {
			g.keep(fmt.Errorf("%w: overrides have an odd number of items", ErrInvalid))
		}
		r.Overrides = map[string]string{}
		for i := 0; i+1 < len(pairs); i += 2 {
			r.Overrides[pairs[i]] = pairs[i+1]
		}
	}
	if g.err != nil {
		return Request{}, g.err
	}
	if r.Op == "" {
		return Request{}, fmt.Errorf("%w: request without op", ErrInvalid)
	}
	return r, nil
}

// Conversation is a conversation as listed for a user.
type Conversation struct {
	chatevents.Conversation
	Role      chatevents.Role   // key 7: the caller's role ("" when not a member)
	ReadSeq   uint64            // key 8
	Unread    uint64            // key 9
	Mentions  uint64            // key 10
	Overrides map[string]string // key 11
	LastSeq   uint64            // key 12
}

// HistoryItem is one message of a history page: its current state as a
// message.created event (tombstones have Deleted set and no text) and its
// aggregated reactions.
type HistoryItem struct {
	Message   chatevents.Message
	Time      time.Time
	Reactions []Reaction
}

// Reaction is one emoji's aggregate on a message.
type Reaction struct {
	Emoji string
	Count uint64
	Users []string
}

// Member is a member as listed.
type Member struct {
	User    string
	Role    chatevents.Role
	ReadSeq uint64
}

// User is an account as listed.
type User struct {
	ID          string
	DisplayName string
	Admin       bool
	Disabled    bool
}

// Edit is an earlier version of a message.
type Edit struct {
	Text   string
	Editor string
	At     time.Time
}

// Presence is a user's presence.
type Presence struct {
	User   string
	Status string // "online", "away", "offline" or "unknown"
}

// Response is a REPLY body. Which fields are set depends on the op.
type Response struct {
	Event         *chatevents.Event // key 1: the event a change committed (CBOR bytes)
	Conversation  *Conversation     // key 2
	Conversations []Conversation    // key 3
	Messages      []HistoryItem     // key 4, ascending by seq
	Prev          []byte            // key 5: cursor toward older messages
	Next          []byte            // key 6: cursor toward newer messages
	More          bool              // key 7: the page was full in its direction
	Members       []Member          // key 8
	Users         []User            // key 9
	Edits         []Edit            // key 10
	Presence      []Presence        // key 11
	Seq           uint64            // key 12: a post's seq, the read marker
	Message       string            // key 13: a post's message id
}

func convMap(c *Conversation) Map {
	m := Map{}
	m.putStr(1, c.ID)
	m.putStr(2, string(c.Kind))
	m.putStr(3, c.Name)
	m.putStr(4, c.Topic)
	m.putBool(5, c.Archived)
	m.putStr(6, c.Creator)
	m.putStr(7, string(c.Role))
	m.putUint(8, c.ReadSeq)
	m.putUint(9, c.Unread)
	m.putUint(10, c.Mentions)
	if len(c.Overrides) > 0 {
		keys := make([]string, 0, len(c.Overrides))
		for k := range c.Overrides {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var pairs []string
		for _, k := range keys {
			pairs = append(pairs, k, c.Overrides[k])
		}
		m.putStrs(11, pairs)
	}
	m.putUint(12, c.LastSeq)
	return m
}

func convOf(m Map) (Conversation, error) {
	g := getter{m: m}
	c := Conversation{
		Conversation: chatevents.Conversation{ID: g.str(1), Kind: chatevents.Kind(g.str(2)), Name: g.str(3), Topic: g.str(4),
			Archived: g.bool(5), Creator: g.str(6)},
		Role: chatevents.Role(g.str(7)), ReadSeq: g.uint(8), Unread: g.uint(9), Mentions: g.uint(10), LastSeq: g.uint(12),
	}
	if pairs := g.strs(11); len(pairs) > 0 {
		c.Overrides = map[string]string{}
		for i := 0; i+1 < len(pairs); i += 2 {
			c.Overrides[pairs[i]] = pairs[i+1]
		}
	}
	return c, g.err
}

// Marshal encodes r.
func (r *Response) Marshal() []byte {
	m := Map{}
	if r.Event != nil {
		m[1] = r.Event.Marshal()
	}
	if r.Conversation != nil {
		m[2] = convMap(r.Conversation)
	}
	var l []Map
	for i := range r.Conversations {
		l = append(l, convMap(&r.Conversations[i]))
	}
	m.putMaps(3, l)
	l = nil
	for _, h := range r.Messages {
		ev := chatevents.Event{Type: chatevents.MessageCreated, ID: h.Message.ID, Time: h.Time, Conversation: "-", Actor: h.Message.Author, Message: &h.Message}
		hm := Map{1: ev.Marshal()}
		var rs []Map
		for _, x := range h.Reactions {
			rm := Map{}
			rm.putStr(1, x.Emoji)
			rm.putUint(2, x.Count)
			rm.putStrs(3, x.Users)
			rs = append(rs, rm)
		}
		hm.putMaps(2, rs)
		l = append(l, hm)
	}
	m.putMaps(4, l)
	m.putBytes(5, r.Prev)
	m.putBytes(6, r.Next)
	m.putBool(7, r.More)
	l = nil
	for _, x := range r.Members {
		mm := Map{}
		mm.putStr(1, x.User)
		mm.putStr(2, string(x.Role))
		mm.putUint(3, x.ReadSeq)
		l = append(l, mm)
	}
	m.putMaps(8, l)
	l = nil
	for _, x := range r.Users {
		mm := Map{}
		mm.putStr(1, x.ID)
		mm.putStr(2, x.DisplayName)
		mm.putBool(3, x.Admin)
		mm.putBool(4, x.Disabled)
		l = append(l, mm)
	}
	m.putMaps(9, l)
	l = nil
	for _, x := range r.Edits {
		mm := Map{}
		mm.putStr(1, x.Text)
		mm.putStr(2, x.Editor)
		mm.putUint(3, uint64(max(x.At.UnixMilli(), 0)))
		l = append(l, mm)
	}
	m.putMaps(10, l)
	l = nil
	for _, x := range r.Presence {
		mm := Map{}
		mm.putStr(1, x.User)
		mm.putStr(2, x.Status)
		l = append(l, mm)
	}
	m.putMaps(11, l)
	m.putUint(12, r.Seq)
	m.putStr(13, r.Message)
	return m.Append(nil)
}

// DecodeResponse decodes a REPLY body.
func DecodeResponse(data []byte) (Response, error) {
	if len(data) == 0 {
		return Response{}, nil
	}
	m, err := DecodeMap(data)
	if err != nil {
		return Response{}, err
	}
	g := getter{m: m}
	var r Response
	if b := g.bytes(1); b != nil {
		ev, err := chatevents.Decode(b)
		g.keep(err)
		r.Event = &ev
	}
	if v, ok := m[2]; ok {
		cm, ok := v.(Map)
		if !ok {
			g.keep(typeErr(2, "map", v))
		} else {
			c, err := convOf(cm)
			g.keep(err)
			r.Conversation = &c
		}
	}
	for _, cm := range g.maps(3) {
		c, err := convOf(cm)
		g.keep(err)
		r.Conversations = append(r.Conversations, c)
	}
	for _, hm := range g.maps(4) {
		hg := getter{m: hm}
		ev, err := chatevents.Decode(hg.bytes(1))
		g.keep(err)
		var h HistoryItem
		if ev.Message != nil {
			h.Message, h.Time = *ev.Message, ev.Time
		}
		for _, rm := range hg.maps(2) {
			rg := getter{m: rm}
			h.Reactions = append(h.Reactions, Reaction{Emoji: rg.str(1), Count: rg.uint(2), Users: rg.strs(3)})
			g.keep(rg.err)
		}
		g.keep(hg.err)
		r.Messages = append(r.Messages, h)
	}
	r.Prev, r.Next, r.More = g.bytes(5), g.bytes(6), g.bool(7)
	for _, mm := range g.maps(8) {
		mg := getter{m: mm}
		r.Members = append(r.Members, Member{User: mg.str(1), Role: chatevents.Role(mg.str(2)), ReadSeq: mg.uint(3)})
		g.keep(mg.err)
	}
	for _, mm := range g.maps(9) {
		mg := getter{m: mm}
		r.Users = append(r.Users, User{ID: mg.str(1), DisplayName: mg.str(2), Admin: mg.bool(3), Disabled: mg.bool(4)})
		g.keep(mg.err)
	}
	for _, mm := range g.maps(10) {
		mg := getter{m: mm}
		r.Edits = append(r.Edits, Edit{Text: mg.str(1), Editor: mg.str(2), At: time.UnixMilli(int64(min(mg.uint(3), 1<<53))).UTC()})
		g.keep(mg.err)
	}
	for _, mm := range g.maps(11) {
		mg := getter{m: mm}
		r.Presence = append(r.Presence, Presence{User: mg.str(1), Status: mg.str(2)})
		g.keep(mg.err)
	}
	r.Seq, r.Message = g.uint(12), g.str(13)
	if g.err != nil {
		return Response{}, g.err
	}
	return r, nil
}

// ChannelPrefix starts the channel name of every conversation; the
// conversation id follows it. Members subscribe to Channel(id) for its
// events.
const ChannelPrefix = "chat."

// Channel returns the channel of conversation id.
func Channel(id string) string { return ChannelPrefix + id }
