package natsbus

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetstreamproto/jsp/security/ca"
	"github.com/jetstreamproto/jsp/server/bus"
)

// InternalUser is the user name of the hosting process's own in-process
// connection when ServerConfig.Authorize is set.
const InternalUser = "jsp-internal"

// Authorizer maps the TLS state of a client connection to the bus user it
// logs in as: a name for logs and monitoring, and that user's permissions.
// An error refuses the connection.
type Authorizer func(cs tls.ConnectionState) (name string, p bus.Permissions, err error)

// IdentityAuthorizer returns an Authorizer for mTLS among services (JSP
// §7.4, zero trust): the client certificate must pass v (chain to the
// cluster CA, not expired, a role v accepts), and the identity's role and
// name select its bus permissions (bus.RolePermissions with the name as
// the process id). Roles other than gateway and core are refused: no other
// role talks to the bus.
func IdentityAuthorizer(v *ca.Verifier, s bus.Subjects) Authorizer {
	return func(cs tls.ConnectionState) (string, bus.Permissions, error) {
		id, err := v.Verify(cs.PeerCertificates)
		if err != nil {
			return "", bus.Permissions{}, err
		}
		role := bus.Role(id.Role)
		if role != bus.RoleGateway && role != bus.RoleCore {
			return "", bus.Permissions{}, fmt.Errorf("natsbus: identity %s: role %q has no bus permissions", id, id.Role)
		}
		p, err := bus.RolePermissions(s, role, id.Name)
		if err != nil {
			return "", bus.Permissions{}, fmt.Errorf("natsbus: identity %s: %w", id, err)
		}
		return id.String(), p, nil
	}
}

// MTLSClient returns the client configuration of a service that logs in
// with its certificate: tc presents it (ca.ClientConfig), and the inbox
// prefix is the one its role permissions allow (bus.Subjects.Inbox of
// role and name, which must match the certificate's identity).
func MTLSClient(tc *tls.Config, s bus.Subjects, role bus.Role, name string) (ClientConfig, error) {
	inbox, err := s.Inbox(role, name)
	if err != nil {
		return ClientConfig{}, fmt.Errorf("natsbus: mTLS client %s %q: %w", role, name, err)
	}
	return ClientConfig{Name: "jsp-" + string(role) + "-" + name, TLS: tc, InboxPrefix: inbox}, nil
}

// identityAuth is the server's client authentication when
// ServerConfig.Authorize is set: TLS clients are mapped by their
// certificate, and the one in-process connection of the hosting process
// logs in with a secret that never leaves the process.
type identityAuth struct {
	authorize Authorizer
	secret    string
	log       *slog.Logger
}

func newIdentityAuth(a Authorizer, log *slog.Logger) (*identityAuth, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("natsbus: internal secret: %w", err)
	}
	return &identityAuth{authorize: a, secret: hex.EncodeToString(b[:]), log: log}, nil
}

// Check implements server.Authentication.
func (a *identityAuth) Check(c server.ClientAuthentication) bool {
	remote := ""
	if addr := c.RemoteAddress(); addr != nil {
		remote = addr.String()
	}
	if cs := c.GetTLSConnectionState(); cs != nil {
		name, p, err := a.authorize(*cs)
		if err != nil {
			a.log.Warn("natsbus: client refused", "remote", remote, "err", err)
			return false
		}
		c.RegisterUser(UserFor(name, "", p))
		a.log.Debug("natsbus: client authorized", "identity", name, "remote", remote)
		return true
	}
	// Only the in-process connection reaches the server without TLS (the
	// listener requires it); it proves itself with the process's secret.
	// Its permissions are the server's own: it runs in the process that
	// holds the server.
	opts := c.GetOpts()
	if opts != nil && opts.Username == InternalUser &&
		subtle.ConstantTimeCompare([]byte(opts.Password), []byte(a.secret)) == 1 {
		c.RegisterUser(&server.User{Username: InternalUser})
		return true
	}
	a.log.Warn("natsbus: client refused", "remote", remote, "err", errors.New("no client certificate"))
	return false
}
