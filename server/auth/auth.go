// Package auth authenticates JSP clients at the gateway from the
// credentials in HELLO auth (JSP §5.1, §7.4): a short-lived signed token,
// a device proof bound to the TLS connection, or both.
//
// HELLO auth format (the field is opaque to the session layer; this
// package defines it):
//
//	auth       = credential [ " " credential ]   ; at most one of each kind
//	credential = token / device
//	token      = "jspt." base64url(token bytes)  ; package security/token
//	device     = "jspd." base64url(proof bytes)  ; 81 bytes, package security/devicekey:
//	             version (1) | device id (16) | Ed25519 signature (64) over
//	             "JSP-DEVICE-PROOF-v1\x00" | device id | TLS exporter value
//
// base64url is unpadded (RFC 4648 §5). The exporter value is the
// connection's TLS 1.3 keying material exporter with label
// "EXPORTER-JSP-device-binding", empty context, 32 bytes; a client
// computes it on its side of the same connection before sending HELLO
// ([credential.ForConnection]). A proof made on one connection is refused on any
// other with CHANNEL_BINDING_FAILED.
//
// The flow of one HELLO through [Authenticator.Authenticate]:
//
//	HELLO.auth ─► credential.Parse ─► mode check (anonymous, token, device,
//	              any, both) ─► token: KeySet.Verify(audience)
//	                          ─► device: registry lookup, proof over the
//	                             connection's exporter
//	           ─► session.Identity{User, Device, Scopes, Expires}
//
// Every refusal is a *jsperr.Error with the registry code for its reason
// (TOKEN_EXPIRED, TOKEN_BAD_SIGNATURE, DEVICE_UNKNOWN, DEVICE_REVOKED,
// CHANNEL_BINDING_FAILED, UNAUTHENTICATED, ...), which the session layer
// sends to the client in ERROR, and is logged once with the reason and the
// client's address.
package auth

