//go:build unix && (!linux || jspnoepoll)

package netpoll

// impl is the portable poller: each arming starts a goroutine that waits
// in the Go runtime's poller until the socket is readable. The runtime
// reports readiness edge-triggered, so the waiter first peeks for input
// that is already there (hasInput) to keep Arm level-triggered. The
// goroutine ends with the wait, or when the socket closes.
type impl struct{}

func (impl) start(*Poller) error { return nil }

func (impl) add(r *Registration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	startWaiterLocked(r)
	return nil
}

// arm runs with r.mu held (Registration.Arm).
func (impl) arm(r *Registration) error {
	startWaiterLocked(r)
	return nil
}

// startWaiterLocked starts a waiter unless one waits already: an arming
// while one waits changes nothing, as with EPOLLONESHOT re-armed.
func startWaiterLocked(r *Registration) {
	if r.waiting {
		return
	}
	r.waiting = true
	go waitReadable(r)
}

func (impl) del(*Registration) {}

func (impl) stop() {}

func waitReadable(r *Registration) {
	waited := false
	// An error (the socket closed, a deadline) ends the wait too: the
	// owner's next read reports it, so the callback runs all the same
	// unless the owner has deregistered.
	_ = r.rc.Read(func(fd uintptr) bool {
		// The first call reports "not ready", unless input is already
		// waiting (Arm is level-triggered), so that the runtime waits; the
		// second comes once the socket is readable.
		if !waited {
			waited = true
			return hasInput(fd)
		}
		return true
	})
	r.mu.Lock()
	r.waiting = false
	dead := r.dead
	r.mu.Unlock()
	if !dead {
		r.p.dispatch(r.id)
	}
}

// IdleWithoutGoroutine reports whether an armed registration waits
// without a goroutine of its own: not here, where each waits in the
// runtime's poller on one.
const IdleWithoutGoroutine = false
