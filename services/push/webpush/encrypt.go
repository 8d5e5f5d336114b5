package webpush

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Sizes of the aes128gcm content coding (RFC 8188, Section 2) as Web Push
// uses it (RFC 8291, Section 4).
const (
	// SaltLen is the salt at the start of the header.
	SaltLen = 16
	// KeyLen is an uncompressed P-256 point, the header's keyid.
	KeyLen = 65
	// AuthLen is the subscription's authentication secret.
	AuthLen = 16
	// HeaderLen is salt(16) || rs(4) || idlen(1) || keyid(65).
	HeaderLen = SaltLen + 4 + 1 + KeyLen
	// TagLen is the AES-GCM tag.
	TagLen = 16
	// MaxBodyLen is the largest body a push service must accept
	// (RFC 8030, Section 7.2).
	MaxBodyLen = 4096
	// MaxPlaintext is what one record under MaxBodyLen carries: the body
	// less the header, the tag and the padding delimiter (RFC 8291,
	// Section 4: 3993 octets).
	MaxPlaintext = MaxBodyLen - HeaderLen - TagLen - 1
	// RecordSize is the rs written in the header; it exceeds every single
	// record this package writes, as RFC 8291, Section 4 requires.
	RecordSize = 4096
)

// ErrDecrypt is the sentinel of every decryption failure.
var ErrDecrypt = errors.New("webpush: cannot decrypt")

// ErrPayloadTooLarge: a payload over MaxPlaintext; it also carries
// jsperr.PushPayloadTooLarge.
var ErrPayloadTooLarge = errors.New("webpush: payload too large")

// keys derives the content encryption key and nonce (RFC 8291, Section 3.4
// and RFC 8188, Section 2.2/2.3):
//
//	IKM   = HKDF(salt=auth, ikm=ECDH(as, ua), "WebPush: info" 0x00 ua_pub as_pub, 32)
//	PRK   = HKDF-Extract(salt, IKM)
//	CEK   = HKDF-Expand(PRK, "Content-Encoding: aes128gcm" 0x00, 16)
//	NONCE = HKDF-Expand(PRK, "Content-Encoding: nonce" 0x00, 12)
func keys(ecdhSecret, authSecret, uaPublic, asPublic, salt []byte) (cek, nonce []byte, err error) {
	info := make([]byte, 0, 14+2*KeyLen)
	info = append(info, "WebPush: info\x00"...)
	info = append(info, uaPublic...)
	info = append(info, asPublic...)
	ikm, err := hkdf.Key(sha256.New, ecdhSecret, authSecret, string(info), 32)
	if err != nil {
		return nil, nil, fmt.Errorf("webpush: derive ikm: %w", err)
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, nil, fmt.Errorf("webpush: derive prk: %w", err)
	}
	if cek, err = hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16); err != nil {
		return nil, nil, fmt.Errorf("webpush: derive cek: %w", err)
	}
	if nonce, err = hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12); err != nil {
		return nil, nil, fmt.Errorf("webpush: derive nonce: %w", err)
	}
	return cek, nonce, nil
}

func gcm(cek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, fmt.Errorf("webpush: aes: %w", err)
	}
	return cipher.NewGCM(block)
}

// Encrypt encrypts plaintext for a subscription whose public key is
// uaPublic (65-byte uncompressed P-256 point, the "p256dh" key) and whose
// authentication secret is authSecret (16 bytes), with a fresh
// application server key pair and salt from rand. It returns the
// aes128gcm body: header then one record (RFC 8291, Section 4).
func Encrypt(rand io.Reader, plaintext, uaPublic, authSecret []byte) ([]byte, error) {
	as, err := ecdh.P256().GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("webpush: generate key: %w", err)
	}
	salt := make([]byte, SaltLen)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("webpush: salt: %w", err)
	}
	return encrypt(as, salt, plaintext, uaPublic, authSecret)
}

