package auth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/token"
)

// Limits of the files an operator hands the server.
const (
	// MaxTokenKeys caps the public keys in one token key file (the same
	// cap as a token.KeySet's default).
	MaxTokenKeys = token.DefaultMaxKeys
	// MaxDeviceLine caps one line of a device list.
	MaxDeviceLine = 1024
)

// ParseTokenKeys parses the token verification keys in raw: one or more
// PEM "PUBLIC KEY" blocks (Ed25519, as `jsp token keygen` writes them), so
// that one file can hold the current and the previous key during a
// rotation. Text outside the blocks is ignored.
func ParseTokenKeys(raw []byte) ([]token.PublicKey, error) {
	var keys []token.PublicKey
	for {
		block, rest := pem.Decode(raw)
		if block == nil {
			break
		}
		raw = rest
		if len(keys) == MaxTokenKeys {
			return nil, fmt.Errorf("auth: more than %d token keys", MaxTokenKeys)
		}
		k, err := token.ParsePublicKeyPEM(pem.EncodeToMemory(block))
		if err != nil {
			return nil, fmt.Errorf("auth: token key %d: %w", len(keys)+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: no PEM PUBLIC KEY block")
	}
	return keys, nil
}

// LoadDevices registers the devices listed in r with reg and returns how
// many it registered. The list has one device per line:
//
//	<public key, unpadded base64url> <owner> [<name ...>]
//
// Blank lines and lines starting with '#' are skipped. A line whose first
// field is "revoked" lists a device that is registered and then revoked at
// once, so that an operator can keep revoked keys in the list:
//
//	revoked <public key> <owner> [<name ...>]
func LoadDevices(ctx context.Context, r io.Reader, reg devicekey.Registry) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), MaxDeviceLine)
	n := 0
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		revoked := f[0] == "revoked"
		if revoked {
			f = f[1:]
		}
		if len(f) < 2 {
			return n, fmt.Errorf("auth: device list line %d: want <public key> <owner> [<name>]", line)
		}
		pub, err := devicekey.ParsePublicKey(f[0])
		if err != nil {
			return n, fmt.Errorf("auth: device list line %d: %w", line, err)
		}
		d := devicekey.Device{ID: pub.ID(), Key: pub, Owner: f[1], Name: strings.Join(f[2:], " ")}
		if err := reg.Register(ctx, d); err != nil {
			return n, fmt.Errorf("auth: device list line %d: %w", line, err)
		}
		if revoked {
			if err := reg.Revoke(ctx, d.ID); err != nil {
				return n, fmt.Errorf("auth: device list line %d: %w", line, err)
			}
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("auth: device list: %w", err)
	}
	return n, nil
}

// DeviceLine formats d as a line of a device list.
func DeviceLine(d devicekey.Device) string {
	var b bytes.Buffer
	if !d.Active() {
		b.WriteString("revoked ")
	}
	b.WriteString(d.Key.String())
	b.WriteByte(' ')
	b.WriteString(d.Owner)
	if d.Name != "" {
		b.WriteByte(' ')
		b.WriteString(d.Name)
	}
	return b.String()
}
