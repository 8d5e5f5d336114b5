package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// hostWatch closes a session when the gateway closes (GOING_AWAY) or when
// its credential expires without a refresh (TOKEN_EXPIRED), from a
// context.AfterFunc and a time.AfterFunc instead of a goroutine that
// would only wait (decision D24: fewer goroutines per idle session).
//
// Ownership: a callback that runs joins the host's WaitGroup under mu
// unless stopped is set; finish calls stopWatch when the session has ended
// and before it waits for the WaitGroup, so it joins every callback that
// started and none starts afterwards. Lock order: watch.mu before cred.mu.
type hostWatch struct {
	mu        sync.Mutex
	stopped   bool        // guarded by mu
	timer     *time.Timer // guarded by mu: the expiry timer, nil when none
	armedFor  time.Time   // guarded by mu: the expiry the timer is armed for
	stopClose func() bool // guarded by mu: unregisters the gateway-close watch
}

// startWatch arms both watches.
func (h *host) startWatch() {
	h.watch.mu.Lock()
	h.watch.stopClose = context.AfterFunc(h.g.ctx, func() {
		if !h.watchEnter() {
			return
		}
		defer h.wg.Done()
		_ = h.sess.CloseWithError(jsperr.GoingAway, "server closed")
	})
	h.armExpiryLocked()
	h.watch.mu.Unlock()
	h.cred.mu.Lock()
	h.cred.onMove = h.rearmExpiry
	h.cred.mu.Unlock()
	// A refresh that landed before onMove was set is picked up here.
	h.rearmExpiry()
}

// stopWatch disarms both watches; callbacks already running finish and
// are joined by the host's WaitGroup.
func (h *host) stopWatch() {
	h.watch.mu.Lock()
	defer h.watch.mu.Unlock()
	h.watch.stopped = true
	if h.watch.timer != nil {
		h.watch.timer.Stop()
	}
	if h.watch.stopClose != nil {
		h.watch.stopClose()
	}
}

// watchEnter registers a running callback with the host's WaitGroup, or
// reports false once the session has ended.
func (h *host) watchEnter() bool {
	h.watch.mu.Lock()
	defer h.watch.mu.Unlock()
	if h.watch.stopped {
		return false
	}
	h.wg.Add(1)
	return true
}

// rearmExpiry follows a refresh: a credential is only good until its
// expiry, also on a connection opened before it, and a refresh moves it.
func (h *host) rearmExpiry() {
	h.watch.mu.Lock()
	defer h.watch.mu.Unlock()
	if h.watch.stopped {
		return
	}
	if exp, _ := h.cred.get(); exp.Equal(h.watch.armedFor) && (h.watch.timer != nil || exp.IsZero()) {
		return // unchanged
	}
	if h.watch.timer != nil {
		h.watch.timer.Stop()
		h.watch.timer = nil
	}
	h.armExpiryLocked()
}

// armExpiryLocked starts the expiry timer for the credential's current
// expiry (none when it never expires). h.watch.mu is held.
func (h *host) armExpiryLocked() {
	exp, _ := h.cred.get()
	h.watch.armedFor = exp
	if exp.IsZero() {
		return
	}
	h.watch.timer = time.AfterFunc(max(exp.Sub(h.g.cfg.Now()), 0), func() { h.expired(exp) })
}

// expired runs when the timer armed for exp fires: the session closes
// with TOKEN_EXPIRED unless a refresh has moved the expiry meanwhile.
func (h *host) expired(exp time.Time) {
	if !h.watchEnter() {
		return
	}
	defer h.wg.Done()
	if cur, _ := h.cred.get(); !cur.Equal(exp) {
		h.rearmExpiry()
		return
	}
	h.closeWith(jsperr.TokenExpired, fmt.Sprintf("credential of %q expired at %s", h.user, exp.UTC().Format(time.RFC3339)))
}
