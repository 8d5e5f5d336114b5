package sqlcommon

import (
	"fmt"

	"github.com/jetstreamproto/jsp/server/storage"
)

// DeviceKeyLen is the length of a device's raw Ed25519 public key.
const DeviceKeyLen = 32

// Device checks a device for RegisterDevice.
func Device(d storage.Device) error {
	if err := Name("device id", d.ID); err != nil {
		return err
	}
	if len(d.PublicKey) != DeviceKeyLen {
		return fmt.Errorf("%w: device public key is %d bytes, want %d", storage.ErrInvalid, len(d.PublicKey), DeviceKeyLen)
	}
	if err := Name("device owner", d.Owner); err != nil {
		return err
	}
	return OptionalName("device name", d.Name)
}

// DeviceQuery checks a device query.
func DeviceQuery(q storage.DeviceQuery) error {
	if err := OptionalName("device owner", q.Owner); err != nil {
		return err
	}
	if err := OptionalName("device cursor", q.After); err != nil {
		return err
	}
	if q.Limit < 0 {
		return fmt.Errorf("%w: negative limit %d", storage.ErrInvalid, q.Limit)
	}
	return nil
}
