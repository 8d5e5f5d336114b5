package core

import (
	"context"
	"errors"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/storage"
)

// Op names a core request. It travels in the request's "op" field.
type Op string

// Core operations.
const (
	// OpPublish commits a message and publishes it on the channel subject.
	OpPublish Op = "publish"
	// OpHistory reads a page of a channel's log (MessagesAfter/Before).
	OpHistory Op = "history"
	// OpRecover tells whether a client can resume after a sequence number
	// and, when it can, returns the first page of what it missed.
	OpRecover Op = "recover"
	// OpSubscribe asks whether the identity may subscribe to the channel;
	// the gateway joins the channel only when the core allows it.
	OpSubscribe Op = "subscribe"
	// OpCommand runs a COMMAND on a service registered in the core
	// (services.go).
	OpCommand Op = "command"
	// OpLive asks whether the identity may publish to a live channel,
	// whose messages the gateways fan out without a commit (decision
	// D43); the authorization hook sees it as OpPublish.
	OpLive Op = "live"
)

// DefaultMaxRequestBytes caps a request or reply the core decodes; it
// leaves room above the largest message for JSON and base64 overhead.
const DefaultMaxRequestBytes = 4 << 20

// Request is a gateway's request to a core on CoreCmd(shard), in the
// binary form (codec.go) or JSON.
type Request struct {
	// Op is the operation.
	Op Op `json:"op"`
	// Channel is the channel the request is about. Required.
	Channel string `json:"channel"`
	// Message is the message to commit (OpPublish). Its ClientID and
	// Sender form the idempotency key.
	Message *storage.Message `json:"message,omitempty"`
	// Messages are several messages to commit in this order (OpPublish
	// without Message): one request, one group commit (D23). The reply's
	// Results answer them one by one.
	Messages []storage.Message `json:"messages,omitempty"`
	// After selects messages with Seq > After (OpHistory when Before is 0,
	// and OpRecover).
	After storage.Seq `json:"after,omitempty"`
	// Before selects the newest messages with Seq < Before (OpHistory);
	// it takes precedence over After when set.
	Before storage.Seq `json:"before,omitempty"`
	// Latest reads the newest page (OpHistory with Before 0 and After 0
	// means "from the start"; Latest means "the end").
	Latest bool `json:"latest,omitempty"`
	// Limit caps the page (OpHistory, OpRecover); 0 means the core's
	// default, larger values are clamped to its maximum.
	Limit int `json:"limit,omitempty"`
	// Identity is who the request is made for (authz.go); nil means an
	// anonymous caller.
	Identity *Identity `json:"identity,omitempty"`
	// Command is the forwarded command (OpCommand).
	Command *Command `json:"command,omitempty"`
}

// Reply is a core's answer.
type Reply struct {
	// Code is the registry code of a failure; NoError on success.
	Code jsperr.Code `json:"code,omitempty"`
	// Reason explains a failure.
	Reason string `json:"reason,omitempty"`
	// RetryAfterMS is when to retry a failure that passes (CIRCUIT_OPEN
	// from a breaker), in milliseconds; 0 when unknown.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
	// Seq is the committed message's sequence number (OpPublish).
	Seq storage.Seq `json:"seq,omitempty"`
	// Time is the commit time (OpPublish).
	Time time.Time `json:"time,omitzero"`
	// Duplicate reports a resend of an already committed message
	// (OpPublish); nothing new was stored or published.
	Duplicate bool `json:"duplicate,omitempty"`
	// Messages is the page read (OpHistory, OpRecover), ascending by Seq.
	Messages []storage.Message `json:"messages,omitempty"`
	// More reports that the page was full, so more messages may follow.
	More bool `json:"more,omitempty"`
	// Info is the channel's retained range (OpRecover).
	Info *storage.ChannelInfo `json:"info,omitempty"`
	// Recoverable reports whether every message after Request.After is
	// still stored (OpRecover). When false the client must refetch
	// history (ARCHITECTURE §4).
	Recoverable bool `json:"recoverable,omitempty"`
	// Body is a command's reply body (OpCommand).
	Body []byte `json:"body,omitempty"`
	// Results answer Request.Messages in order (OpPublish of several).
	Results []PublishResult `json:"results,omitempty"`
}

