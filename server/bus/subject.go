package bus

import (
	"fmt"
	"strconv"
	"strings"
)

// Token encoding
//
// A NATS subject token may not contain '.', '*', '>' or whitespace, and a KV
// key only letters, digits and "-_=/.". Channel names, user ids and node ids
// are arbitrary UTF-8, so each becomes one token by this escape:
//
//	[A-Za-z0-9-]  stays as it is
//	any other byte b (including '_')  becomes '_' followed by two
//	                                  upper-case hex digits of b
//
// "room-1" stays "room-1"; "room.1" becomes "room_2E1"; "a_b" becomes
// "a_5Fb". The result uses only [A-Za-z0-9_-], so it is a valid subject
// token and KV key token, and it is readable for the usual names. The
// encoding is canonical: DecodeToken accepts only what EncodeToken
// produces, so each name has exactly one subject and a permission written
// for a subject cannot be sidestepped by another spelling.

// MaxNameLen caps a name (channel, user, node id) in bytes before encoding;
// an escaped byte takes three, so an encoded token stays within
// MaxTokenLen.
const MaxNameLen = MaxTokenLen / 3

const upperHex = "0123456789ABCDEF"

func plainByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-'
}

// EncodedLen returns the length of EncodeToken(name).
func EncodedLen(name string) int {
	n := len(name)
	for i := 0; i < len(name); i++ {
		if !plainByte(name[i]) {
			n += 2
		}
	}
	return n
}

// AppendToken appends the token encoding of name to dst. It fails with
// ErrInvalidName for an empty name or one longer than MaxNameLen.
func AppendToken(dst []byte, name string) ([]byte, error) {
	if name == "" || len(name) > MaxNameLen {
		return dst, fmt.Errorf("name of %d bytes (want 1..%d): %w", len(name), MaxNameLen, ErrInvalidName)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if plainByte(b) {
			dst = append(dst, b)
			continue
		}
		dst = append(dst, '_', upperHex[b>>4], upperHex[b&0x0f])
	}
	return dst, nil
}

// EncodeToken returns name as one subject token (see the encoding above).
func EncodeToken(name string) (string, error) {
	b, err := AppendToken(make([]byte, 0, EncodedLen(name)), name)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// DecodeToken reverses EncodeToken. It accepts only canonical encodings:
// upper-case hex, and no escape of a byte that is written plainly.
func DecodeToken(tok string) (string, error) {
	if tok == "" || len(tok) > MaxTokenLen {
		return "", fmt.Errorf("token of %d bytes (want 1..%d): %w", len(tok), MaxTokenLen, ErrInvalidName)
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if plainByte(c) {
			out = append(out, c)
			continue
		}
		if c != '_' || i+2 >= len(tok) {
			return "", fmt.Errorf("token %q: byte %d: %w", tok, i, ErrInvalidName)
		}
		hi, ok1 := unhex(tok[i+1])
		lo, ok2 := unhex(tok[i+2])
		b := hi<<4 | lo
		if !ok1 || !ok2 || plainByte(b) {
			return "", fmt.Errorf("token %q: bad escape at byte %d: %w", tok, i, ErrInvalidName)
		}
		out = append(out, b)
		i += 2
	}
	return string(out), nil
}

// ValidateSubject checks a subject or pattern: non-empty tokens without
// whitespace, "*" only as a whole token, ">" only as the whole last token,
// at most MaxSubjectLen bytes.
func ValidateSubject(s string) error {
	if s == "" || len(s) > MaxSubjectLen {
		return fmt.Errorf("subject of %d bytes (want 1..%d): %w", len(s), MaxSubjectLen, ErrInvalidSubject)
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			switch s[i] {
			case ' ', '\t', '\n', '\r', '\f', '\v', 0:
				return fmt.Errorf("subject %q: whitespace at byte %d: %w", s, i, ErrInvalidSubject)
			}
			continue
		}
		tok := s[start:i]
		switch {
		case tok == "":
			return fmt.Errorf("subject %q: empty token at byte %d: %w", s, start, ErrInvalidSubject)
		case tok == ">" && i != len(s):
			return fmt.Errorf("subject %q: '>' before the last token: %w", s, ErrInvalidSubject)
		case len(tok) > 1 && strings.ContainsAny(tok, "*>"):
			return fmt.Errorf("subject %q: wildcard inside token %q: %w", s, tok, ErrInvalidSubject)
		}
		start = i + 1
	}
	return nil
}

