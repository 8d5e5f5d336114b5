// Package echo is the echo service: the command "echo" replies with its
// body (JSP §5.9), and a stream labelled "echo" copies every byte back to
// its opener until the opener closes its side (JSP §5.12).
package echo

import (
	"context"
	"fmt"
	"io"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/wire"
)

// Command is the command name and Label the stream label of the service.
const (
	Command = "echo"
	Label   = "echo"
)

// Service echoes commands and streams. The zero value is ready to use.
type Service struct{}

// Register registers the echo service under its command and label.
func Register(r *services.Registry) error { return r.Register(Service{}, Command, Label) }

// HandleCommand returns the command's body.
func (Service) HandleCommand(ctx context.Context, c *services.Caller, cmd *wire.Envelope) ([]byte, error) {
	return cmd.Body, nil
}

// HandleStream copies the stream back to its opener, then closes it.
func (Service) HandleStream(ctx context.Context, c *services.Caller, st services.Stream) error {
	if _, err := io.Copy(st, st); err != nil {
		st.CancelRead(jsperr.Cancelled)
		st.CancelWrite(jsperr.Cancelled)
		return fmt.Errorf("echo: stream for %s: %w", c.SessionID, err)
	}
	return st.Close()
}