// PublishResult is the outcome of one message of a multi-message publish.
type PublishResult struct {
	// Code is the registry code of this message's failure; NoError on
	// success.
	Code jsperr.Code `json:"code,omitempty"`
	// Reason explains a failure.
	Reason string `json:"reason,omitempty"`
	// RetryAfterMS is when to retry a failure that passes, in
	// milliseconds; 0 when unknown.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
	// Seq is the committed message's sequence number.
	Seq storage.Seq `json:"seq,omitempty"`
	// Time is the commit time.
	Time time.Time `json:"time,omitzero"`
	// Duplicate reports a resend of an already committed message.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Err returns the result's failure as a *jsperr.Error, or nil.
func (r *PublishResult) Err() error {
	if r.Code == jsperr.NoError {
		return nil
	}
	e := jsperr.New(r.Code, r.Reason)
	e.RetryAfter = time.Duration(r.RetryAfterMS) * time.Millisecond
	return e
}

// Err returns the reply's failure as a *jsperr.Error, or nil.
func (r *Reply) Err() error {
	if r.Code == jsperr.NoError {
		return nil
	}
	e := jsperr.New(r.Code, r.Reason)
	e.RetryAfter = time.Duration(r.RetryAfterMS) * time.Millisecond
	return e
}

// Event is what a core publishes on a channel subject after a commit:
// the committed message with its sequence number and commit time.
type Event struct {
	// Channel is the channel's name.
	Channel string `json:"channel"`
	// Message is the committed message; Seq and Time are set. For an
	// Ephemeral event Seq is 0.
	Message storage.Message `json:"message"`
	// Ephemeral marks an event that was not stored (Core.Ephemeral).
	Ephemeral bool `json:"ephemeral,omitempty"`
	// Drop, when set, is a control event without a message: gateways end
	// the local subscriptions of these users on Channel (Core.Drop).
	Drop []string `json:"drop,omitempty"`
	// Messages, when set, is a run of committed messages of Channel with
	// consecutive sequence numbers, in order, sent as one event instead
	// of one event each (D26); Message is then unset. A gateway of an
	// earlier release does not read it, so gateways are upgraded before
	// cores. With Ephemeral it is a run of one session's live-channel
	// messages, in order and without numbers (D44).
	Messages []storage.Message `json:"messages,omitempty"`
}

// DecodeEvent decodes a channel subject's payload, in either encoding
// (codec.go), within the default CodecLimits.
func DecodeEvent(data []byte) (Event, error) {
	ev, err := decodeEvent(data, nil)
	if err != nil {
		return Event{}, err
	}
	if ev.Channel == "" || (ev.Message.Seq == 0 && !ev.Ephemeral && len(ev.Drop) == 0 && len(ev.Messages) == 0) {
		return Event{}, jsperr.New(jsperr.BadRequest, "core event without channel or seq")
	}
	for i, m := range ev.Messages {
		if ev.Ephemeral {
			// A run of live messages (D44): none has a number.
			if m.Seq != 0 {
				return Event{}, jsperr.Newf(jsperr.BadRequest, "ephemeral core event run with seq %d at %d", m.Seq, i)
			}
			continue
		}
		if m.Seq == 0 || (i > 0 && m.Seq != ev.Messages[i-1].Seq+1) {
			return Event{}, jsperr.Newf(jsperr.BadRequest, "core event run with seq %d at %d: want consecutive numbers", m.Seq, i)
		}
	}
	return ev, nil
}

// codeOf maps a storage or context error to a registry code, so that the
// gateway can tell the client why a message was refused.
func codeOf(err error) jsperr.Code {
	switch {
	case errors.Is(err, storage.ErrInvalid):
		return jsperr.BadRequest
	case errors.Is(err, storage.ErrTooLarge):
		return jsperr.MessageTooLarge
	case errors.Is(err, storage.ErrConflict):
		return jsperr.Conflict
	case errors.Is(err, storage.ErrNotFound):
		return jsperr.NotFound
	case errors.Is(err, storage.ErrClosed):
		return jsperr.GoingAway
	case errors.Is(err, context.DeadlineExceeded):
		return jsperr.Timeout
	case errors.Is(err, context.Canceled):
		return jsperr.Cancelled
	}
	return jsperr.CodeOf(err)
}
