package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
)

// reapInterval is how often the janitor releases filter slots of
// handshakes that overstayed (ddos.Filter.Reap, a safety net behind the
// listeners' own handshake timeouts) and drops full rate-limit buckets.
const reapInterval = 2 * time.Second

// janitor runs the gateway's periodic work until the gateway closes: the
// device check every DeviceCheckInterval, and the filter's and rate
// limits' housekeeping every reapInterval.
func (g *Gateway) janitor() {
	reap := time.NewTicker(reapInterval)
	defer reap.Stop()
	var devices <-chan time.Time
	if g.cfg.Devices != nil {
		t := time.NewTicker(g.cfg.DeviceCheckInterval)
		defer t.Stop()
		devices = t.C
	}
	var touch <-chan time.Time
	if g.cfg.Sessions != nil {
		t := time.NewTicker(g.cfg.SessionTouchInterval)
		defer t.Stop()
		touch = t.C
	}
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-touch:
			g.touchSessions(g.ctx)
			g.sweepSessions(g.ctx)
		case <-devices:
			g.checkDevices(g.ctx)
		case <-reap.C:
			if n := g.adm.filter.Reap(); n > 0 {
				g.log.Debug("gateway: reaped stale handshakes", "count", n)
			}
			if g.adm.attempts != nil {
				g.adm.attempts.Sweep()
			}
			if g.msgLimits != nil {
				g.msgLimits.Sweep()
			}
			if g.resumes != nil {
				g.resumes.sweep()
			}
		}
	}
}

// sessionsByDevice returns the live sessions that proved a device key,
// grouped by device id. Sessions that have ended but whose host is still
// winding down are left out.
func (g *Gateway) sessionsByDevice() map[string][]*host {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string][]*host{}
	for h := range g.hosts {
		if d := h.auth.Device; d != "" && h.sess.Err() == nil {
			out[d] = append(out[d], h)
		}
	}
	return out
}

// checkDevices looks up the device of every live session and closes the
// sessions whose device was revoked or removed from the registry. A
// registry that fails is logged and retried at the next check: an outage
// of the registry does not disconnect everyone.
func (g *Gateway) checkDevices(ctx context.Context) {
	byDevice := g.sessionsByDevice()
	if len(byDevice) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.DeviceCheckInterval)
	defer cancel()
	for dev, hosts := range byDevice {
		id, err := devicekey.ParseID(dev)
		if err != nil {
			// Authenticators write ids with ID.String; anything else was
			// not checked against this registry.
			continue
		}
		d, err := g.cfg.Devices.Lookup(ctx, id)
		var reason string
		switch {
		case errors.Is(err, devicekey.ErrNotFound):
			reason = fmt.Sprintf("device %s is no longer registered", dev)
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			g.log.Warn("gateway: device check failed", "device", dev, "err", err)
			continue
		case !d.Active():
			reason = fmt.Sprintf("device %s of %q was revoked at %s", dev, d.Owner, d.Revoked.UTC().Format(time.RFC3339))
		default:
			continue
		}
		for _, h := range hosts {
			h.closeWith(jsperr.DeviceRevoked, reason)
		}
	}
}

// DeviceRevoked closes at once every live session that proved device id,
// with DEVICE_REVOKED, and returns how many it closed. Call it when a
// device is revoked, so its sessions go before the next periodic check.
func (g *Gateway) DeviceRevoked(id devicekey.ID) int {
	hosts := g.sessionsByDevice()[id.String()]
	for _, h := range hosts {
		h.closeWith(jsperr.DeviceRevoked, fmt.Sprintf("device %s was revoked", id))
	}
	return len(hosts)
}
