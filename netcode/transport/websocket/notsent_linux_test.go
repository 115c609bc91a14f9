package websocket

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// notSent is how many bytes the kernel holds unsent on c's socket.
func notSent(c net.Conn) (int, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	n, ierr := 0, error(nil)
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQNSD) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}
