package gateway

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/wire"
)

// HistoryService is the command route (JSP §5.9) of the gateway's built-in
// history service in bus mode: clients page a channel's committed events
// with it to repair a gap or after RECOVERY_IMPOSSIBLE
// (docs/protocol-guide.md, "Delivery guarantees").
const HistoryService = "jsp.history"

// maxHistoryRequest caps a history request's body.
const maxHistoryRequest = 1024

// HistoryRequest is the JSON body of a history COMMAND. Exactly one of
// After and Latest selects the page: the events with seq > After, or the
// newest ones.
type HistoryRequest struct {
	// Channel is the channel to read. Required.
	Channel string `json:"channel"`
	// After selects the events with seq > After, oldest first.
	After uint64 `json:"after,omitempty"`
	// Latest selects the newest events instead.
	Latest bool `json:"latest,omitempty"`
	// Limit caps the page; 0 means the core's default page, larger values
	// are clamped to its maximum.
	Limit int `json:"limit,omitempty"`
}

// HistoryReply is the JSON body of a history REPLY.
type HistoryReply struct {
	// Events are the page's events, ascending by seq, each an EVENT
	// envelope in its CBOR encoding (JSP §4), with seq and sender set.
	Events [][]byte `json:"events,omitempty"`
	// More reports that the page was full, so more events may follow.
	More bool `json:"more,omitempty"`
	// Trimmed reports (After requests) that events after After are no
	// longer retained: the page is empty and the client starts again
	// from Oldest or from the latest events.
	Trimmed bool `json:"trimmed,omitempty"`
	// Oldest and Last are the channel's retained range, when known.
	Oldest uint64 `json:"oldest,omitempty"`
	Last   uint64 `json:"last,omitempty"`
}

// historyService answers HistoryService commands through the core.
type historyService struct {
	client *core.Client
}

var _ services.Service = historyService{}

// HandleCommand reads one page of a channel's log.
func (s historyService) HandleCommand(ctx context.Context, _ *services.Caller, cmd *wire.Envelope) ([]byte, error) {
	if len(cmd.Body) > maxHistoryRequest {
		return nil, jsperr.Newf(jsperr.BadRequest, "history request of %d bytes over %d", len(cmd.Body), maxHistoryRequest)
	}
	var req HistoryRequest
	if err := json.Unmarshal(cmd.Body, &req); err != nil {
		return nil, jsperr.Wrap(jsperr.BadRequest, fmt.Errorf("history request: %w", err))
	}
	if req.Channel == "" || len(req.Channel) > wire.MaxRouteNameLen || req.Limit < 0 || (req.Latest && req.After != 0) {
		return nil, jsperr.New(jsperr.BadRequest, "history request needs a channel, a limit >= 0 and one of after and latest")
	}
	var (
		rep *core.Reply
		err error
	)
	if req.Latest {
		rep, err = s.client.Before(ctx, req.Channel, 0, req.Limit)
	} else {
		rep, err = s.client.Recover(ctx, req.Channel, storage.Seq(req.After), req.Limit)
	}
	if err != nil {
		return nil, err
	}
	out := HistoryReply{More: rep.More}
	if rep.Info != nil {
		out.Oldest, out.Last = uint64(rep.Info.Oldest), uint64(rep.Info.Last)
		out.Trimmed = !rep.Recoverable
	}
	for i := range rep.Messages {
		env, err := storedEnvelope(&rep.Messages[i])
		if err != nil {
			return nil, jsperr.Wrap(jsperr.Internal, err)
		}
		out.Events = append(out.Events, env.Append(nil))
	}
	b, err := json.Marshal(&out)
	if err != nil {
		return nil, fmt.Errorf("history reply: %w", err)
	}
	return b, nil
}
