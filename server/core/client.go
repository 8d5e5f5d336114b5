package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/storage"
)

// Client sends requests to the cores of a cluster; gateways use it. It is
// safe for concurrent use and owns no goroutines.
type Client struct {
	bus    bus.Bus
	subj   bus.Subjects
	shards int
	codec  Codec
}

// NewClient returns a client over b for the cluster subj names, with the
// cluster's shard count (DefaultShards when shards is 0).
func NewClient(b bus.Bus, subj bus.Subjects, shards int) (*Client, error) {
	if b == nil {
		return nil, errors.New("core: client without a bus")
	}
	if shards < 0 {
		return nil, fmt.Errorf("core: negative shard count %d", shards)
	}
	if shards == 0 {
		shards = DefaultShards
	}
	return &Client{bus: b, subj: subj, shards: shards}, nil
}

// WithCodec returns a copy of c that encodes its requests in codec; the
// replies come back in the same encoding. NewClient's clients use
// CodecBinary; CodecJSON serves cores of a release that reads only JSON
// (docs/operations.md, rolling upgrades).
func (c *Client) WithCodec(codec Codec) *Client {
	cc := *c
	cc.codec = codec
	return &cc
}

// Subjects returns the cluster's subject builder.
func (c *Client) Subjects() bus.Subjects { return c.subj }

// Do sends req to the core serving its channel's shard and returns the
// reply. A reply with an error code is returned as a *jsperr.Error; a bus
// failure as TIMEOUT (ctx ended) or CIRCUIT_OPEN (no core answers).
func (c *Client) Do(ctx context.Context, req *Request) (*Reply, error) {
	if req.Identity == nil {
		if id, ok := IdentityFrom(ctx); ok {
			req.Identity = &id
		}
	}
	data, err := c.codec.EncodeRequest(req)
	if err != nil {
		return nil, fmt.Errorf("core: encode %s request: %w", req.Op, err)
	}
	subj := c.subj.CoreCmd(bus.ShardOf(req.Channel, c.shards))
	m, err := c.bus.Request(ctx, subj, bus.Msg{Data: data})
	switch {
	case jsperr.CodeOf(err) == jsperr.CircuitOpen:
		// The bus breaker is open; its retry-after goes to the client.
		return nil, fmt.Errorf("core %s %q: %w", req.Op, req.Channel, err)
	case errors.Is(err, bus.ErrNoResponders):
		return nil, jsperr.Wrap(jsperr.CircuitOpen, fmt.Errorf("core %s %q: %w", req.Op, req.Channel, err))
	case err != nil && ctx.Err() != nil:
		return nil, jsperr.Wrap(jsperr.Timeout, fmt.Errorf("core %s %q: %w", req.Op, req.Channel, err))
	case err != nil:
		return nil, jsperr.Wrap(jsperr.Internal, fmt.Errorf("core %s %q: %w", req.Op, req.Channel, err))
	}
	rep, err := DecodeReply(m.Data, nil)
	if err != nil {
		return nil, fmt.Errorf("core %s %q: reply: %w", req.Op, req.Channel, err)
	}
	if err := rep.Err(); err != nil {
		return &rep, err
	}
	return &rep, nil
}

// Publish commits msg to channel and returns the reply with its Seq.
func (c *Client) Publish(ctx context.Context, channel string, msg storage.Message) (*Reply, error) {
	return c.Do(ctx, &Request{Op: OpPublish, Channel: channel, Message: &msg})
}

// After returns up to limit messages of channel with Seq > after.
func (c *Client) After(ctx context.Context, channel string, after storage.Seq, limit int) (*Reply, error) {
	return c.Do(ctx, &Request{Op: OpHistory, Channel: channel, After: after, Limit: limit})
}

// Before returns the up to limit newest messages with Seq < before;
// before 0 reads the newest.
func (c *Client) Before(ctx context.Context, channel string, before storage.Seq, limit int) (*Reply, error) {
	return c.Do(ctx, &Request{Op: OpHistory, Channel: channel, Before: before, Latest: before == 0, Limit: limit})
}

// Command forwards a command for service with body to the core serving
// key's shard and returns the reply body.
func (c *Client) Command(ctx context.Context, key, service string, body []byte) ([]byte, error) {
	rep, err := c.Do(ctx, &Request{Op: OpCommand, Channel: key, Command: &Command{Service: service, Body: body}})
	if err != nil {
		return nil, err
	}
	return rep.Body, nil
}

// Authorize asks the core whether the identity in ctx may subscribe to
// channel.
func (c *Client) Authorize(ctx context.Context, channel string) error {
	_, err := c.Do(ctx, &Request{Op: OpSubscribe, Channel: channel})
	return err
}

// AuthorizeLive asks whether the identity of ctx may publish to the live
// channel (D43).
func (c *Client) AuthorizeLive(ctx context.Context, channel string) error {
	_, err := c.Do(ctx, &Request{Op: OpLive, Channel: channel})
	return err
}

// Recover asks whether the messages after after can be recovered and
// returns the first page of them.
func (c *Client) Recover(ctx context.Context, channel string, after storage.Seq, limit int) (*Reply, error) {
	return c.Do(ctx, &Request{Op: OpRecover, Channel: channel, After: after, Limit: limit})
}

// PublishMany commits msgs to channel in the order given with one request
// (one group commit where the store allows) and returns one result per
// message; a message's failure is in its result. The error is the
// request's: the bus, or the whole request refused. One message goes as
// an ordinary Publish, which every core version serves.
func (c *Client) PublishMany(ctx context.Context, channel string, msgs []storage.Message) ([]PublishResult, error) {
	if len(msgs) == 1 {
		rep, err := c.Publish(ctx, channel, msgs[0])
		if rep == nil {
			return nil, err
		}
		// A reply with a code is this message's failure, not the request's.
		return []PublishResult{{Code: rep.Code, Reason: rep.Reason, RetryAfterMS: rep.RetryAfterMS, Seq: rep.Seq, Time: rep.Time, Duplicate: rep.Duplicate}}, nil
	}
	rep, err := c.Do(ctx, &Request{Op: OpPublish, Channel: channel, Messages: msgs})
	if err != nil {
		return nil, err
	}
	if len(rep.Results) != len(msgs) {
		return nil, jsperr.Newf(jsperr.Internal, "core publish %q: %d results for %d messages", channel, len(rep.Results), len(msgs))
	}
	return rep.Results, nil
}
