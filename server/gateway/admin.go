package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/wire"
)

// The admin command service (JSP §5.9.2): COMMANDs to these service
// routes manage the device-key registry. The gateway serves them itself,
// because they need the caller's scopes and act on live sessions. Bodies
// are JSON objects.
const (
	// AdminScope is the token scope an admin command requires.
	AdminScope = "admin"
	// AdminDeviceRegister registers a device key:
	// {"key", "owner", "name"} → AdminDevice.
	AdminDeviceRegister = "admin.device.register"
	// AdminDeviceList lists devices: {"owner", "after", "limit"} →
	// {"devices": [AdminDevice], "next"}.
	AdminDeviceList = "admin.device.list"
	// AdminDeviceRevoke revokes a device and disconnects its sessions:
	// {"id"} → AdminDevice with "disconnected".
	AdminDeviceRevoke = "admin.device.revoke"

	adminPrefix = "admin."
	// maxAdminBody caps an admin command body.
	maxAdminBody = 4096
	// DefaultAdminListLimit is the page of a device list without a limit;
	// MaxAdminListLimit caps it.
	DefaultAdminListLimit = 100
	MaxAdminListLimit     = 1000
)

// DeviceLister is implemented by device registries that can list their
// devices (the storage-backed one does); AdminDeviceList needs it.
type DeviceLister interface {
	// ListDevices returns up to limit devices ordered by id, after the id
	// given (a cursor), of one owner or, with owner "", of everyone.
	ListDevices(ctx context.Context, owner, after string, limit int) ([]devicekey.Device, error)
}

// AdminDevice is a device as the admin commands report it.
type AdminDevice struct {
	ID         string    `json:"id"`
	Key        string    `json:"key"`
	Owner      string    `json:"owner"`
	Name       string    `json:"name,omitempty"`
	Registered time.Time `json:"registered"`
	Revoked    time.Time `json:"revoked,omitzero"`
	// Disconnected is how many sessions of this gateway a revoke closed;
	// other gateways close theirs at their next device check (one
	// heartbeat).
	Disconnected int `json:"disconnected,omitempty"`
}

// AdminRegisterRequest is the body of AdminDeviceRegister.
type AdminRegisterRequest struct {
	Key   string `json:"key"`
	Owner string `json:"owner"`
	Name  string `json:"name,omitempty"`
}

// AdminListRequest is the body of AdminDeviceList.
type AdminListRequest struct {
	Owner string `json:"owner,omitempty"`
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// AdminListReply is the reply of AdminDeviceList; Next continues the list
// ("" at the end).
type AdminListReply struct {
	Devices []AdminDevice `json:"devices"`
	Next    string        `json:"next,omitempty"`
}

// AdminRevokeRequest is the body of AdminDeviceRevoke.
type AdminRevokeRequest struct {
	ID string `json:"id"`
}

func isAdminCommand(name string) bool { return strings.HasPrefix(name, adminPrefix) }

func adminDevice(d devicekey.Device) AdminDevice {
	return AdminDevice{ID: d.ID.String(), Key: d.Key.String(), Owner: d.Owner, Name: d.Name,
		Registered: d.Registered.UTC(), Revoked: d.Revoked.UTC()}
}

// admin serves an admin command. Zero trust: the caller's credential must
// carry AdminScope now (a refresh may have narrowed it), whatever network
// it comes from. Every command is logged with the caller.
func (h *host) admin(ctx context.Context, env *wire.Envelope, reply replyFunc) {
	if !h.cred.hasScope(AdminScope) {
		h.g.refusalLog.log("gateway: admin command refused", "command", env.Route.Name, "session", h.id, "user", h.user, "remote", h.ident.RemoteAddr)
		reply(nil, jsperr.Forbidden, fmt.Sprintf("%s needs the %q scope", env.Route.Name, AdminScope))
		return
	}
	if h.g.cfg.Devices == nil {
		reply(nil, jsperr.NotFound, "this server has no device registry")
		return
	}
	if len(env.Body) > maxAdminBody {
		reply(nil, jsperr.MessageTooLarge, fmt.Sprintf("admin body of %d bytes over %d", len(env.Body), maxAdminBody))
		return
	}
	var out any
	var err error
	switch env.Route.Name {
	case AdminDeviceRegister:
		out, err = h.adminRegister(ctx, env.Body)
	case AdminDeviceList:
		out, err = h.adminList(ctx, env.Body)
	case AdminDeviceRevoke:
		out, err = h.adminRevoke(ctx, env.Body)
	default:
		err = jsperr.Newf(jsperr.NotFound, "no admin command %s", env.Route.Name)
	}
	if err != nil {
		code, reason := errorReply(err)
		if code == jsperr.Internal {
			h.log.Warn("admin command failed", "command", env.Route.Name, "err", err)
		}
		reply(nil, code, reason)
		return
	}
	body, err := json.Marshal(out)
	if err != nil {
		h.log.Error("admin: encode reply", "command", env.Route.Name, "err", err)
		reply(nil, jsperr.Internal, "internal error")
		return
	}
	h.log.Info("admin command", "command", env.Route.Name, "user", h.user)
	reply(body, jsperr.NoError, "")
}

func decodeAdmin(body []byte, v any) error {
	if len(body) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsperr.Newf(jsperr.BadRequest, "admin body: %v", err)
	}
	return nil
}

