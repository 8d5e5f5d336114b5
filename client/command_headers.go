package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// CommandWithHeaders is Command with envelope headers (JSP §4), for
// services that route by a header, such as the chat service's "key".
func (c *Client) CommandWithHeaders(ctx context.Context, service string, body []byte, headers map[string]string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.CommandTimeout)
		defer cancel()
	}
	env := &wire.Envelope{
		Route:   wire.Route{Kind: wire.RouteService, Name: service},
		Class:   protocol.ClassChat,
		Headers: headers,
		Body:    body,
	}
	l, err := c.waitLink(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: command %q: %w", service, err)
	}
	rep, err := l.sess.Request(ctx, env)
	if err != nil {
		if errors.Is(err, session.ErrClosed) {
			return nil, fmt.Errorf("client: command %q: %w", service, c.lostErr(l))
		}
		return nil, fmt.Errorf("client: command %q: %w", service, err)
	}
	return rep.Body, nil
}
