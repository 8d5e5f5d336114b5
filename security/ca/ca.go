// Package ca is JSP's built-in certificate authority for service-to-service
// mTLS (JSP §7.4).
//
// The flow:
//
//  1. `jsp ca init` ([Init]) creates a CA key (ECDSA P-256 by default,
//     Ed25519 optionally) and a self-signed CA certificate for one cluster in
//     a directory. The key file is mode 0600 and [Open] refuses it when
//     others can read it.
//  2. [CA.Issue] signs a short-lived leaf certificate (24 h by default,
//     down to minutes) whose only identity is the URI SAN
//     jsp://<cluster>/<role>/<name> ([Identity]).
//  3. A service runs a [Renewer]: it reissues at 2/3 of the lifetime and
//     hands the current certificate to crypto/tls through GetCertificate /
//     GetClientCertificate, so listeners rotate without dropping
//     connections.
//  4. Peers check each other with a [Verifier] (chain to a trusted CA,
//     expiry, cluster, role, optional key pins); each refusal is a
//     distinct *jsperr.Error. [ServerConfig] and [ClientConfig] build
//     TLS 1.3 mTLS configurations around it.
//  5. [CA.Rotate] replaces the CA key. The old CA stays trusted until every
//     certificate it issued has expired (the overlap), so nothing breaks
//     during a rotation; [Inspect] summarises the directory.
//
// Directory layout: ca.key (current CA private key, PKCS#8 PEM, 0600),
// ca.crt (current CA certificate), trust.pem (every trusted CA certificate,
// current first; distribute it to services), state.json (when retired CAs
// stop being trusted).
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Defaults for a zero [Config] field.
const (
	// DefaultCALifetime is how long a new CA certificate is valid. Rotate
	// well before it ends; leaf certificates never outlive their CA.
	DefaultCALifetime = 3 * 365 * 24 * time.Hour
	// DefaultLifetime is the lifetime of a service certificate issued with
	// lifetime 0.
	DefaultLifetime = 24 * time.Hour
	// DefaultMinLifetime is the shortest lifetime Issue accepts.
	DefaultMinLifetime = time.Minute
	// DefaultMaxLifetime is the longest lifetime Issue accepts. It is also
	// the default overlap of a rotation: an old CA stays trusted this long,
	// which covers every certificate it can have issued.
	DefaultMaxLifetime = 7 * 24 * time.Hour
	// DefaultBackdate moves NotBefore this far into the past so that a peer
	// whose clock is slightly behind accepts a fresh certificate.
	DefaultBackdate = time.Minute
)

// MinLifetimeFloor is the smallest MinLifetime a Config accepts. Below a
// second, renewal would be all the CA does.
const MinLifetimeFloor = time.Second

// File names inside a CA directory.
const (
	KeyFile   = "ca.key"
	CertFile  = "ca.crt"
	TrustFile = "trust.pem"
	StateFile = "state.json"
)

// Algorithm is the key algorithm of the CA and of the certificates it
// issues.
type Algorithm string

// Supported algorithms.
const (
	// ECDSAP256 is ECDSA on NIST P-256, which every TLS stack accepts.
	ECDSAP256 Algorithm = "ecdsa-p256"
	// Ed25519 gives smaller, faster signatures, but browsers do not accept
	// Ed25519 certificates; use it among services only.
	Ed25519 Algorithm = "ed25519"
)

// ErrExists is returned by Init when the directory already holds a CA key.
var ErrExists = errors.New("ca: directory already holds a CA")

// ErrNoCA is returned by Open when the directory holds no CA key.
var ErrNoCA = errors.New("ca: no CA in directory")

