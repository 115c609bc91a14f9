package websocket

import (
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// eorConn is a TCP connection whose every write ends its own segment
// buffer in the kernel (sendmsg with MSG_EOR). Linux otherwise appends a
// write to the last unsent buffer without asking TCP_NOTSENT_LOWAT, up to
// tens of kilobytes on loopback; with MSG_EOR each write must find room
// under the low-water mark, so the kernel holds at most the mark and one
// message unsent.
type eorConn struct {
	*net.TCPConn
	raw syscall.RawConn

	// The write in progress, for send, which is bound once so that a
	// write allocates nothing.
	mu   sync.Mutex
	p    []byte
	n    int
	err  error
	send func(fd uintptr) bool
	// try: the write in progress gives up, declined, when the socket
	// takes none of it at once (tryWrite).
	try, declined bool
	// now is writeNow's one system call, bound once.
	now func(fd uintptr) bool
}

// withEOR wraps a TCP connection in an eorConn; other connections, and
// one wrapped already, are returned as they are.
func withEOR(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	e := &eorConn{TCPConn: tc, raw: raw}
	e.send = e.sendmsg
	e.now = e.sendOnce
	return e
}

func (c *eorConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.p, c.n, c.err = p, 0, nil
	err := c.raw.Write(c.send)
	n := c.n
	if err == nil && c.err != nil {
		err = os.NewSyscallError("sendmsg", c.err)
	}
	c.p, c.err = nil, nil
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, nil
}

// tryWrite writes p unless the socket takes none of it at once, which
// under TCP_NOTSENT_LOWAT 1 means that the kernel holds bytes unsent (or
// that another write is under way); once the socket took part of p, it
// writes the rest as Write does. It reports whether it wrote p.
func (c *eorConn) tryWrite(p []byte) (bool, error) {
	if !c.mu.TryLock() {
		return false, nil
	}
	defer c.mu.Unlock()
	c.p, c.n, c.err, c.try, c.declined = p, 0, nil, true, false
	err := c.raw.Write(c.send)
	if err == nil && c.err != nil {
		err = os.NewSyscallError("sendmsg", c.err)
	}
	declined := c.declined
	c.p, c.err, c.try = nil, nil, false
	if err != nil {
		return true, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return !declined, nil
}

// writeNow writes p in one system call if the socket takes it at once,
// and never waits: not for another write (it reports false), nor for the
// socket. A socket that takes part of p (which a frame of a few bytes
// meets only under the kernel's memory pressure, the socket holding
// nothing unsent) is closed, as the frame on it is torn: torn says so,
// and the caller ends its session.
func (c *eorConn) writeNow(p []byte) (sent, torn bool) {
	if !c.mu.TryLock() {
		return false, false
	}
	defer c.mu.Unlock()
	c.p, c.n, c.err = p, 0, nil
	err := c.raw.Write(c.now)
	n, serr := c.n, c.err
	c.p, c.err = nil, nil
	switch {
	case err != nil || (serr != nil && serr != unix.EAGAIN):
		return false, false
	case n == len(p):
		return true, false
	case n > 0:
		_ = c.TCPConn.Close()
		return false, true
	}
	return false, false
}

// sendOnce is writeNow's system call.
func (c *eorConn) sendOnce(fd uintptr) bool {
	for {
		n, err := sendEOR(fd, c.p, unix.MSG_DONTWAIT)
		if err != unix.EINTR {
			c.n, c.err = max(n, 0), err
			return true
		}
	}
}

// sendmsg writes what is left of c.p; it returns false to wait until the
// socket takes more.
func (c *eorConn) sendmsg(fd uintptr) bool {
	for c.n < len(c.p) {
		m, err := sendEOR(fd, c.p[c.n:], 0)
		switch err {
		case nil:
			c.n += m
		case unix.EINTR:
		case unix.EAGAIN:
			if c.try && c.n == 0 {
				c.declined = true
				return true
			}
			return false
		default:
			c.err = err
			return true
		}
	}
	return true
}

// sendEOR writes p (not empty) to socket fd with MSG_EOR, MSG_NOSIGNAL and
// flags, in one send(2): a single buffer needs none of sendmsg's message
// header and vector, which the kernel copies in and checks on every call.
//
// The socket is non-blocking, so the call never waits in the kernel, and
// it is made without the runtime's system call entry and exit
// (RawSyscall). The entry wakes the runtime's monitor thread (sysmon)
// whenever it sleeps, which is whenever the process was idle, and a woken
// monitor polls every 20 µs (for its first millisecond awake, then less
// often) until the process is idle again: on a server pinned to one
// core, two context switches every 20 µs of work, for calls that cannot
// block.
func sendEOR(fd uintptr, p []byte, flags int) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		uintptr(unix.MSG_EOR|unix.MSG_NOSIGNAL|flags), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
