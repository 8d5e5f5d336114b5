package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/security/ca"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

// natsRole is the identity role of an embedded NATS server's certificate.
const natsRole = "nats"

// mtlsFlags are the service-identity flags of `jsp server`.
type mtlsFlags struct {
	caDir    string
	name     string
	lifetime time.Duration
}

// serviceName is the name part of this process's identity: --node-name,
// or the host name in lower case.
func (m mtlsFlags) serviceName() (string, error) {
	if m.name != "" {
		return m.name, nil
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "", errors.New("--ca-dir needs --node-name: the host name is unknown")
	}
	return strings.ToLower(strings.SplitN(h, ".", 2)[0]), nil
}

// serviceTLS is this process's mTLS material: the CA it is issued from,
// its renewing certificates, and the verifiers of its peers. Close stops
// the renewers.
type serviceTLS struct {
	authority *ca.CA
	name      string
	renewers  []*ca.Renewer
	lifetime  time.Duration
	log       *slog.Logger
}

func openServiceTLS(m mtlsFlags, log *slog.Logger) (*serviceTLS, error) {
	authority, err := ca.Open(m.caDir, ca.Config{})
	if err != nil {
		return nil, fmt.Errorf("--ca-dir: %w", err)
	}
	name, err := m.serviceName()
	if err != nil {
		return nil, err
	}
	return &serviceTLS{authority: authority, name: name, lifetime: m.lifetime, log: log}, nil
}

// renewer issues and keeps renewing (at 2/3 of the lifetime) the
// certificate of role; connections keep running across renewals, new
// handshakes present the new certificate.
func (s *serviceTLS) renewer(role string) (*ca.Renewer, error) {
	id := ca.Identity{Cluster: s.authority.Cluster(), Role: role, Name: s.name}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("service identity (see --node-name): %w", err)
	}
	r, err := ca.NewRenewer(ca.RenewerConfig{
		Issuer:   s.authority,
		Identity: id,
		Lifetime: s.lifetime,
		Logger:   s.log,
		OnRenew: func(c *tls.Certificate) {
			s.log.Debug("service certificate renewed", "identity", id.String(), "not_after", c.Leaf.NotAfter)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("service certificate %s: %w", id, err)
	}
	s.renewers = append(s.renewers, r)
	return r, nil
}

func (s *serviceTLS) verifier(roles ...string) (*ca.Verifier, error) {
	v, err := ca.NewVerifier(s.authority.Trust(), ca.Policy{Cluster: s.authority.Cluster(), Roles: roles})
	if err != nil {
		return nil, fmt.Errorf("--ca-dir: %w", err)
	}
	return v, nil
}

// busClient is the NATS client configuration of a split role: mTLS with
// this process's certificate for role, verifying the server as a NATS
// identity of the cluster.
func (s *serviceTLS) busClient(role bus.Role, subj bus.Subjects) (natsbus.ClientConfig, error) {
	r, err := s.renewer(string(role))
	if err != nil {
		return natsbus.ClientConfig{}, err
	}
	v, err := s.verifier(natsRole)
	if err != nil {
		return natsbus.ClientConfig{}, err
	}
	tc, err := ca.ClientConfig(r, v)
	if err != nil {
		return natsbus.ClientConfig{}, err
	}
	return natsbus.MTLSClient(tc, subj, role, s.name)
}

// busServer fills in the mTLS settings of the embedded NATS server: it
// presents a renewing NATS identity, requires gateway or core
// certificates from the cluster CA and gives each identity its role's
// permissions.
func (s *serviceTLS) busServer(cfg *natsbus.ServerConfig, subj bus.Subjects) error {
	r, err := s.renewer(natsRole)
	if err != nil {
		return err
	}
	v, err := s.verifier(string(bus.RoleGateway), string(bus.RoleCore))
	if err != nil {
		return err
	}
	tc, err := ca.ServerConfig(r, v)
	if err != nil {
		return err
	}
	cfg.TLS = tc
	cfg.Authorize = natsbus.IdentityAuthorizer(v, subj)
	return nil
}

// Close stops the renewers.
func (s *serviceTLS) Close() {
	for _, r := range s.renewers {
		_ = r.Close()
	}
}
