//go:build linux

package kcp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/roomwire/roomwire/netcode/transport"
)

// rawUDP is a listener's UDP socket kept out of Go's network poller, so
// that a packet arriving while the reader coalesces (Config.ReadCoalesce)
// wakes no thread: Go's poller is edge-triggered, and would wake one for
// every packet, reader waiting or not. The socket sits in an epoll
// instance of its own (edge-triggered), which is what Go's poller
// watches; the reader disarms it while it sleeps between reads and arms
// it again before it waits (arm). Reads and writes are non-blocking system
// calls on the socket: recvmmsg, sendmmsg, sendto.
//
// None of the calls on fd and ep waits in the kernel, so each is made
// without the runtime's system call entry and exit (RawSyscall). The
// entry wakes the runtime's monitor thread (sysmon) whenever it sleeps,
// which is whenever the process was idle, and a woken monitor polls every
// 20 µs (for its first millisecond awake, then less often) until the
// process is idle again: on a server pinned to one core, two context
// switches every 20 µs of work, for calls that cannot block.
//
// A write the socket's buffer cannot take (EAGAIN) is dropped, as the
// network may drop any datagram; KCP resends what it needs.
type rawUDP struct {
	fd    int
	v6    bool // an AF_INET6 socket: IPv4 peers travel v4-mapped
	local net.Addr

	ep   int                // the epoll instance holding fd
	epf  *os.File           // ep, in Go's poller
	epc  syscall.RawConn    // epf's
	woke func(uintptr) bool // woken, made once so that a wait allocates nothing
	// armed says whether fd's packets wake the poller (arm); waited and
	// evs are woken's. All are the reader's alone.
	armed, waited bool
	evs           [1]unix.EpollEvent

	// mu is read-held around every system call on fd and ep, and held
	// whole by Close, so that no call reaches a closed (or reused)
	// descriptor.
	mu     sync.RWMutex
	closed bool
}

var _ PacketConn = (*rawUDP)(nil)

// openRaw takes uc's socket out of Go's poller: it duplicates the
// descriptor, closes uc (which unregisters it) and keeps the duplicate.
// On an error uc is left as it was.
func openRaw(uc *net.UDPConn) (*rawUDP, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	u := &rawUDP{fd: -1, ep: -1, local: uc.LocalAddr()}
	u.woke = u.woken
	var derr error
	if err := rc.Control(func(fd uintptr) {
		u.fd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if derr == nil {
			var dom int
			dom, derr = unix.GetsockoptInt(u.fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
			u.v6 = dom == unix.AF_INET6
		}
	}); err != nil {
		derr = err
	}
	if derr == nil {
		u.ep, derr = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	}
	if derr == nil {
		derr = unix.SetNonblock(u.fd, true)
	}
	if derr == nil {
		derr = unix.SetNonblock(u.ep, true) // so that os.NewFile puts it in the poller
	}
	if derr == nil {
		derr = unix.EpollCtl(u.ep, unix.EPOLL_CTL_ADD, u.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(u.fd)})
		u.armed = true
	}
	if derr == nil {
		u.epf = os.NewFile(uintptr(u.ep), "kcp-epoll")
		u.epc, derr = u.epf.SyscallConn()
	}
	if derr != nil {
		if u.epf != nil {
			_ = u.epf.Close()
		} else if u.ep >= 0 {
			_ = unix.Close(u.ep)
		}
		if u.fd >= 0 {
			_ = unix.Close(u.fd)
		}
		return nil, derr
	}
	_ = uc.Close()
	return u, nil
}

// LocalAddr is the bound address.
func (u *rawUDP) LocalAddr() net.Addr { return u.local }

// Close closes the socket and wakes a waiting reader. It is idempotent.
func (u *rawUDP) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	_ = unix.Close(u.fd)
	u.mu.Unlock()
	return u.epf.Close() // wakes wait, which then sees closed
}

// ReadFromUDPAddrPort is not how a rawUDP is read: its listener reads it
// in batches (recv).
func (u *rawUDP) ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error) {
	return 0, netip.AddrPort{}, errors.ErrUnsupported
}

// SetReadDeadline is not supported, for the same reason.
func (u *rawUDP) SetReadDeadline(time.Time) error { return errors.ErrUnsupported }

// recvBufs are a reader's recvmmsg buffers, reused from call to call.
type recvBufs struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
	bufs  [][]byte
}

func newRecvBufs(n, size int) *recvBufs {
	r := &recvBufs{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		bufs:  make([][]byte, n),
	}
	for i := range n {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.Iovlen = 1
	}
	return r
}

// packet returns the i-th packet of the last recv and its sender.
func (r *recvBufs) packet(i int) ([]byte, netip.AddrPort) {
	return r.bufs[i][:r.hdrs[i].Len], addrOf(&r.names[i])
}

