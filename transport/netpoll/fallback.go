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
	go waitReadable(r)
	return nil
}

func (impl) arm(r *Registration) error {
	go waitReadable(r)
	return nil
}

func (impl) del(*Registration) {}

func (impl) stop() {}

func waitReadable(r *Registration) {
	waited := false
	err := r.rc.Read(func(fd uintptr) bool {
		// The first call reports "not ready", unless input is already
		// waiting (Arm is level-triggered), so that the runtime waits; the
		// second comes once the socket is readable.
		if !waited {
			waited = true
			return hasInput(fd)
		}
		return true
	})
	if err != nil {
		// Closed, or a deadline: the owner's next read reports it, so run
		// the callback unless the owner has deregistered already.
		r.mu.Lock()
		dead := r.dead
		r.mu.Unlock()
		if dead {
			return
		}
	}
	r.p.dispatch(r.id)
}
