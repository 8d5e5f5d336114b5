// Package keys is the keys service: it publishes registered device public
// keys so that recipients can verify signed envelopes (JSP §4.3).
//
// The command msgsig.KeyCommand ("keys.device") takes a msgsig.KeyRequest
// (device id, optionally the user the device must belong to) and replies
// with a msgsig.KeyReply (device id, owner, public key, registration and
// revocation times). A revoked device is still answered, with its
// revocation time, so that history signed before the revocation stays
// verifiable. An unknown device, or one of another user than asked, is
// NOT_FOUND; a malformed request is BAD_REQUEST.
//
// Public keys are public: any authenticated session may ask. The reply
// cannot lie about the key of a device without being caught, since the
// device id is the hash of the key and the client checks it; the owner is
// as trustworthy as the server.
package keys

import (
	"context"
	"errors"
	"fmt"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/msgsig"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/wire"
)

// Command is the command name of the service.
const Command = msgsig.KeyCommand

// Service answers key lookups from a device registry.
type Service struct {
	reg devicekey.Registry
}

// New returns the service for reg.
func New(reg devicekey.Registry) (*Service, error) {
	if reg == nil {
		return nil, errors.New("keys: nil registry")
	}
	return &Service{reg: reg}, nil
}

// Register registers s under Command.
func (s *Service) Register(r *services.Registry) error { return r.Register(s, Command) }

// HandleCommand answers one lookup.
func (s *Service) HandleCommand(ctx context.Context, c *services.Caller, cmd *wire.Envelope) ([]byte, error) {
	req, err := msgsig.ParseKeyRequest(cmd.Body)
	if err != nil {
		return nil, jsperr.Wrap(jsperr.BadRequest, err)
	}
	d, err := s.reg.Lookup(ctx, req.Device)
	if errors.Is(err, devicekey.ErrNotFound) || err == nil && req.User != "" && d.Owner != req.User {
		// One answer for both, so that the service does not tell who owns
		// a device to someone who guessed wrong.
		return nil, jsperr.Newf(jsperr.NotFound, "no device %s%s", req.Device, forUser(req.User))
	}
	if err != nil {
		return nil, fmt.Errorf("keys: look up device %s for %s: %w", req.Device, c.SessionID, err)
	}
	rep := msgsig.KeyReplyOf(d)
	return rep.Append(nil), nil
}

func forUser(u string) string {
	if u == "" {
		return ""
	}
	return fmt.Sprintf(" of %q", u)
}
