//go:build !unix

package netpoll

import "errors"

var errWouldBlock = errors.New("would block")

func readFD(uintptr, []byte) (int, error) { return 0, ErrUnsupported }

func writeFD(uintptr, []byte) (int, error) { return 0, ErrUnsupported }

func hasInput(uintptr) bool { return false }

// impl refuses to start: New reports ErrUnsupported.
type impl struct{}

func (impl) start(*Poller) error     { return ErrUnsupported }
func (impl) add(*Registration) error { return ErrUnsupported }
func (impl) arm(*Registration) error { return ErrUnsupported }
func (impl) del(*Registration)       {}
func (impl) stop()                   {}

// IdleWithoutGoroutine reports whether an armed registration waits
// without a goroutine of its own (false: nothing is polled here).
const IdleWithoutGoroutine = false
