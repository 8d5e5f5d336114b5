package client

import (
	"context"

	"github.com/jetstreamproto/jsp/internal/protocol"
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
	return c.request(ctx, service, env)
}
