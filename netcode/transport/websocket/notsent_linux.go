package websocket

import (
	"crypto/tls"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// unsentProbe asks the kernel how many bytes a TCP socket holds unsent
// (SIOCOUTQNSD). Its control function is bound once, so that asking
// allocates nothing.
type unsentProbe struct {
	raw  syscall.RawConn
	mu   sync.Mutex
	n    int
	err  error
	ctrl func(fd uintptr)
}

// newUnsentProbe returns a probe for c's socket, or nil when c has none
// to ask (a TLS connection is asked beneath its records).
func newUnsentProbe(c net.Conn) *unsentProbe {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	var raw syscall.RawConn
	switch sc := c.(type) {
	case *eorConn:
		raw = sc.raw
	case syscall.Conn:
		r, err := sc.SyscallConn()
		if err != nil {
			return nil
		}
		raw = r
	default:
		return nil
	}
	p := &unsentProbe{raw: raw}
	p.ctrl = func(fd uintptr) { p.n, p.err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQNSD) }
	return p
}

// unsent is how many bytes the kernel holds unsent; ok is false when it
// cannot tell.
func (p *unsentProbe) unsent() (n int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.raw.Control(p.ctrl); err != nil || p.err != nil {
		return 0, false
	}
	return p.n, true
}

// notSent is how many bytes the kernel holds unsent on c's socket.
func notSent(c net.Conn) (int, bool) {
	p := newUnsentProbe(c)
	if p == nil {
		return 0, false
	}
	return p.unsent()
}