// isLiteral reports whether a valid subject has no wildcard token.
func isLiteral(s string) bool {
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "*" || tok == ">" {
			return false
		}
	}
	return true
}

// IsLiteral reports whether subject is valid and has no wildcard, as a
// Publish subject must.
func IsLiteral(subject string) bool { return ValidateSubject(subject) == nil && isLiteral(subject) }

// MatchSubject reports whether the literal subject matches pattern, with
// NATS wildcard rules.
func MatchSubject(pattern, subject string) bool {
	for {
		pi := strings.IndexByte(pattern, '.')
		si := strings.IndexByte(subject, '.')
		ptok, stok := pattern, subject
		if pi >= 0 {
			ptok = pattern[:pi]
		}
		if si >= 0 {
			stok = subject[:si]
		}
		if ptok == ">" {
			return stok != ""
		}
		if ptok != "*" && ptok != stok {
			return false
		}
		switch {
		case pi < 0 && si < 0:
			return true
		case pi < 0 || si < 0:
			return false
		}
		pattern, subject = pattern[pi+1:], subject[si+1:]
	}
}

func validName(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

// validStreamName: letters, digits, '-', '_', 1..64 bytes; stricter than
// NATS (which also forbids '.', wildcards, whitespace and path separators)
// so a name is also safe in file names and permissions.
func validStreamName(s string) bool { return validName(s, 64) }

// validBucketName: letters, digits, '-', '_' (the NATS KV rule), 1..64.
func validBucketName(s string) bool { return validName(s, 64) }

// ValidateKey checks a KV key: dot-separated non-empty tokens of letters,
// digits and "-_=/", at most MaxSubjectLen bytes.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxSubjectLen {
		return fmt.Errorf("key of %d bytes (want 1..%d): %w", len(key), MaxSubjectLen, ErrInvalidName)
	}
	prevDot := true
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '.':
			if prevDot {
				return fmt.Errorf("key %q: empty token at byte %d: %w", key, i, ErrInvalidName)
			}
			prevDot = true
			continue
		case plainByte(c) || c == '_' || c == '=' || c == '/':
		default:
			return fmt.Errorf("key %q: byte %d not allowed: %w", key, i, ErrInvalidName)
		}
		prevDot = false
	}
	if prevDot {
		return fmt.Errorf("key %q ends with '.': %w", key, ErrInvalidName)
	}
	return nil
}

// ValidateKeyPattern checks a KV watch pattern: a key whose tokens may
// also be "*", with an optional final ">".
func ValidateKeyPattern(p string) error {
	if err := ValidateSubject(p); err != nil {
		return fmt.Errorf("key pattern: %w", err)
	}
	for tok := range strings.SplitSeq(p, ".") {
		if tok == "*" || tok == ">" {
			continue
		}
		if err := ValidateKey(tok); err != nil {
			return fmt.Errorf("key pattern %q: %w", p, err)
		}
	}
	return nil
}

// KeyOf joins the token encodings of names into a KV key.
func KeyOf(names ...string) (string, error) {
	if len(names) == 0 {
		return "", fmt.Errorf("empty key: %w", ErrInvalidName)
	}
	var b []byte
	for i, n := range names {
		if i > 0 {
			b = append(b, '.')
		}
		var err error
		if b, err = AppendToken(b, n); err != nil {
			return "", fmt.Errorf("key part %d: %w", i, err)
		}
	}
	return string(b), nil
}

