package msgsig

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/wire"
)

// KeyCommand is the service command that publishes device keys: its
// request body is a KeyRequest, its reply body a KeyReply (JSP §4.3).
const KeyCommand = "keys.device"

// ErrBadKeyMessage: a key request or reply could not be decoded.
var ErrBadKeyMessage = errors.New("msgsig: malformed key message")

// maxOwnerLen caps the owner in a key reply, as wire caps a sender.
const maxOwnerLen = wire.MaxSenderLen

// KeyRequest asks for a device's public key. CBOR map:
//
//	1 device  bstr, 16 bytes  the device id (jsp-signer)
//	2 user    tstr, 1..256    optional: answer only if the device is this user's
type KeyRequest struct {
	Device devicekey.ID
	User   string
}

// KeyReply is a registered device key. CBOR map:
//
//	1 device      bstr, 16 bytes  the device id
//	2 owner       tstr, 1..256    the user the device acts for (absent when none)
//	3 key         bstr, 32 bytes  the Ed25519 public key; hashes to device
//	4 registered  uint            Unix ms, when registered (absent when unknown)
//	5 revoked     uint            Unix ms, when revoked (absent while active)
type KeyReply struct {
	Device     devicekey.ID
	Owner      string
	Key        devicekey.PublicKey
	Registered time.Time
	Revoked    time.Time
}

// Append appends the encoding of r to b.
func (r *KeyRequest) Append(b []byte) []byte {
	n := 1
	if r.User != "" {
		n++
	}
	b = wire.AppendCBORMapHeader(b, n)
	b = wire.AppendCBORUint(b, 1)
	b = wire.AppendCBORBytes(b, r.Device[:])
	if r.User != "" {
		b = wire.AppendCBORUint(b, 2)
		b = wire.AppendCBORText(b, r.User)
	}
	return b
}

// ParseKeyRequest decodes a request that fills all of b.
func ParseKeyRequest(b []byte) (KeyRequest, error) {
	var r KeyRequest
	err := decodeKeyMap(b, "key request", []uint64{1}, func(d *wire.CBORDecoder, k uint64) (bool, error) {
		var err error
		switch k {
		case 1:
			err = readID(d, &r.Device)
		case 2:
			r.User, err = d.Text(maxOwnerLen)
			if err == nil && r.User == "" {
				err = errors.New("empty user")
			}
		default:
			return false, nil
		}
		return true, err
	})
	return r, err
}

// decodeKeyMap decodes the CBOR map that fills all of b, handing each key
// to field, which reads the value and reports whether it knew the key;
// unknown keys are skipped (JSP §8.3). Every key in required must appear.
// Failures wrap ErrBadKeyMessage and name what (the message) and the key.
func decodeKeyMap(b []byte, what string, required []uint64, field func(d *wire.CBORDecoder, k uint64) (bool, error)) error {
	d := wire.NewCBORDecoder(b)
	m, err := d.Map(8)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", what, ErrBadKeyMessage, err)
	}
	for {
		k, ok, err := m.Next()
		if err != nil {
			return fmt.Errorf("%s: %w: %w", what, ErrBadKeyMessage, err)
		}
		if !ok {
			break
		}
		known, err := field(&d, k)
		if err == nil && !known {
			err = d.Skip()
		}
		if err != nil {
			return fmt.Errorf("%s field %d: %w: %w", what, k, ErrBadKeyMessage, err)
		}
	}
	for _, k := range required {
		if !m.Has(k) {
			return fmt.Errorf("%s without field %d: %w", what, k, ErrBadKeyMessage)
		}
	}
	if d.Remaining() != 0 {
		return fmt.Errorf("%s: %d bytes after the map: %w", what, d.Remaining(), ErrBadKeyMessage)
	}
	return nil
}

// Append appends the encoding of r to b.
func (r *KeyReply) Append(b []byte) []byte {
	n := 2
	if r.Owner != "" {
		n++
	}
	if !r.Registered.IsZero() {
		n++
	}
	if !r.Revoked.IsZero() {
		n++
	}
	b = wire.AppendCBORMapHeader(b, n)
	b = wire.AppendCBORUint(b, 1)
	b = wire.AppendCBORBytes(b, r.Device[:])
	if r.Owner != "" {
		b = wire.AppendCBORUint(b, 2)
		b = wire.AppendCBORText(b, r.Owner)
	}
	b = wire.AppendCBORUint(b, 3)
	b = wire.AppendCBORBytes(b, r.Key[:])
	if !r.Registered.IsZero() {
		b = wire.AppendCBORUint(b, 4)
		b = wire.AppendCBORUint(b, uint64(max(r.Registered.UnixMilli(), 1)))
	}
	if !r.Revoked.IsZero() {
		b = wire.AppendCBORUint(b, 5)
		b = wire.AppendCBORUint(b, uint64(max(r.Revoked.UnixMilli(), 1)))
	}
	return b
}

// maxUnixMs bounds decoded times so that time.UnixMilli cannot overflow.
const maxUnixMs = 1 << 50

// ParseKeyReply decodes a reply that fills all of b and checks that its
// key hashes to its device id.
func ParseKeyReply(b []byte) (KeyReply, error) {
	var r KeyReply
	err := decodeKeyMap(b, "key reply", []uint64{1, 3}, func(d *wire.CBORDecoder, k uint64) (bool, error) {
		var err error
		switch k {
		case 1:
			err = readID(d, &r.Device)
		case 2:
			r.Owner, err = d.Text(maxOwnerLen)
			if err == nil && r.Owner == "" {
				// A default value is omitted, never sent (JSP §6.2).
				err = errors.New("empty owner")
			}
		case 3:
			var raw []byte
			raw, err = d.Bytes(ed25519.PublicKeySize)
			if err == nil && len(raw) != ed25519.PublicKeySize {
				err = fmt.Errorf("key of %d bytes", len(raw))
			}
			copy(r.Key[:], raw)
		case 4, 5:
			var ms uint64
			ms, err = d.Uint()
			if err == nil && (ms == 0 || ms > maxUnixMs) {
				err = fmt.Errorf("time %d out of range", ms)
			}
			t := time.UnixMilli(int64(ms))
			if k == 4 {
				r.Registered = t
			} else {
				r.Revoked = t
			}
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil {
		return r, err
	}
	if r.Key.ID() != r.Device {
		return r, fmt.Errorf("key reply: key of device %s given for %s: %w", r.Key.ID(), r.Device, ErrBadKeyMessage)
	}
	return r, nil
}

// DeviceRecord returns r as a registry record.
func (r *KeyReply) DeviceRecord() devicekey.Device {
	return devicekey.Device{ID: r.Device, Key: r.Key, Owner: r.Owner, Registered: r.Registered, Revoked: r.Revoked}
}

// KeyReplyOf returns the reply for a registered device.
func KeyReplyOf(d devicekey.Device) KeyReply {
	return KeyReply{Device: d.ID, Owner: d.Owner, Key: d.Key, Registered: d.Registered, Revoked: d.Revoked}
}

func readID(d *wire.CBORDecoder, id *devicekey.ID) error {
	raw, err := d.Bytes(devicekey.IDSize)
	if err != nil {
		return err
	}
	if len(raw) != devicekey.IDSize {
		return fmt.Errorf("device id of %d bytes", len(raw))
	}
	copy(id[:], raw)
	return nil
}
