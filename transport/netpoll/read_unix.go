//go:build unix

package netpoll

import "syscall"

// errWouldBlock is what a non-blocking read returns when nothing is there.
var errWouldBlock error = syscall.EAGAIN

// readFD is one non-blocking read(2), retried on EINTR.
func readFD(fd uintptr, p []byte) (int, error) { return retryEINTR(syscall.Read, fd, p) }

// writeFD is one non-blocking write(2), retried on EINTR.
func writeFD(fd uintptr, p []byte) (int, error) { return retryEINTR(syscall.Write, fd, p) }

// retryEINTR calls op on fd until it is not interrupted; n is never
// negative.
func retryEINTR(op func(int, []byte) (int, error), fd uintptr, p []byte) (int, error) {
	for {
		n, err := op(int(fd), p)
		if err != syscall.EINTR {
			return max(n, 0), err
		}
	}
}