// Names of the durable streams and KV buckets (docs/bus.md).
const (
	// StreamEvents is the event log stream.
	StreamEvents = "JSP_EVENTS"
	// WorkStreamPrefix starts every work queue stream name.
	WorkStreamPrefix = "JSP_WORK_"
	// BucketSessions is the session registry: session id -> owning
	// gateway and resume state.
	BucketSessions = "jsp_sessions"
	// BucketPresence holds presence: user.session -> the session's
	// record, written on change and live while its gateway's entry (with
	// a per-key TTL) is there; and the gateways' entries (D39).
	BucketPresence = "jsp_presence"
)

// Work queue names.
const (
	// WorkWebhook carries outgoing webhook deliveries.
	WorkWebhook = "webhook"
	// WorkPush carries mobile push deliveries.
	WorkPush = "push"
)

// Role is what a process does on the bus; its permissions follow from it
// (see Permissions).
type Role string

// Roles.
const (
	// RoleGateway: the edge that holds client sessions.
	RoleGateway Role = "gateway"
	// RoleCore: command handling and services.
	RoleCore Role = "core"
)

// Subjects builds the subject names of one JSP cluster; every subject
// starts with "jsp.<cluster>.", so several clusters can share a NATS
// account for core messaging (not for streams, whose names are fixed).
// The zero value is not usable: use NewSubjects.
type Subjects struct {
	prefix string // "jsp.<cluster>"
}

// MaxClusterLen caps a cluster name.
const MaxClusterLen = 64

// NewSubjects returns the subject builder of cluster, whose name is 1..64
// letters, digits and '-'.
func NewSubjects(cluster string) (Subjects, error) {
	if cluster == "" || len(cluster) > MaxClusterLen {
		return Subjects{}, fmt.Errorf("cluster name %q (want 1..%d bytes): %w", cluster, MaxClusterLen, ErrInvalidName)
	}
	for i := 0; i < len(cluster); i++ {
		if !plainByte(cluster[i]) {
			return Subjects{}, fmt.Errorf("cluster name %q: only letters, digits and '-': %w", cluster, ErrInvalidName)
		}
	}
	return Subjects{prefix: "jsp." + cluster}, nil
}

// Cluster returns the cluster name.
func (s Subjects) Cluster() string { return strings.TrimPrefix(s.prefix, "jsp.") }

// All is the pattern of every subject of the cluster, jsp.<cluster>.>.
func (s Subjects) All() string { return s.prefix + ".>" }

func (s Subjects) join(kind, name string) (string, error) {
	b := make([]byte, 0, len(s.prefix)+len(kind)+2+EncodedLen(name))
	b = append(b, s.prefix...)
	b = append(b, '.')
	b = append(b, kind...)
	b = append(b, '.')
	b, err := AppendToken(b, name)
	if err != nil {
		return "", fmt.Errorf("%s subject: %w", kind, err)
	}
	return string(b), nil
}

// Channel is jsp.<cluster>.ch.<Token(channel)>: a channel's events,
// published by a core after commit and consumed by gateways.
func (s Subjects) Channel(channel string) (string, error) { return s.join("ch", channel) }

// Channels is jsp.<cluster>.ch.>, every channel subject.
func (s Subjects) Channels() string { return s.prefix + ".ch.>" }

// ChannelOf returns the channel name of a channel subject.
func (s Subjects) ChannelOf(subject string) (string, error) {
	tok, ok := strings.CutPrefix(subject, s.prefix+".ch.")
	if !ok || strings.IndexByte(tok, '.') >= 0 {
		return "", fmt.Errorf("%q is not a channel subject of %s: %w", subject, s.Cluster(), ErrInvalidSubject)
	}
	return DecodeToken(tok)
}

// User is jsp.<cluster>.user.<Token(user)>: messages routed to every
// session of a user, published by cores, consumed by gateways.
func (s Subjects) User(user string) (string, error) { return s.join("user", user) }

