//go:build unix && (!linux || jspnoepoll)

package netpoll

import "syscall"

// hasInput reports whether the socket fd has input or an end waiting,
// without consuming it.
func hasInput(fd uintptr) bool {
	var b [1]byte
	for {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		}
		// Input (n > 0), the peer's end (n == 0) or an error: a read
		// reports it at once.
		_ = n
		return true
	}
}
