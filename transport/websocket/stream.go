package websocket

import (
	"context"
	"fmt"
	"io"

	ws "github.com/coder/websocket"
	"github.com/jetstreamproto/jsp/jsperr"
)

// wsStream adapts a WebSocket to the byte stream mux expects (JSP §7.3).
// Each Write is one binary message; mux's writer calls Write with whole
// link frames only, so every message carries one or more whole frames.
// Reads run across message boundaries: the frame reader above checks every
// length, so the receiver does not rely on where messages end.
//
// mux uses one reading and one writing goroutine, which the WebSocket
// library allows; Close may come from any goroutine.
type wsStream struct {
	c   *ws.Conn
	cur io.Reader // the message being read, nil between messages
}

func newStream(c *ws.Conn) *wsStream {
	// Messages are streamed, never buffered whole, and the frame reader
	// bounds each frame: the library's per-message limit adds nothing.
	c.SetReadLimit(-1)
	return &wsStream{c: c}
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.cur == nil {
			typ, r, err := s.c.Reader(context.Background())
			if err != nil {
				if st := ws.CloseStatus(err); st == ws.StatusNormalClosure || st == ws.StatusGoingAway {
					return 0, io.EOF
				}
				return 0, fmt.Errorf("websocket: read: %w", err)
			}
			if typ != ws.MessageBinary {
				return 0, jsperr.New(jsperr.ProtocolViolation, "websocket: text message; JSP/1 uses binary messages (JSP §7.3)")
			}
			s.cur = r
		}
		n, err := s.cur.Read(p)
		if err == io.EOF {
			s.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		if err != nil {
			return n, fmt.Errorf("websocket: read: %w", err)
		}
		return n, nil
	}
}

func (s *wsStream) Write(p []byte) (int, error) {
	if err := s.c.Write(context.Background(), ws.MessageBinary, p); err != nil {
		return 0, fmt.Errorf("websocket: write: %w", err)
	}
	return len(p), nil
}

// Close closes the connection at once. The link has already exchanged
// LINK_CLOSE when it closes gracefully, so the WebSocket closing handshake
// would only add a round trip, and it must not block when the peer stopped
// reading.
func (s *wsStream) Close() error { return s.c.CloseNow() }