import (
	"context"
	"errors"
	"fmt"
	"github.com/jetstreamproto/jsp/security/credential"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/token"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// Mode says which credentials a client must present.
type Mode uint8

// Modes. The zero value, ModeAny, requires a credential: a server accepts
// anonymous clients only when told to.
const (
	// ModeAny requires a valid token or a valid device proof (or both).
	ModeAny Mode = iota
	// ModeAnonymous accepts clients without credentials. Credentials that
	// are presented are still checked, and a bad one is refused: a client
	// that sends a credential expects to be known.
	ModeAnonymous
	// ModeToken requires a valid token; a device proof is optional.
	ModeToken
	// ModeDevice requires a valid device proof; a token is optional.
	ModeDevice
	// ModeBoth requires a valid token and a valid device proof.
	ModeBoth
	numModes
)

var modeNames = [numModes]string{"any", "anonymous", "token", "device", "both"}

// String returns the mode's name, as ParseMode accepts it.
func (m Mode) String() string {
	if m < numModes {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses a mode name: any, anonymous, token, device or both.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if s == n {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("auth: unknown mode %q (want %s)", s, strings.Join(modeNames[:], ", "))
}

func (m Mode) needsToken() bool  { return m == ModeToken || m == ModeBoth }
func (m Mode) needsDevice() bool { return m == ModeDevice || m == ModeBoth }

// Config configures an Authenticator.
type Config struct {
	// Mode says which credentials are required. Default: ModeAny.
	Mode Mode
	// Tokens verifies tokens. Required for ModeToken and ModeBoth; when
	// nil, a presented token is refused with UNAUTHENTICATED.
	Tokens *token.KeySet
	// Audience is the audience tokens must name: this cluster. Required
	// with Tokens.
	Audience string
	// Leeway is added to a token's expiry for Identity.Expires, so that a
	// live session ends when the verifier would start refusing its token;
	// set it to the KeySet's leeway. Default: token.DefaultLeeway, the
	// KeySet's default; negative: none.
	Leeway time.Duration
	// Devices is the device registry. Required for ModeDevice and
	// ModeBoth; when nil, a presented device proof is refused with
	// UNAUTHENTICATED.
	Devices devicekey.Registry
	// Logger receives one line per refusal (info) and per acceptance
	// (debug). Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.Mode >= numModes {
		errs = append(errs, fmt.Errorf("unknown mode %d", c.Mode))
	}
	if c.Mode.needsToken() && c.Tokens == nil {
		errs = append(errs, fmt.Errorf("mode %s needs Tokens", c.Mode))
	}
	if c.Mode.needsDevice() && c.Devices == nil {
		errs = append(errs, fmt.Errorf("mode %s needs Devices", c.Mode))
	}
	if c.Mode == ModeAny && c.Tokens == nil && c.Devices == nil {
		errs = append(errs, errors.New("mode any needs Tokens or Devices"))
	}
	if c.Tokens != nil && c.Audience == "" {
		errs = append(errs, errors.New("Tokens without Audience"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("auth: invalid config: %w", err)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Leeway == 0 {
		c.Leeway = token.DefaultLeeway
	} else if c.Leeway < 0 {
		c.Leeway = 0
	}
}

// Stats counts an Authenticator's decisions.
type Stats struct {
	// Accepted counts clients accepted with at least one credential.
	Accepted uint64
	// Anonymous counts clients accepted without credentials.
	Anonymous uint64
	// Refused counts refusals.
	Refused uint64
}

// Authenticator checks HELLO auth. It is safe for concurrent use.
type Authenticator struct {
	cfg Config
	log *slog.Logger

	accepted, anonymous, refused atomic.Uint64
}

// New returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Authenticator{cfg: cfg, log: cfg.Logger}, nil
}

// Mode returns the configured mode.
func (a *Authenticator) Mode() Mode { return a.cfg.Mode }

// Stats returns the counters.
func (a *Authenticator) Stats() Stats {
	return Stats{Accepted: a.accepted.Load(), Anonymous: a.anonymous.Load(), Refused: a.refused.Load()}
}

// Authenticate implements session.Authenticator: it checks hello's
// credentials against conn and returns who the client is. Refusals are
// *jsperr.Error values with the code of their reason.
func (a *Authenticator) Authenticate(ctx context.Context, hello *wire.Hello, conn transport.Conn) (session.Identity, error) {
	id, err := a.authenticate(ctx, hello, conn)
	if err != nil {
		a.refused.Add(1)
		code := jsperr.CodeOf(err)
		if code == jsperr.Internal {
			// A registry failure is not the client's fault, but the client
			// still is not authenticated; the session layer reports
			// INTERNAL as UNAUTHENTICATED.
			a.log.Warn("auth: refused", "code", code.String(), "reason", err.Error(),
				"remote", conn.RemoteAddr().String(), "transport", string(conn.Kind()))
			return session.Identity{}, err
		}
		a.log.Info("auth: refused", "code", code.String(), "reason", reasonOf(err),
			"remote", conn.RemoteAddr().String(), "transport", string(conn.Kind()))
		return session.Identity{}, err
	}
	if id.User == "" && id.Device == "" {
		a.anonymous.Add(1)
	} else {
		a.accepted.Add(1)
	}
	a.log.Debug("auth: accepted", "user", id.User, "device", id.Device, "expires", id.Expires,
		"remote", conn.RemoteAddr().String(), "transport", string(conn.Kind()))
	return id, nil
}

// reasonOf returns a protocol error's reason, or the error's text.
func reasonOf(err error) string {
	var je *jsperr.Error
	if errors.As(err, &je) && je.Reason != "" {
		return je.Reason
	}
	return err.Error()
}

func (a *Authenticator) authenticate(ctx context.Context, hello *wire.Hello, conn transport.Conn) (session.Identity, error) {
	creds, err := credential.Parse(hello.Auth)
	if err != nil {
		return session.Identity{}, err
	}
	mode := a.cfg.Mode
	switch {
	case creds.Empty() && mode == ModeAnonymous:
		return session.Identity{}, nil
	case creds.Empty():
		return session.Identity{}, jsperr.Newf(jsperr.Unauthenticated, "no credentials; this server requires %s", mode.requirement())
	case mode.needsToken() && creds.Token == "":
		return session.Identity{}, jsperr.Newf(jsperr.Unauthenticated, "no token; this server requires %s", mode.requirement())
	case mode.needsDevice() && creds.Proof == nil:
		return session.Identity{}, jsperr.Newf(jsperr.Unauthenticated, "no device proof; this server requires %s", mode.requirement())
	}
	var id session.Identity
	if creds.Token != "" {
		if a.cfg.Tokens == nil {
			return session.Identity{}, jsperr.New(jsperr.Unauthenticated, "this server does not accept tokens")
		}
		tok, err := a.cfg.Tokens.Verify(creds.Token, a.cfg.Audience)
		if err != nil {
			return session.Identity{}, err
		}
		id.User = tok.Subject
		id.Scopes = tok.Scopes
		id.Expires = tok.Expiry.Add(a.cfg.Leeway)
	}
	if creds.Proof != nil {
		if a.cfg.Devices == nil {
			return session.Identity{}, jsperr.New(jsperr.Unauthenticated, "this server does not accept device keys")
		}
		d, err := devicekey.Authenticate(ctx, a.cfg.Devices, conn.TLS(), *creds.Proof)
		if err != nil {
			return session.Identity{}, err
		}
		// Zero trust: a token and a device presented together must speak
		// for the same user, or one of them is borrowed.
		if id.User != "" && d.Owner != "" && id.User != d.Owner {
			return session.Identity{}, jsperr.Newf(jsperr.Unauthenticated,
				"token subject %q is not the owner %q of device %s", id.User, d.Owner, d.ID)
		}
		if id.User == "" {
			id.User = d.Owner
		}
		id.Device = d.ID.String()
	}
	return id, nil
}

// requirement describes what the mode requires, for refusal reasons.
func (m Mode) requirement() string {
	switch m {
	case ModeToken:
		return "a token"
	case ModeDevice:
		return "a device proof"
	case ModeBoth:
		return "a token and a device proof"
	}
	return "a token or a device proof"
}