// Config configures a CA. The zero value is ready to use for Open; Init
// needs Cluster.
type Config struct {
	// Cluster names the cluster; every identity the CA issues lives in it.
	// Init requires it; Open checks it against the CA certificate when set.
	Cluster string
	// Algorithm is the key algorithm for Init and Rotate. Zero means
	// ECDSAP256 for Init and the current CA's algorithm for Rotate.
	Algorithm Algorithm
	// CALifetime is the validity of a CA certificate made by Init or
	// Rotate. Zero means DefaultCALifetime (3 years).
	CALifetime time.Duration
	// DefaultLifetime is used by Issue for lifetime 0. Zero means
	// DefaultLifetime (24 h), moved into MinLifetime..MaxLifetime.
	DefaultLifetime time.Duration
	// MinLifetime is the shortest lifetime Issue accepts. Zero means
	// DefaultMinLifetime (1 min); at least MinLifetimeFloor (1 s).
	MinLifetime time.Duration
	// MaxLifetime is the longest lifetime Issue accepts and the default
	// rotation overlap. Zero means DefaultMaxLifetime (7 days).
	MaxLifetime time.Duration
	// Backdate moves NotBefore into the past against clock skew. Zero means
	// DefaultBackdate (1 min); negative means none.
	Backdate time.Duration
	// Now is the clock. Zero means time.Now.
	Now func() time.Time
	// Rand supplies serial numbers and Ed25519 keys. Zero means
	// crypto/rand.Reader. (Since Go 1.26 ECDSA key generation and signing
	// always use the system source.)
	Rand io.Reader
}

