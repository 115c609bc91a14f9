//go:build unix

package impair

import "syscall"

// setSockopts sets a socket's receive buffer and, if mss > 0, its segment
// size.
func setSockopts(fd uintptr, rcvbuf, mss int) error {
	if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf); err != nil {
		return err
	}
	if mss > 0 {
		return syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, mss)
	}
	return nil
}
