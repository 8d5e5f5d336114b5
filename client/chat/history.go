package chat

import (
	"context"

	"github.com/jetstreamproto/jsp/services/chat/chatproto"
)

// History pages through a conversation's messages in either direction.
// Its first page is the newest; Older and Newer continue from the edges of
// what it returned so far, with the server's authenticated cursors. It is
// not safe for concurrent use.
type History struct {
	x     *Client
	conv  string
	limit uint64
	prev  []byte // cursor before the oldest message returned
	next  []byte // cursor after the newest message returned
	older bool   // more older messages may exist
	began bool
}

// History returns an iterator over conv with pages of limit messages (0:
// the server's default).
func (x *Client) History(conv string, limit int) *History {
	return &History{x: x, conv: conv, limit: uint64(max(limit, 0)), older: true}
}

// page runs one history command and moves the cursors.
func (h *History) page(ctx context.Context, cursor []byte, backward bool) ([]HistoryItem, bool, error) {
	resp, err := h.x.do(ctx, h.conv, &chatproto.Request{Op: chatproto.OpHistory, Conversation: h.conv, Cursor: cursor, Limit: h.limit, Backward: backward})
	if err != nil {
		return nil, false, err
	}
	if !h.began || backward {
		h.prev = resp.Prev
	}
	if !h.began || !backward {
		h.next = resp.Next
	}
	h.began = true
	return resp.Messages, resp.More, nil
}

// Older returns the page before everything returned so far (the newest
// page on the first call), ascending by seq; an empty page means the start
// was reached.
func (h *History) Older(ctx context.Context) ([]HistoryItem, error) {
	if h.began && !h.older {
		return nil, nil
	}
	var cursor []byte
	if h.began {
		cursor = h.prev
	}
	items, more, err := h.page(ctx, cursor, true)
	if err != nil {
		return nil, err
	}
	h.older = more
	return items, nil
}

// Newer returns the messages after everything returned so far, ascending;
// an empty page means nothing newer is stored yet.
func (h *History) Newer(ctx context.Context) ([]HistoryItem, error) {
	if !h.began {
		return h.Older(ctx)
	}
	items, _, err := h.page(ctx, h.next, false)
	return items, err
}

// Cursors returns the current cursors (for a later NewHistoryAt).
func (h *History) Cursors() (prev, next []byte) { return h.prev, h.next }

// All reads the whole history, oldest first.
func (h *History) All(ctx context.Context) ([]HistoryItem, error) {
	var pages [][]HistoryItem
	for {
		items, err := h.Older(ctx)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			break
		}
		pages = append(pages, items)
		if !h.older {
			break
		}
	}
	var out []HistoryItem
	for i := len(pages) - 1; i >= 0; i-- {
		out = append(out, pages[i]...)
	}
	return out, nil
}

// RawPage reads one page with an explicit cursor, for callers that keep
// cursors themselves (and for tests of cursor checks).
func (x *Client) RawPage(ctx context.Context, conv string, cursor []byte, backward bool, limit int) ([]HistoryItem, []byte, []byte, error) {
	resp, err := x.do(ctx, conv, &chatproto.Request{Op: chatproto.OpHistory, Conversation: conv, Cursor: cursor, Limit: uint64(max(limit, 0)), Backward: backward})
	if err != nil {
		return nil, nil, nil, err
	}
	return resp.Messages, resp.Prev, resp.Next, nil
}