func (c *Config) validate() error {
	var errs []error
	if c.Cluster != "" {
		if err := ValidateCluster(c.Cluster); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.Algorithm {
	case "", ECDSAP256, Ed25519:
	default:
		errs = append(errs, fmt.Errorf("unknown algorithm %q (want %s or %s)", c.Algorithm, ECDSAP256, Ed25519))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"CALifetime", c.CALifetime}, {"DefaultLifetime", c.DefaultLifetime},
		{"MinLifetime", c.MinLifetime}, {"MaxLifetime", c.MaxLifetime},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	if c.MinLifetime != 0 && c.MinLifetime < MinLifetimeFloor {
		errs = append(errs, fmt.Errorf("MinLifetime %v below %v", c.MinLifetime, MinLifetimeFloor))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ca: invalid config: %w", err)
	}
	return nil
}

func (c *Config) setDefaults() error {
	if c.CALifetime == 0 {
		c.CALifetime = DefaultCALifetime
	}
	if c.MinLifetime == 0 {
		c.MinLifetime = DefaultMinLifetime
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	if c.DefaultLifetime == 0 {
		c.DefaultLifetime = min(max(DefaultLifetime, c.MinLifetime), c.MaxLifetime)
	}
	if c.Backdate == 0 {
		c.Backdate = DefaultBackdate
	} else if c.Backdate < 0 {
		c.Backdate = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.MinLifetime > c.MaxLifetime {
		return fmt.Errorf("ca: invalid config: MinLifetime %v above MaxLifetime %v", c.MinLifetime, c.MaxLifetime)
	}
	if c.DefaultLifetime < c.MinLifetime || c.DefaultLifetime > c.MaxLifetime {
		return fmt.Errorf("ca: invalid config: DefaultLifetime %v outside %v..%v", c.DefaultLifetime, c.MinLifetime, c.MaxLifetime)
	}
	if c.MaxLifetime > c.CALifetime {
		return fmt.Errorf("ca: invalid config: MaxLifetime %v above CALifetime %v", c.MaxLifetime, c.CALifetime)
	}
	return nil
}

func resolve(cfg Config) (Config, error) {
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	if err := cfg.setDefaults(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// CA is an open certificate authority. Its methods are safe for concurrent
// use; one process at a time may change a directory (Init, Rotate).
type CA struct {
	dir string
	cfg Config

	mu    sync.Mutex
	key   crypto.Signer     // guarded by mu
	cert  *x509.Certificate // guarded by mu
	trust *Trust            // guarded by mu
}

// Init creates a CA for cfg.Cluster in dir (created with mode 0700 if
// missing). It fails with ErrExists when dir already holds a CA key.
func Init(dir string, cfg Config) (*CA, error) {
	cfg, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Cluster == "" {
		return nil, errors.New("ca: init: Config.Cluster is required")
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = ECDSAP256
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca: init %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ca: init %s: %w", dir, err)
	}
	key, cert, err := newAuthority(cfg, cfg.Algorithm, cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("ca: init %s: %w", dir, err)
	}
	c := &CA{dir: dir, cfg: cfg, key: key, cert: cert, trust: &Trust{anchors: []Anchor{{Cert: cert}}}}
	// The key is written last: a directory without ca.key is not a CA, so
	// an interrupted Init can simply be run again.
	if err := c.writeTrustLocked(); err != nil {
		return nil, fmt.Errorf("ca: init %s: %w", dir, err)
	}
	if err := c.writeKeyLocked(); err != nil {
		return nil, fmt.Errorf("ca: init %s: %w", dir, err)
	}
	return c, nil
}

// Open loads the CA in dir. The current CA certificate is the trusted one
// whose public key matches ca.key; ca.crt is a convenience copy and is
// rewritten when it is stale (after an interrupted rotation).
func Open(dir string, cfg Config) (*CA, error) {
	cfg, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	key, err := readKey(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	trust, err := LoadTrust(dir)
	if err != nil {
		return nil, err
	}
	var cert *x509.Certificate
	var rest []Anchor
	for _, a := range trust.anchors {
		if cert == nil && publicKeysEqual(a.Cert.PublicKey, key.Public()) {
			cert = a.Cert
			continue
		}
		rest = append(rest, a)
	}
	if cert == nil {
		return nil, fmt.Errorf("ca: open %s: no certificate in %s matches %s", dir, TrustFile, KeyFile)
	}
	cluster, err := clusterOf(cert)
	if err != nil {
		return nil, fmt.Errorf("ca: open %s: %w", dir, err)
	}
	if cfg.Cluster != "" && cfg.Cluster != cluster {
		return nil, fmt.Errorf("ca: open %s: CA serves cluster %q, not %q", dir, cluster, cfg.Cluster)
	}
	cfg.Cluster = cluster
	if cfg.Algorithm == "" {
		cfg.Algorithm = algorithmOf(key)
	}
	c := &CA{dir: dir, cfg: cfg, key: key, cert: cert,
		trust: &Trust{anchors: append([]Anchor{{Cert: cert}}, rest...)}}
	if stale, err := os.ReadFile(filepath.Join(dir, CertFile)); err != nil || !bytesEqualPEMCert(stale, cert) {
		if err := writeFileAtomic(filepath.Join(dir, CertFile), pemCert(cert), 0o644); err != nil {
			return nil, fmt.Errorf("ca: open %s: repair %s: %w", dir, CertFile, err)
		}
	}
	return c, nil
}

// Dir returns the CA directory.
func (c *CA) Dir() string { return c.dir }

// Cluster returns the cluster the CA serves.
func (c *CA) Cluster() string { return c.cfg.Cluster }

// Certificate returns the current CA certificate.
func (c *CA) Certificate() *x509.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert
}

// Trust returns the trust anchors: the current CA and retired CAs still in
// their overlap.
func (c *CA) Trust() *Trust {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trust
}

// IssueOption adds something to one certificate.
type IssueOption func(*issueOptions)

type issueOptions struct {
	dnsNames []string
	ips      []net.IP
}

// WithDNSNames adds DNS SANs, for peers that check host names (e.g. a NATS
// server). JSP peers authorise by the identity URI instead.
func WithDNSNames(names ...string) IssueOption {
	return func(o *issueOptions) { o.dnsNames = append(o.dnsNames, names...) }
}

// WithIPAddresses adds IP SANs.
func WithIPAddresses(addrs ...netip.Addr) IssueOption {
	return func(o *issueOptions) {
		for _, a := range addrs {
			o.ips = append(o.ips, net.IP(a.AsSlice()))
		}
	}
}

// Issue signs a new key pair for id, valid for lifetime from now (0 means
// the configured default). id.Cluster may be empty and then is the CA's
// cluster. The returned certificate has Leaf set; its chain holds only the
// leaf, because every peer already has the CA as a trust anchor.
func (c *CA) Issue(id Identity, lifetime time.Duration, opts ...IssueOption) (*tls.Certificate, error) {
	if id.Cluster == "" {
		id.Cluster = c.cfg.Cluster
	}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("ca: issue: %w", err)
	}
	if id.Cluster != c.cfg.Cluster {
		return nil, fmt.Errorf("ca: issue %s: CA serves cluster %q", id, c.cfg.Cluster)
	}
	if lifetime == 0 {
		lifetime = c.cfg.DefaultLifetime
	}
	if lifetime < c.cfg.MinLifetime || lifetime > c.cfg.MaxLifetime {
		return nil, fmt.Errorf("ca: issue %s: lifetime %v outside %v..%v", id, lifetime, c.cfg.MinLifetime, c.cfg.MaxLifetime)
	}
	var o issueOptions
	for _, opt := range opts {
		opt(&o)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	notAfter := now.Add(lifetime)
	if notAfter.After(c.cert.NotAfter) {
		return nil, fmt.Errorf("ca: issue %s: CA certificate expires at %s, before %s; rotate the CA",
			id, c.cert.NotAfter.UTC().Format(time.RFC3339), notAfter.UTC().Format(time.RFC3339))
	}
	key, err := newKey(c.cfg.Algorithm, c.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("ca: issue %s: %w", id, err)
	}
	serial, err := newSerial(c.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("ca: issue %s: %w", id, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: id.String()},
		NotBefore:             now.Add(-c.cfg.Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URI()},
		DNSNames:              o.dnsNames,
		IPAddresses:           o.ips,
	}
	if tmpl.NotBefore.Before(c.cert.NotBefore) {
		tmpl.NotBefore = c.cert.NotBefore
	}
	der, err := x509.CreateCertificate(c.cfg.Rand, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return nil, fmt.Errorf("ca: issue %s: sign: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: issue %s: parse own certificate: %w", id, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// RotateOptions tunes one rotation.
type RotateOptions struct {
	// Overlap is how long the old CA stays trusted. Zero means the CA's
	// MaxLifetime, which covers every certificate the old CA issued. It
	// never extends past the old CA certificate's own expiry.
	Overlap time.Duration
	// Immediate drops the old CA from the trust anchors at once, for a
	// compromised key: certificates it issued stop working immediately.
	Immediate bool
	// Algorithm of the new CA key. Zero means the current one.
	Algorithm Algorithm
}

// Rotate replaces the CA key and certificate. The old CA stays a trust
// anchor for the overlap, so certificates it issued keep working until they
// expire while new ones come from the new CA. Retired CAs whose overlap has
// ended are dropped. Services pick the new anchors up by reloading
// trust.pem ([LoadTrust], [Verifier.SetTrust]).
func (c *CA) Rotate(opts RotateOptions) error {
	if opts.Overlap < 0 {
		return fmt.Errorf("ca: rotate %s: negative overlap %v", c.dir, opts.Overlap)
	}
	alg := opts.Algorithm
	if alg == "" {
		alg = c.cfg.Algorithm
	}
	if alg != ECDSAP256 && alg != Ed25519 {
		return fmt.Errorf("ca: rotate %s: unknown algorithm %q", c.dir, alg)
	}
	overlap := opts.Overlap
	if overlap == 0 {
		overlap = c.cfg.MaxLifetime
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	key, cert, err := newAuthority(c.cfg, alg, now)
	if err != nil {
		return fmt.Errorf("ca: rotate %s: %w", c.dir, err)
	}
	anchors := []Anchor{{Cert: cert}}
	if !opts.Immediate {
		until := now.Add(overlap)
		if until.After(c.cert.NotAfter) {
			until = c.cert.NotAfter
		}
		anchors = append(anchors, Anchor{Cert: c.cert, Until: until})
	}
	for _, a := range c.trust.anchors {
		if a.Cert == c.cert || !a.activeAt(now) {
			continue
		}
		anchors = append(anchors, a)
	}
	oldKey, oldCert, oldAlg, oldTrust := c.key, c.cert, c.cfg.Algorithm, c.trust
	restore := func() { c.key, c.cert, c.cfg.Algorithm, c.trust = oldKey, oldCert, oldAlg, oldTrust }
	c.key, c.cert, c.cfg.Algorithm = key, cert, alg
	c.trust = &Trust{anchors: anchors}
	// Order matters for a crash in between: the trust files first (they
	// then hold both CAs and Open still finds the old key's certificate),
	// the key last.
	if err := c.writeTrustLocked(); err != nil {
		restore()
		return fmt.Errorf("ca: rotate %s: %w", c.dir, err)
	}
	if err := c.writeKeyLocked(); err != nil {
		restore()
		return fmt.Errorf("ca: rotate %s: %w", c.dir, err)
	}
	return nil
}

// writeTrustLocked writes state.json, trust.pem and ca.crt.
func (c *CA) writeTrustLocked() error {
	state, err := c.trust.marshalState()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(c.dir, StateFile), state, 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(c.dir, TrustFile), c.trust.PEM(), 0o644); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.dir, CertFile), pemCert(c.cert), 0o644)
}

func (c *CA) writeKeyLocked() error {
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return fmt.Errorf("encode CA key: %w", err)
	}
	return writeFileAtomic(filepath.Join(c.dir, KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// newAuthority makes a CA key and its self-signed certificate. The common
// name carries a short key fingerprint so that old and new CAs are told
// apart in logs and by `jsp ca inspect`.
func newAuthority(cfg Config, alg Algorithm, now time.Time) (crypto.Signer, *x509.Certificate, error) {
	key, err := newKey(alg, cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial(cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("encode CA public key: %w", err)
	}
	fp := pinOfSPKI(spki)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   fmt.Sprintf("JSP CA %s %s", cfg.Cluster, hex.EncodeToString(fp[:4])),
			Organization: []string{"JetStreamProto"},
		},
		NotBefore:             now.Add(-cfg.Backdate),
		NotAfter:              now.Add(cfg.CALifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		URIs:                  []*url.URL{{Scheme: IdentityScheme, Host: cfg.Cluster}},
	}
	der, err := x509.CreateCertificate(cfg.Rand, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return key, cert, nil
}

func newKey(alg Algorithm, rnd io.Reader) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
		if err != nil {
			return nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
		}
		return k, nil
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rnd)
		if err != nil {
			return nil, fmt.Errorf("generate Ed25519 key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("unknown algorithm %q", alg)
	}
}

func algorithmOf(key crypto.Signer) Algorithm {
	if _, ok := key.(ed25519.PrivateKey); ok {
		return Ed25519
	}
	return ECDSAP256
}

// newSerial returns a random positive 126-bit serial number. The top bit of
// the first byte is cleared so the DER integer needs no padding byte, and
// the next bit is set so it is never zero.
func newSerial(rnd io.Reader) (*big.Int, error) {
	var b [16]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return nil, fmt.Errorf("read serial number: %w", err)
	}
	b[0] = b[0]&0x7f | 0x40
	return new(big.Int).SetBytes(b[:]), nil
}

func readKey(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s missing", ErrNoCA, path)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: read key: %w", err)
	}
	// Like ssh, refuse a private key that others can read: it may already
	// have leaked, and silently using it hides that.
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("ca: key %s has mode %04o; it must not be accessible to group or others (chmod 600)",
			path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca: read key: %w", err)
	}
	key, err := ParsePrivateKeyPEM(raw)
	if err != nil {
		return nil, fmt.Errorf("ca: read key %s: %w", path, err)
	}
	return key, nil
}

// ParsePrivateKeyPEM parses a PKCS#8 "PRIVATE KEY" PEM block holding an
// ECDSA P-256 or Ed25519 key.
func ParsePrivateKeyPEM(raw []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s not supported", k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("key type %T not supported", k)
	}
}

// MarshalPEM encodes a certificate chain and its private key as PEM, the
// files `jsp ca issue` writes.
func MarshalPEM(cert *tls.Certificate) (certPEM, keyPEM []byte, err error) {
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: encode private key: %w", err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func pemCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

func bytesEqualPEMCert(raw []byte, cert *x509.Certificate) bool {
	block, _ := pem.Decode(raw)
	return block != nil && block.Type == "CERTIFICATE" && string(block.Bytes) == string(cert.Raw)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// clusterOf returns the cluster named by a CA certificate's jsp://<cluster>
// URI SAN.
func clusterOf(cert *x509.Certificate) (string, error) {
	for _, u := range cert.URIs {
		if u.Scheme == IdentityScheme && (u.Path == "" || u.Path == "/") {
			return u.Host, nil
		}
	}
	return "", fmt.Errorf("CA certificate %x names no cluster (no %s://<cluster> URI SAN)", cert.SerialNumber, IdentityScheme)
}

// writeFileAtomic replaces path with data: a crash leaves either the old or
// the new file, never a torn one. The temporary file is created with mode
// 0600, so a key is never readable by others, even for a moment.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Persist the rename itself; best effort, as some file systems refuse
	// to sync a directory.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// WriteFiles writes cert's chain to certPath (mode 0644) and its private
// key to keyPath (mode 0600), each replaced atomically.
func WriteFiles(certPath, keyPath string, cert *tls.Certificate) error {
	certPEM, keyPEM, err := MarshalPEM(cert)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}