// registryErr maps registry sentinels to codes; others stay internal.
func registryErr(err error) error {
	switch {
	case errors.Is(err, devicekey.ErrNotFound):
		return jsperr.Wrap(jsperr.NotFound, err)
	case errors.Is(err, devicekey.ErrExists):
		return jsperr.Wrap(jsperr.Conflict, err)
	case errors.Is(err, devicekey.ErrFull):
		return jsperr.Wrap(jsperr.QueueFull, err)
	}
	var je *jsperr.Error
	if errors.As(err, &je) {
		return err
	}
	return jsperr.Wrap(jsperr.Internal, err)
}

func (h *host) adminRegister(ctx context.Context, body []byte) (any, error) {
	var req AdminRegisterRequest
	if err := decodeAdmin(body, &req); err != nil {
		return nil, err
	}
	key, err := devicekey.ParsePublicKey(req.Key)
	if err != nil {
		return nil, jsperr.Newf(jsperr.BadRequest, "device key: %v", err)
	}
	if req.Owner == "" {
		return nil, jsperr.New(jsperr.BadRequest, "device owner is required")
	}
	d := devicekey.Device{ID: key.ID(), Key: key, Owner: req.Owner, Name: req.Name, Registered: h.g.cfg.Now()}
	if err := h.g.cfg.Devices.Register(ctx, d); err != nil {
		return nil, registryErr(fmt.Errorf("register device %s: %w", d.ID, err))
	}
	stored, err := h.g.cfg.Devices.Lookup(ctx, d.ID)
	if err != nil {
		return nil, registryErr(fmt.Errorf("look up device %s: %w", d.ID, err))
	}
	return adminDevice(stored), nil
}

func (h *host) adminList(ctx context.Context, body []byte) (any, error) {
	var req AdminListRequest
	if err := decodeAdmin(body, &req); err != nil {
		return nil, err
	}
	l, ok := h.g.cfg.Devices.(DeviceLister)
	if !ok {
		return nil, jsperr.New(jsperr.NotFound, "this device registry cannot list devices")
	}
	switch {
	case req.Limit < 0:
		return nil, jsperr.New(jsperr.BadRequest, "negative limit")
	case req.Limit == 0:
		req.Limit = DefaultAdminListLimit
	case req.Limit > MaxAdminListLimit:
		req.Limit = MaxAdminListLimit
	}
	ds, err := l.ListDevices(ctx, req.Owner, req.After, req.Limit)
	if err != nil {
		return nil, registryErr(fmt.Errorf("list devices: %w", err))
	}
	out := AdminListReply{Devices: make([]AdminDevice, 0, len(ds))}
	for _, d := range ds {
		out.Devices = append(out.Devices, adminDevice(d))
	}
	if len(ds) == req.Limit {
		out.Next = ds[len(ds)-1].ID.String()
	}
	return out, nil
}

func (h *host) adminRevoke(ctx context.Context, body []byte) (any, error) {
	var req AdminRevokeRequest
	if err := decodeAdmin(body, &req); err != nil {
		return nil, err
	}
	id, err := devicekey.ParseID(req.ID)
	if err != nil {
		return nil, jsperr.Newf(jsperr.BadRequest, "device id: %v", err)
	}
	if err := h.g.cfg.Devices.Revoke(ctx, id); err != nil {
		return nil, registryErr(fmt.Errorf("revoke device %s: %w", id, err))
	}
	d, err := h.g.cfg.Devices.Lookup(ctx, id)
	if err != nil {
		return nil, registryErr(fmt.Errorf("look up device %s: %w", id, err))
	}
	out := adminDevice(d)
	// This gateway's sessions go now; the others' at their next device
	// check against the shared registry.
	out.Disconnected = h.g.DeviceRevoked(id)
	return out, nil
}