// Users is jsp.<cluster>.user.>.
func (s Subjects) Users() string { return s.prefix + ".user.>" }

// CoreCmd is jsp.<cluster>.core.cmd.<shard>: commands for the channels of
// one shard (see JumpHash), served by cores in queue group CoreQueue.
func (s Subjects) CoreCmd(shard int) string {
	return s.prefix + ".core.cmd." + strconv.Itoa(shard)
}

// CoreCmds is jsp.<cluster>.core.cmd.*, every shard.
func (s Subjects) CoreCmds() string { return s.prefix + ".core.cmd.*" }

// CoreQueue is the queue group cores use on CoreCmd subjects.
const CoreQueue = "core"

// Node is the base subject of one process's private subjects:
// jsp.<cluster>.gw.<Token(id)> for a gateway (its inbox: direct messages
// such as "close this session" are published below it), and
// jsp.<cluster>.core.node.<Token(id)> for a core.
func (s Subjects) Node(role Role, id string) (string, error) {
	switch role {
	case RoleGateway:
		return s.join("gw", id)
	case RoleCore:
		return s.join("core.node", id)
	}
	return "", fmt.Errorf("node subject: unknown role %q: %w", role, ErrInvalidName)
}

// Gateway is jsp.<cluster>.gw.<Token(id)>.<kind>: a message to one gateway.
func (s Subjects) Gateway(id, kind string) (string, error) {
	base, err := s.Node(RoleGateway, id)
	if err != nil {
		return "", err
	}
	return appendKind(base, kind)
}

func appendKind(base, kind string) (string, error) {
	b, err := AppendToken([]byte(base+"."), kind)
	if err != nil {
		return "", fmt.Errorf("subject kind: %w", err)
	}
	return string(b), nil
}

// Gateways is jsp.<cluster>.gw.>, every gateway subject.
func (s Subjects) Gateways() string { return s.prefix + ".gw.>" }

// Inbox is the reply-subject prefix of one process's requests,
// Node(role, id).reply: it lies inside the node's own subjects, so the
// permission to subscribe to them covers request replies too.
func (s Subjects) Inbox(role Role, id string) (string, error) {
	base, err := s.Node(role, id)
	if err != nil {
		return "", err
	}
	return base + ".reply", nil
}

// WorkQueue returns the configuration of work queue name (letters, digits,
// '-', '_'): stream JSP_WORK_<NAME in upper case>, subject
// jsp.<cluster>.work.<name>, every limit at its default.
func (s Subjects) WorkQueue(name string) (WorkQueueConfig, error) {
	if !validName(name, 32) {
		return WorkQueueConfig{}, fmt.Errorf("work queue name %q: %w", name, ErrInvalidName)
	}
	return WorkQueueConfig{
		Stream:  WorkStreamPrefix + strings.ToUpper(name),
		Subject: s.prefix + ".work." + name,
	}, nil
}

// Work is jsp.<cluster>.work.>, every work queue subject.
func (s Subjects) Work() string { return s.prefix + ".work.>" }

// EventLog returns the configuration of the event log: stream JSP_EVENTS,
// subjects jsp.<cluster>.events.<Token(kind)>, every limit at its default.
func (s Subjects) EventLog() EventLogConfig {
	return EventLogConfig{Stream: StreamEvents, SubjectPrefix: s.prefix + ".events"}
}

// Events is jsp.<cluster>.events.>.
func (s Subjects) Events() string { return s.prefix + ".events.>" }

// SessionKey is the jsp_sessions key of a session.
func SessionKey(sessionID string) (string, error) { return KeyOf(sessionID) }

// PresenceKey is the jsp_presence key of one session of a user.
func PresenceKey(user, sessionID string) (string, error) { return KeyOf(user, sessionID) }

// PresencePattern matches the presence keys of every session of user.
func PresencePattern(user string) (string, error) {
	k, err := KeyOf(user)
	if err != nil {
		return "", err
	}
	return k + ".*", nil
}
