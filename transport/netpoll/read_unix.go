//go:build unix

package netpoll

import "syscall"

// errWouldBlock is what a non-blocking read returns when nothing is there.
var errWouldBlock error = syscall.EAGAIN

// readFD is one non-blocking read(2), retried on EINTR.
func readFD(fd uintptr, p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		if err != syscall.EINTR {
			if n < 0 {
				n = 0
			}
			return n, err
		}
	}
}

// writeFD is one non-blocking write(2), retried on EINTR.
func writeFD(fd uintptr, p []byte) (int, error) {
	for {
		n, err := syscall.Write(int(fd), p)
		if err != syscall.EINTR {
			if n < 0 {
				n = 0
			}
			return n, err
		}
	}
}
