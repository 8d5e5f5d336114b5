// Package services defines how server-side services plug into the gateway:
// a [Service] answers COMMANDs routed to its name (JSP §5.9) and, when it
// also implements [StreamService], serves application streams by label
// (JSP §5.12). A [Registry] maps command names and stream labels to
// services.
//
// The gateway calls HandleCommand with the command envelope and sends the
// returned body as the REPLY; a returned *jsperr.Error becomes the reply's
// error code and reason, any other error becomes INTERNAL with a generic
// reason so that local details do not leak. Notifications a handler pushes
// through [Caller.Notify] while handling a command are sent after the reply
// (JSP §5.10), so a client always sees the answer before its consequences.
//
// Implementations live in subpackages: echo, notify and files.
package services

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// Identity says who is calling. For now it is the session; authenticated
// user identities come with the security layer.
type Identity struct {
	// SessionID is the session id in lower-case hex.
	SessionID string
	// Transport is the transport the session runs on.
	Transport transport.Kind
	// RemoteAddr is the peer's network address.
	RemoteAddr string
}

// Caller is the party on whose behalf a handler runs.
type Caller struct {
	Identity
	notify func(env *wire.Envelope) error
}

// NewCaller returns a caller whose Notify calls notify. A nil notify makes
// Notify fail with NOT_FOUND (nobody to notify).
func NewCaller(id Identity, notify func(env *wire.Envelope) error) *Caller {
	return &Caller{Identity: id, notify: notify}
}

// Notify pushes a NOTIFY envelope to the caller's session (JSP §5.10). The
// gateway sets the envelope's kind, id and timestamp when they are empty.
// Notifications pushed while a command is handled are sent after its reply.
func (c *Caller) Notify(env *wire.Envelope) error {
	if c.notify == nil {
		return jsperr.New(jsperr.NotFound, "caller cannot receive notifications")
	}
	return c.notify(env)
}

// Service answers commands routed to it (JSP §5.9). HandleCommand returns
// the reply body. Its ctx ends when the command's TTL passes or the session
// closes. It is called concurrently for different commands.
type Service interface {
	HandleCommand(ctx context.Context, c *Caller, cmd *wire.Envelope) ([]byte, error)
}

// StreamService is a Service that also serves application streams opened
// with one of its labels (JSP §5.12). HandleStream owns st: it reports
// failures to the peer itself and closes or cancels st before returning.
// The caller only logs and counts a returned error; it never touches st
// afterwards, because cancelling a stream after Close could discard data
// the peer has not read yet. ctx ends when the session closes.
type StreamService interface {
	Service
	HandleStream(ctx context.Context, c *Caller, st Stream) error
}

// Stream is an application stream as a service sees it. *session.Stream
// implements it.
type Stream interface {
	io.Reader
	io.Writer
	io.Closer
	// Label is the label the opener gave in STREAM_OPEN.
	Label() string
	// Metadata is the opener's STREAM_OPEN metadata.
	Metadata() map[string]string
	// CancelRead tells the peer to stop sending.
	CancelRead(code jsperr.Code)
	// CancelWrite abandons the sending side.
	CancelWrite(code jsperr.Code)
	// SetReadDeadline sets the deadline for future Read calls.
	SetReadDeadline(t time.Time) error
	// SetWriteDeadline sets the deadline for future Write calls.
	SetWriteDeadline(t time.Time) error
}

// Registry maps command names and stream labels to services. It is safe for
// concurrent use.
type Registry struct {
	mu       sync.RWMutex
	commands map[string]Service       // guarded by mu
	streams  map[string]StreamService // guarded by mu
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{commands: map[string]Service{}, streams: map[string]StreamService{}}
}

// Register routes commands named command to svc (empty command: none) and
// streams with the given labels to svc, which must then be a StreamService.
// A name or label registered twice is an error; nothing is registered then.
func (r *Registry) Register(svc Service, command string, labels ...string) error {
	if svc == nil {
		return fmt.Errorf("services: register %q: nil service", command)
	}
	ss, isStream := svc.(StreamService)
	if len(labels) > 0 && !isStream {
		return fmt.Errorf("services: register %q: %T has stream labels %v but no HandleStream", command, svc, labels)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if command != "" {
		if _, dup := r.commands[command]; dup {
			return fmt.Errorf("services: command %q registered twice", command)
		}
	}
	for i, l := range labels {
		if _, dup := r.streams[l]; dup || l == "" || slices.Contains(labels[:i], l) {
			return fmt.Errorf("services: stream label %q empty or registered twice", l)
		}
	}
	if command != "" {
		r.commands[command] = svc
	}
	for _, l := range labels {
		r.streams[l] = ss
	}
	return nil
}

// Command returns the service for a command name.
func (r *Registry) Command(name string) (Service, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.commands[name]
	return s, ok
}

// Stream returns the service for a stream label.
func (r *Registry) Stream(label string) (StreamService, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.streams[label]
	return s, ok
}

// Commands returns the registered command names, sorted.
func (r *Registry) Commands() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return sortedKeys(r.commands)
}

// Labels returns the registered stream labels, sorted.
func (r *Registry) Labels() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return sortedKeys(r.streams)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
