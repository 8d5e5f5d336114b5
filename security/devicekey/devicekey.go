// Package devicekey authenticates client devices by proof of possession of
// an Ed25519 device key, bound to the TLS connection (JSP §5.1 HELLO auth,
// §7.4).
//
// The flow:
//
//  1. A device generates a key pair once ([GenerateKey]) and keeps the
//     private key (its seed) in the platform's secure storage. The public
//     key is registered for the user ([Registry.Register]); its [ID] is
//     derived from the key.
//  2. After the TLS 1.3 handshake both ends compute the same exporter value
//     ([Binding]: RFC 8446 §7.5 keying material exporter with label
//     ExporterLabel, empty context, 32 bytes; the RFC 9266 tls-exporter
//     construction with a JSP label). It is unique to the connection.
//  3. The device signs ProofContext || device id || exporter ([Prove]) and
//     sends the [Proof] in HELLO.
//  4. The server recomputes the exporter on its side of the connection and
//     checks the signature with the registered key ([Authenticate]). A
//     proof captured on one connection is useless on another, because the
//     other connection's exporter differs.
//
// Proof encoding (ProofSize = 81 bytes):
//
//	offset  size  field
//	0       1     version = 0x01
//	1       16    device id: first 16 bytes of SHA-256(Ed25519 public key)
//	17      64    Ed25519 signature over ProofContext || device id || exporter
package devicekey

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Channel-binding and proof constants.
const (
	// ExporterLabel is the TLS exporter label of the device binding. It
	// differs from RFC 9266's "EXPORTER-Channel-Binding" so that a JSP
	// proof can never be replayed to another protocol's channel binding.
	ExporterLabel = "EXPORTER-JSP-device-binding"
	// ExporterLength is the length of the exporter value.
	ExporterLength = 32
	// ProofContext is prepended to the signed message (domain separation).
	ProofContext = "JSP-DEVICE-PROOF-v1\x00"
	// ProofVersion is the proof encoding version.
	ProofVersion = 1
	// IDSize is the length of a device id.
	IDSize = 16
	// ProofSize is the encoded length of a Proof.
	ProofSize = 1 + IDSize + ed25519.SignatureSize
)

// ID names a device: the first 16 bytes of the SHA-256 of its public key.
type ID [IDSize]byte

// String returns the id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses the hex form.
func ParseID(s string) (ID, error) {
	var id ID
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != IDSize {
		return id, fmt.Errorf("devicekey: id %q is not %d hex bytes", s, IDSize)
	}
	copy(id[:], raw)
	return id, nil
}

// PublicKey is a device's Ed25519 public key.
type PublicKey [ed25519.PublicKeySize]byte

// ID returns the device id of k.
func (k PublicKey) ID() ID {
	sum := sha256.Sum256(k[:])
	return ID(sum[:IDSize])
}

// String returns the key in unpadded base64url, the form a device sends
// at registration.
func (k PublicKey) String() string { return base64.RawURLEncoding.EncodeToString(k[:]) }

// ParsePublicKey parses the String form.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) != len(k) {
		return k, fmt.Errorf("devicekey: public key %q is not %d base64url bytes", s, len(k))
	}
	copy(k[:], raw)
	return k, nil
}

// PrivateKey is a device's Ed25519 private key. Its String method never
// prints key material.
type PrivateKey struct {
	key ed25519.PrivateKey
}

// GenerateKey returns a new device key. rand nil means crypto/rand.
func GenerateKey(rand io.Reader) (PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("devicekey: generate key: %w", err)
	}
	return PrivateKey{key: k}, nil
}

