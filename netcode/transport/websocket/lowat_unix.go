//go:build linux || darwin

package websocket

import "golang.org/x/sys/unix"

// setNotSentLowat sets TCP_NOTSENT_LOWAT on the socket fd.
func setNotSentLowat(fd uintptr, n int) error {
	return unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
}
