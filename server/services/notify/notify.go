// Package notify is the notify service: the command "notify" replies with
// an empty body and then has the server push a NOTIFY carrying the
// command's body to the caller (JSP §5.9, §5.10). Clients use it to test
// that they receive server pushes.
package notify

import (
	"context"
	"fmt"
	"maps"

	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/wire"
)

// Command is the command name of the service.
const Command = "notify"

// Service pushes a command's body back as a notification. The zero value is
// ready to use.
type Service struct{}

// Register registers the notify service under its command name.
func Register(r *services.Registry) error { return r.Register(Service{}, Command) }

// HandleCommand queues a NOTIFY with the command's body, route, class and
// headers; the gateway sends it after the (empty) reply.
func (Service) HandleCommand(ctx context.Context, c *services.Caller, cmd *wire.Envelope) ([]byte, error) {
	n := &wire.Envelope{
		Route:   cmd.Route,
		Kind:    wire.KindNotification,
		Class:   cmd.Class,
		Headers: maps.Clone(cmd.Headers),
		Body:    cmd.Body,
	}
	if err := c.Notify(n); err != nil {
		return nil, fmt.Errorf("notify: push to %s: %w", c.SessionID, err)
	}
	return nil, nil
}