// recv reads what the socket holds, up to len(r.hdrs) packets, without
// waiting: 0 packets and a nil error when it holds none.
func (u *rawUDP) recv(r *recvBufs) (int, error) {
	for i := range r.hdrs {
		r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6 // the kernel wrote the last sender's length
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.closed {
		return 0, net.ErrClosed
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		default:
			// ICMP errors (ECONNREFUSED from a port that went away) and
			// the like: not fatal for a UDP socket.
			return 0, nil
		}
	}
}

// wait returns when the socket may have a packet to read (it may have
// none, after a stale wake-up), or with net.ErrClosed once it is closed.
func (u *rawUDP) wait() error {
	if err := u.arm(true); err != nil {
		return err
	}
	u.waited = false
	if err := u.epc.Read(u.woke); err != nil {
		return net.ErrClosed // the only way the poller fails us: epf closed
	}
	return nil
}

// woken is wait's condition for epc.Read, which forgets any wake-up from
// before it began: on its first call it asks the epoll instance whether the
// socket is readable (taking the event), and once the poller has woken it,
// it is.
func (u *rawUDP) woken(ep uintptr) bool {
	if u.waited {
		return true
	}
	u.waited = true
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, ep, uintptr(unsafe.Pointer(&u.evs[0])), uintptr(len(u.evs)), 0, 0, 0)
		if e != unix.EINTR {
			return n > 0 || e != 0
		}
	}
}

// arm makes the socket's packets wake the poller (on), or not: a reader
// about to sleep while it coalesces disarms it, so that what arrives
// meanwhile wakes no thread.
func (u *rawUDP) arm(on bool) error {
	if u.armed == on {
		return nil
	}
	var ev unix.EpollEvent
	if on {
		ev = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(u.fd)}
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.closed {
		return net.ErrClosed
	}
	if _, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(u.ep), unix.EPOLL_CTL_MOD, uintptr(u.fd), uintptr(unsafe.Pointer(&ev)), 0, 0); e != 0 {
		return e
	}
	u.armed = on
	return nil
}

// WriteToUDPAddrPort sends b to addr at once (sendto).
func (u *rawUDP) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	var sa unix.RawSockaddrInet6
	sl, ok := u.sockaddr(&sa, addr)
	if !ok {
		return 0, errAddrFamily
	}
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.closed {
		return 0, net.ErrClosed
	}
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(u.fd), uintptr(p), uintptr(len(b)), 0, uintptr(unsafe.Pointer(&sa)), uintptr(sl))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return len(b), nil
	}
}

// sendBufs are a writer's sendmmsg buffers, grown to the largest batch.
type sendBufs struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
}

// writeBatch sends pkts in order, in as few sendmmsg calls as the system
// takes. A packet refused (a full buffer, an address of the wrong family)
// is dropped and the rest go on; the error is the first refusal.
func (u *rawUDP) writeBatch(s *sendBufs, pkts []transport.Packet) error {
	if n := len(pkts); cap(s.hdrs) < n {
		s.hdrs = make([]unix.Mmsghdr, n)
		s.iovs = make([]unix.Iovec, n)
		s.names = make([]unix.RawSockaddrInet6, n)
	}
	var first error
	k := 0 // messages filled
	for _, p := range pkts {
		sl, ok := u.sockaddr(&s.names[k], p.Addr.AddrPort())
		if !ok || len(p.Buf) == 0 {
			if first == nil {
				first = errAddrFamily
			}
			continue
		}
		s.iovs[k].Base = &p.Buf[0]
		s.iovs[k].SetLen(len(p.Buf))
		h := &s.hdrs[k].Hdr
		*h = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&s.names[k])), Namelen: sl, Iov: &s.iovs[k], Iovlen: 1}
		k++
	}
	u.mu.RLock()
	if u.closed {
		u.mu.RUnlock()
		return net.ErrClosed
	}
	for sent := 0; sent < k; {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&s.hdrs[sent])), uintptr(k-sent), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			if first == nil {
				first = e
			}
			sent++ // the packet at sent was refused: drop it, as UDP may
			continue
		}
		sent += int(n)
	}
	u.mu.RUnlock()
	for i := range s.iovs[:k] {
		s.iovs[i].Base = nil // keep no packet alive
	}
	return first
}

var errAddrFamily = errors.New("kcp: address not of the socket's family")

// sockaddr writes addr into sa as the socket's family takes it and
// returns its length; false for an IPv6 address on an IPv4 socket.
func (u *rawUDP) sockaddr(sa *unix.RawSockaddrInet6, addr netip.AddrPort) (uint32, bool) {
	ip := addr.Addr()
	if u.v6 {
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], addr.Port())
		return unix.SizeofSockaddrInet6, true
	}
	ip = ip.Unmap()
	if !ip.Is4() {
		return 0, false
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], addr.Port())
	return unix.SizeofSockaddrInet4, true
}

// addrOf reads a sender's address as recvmmsg wrote it.
func addrOf(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:]))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:]))
	}
	return netip.AddrPort{}
}
