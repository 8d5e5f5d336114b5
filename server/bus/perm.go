package bus

import "fmt"

// SubjectPermission is an allow list and a deny list of subject patterns;
// a subject is permitted when it matches an allow entry and no deny entry.
type SubjectPermission struct {
	Allow []string
	Deny  []string
}

// Permissions is what one role may do on the bus, independent of the bus
// implementation; package natsbus renders it as NATS user permissions
// (adding the JetStream API subjects that Streams and Buckets need), and
// the security layer binds it to a process's mTLS identity.
type Permissions struct {
	// Publish lists the subjects the role may publish to.
	Publish SubjectPermission
	// Subscribe lists the subjects the role may subscribe to.
	Subscribe SubjectPermission
	// AllowResponses lets the role publish one reply to the reply subject
	// of each request it received, whatever Publish says.
	AllowResponses bool
	// Inbox is the prefix of the role's request reply subjects; a client
	// with these permissions must use it as its inbox prefix.
	Inbox string
	// Streams are the JetStream streams (work queues, event log) the role
	// may create, write, read and consume.
	Streams []string
	// Buckets are the KV buckets the role may create, read, write and
	// watch.
	Buckets []string
}

// KnownWorkQueues are the work queues a core serves by default.
var KnownWorkQueues = []string{WorkWebhook, WorkPush}

// RolePermissions returns the permissions of process id in role
// (docs/bus.md, "Permissions"):
//
//	gateway  publish   jsp.<c>.core.cmd.*
//	         subscribe jsp.<c>.ch.>, jsp.<c>.user.>, jsp.<c>.gw.<id>.>
//	         KV        jsp_sessions, jsp_presence
//	core     publish   jsp.<c>.ch.>, jsp.<c>.user.>, jsp.<c>.gw.>,
//	                   jsp.<c>.work.>, jsp.<c>.events.>
//	         subscribe jsp.<c>.core.cmd.*, jsp.<c>.core.node.<id>.>
//	         streams   JSP_EVENTS, JSP_WORK_<q> for each q in workQueues
//	                   (KnownWorkQueues when empty)
//	         KV        jsp_sessions, jsp_presence
//
// Both roles may answer requests sent to them (AllowResponses).
func RolePermissions(s Subjects, role Role, id string, workQueues ...string) (Permissions, error) {
	node, err := s.Node(role, id)
	if err != nil {
		return Permissions{}, fmt.Errorf("permissions of %s %q: %w", role, id, err)
	}
	inbox, err := s.Inbox(role, id)
	if err != nil {
		return Permissions{}, fmt.Errorf("permissions of %s %q: %w", role, id, err)
	}
	p := Permissions{
		AllowResponses: true,
		Inbox:          inbox,
		Buckets:        []string{BucketSessions, BucketPresence},
	}
	switch role {
	case RoleGateway:
		p.Publish.Allow = []string{s.CoreCmds()}
		p.Subscribe.Allow = []string{s.Channels(), s.Users(), node + ".>"}
	case RoleCore:
		p.Publish.Allow = []string{s.Channels(), s.Users(), s.Gateways(), s.Work(), s.Events()}
		p.Subscribe.Allow = []string{s.CoreCmds(), node + ".>"}
		if len(workQueues) == 0 {
			workQueues = KnownWorkQueues
		}
		p.Streams = []string{StreamEvents}
		for _, q := range workQueues {
			cfg, err := s.WorkQueue(q)
			if err != nil {
				return Permissions{}, fmt.Errorf("permissions of core %q: %w", id, err)
			}
			p.Streams = append(p.Streams, cfg.Stream)
		}
	}
	return p, nil
}

// Allows reports whether a subject permission admits the literal subject.
func (sp SubjectPermission) Allows(subject string) bool {
	ok := false
	for _, a := range sp.Allow {
		if MatchSubject(a, subject) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, d := range sp.Deny {
		if MatchSubject(d, subject) {
			return false
		}
	}
	return true
}
