package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/storage"
)

// Services in core. A gateway forwards a COMMAND (JSP §5.9) whose service
// it does not serve itself as an OpCommand request: the command envelope's
// service name and body plus the caller's Identity. The core runs the
// authorization hook, then the Service registered under the name, and
// answers with the reply body or an error code:
//
//	client ─COMMAND{route service "chat", headers key=<conv>}─► gateway
//	gateway ─Request{op command, channel <key>, identity, command}─►
//	        core.cmd.<ShardOf(key)> ─► Authorizer ─► Service.HandleCommand
//	gateway ◄─Reply{body | code}── core ; client ◄─REPLY── gateway
//
// The routing key (the envelope's "key" header, else the service name)
// picks the shard, so the commands about one conversation are handled in
// order while other conversations proceed on other shards.
//
// A service commits through its Host (the core): Commit appends to a
// channel's message log, which assigns the sequence number, and publishes
// the committed event for the gateways to fan out; Ephemeral publishes an
// event that is never stored (sequence number 0); Drop tells every gateway
// to end the local subscriptions of some users on a channel (a control
// event on the channel subject, which only gateways with subscribers of
// the channel receive).

// Command is a forwarded COMMAND.
type Command struct {
	// Service is the command's service name (the route's name).
	Service string `json:"service"`
	// Body is the command envelope's body.
	Body []byte `json:"body,omitempty"`
}

// Service answers forwarded commands. HandleCommand returns the reply
// body; a *jsperr.Error becomes the reply's code and reason, any other
// error INTERNAL with a generic reason. It is called concurrently.
type Service interface {
	HandleCommand(ctx context.Context, id Identity, body []byte) ([]byte, error)
}

// Registry maps service names to services. It is safe for concurrent use.
type Registry struct {
	mu   sync.RWMutex
	svcs map[string]Service // guarded by mu
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{svcs: map[string]Service{}} }

// Register adds svc under name; a name registered twice is an error.
func (r *Registry) Register(name string, svc Service) error {
	if name == "" || svc == nil {
		return fmt.Errorf("core: register %q: empty name or nil service", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.svcs[name]; dup {
		return fmt.Errorf("core: service %q registered twice", name)
	}
	r.svcs[name] = svc
	return nil
}

// Lookup returns the service registered under name.
func (r *Registry) Lookup(name string) (Service, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.svcs[name]
	return s, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.svcs))
	for n := range r.svcs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// command serves an OpCommand.
func (c *Core) command(ctx context.Context, req *Request) Reply {
	if req.Command == nil || req.Command.Service == "" {
		return Reply{Code: jsperr.BadRequest, Reason: "command request without service"}
	}
	var svc Service
	if c.cfg.Services != nil {
		svc, _ = c.cfg.Services.Lookup(req.Command.Service)
	}
	if svc == nil {
		return Reply{Code: jsperr.NotFound, Reason: "no service " + req.Command.Service}
	}
	id := Identity{}
	if req.Identity != nil {
		id = *req.Identity
	}
	body, err := svc.HandleCommand(ctx, id, req.Command.Body)
	if err != nil {
		var je *jsperr.Error
		if !errors.As(err, &je) {
			c.log.Warn("core: command failed", "service", req.Command.Service, "user", id.User, "err", err)
		}
		return failure(err)
	}
	return Reply{Body: body}
}

// Commit appends msg to channel's message log and publishes the committed
// event, as a PUBLISH does: the log assigns the sequence number at commit
// and live delivery follows the commit (ARCHITECTURE §1). A resend with
// the same sender and client id returns the original result and publishes
// nothing.
func (c *Core) Commit(ctx context.Context, channel string, msg storage.Message) (storage.AppendResult, error) {
	res, err := c.cfg.Store.AppendMessage(ctx, channel, msg)
	if err != nil {
		return res, fmt.Errorf("core: commit to %q: %w", channel, err)
	}
	if res.Duplicate {
		return res, nil
	}
	msg.Channel, msg.Seq, msg.Time = channel, res.Seq, res.Time
	if err := c.publishEvent(channel, msg); err != nil {
		// Committed: subscribers that missed it recover it from history.
		c.log.Warn("core: event not published", "channel", channel, "seq", res.Seq, "err", err)
	}
	c.mu.Lock()
	c.stats.Published++
	c.mu.Unlock()
	return res, nil
}

// Ephemeral publishes msg on channel without storing it: subscribers get
// it live with sequence number 0, and nobody gets it later (typing
// indicators).
func (c *Core) Ephemeral(channel string, msg storage.Message) error {
	msg.Channel, msg.Seq = channel, 0
	return c.publishCtl(channel, &Event{Channel: channel, Message: msg, Ephemeral: true})
}

// Drop tells the gateways to end the local subscriptions of users on
// channel, so that removed members stop receiving its events at once.
func (c *Core) Drop(channel string, users ...string) error {
	if len(users) == 0 {
		return nil
	}
	return c.publishCtl(channel, &Event{Channel: channel, Drop: users})
}

// Bus returns the core's bus (services publish internal events on it).
func (c *Core) Bus() bus.Bus { return c.cfg.Bus }

// Subjects returns the cluster's subject builder.
func (c *Core) Subjects() bus.Subjects { return *c.cfg.Subjects }

// Store returns the core's store.
func (c *Core) Store() storage.Store { return c.cfg.Store }

func (c *Core) publishCtl(channel string, ev *Event) error {
	subj, err := c.cfg.Subjects.Channel(channel)
	if err != nil {
		return fmt.Errorf("core: %w", err)
	}
	data, err := c.cfg.Codec.EncodeEvent(ev)
	if err != nil {
		return fmt.Errorf("core: encode event: %w", err)
	}
	if err := c.cfg.Bus.Publish(subj, bus.Msg{Data: data}); err != nil {
		return fmt.Errorf("core: publish on %s: %w", subj, err)
	}
	return nil
}
