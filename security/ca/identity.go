package ca

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// IdentityScheme is the URI scheme of a service identity.
const IdentityScheme = "jsp"

// maxComponent caps each identity component; 63 keeps the cluster a valid
// DNS label, which x509 requires of a URI host.
const maxComponent = 63

// Identity names a service in a cluster. In a certificate it is the single
// URI SAN jsp://<cluster>/<role>/<name>; peers authorise by cluster and role
// (and optionally name), never by network position or host name.
type Identity struct {
	// Cluster is the name of the cluster the CA serves, e.g. "prod".
	Cluster string
	// Role is what the service does, e.g. "gateway", "core", "nats".
	Role string
	// Name tells instances of one role apart, e.g. "gw-1".
	Name string
}

// String returns the identity URI, jsp://<cluster>/<role>/<name>.
func (id Identity) String() string {
	return IdentityScheme + "://" + id.Cluster + "/" + id.Role + "/" + id.Name
}

// URI returns the identity as the URL placed in a certificate's URI SAN.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: IdentityScheme, Host: id.Cluster, Path: "/" + id.Role + "/" + id.Name}
}

// Validate checks every component. A cluster is a lower-case DNS-style name
// (letters, digits, '-' and '.'), because x509 parses it as the URI host;
// role and name may also contain '_'.
func (id Identity) Validate() error {
	if err := validComponent("cluster", id.Cluster, false); err != nil {
		return err
	}
	if err := validComponent("role", id.Role, true); err != nil {
		return err
	}
	return validComponent("name", id.Name, true)
}

// ValidateCluster checks a cluster name on its own.
func ValidateCluster(cluster string) error { return validComponent("cluster", cluster, false) }

func validComponent(what, s string, underscore bool) error {
	if s == "" {
		return fmt.Errorf("ca: identity %s is empty", what)
	}
	if len(s) > maxComponent {
		return fmt.Errorf("ca: identity %s %q is longer than %d bytes", what, s, maxComponent)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '.' || (c == '_' && underscore)) && i > 0 && i < len(s)-1:
			// Separators only inside, never doubled dots: a cluster must
			// stay a valid host name for x509.
			if c == '.' && s[i-1] == '.' {
				return fmt.Errorf("ca: identity %s %q has an empty label", what, s)
			}
		default:
			return fmt.Errorf("ca: identity %s %q: byte %q not allowed here", what, s, c)
		}
	}
	return nil
}

// ParseIdentity parses jsp://<cluster>/<role>/<name>. It is strict: no
// user info, port, query, fragment, escapes or extra path segments.
func ParseIdentity(s string) (Identity, error) {
	rest, ok := strings.CutPrefix(s, IdentityScheme+"://")
	if !ok {
		return Identity{}, fmt.Errorf("ca: identity %q does not start with %s://", s, IdentityScheme)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return Identity{}, fmt.Errorf("ca: identity %q is not %s://<cluster>/<role>/<name>", s, IdentityScheme)
	}
	id := Identity{Cluster: parts[0], Role: parts[1], Name: parts[2]}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("ca: identity %q: %w", s, err)
	}
	return id, nil
}

// IdentityOf returns the identity in cert's URI SANs. A certificate must
// carry exactly one jsp: URI; two would let a holder choose which one a
// peer sees.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []string
	for _, u := range cert.URIs {
		if u.Scheme == IdentityScheme {
			found = append(found, u.String())
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("ca: certificate %x has no %s: URI SAN", cert.SerialNumber, IdentityScheme)
	case 1:
		return ParseIdentity(found[0])
	default:
		return Identity{}, fmt.Errorf("ca: certificate %x has %d %s: URI SANs", cert.SerialNumber, len(found), IdentityScheme)
	}
}