// encrypt is Encrypt with a given key pair and salt (the RFC 8291 example
// fixes both).
func encrypt(as *ecdh.PrivateKey, salt, plaintext, uaPublic, authSecret []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("%w: %w", ErrPayloadTooLarge,
			jsperr.Newf(jsperr.PushPayloadTooLarge, "%d bytes, limit %d", len(plaintext), MaxPlaintext))
	}
	if len(authSecret) != AuthLen {
		return nil, fmt.Errorf("webpush: auth secret of %d bytes, want %d", len(authSecret), AuthLen)
	}
	ua, err := ecdh.P256().NewPublicKey(uaPublic)
	if err != nil {
		return nil, fmt.Errorf("webpush: subscription key: %w", err)
	}
	secret, err := as.ECDH(ua)
	if err != nil {
		return nil, fmt.Errorf("webpush: ecdh: %w", err)
	}
	asPublic := as.PublicKey().Bytes()
	cek, nonce, err := keys(secret, authSecret, uaPublic, asPublic, salt)
	if err != nil {
		return nil, err
	}
	aead, err := gcm(cek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, HeaderLen+len(plaintext)+1+TagLen)
	out = append(out, salt...)
	out = binary.BigEndian.AppendUint32(out, RecordSize)
	out = append(out, KeyLen)
	out = append(out, asPublic...)
	// One record, the last: plaintext, delimiter 0x02, no padding
	// (RFC 8188, Section 2). The record's sequence number is 0, so the
	// nonce is used as derived.
	record := append(append(make([]byte, 0, len(plaintext)+1), plaintext...), 2)
	return aead.Seal(out, nonce, record, nil), nil
}

// Header is the parsed aes128gcm header of a push message.
type Header struct {
	Salt       []byte
	RecordSize uint32
	KeyID      []byte // the application server's public key
}

// ParseHeader parses the aes128gcm header at the start of body and returns
// it and the number of bytes it took. Web Push requires a 65-byte keyid
// (RFC 8291, Section 4) and a record size of at least 18 (RFC 8188,
// Section 2).
func ParseHeader(body []byte) (Header, int, error) {
	if len(body) < SaltLen+5 {
		return Header{}, 0, fmt.Errorf("%w: header truncated", ErrDecrypt)
	}
	h := Header{Salt: body[:SaltLen], RecordSize: binary.BigEndian.Uint32(body[SaltLen:])}
	idLen := int(body[SaltLen+4])
	if idLen != KeyLen {
		return Header{}, 0, fmt.Errorf("%w: keyid of %d bytes, want %d", ErrDecrypt, idLen, KeyLen)
	}
	if h.RecordSize < 18 {
		return Header{}, 0, fmt.Errorf("%w: record size %d below 18", ErrDecrypt, h.RecordSize)
	}
	if len(body) < HeaderLen {
		return Header{}, 0, fmt.Errorf("%w: keyid truncated", ErrDecrypt)
	}
	h.KeyID = body[SaltLen+5 : HeaderLen]
	return h, HeaderLen, nil
}

// Decrypt is the user agent's side: it decrypts a single-record aes128gcm
// push message with the subscription's private key and authentication
// secret, checks the padding delimiter (RFC 8291, Section 4: anything but
// 0x02 is discarded) and returns the plaintext.
func Decrypt(ua *ecdh.PrivateKey, authSecret, body []byte) ([]byte, error) {
	h, n, err := ParseHeader(body)
	if err != nil {
		return nil, err
	}
	record := body[n:]
	if len(record) < TagLen+1 {
		return nil, fmt.Errorf("%w: record of %d bytes", ErrDecrypt, len(record))
	}
	if uint64(len(record)) > uint64(h.RecordSize) {
		return nil, fmt.Errorf("%w: more than one record (%d bytes, rs %d)", ErrDecrypt, len(record), h.RecordSize)
	}
	as, err := ecdh.P256().NewPublicKey(h.KeyID)
	if err != nil {
		return nil, fmt.Errorf("%w: keyid: %w", ErrDecrypt, err)
	}
	secret, err := ua.ECDH(as)
	if err != nil {
		return nil, fmt.Errorf("%w: ecdh: %w", ErrDecrypt, err)
	}
	cek, nonce, err := keys(secret, authSecret, ua.PublicKey().Bytes(), h.KeyID, h.Salt)
	if err != nil {
		return nil, err
	}
	aead, err := gcm(cek)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	// Strip padding: trailing zeros, then the last-record delimiter.
	i := len(plain) - 1
	for i >= 0 && plain[i] == 0 {
		i--
	}
	if i < 0 || plain[i] != 2 {
		return nil, fmt.Errorf("%w: bad padding delimiter", ErrDecrypt)
	}
	return plain[:i], nil
}