// NewPrivateKeyFromSeed restores a key from its 32-byte seed.
func NewPrivateKeyFromSeed(seed []byte) (PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return PrivateKey{}, fmt.Errorf("devicekey: seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return PrivateKey{key: ed25519.NewKeyFromSeed(seed)}, nil
}

// Seed returns the 32-byte seed to store the key with.
func (k PrivateKey) Seed() []byte { return k.key.Seed() }

// IsZero reports whether k holds no key.
func (k PrivateKey) IsZero() bool { return k.key == nil }

// Public returns the public half.
func (k PrivateKey) Public() PublicKey { return PublicKey(k.key[ed25519.SeedSize:]) }

// String names the key by device id only.
func (k PrivateKey) String() string {
	if k.IsZero() {
		return "devicekey.PrivateKey(none)"
	}
	return "devicekey.PrivateKey(" + k.Public().ID().String() + ")"
}

// Binding returns the connection's channel-binding value. Both ends of one
// TLS connection get the same value, and no other connection does. Only
// TLS 1.3 is accepted (TLS_REQUIRED otherwise): there the exporter is
// bound to the full handshake, with no renegotiation or triple-handshake
// attack (RFC 9266 §2).
func Binding(cs tls.ConnectionState) ([]byte, error) {
	if cs.Version != tls.VersionTLS13 {
		return nil, jsperr.Newf(jsperr.TlsRequired, "device binding needs TLS 1.3, connection uses %s", tls.VersionName(cs.Version))
	}
	if !cs.HandshakeComplete {
		return nil, jsperr.New(jsperr.ChannelBindingFailed, "TLS handshake not complete")
	}
	b, err := cs.ExportKeyingMaterial(ExporterLabel, nil, ExporterLength)
	if err != nil {
		return nil, jsperr.Wrap(jsperr.ChannelBindingFailed, fmt.Errorf("export keying material: %w", err))
	}
	return b, nil
}

// Proof shows possession of a device key on one connection.
type Proof struct {
	Device    ID
	Signature [ed25519.SignatureSize]byte
}

// Len returns the encoded length, ProofSize.
func (p Proof) Len() int { return ProofSize }

// Append appends the encoded proof to b.
func (p Proof) Append(b []byte) []byte {
	b = append(b, ProofVersion)
	b = append(b, p.Device[:]...)
	return append(b, p.Signature[:]...)
}

// ParseProof decodes a proof from the start of b and returns it with the
// number of bytes consumed. Errors carry code CHANNEL_BINDING_FAILED.
func ParseProof(b []byte) (Proof, int, error) {
	if len(b) < ProofSize {
		return Proof{}, 0, jsperr.Newf(jsperr.ChannelBindingFailed, "device proof is %d bytes, want %d", len(b), ProofSize)
	}
	if b[0] != ProofVersion {
		return Proof{}, 0, jsperr.Newf(jsperr.ChannelBindingFailed, "device proof version %d, want %d", b[0], ProofVersion)
	}
	var p Proof
	copy(p.Device[:], b[1:])
	copy(p.Signature[:], b[1+IDSize:])
	return p, ProofSize, nil
}

func proofMessage(id ID, binding []byte) []byte {
	m := make([]byte, 0, len(ProofContext)+IDSize+len(binding))
	m = append(m, ProofContext...)
	m = append(m, id[:]...)
	return append(m, binding...)
}

// ProveBinding signs binding (from Binding, or a QUIC connection's
// tls.ConnectionState) with k.
func ProveBinding(k PrivateKey, binding []byte) Proof {
	p := Proof{Device: k.Public().ID()}
	copy(p.Signature[:], ed25519.Sign(k.key, proofMessage(p.Device, binding)))
	return p
}

// Prove signs the binding of the connection described by cs.
func Prove(k PrivateKey, cs tls.ConnectionState) (Proof, error) {
	if k.IsZero() {
		return Proof{}, errors.New("devicekey: prove: no key")
	}
	b, err := Binding(cs)
	if err != nil {
		return Proof{}, err
	}
	return ProveBinding(k, b), nil
}

// VerifyBinding checks p against pub and binding. A failure is
// CHANNEL_BINDING_FAILED: a wrong key, or a proof made for another
// connection.
func VerifyBinding(pub PublicKey, binding []byte, p Proof) error {
	if p.Device != pub.ID() {
		return jsperr.Newf(jsperr.ChannelBindingFailed, "proof names device %s, key belongs to %s", p.Device, pub.ID())
	}
	if len(binding) != ExporterLength {
		return jsperr.Newf(jsperr.ChannelBindingFailed, "binding is %d bytes, want %d", len(binding), ExporterLength)
	}
	if !ed25519.Verify(ed25519.PublicKey(pub[:]), proofMessage(p.Device, binding), p.Signature[:]) {
		return jsperr.Newf(jsperr.ChannelBindingFailed, "proof of device %s does not verify for this connection", p.Device)
	}
	return nil
}

// Verify checks p against pub on the connection described by cs.
func Verify(pub PublicKey, cs tls.ConnectionState, p Proof) error {
	b, err := Binding(cs)
	if err != nil {
		return err
	}
	return VerifyBinding(pub, b, p)
}
