//go:build linux

package websocket

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller reads the plain TCP sockets of a listener's sessions from one
// loop, as the UDP transports read theirs: the sockets sit in an epoll
// instance of the poller's (level-triggered), which Go's poller watches
// for the loop. Each wake-up hands the loop every socket with bytes; it
// reads each once, without blocking, and handles the frames in place
// (Session.pollRead): datagrams go to their handler inline, reliable bytes
// to Read. Against a goroutine per session parked in its socket, an input
// costs no goroutine wake-up of its own and one read instead of two (the
// second, which finds the socket empty, is not needed: a short read says
// so).
//
// The loop runs while the poller has sessions, and ends with the last
// (a later one starts it again); its epoll instance lives until the
// listener closed and the loop ended.
//
// Locks, in the order they are taken: a session's rdMu (the loop's, in
// pollRead), its rmu, the poller's mu. add takes a new session's rmu under
// mu, which is safe only because no one else knows that session yet.
type poller struct {
	ep   int
	epf  *os.File        // ep, in Go's poller
	epc  syscall.RawConn // epf's
	efd  int             // an eventfd in ep: wakes the loop for ready
	woke func(uintptr) bool
	// The loop's: the events of the last wait.
	evs [128]unix.EpollEvent
	n   int
	// rounds counts the loop's waits (for tests: a spinning loop).
	rounds atomic.Uint64

	mu       sync.Mutex
	sessions map[int32]*Session // by socket
	// ready are sessions to read without an event of their socket's: new
	// ones (with bytes the HTTP server read past the handshake) and
	// resumed ones (frames may wait in their buffer). spare is the loop's
	// other slice, swapped with it.
	ready, spare []*Session
	woken        bool // efd was written since the loop last read it
	running      bool // the loop's goroutine runs
	closed       bool // the listener closed: no more sessions, and release at the end
	released     bool
}

// pollable reports whether a poller can read c: a plain TCP socket.
func pollable(c net.Conn) bool {
	_, ok := c.(*eorConn)
	return ok
}

// newPoller makes a poller with no sessions and no goroutine yet.
func newPoller() (*poller, error) {
	p := &poller{ep: -1, efd: -1, sessions: make(map[int32]*Session)}
	p.woke = p.wait
	var err error
	if p.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err == nil {
		p.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	}
	if err == nil {
		err = unix.EpollCtl(p.ep, unix.EPOLL_CTL_ADD, p.efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p.efd)})
	}
	if err == nil {
		err = unix.SetNonblock(p.ep, true) // so that os.NewFile puts it in Go's poller
	}
	if err == nil {
		p.epf = os.NewFile(uintptr(p.ep), "websocket-epoll")
		p.epc, err = p.epf.SyscallConn()
	}
	if err != nil {
		p.release()
		return nil, err
	}
	return p, nil
}

// release closes the poller's descriptors.
func (p *poller) release() {
	if p.released {
		return
	}
	p.released = true
	if p.epf != nil {
		_ = p.epf.Close()
	} else if p.ep >= 0 {
		_ = unix.Close(p.ep)
	}
	if p.efd >= 0 {
		_ = unix.Close(p.efd)
	}
}

// close is the listener's: no session is added from now on, and the
// descriptors go with the loop's end (now, if it does not run).
func (p *poller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if !p.running {
		p.release()
	}
}

// add has the loop read s, whose connection must be an eorConn (a plain
// TCP socket); it reports false, leaving s to be read by its Read, when
// the poller closed or the socket cannot be watched.
func (p *poller) add(s *Session) bool {
	ec, ok := s.conn.(*eorConn)
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	fd, err := p.watch(ec.raw)
	if err != nil {
		return false
	}
	s.startPolled(p, ec, fd)
	p.sessions[fd] = s
	p.readyLocked(s)
	if !p.running {
		p.running = true
		go p.loop()
	}
	return true
}

// remove stops the loop's reading of s (for good): the loop may be
// reading it still, under its rdMu, and reads it no more after.
func (p *poller) remove(s *Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sessions[s.pfd] != s {
		return
	}
	delete(p.sessions, s.pfd)
	p.unwatch(s) // or paused: not in ep
	if len(p.sessions) == 0 {
		p.wakeLocked() // the loop ends
	}
}

// pause stops the loop's reading of s's socket until resume (rmu held:
// the two are ordered by it), while Read is behind. The socket leaves the
// epoll instance: one in it with no events asked for would still report
// an error or a hang-up at every wait, and the loop would spin.
func (p *poller) pause(s *Session) { p.unwatch(s) }

// resume has the loop read s again (rmu held), first what its buffer
// holds, unless s left the poller meanwhile.
func (p *poller) resume(s *Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sessions[s.pfd] != s {
		return
	}
	_, _ = p.watch(s.praw)
	p.readyLocked(s)
}

// watch puts the socket under raw in ep, and returns its descriptor.
func (p *poller) watch(raw syscall.RawConn) (fd int32, err error) {
	var cerr error
	if err := raw.Control(func(f uintptr) {
		fd = int32(f)
		cerr = unix.EpollCtl(p.ep, unix.EPOLL_CTL_ADD, int(f), &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: fd})
	}); err != nil {
		return -1, err
	}
	return fd, cerr
}

// unwatch takes s's socket out of ep; a closed socket left it already.
func (p *poller) unwatch(s *Session) {
	_ = s.praw.Control(func(f uintptr) { _ = unix.EpollCtl(p.ep, unix.EPOLL_CTL_DEL, int(f), nil) })
}

// readyLocked queues s for the loop's next round (mu held).
func (p *poller) readyLocked(s *Session) {
	p.ready = append(p.ready, s)
	p.wakeLocked()
}

// wakeLocked makes the loop's wait return (mu held).
func (p *poller) wakeLocked() {
	if p.woken || !p.running {
		return
	}
	p.woken = true
	one := [8]byte{1}
	_, _ = unix.Write(p.efd, one[:])
}

// loop is the poller's goroutine: it reads the sessions that are ready,
// then waits for sockets with bytes and reads each, until no session is
// left.
func (p *poller) loop() {
	for {
		p.mu.Lock()
		ready := p.ready
		p.ready, p.spare = p.spare[:0], nil
		// With no session left, the loop ends, whatever is in ready (only
		// sessions removed since): the wake-up of the last removal may
		// have been taken by a read of efd this round (woken still set),
		// so no wait may follow this check unless a session is left.
		if len(p.sessions) == 0 {
			clear(ready)
			p.running, p.woken = false, false
			if p.closed {
				p.release()
			}
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for i, s := range ready {
			s.pollRead()
			ready[i] = nil
		}
		p.mu.Lock()
		p.spare = ready[:0]
		p.mu.Unlock()
		if err := p.epc.Read(p.woke); err != nil {
			p.n = 0 // epf closed: cannot be while the loop runs
		}
		p.rounds.Add(1)
		for i := 0; i < p.n; i++ {
			fd := p.evs[i].Fd
			if fd == int32(p.efd) {
				var b [8]byte
				_, _ = unix.Read(p.efd, b[:])
				p.mu.Lock()
				p.woken = false
				p.mu.Unlock()
				continue
			}
			p.mu.Lock()
			s := p.sessions[fd]
			p.mu.Unlock()
			if s != nil {
				s.pollRead()
			}
		}
	}
}

// wait is the loop's condition for epc.Read: it takes the events ready
// now, and says to wait for Go's poller when there are none.
func (p *poller) wait(ep uintptr) bool {
	for {
		n, err := epollPoll(ep, p.evs[:])
		if err == unix.EINTR {
			continue
		}
		p.n = n
		return n > 0 || err != nil
	}
}

// startPolled makes s a polled session of p's on socket fd (p.mu held,
// before s is handed out).
func (s *Session) startPolled(p *poller, ec *eorConn, fd int32) {
	s.rmu.Lock()
	s.poll, s.praw, s.pfd = p, ec.raw, fd
	s.rmu.Unlock()
	s.pollFn = s.readSocket
	s.fr.beforeWait = s.pong
	s.fr.nowait = true
	s.stalled.Store(false) // the poller listens
}

// readSocket is the poller's read of s's socket into fr, without waiting.
func (s *Session) readSocket(fd uintptr) bool {
	for {
		n, err := readNow(fd, s.fr.buf[s.fr.w:])
		if err == unix.EINTR {
			continue
		}
		s.pn, s.perr = n, err
		return true
	}
}

// pollRead is the poller's turn at s: one read of the socket, then the
// frames the buffer holds whole, handled as Read's caller would (data
// messages, control frames). The session leaves the poller when reading
// ends: the peer's close, the connection's end, a breach of the format.
func (s *Session) pollRead() {
	// A polled session's rdMu is taken by no one else but its closing
	// handshake (stopPolling, drain), which reads the socket now, for up
	// to closeLinger: the loop must not wait for it.
	if !s.rdMu.TryLock() {
		return
	}
	defer s.rdMu.Unlock()
	if !s.fr.nowait || s.endErr.Load() != nil {
		return
	}
	s.rmu.Lock()
	paused := s.paused || s.direct
	s.rmu.Unlock()
	if paused {
		return
	}
	f := &s.fr
	if f.r == f.w {
		f.r, f.w = 0, 0
	} else if f.r > 0 && len(f.buf)-f.w < readChunk/2 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	if f.w == len(f.buf) { // fill makes room for a frame; this is for safety
		f.buf = append(f.buf, make([]byte, readChunk)...)
		f.buf = f.buf[:cap(f.buf)]
	}
	var end error
	if err := s.praw.Read(s.pollFn); err != nil {
		end = err
	} else {
		switch {
		case s.perr == unix.EAGAIN: // a session read for its buffer, or a stale event
		case s.perr != nil:
			end = os.NewSyscallError("read", s.perr)
		case s.pn == 0:
			end = io.EOF
		default:
			f.w += s.pn
			s.heard.touch()
		}
	}
	err := s.readFrames()
	s.pong()
	switch {
	case err == errPaused, err == errMore && end == nil:
		return
	case err == errMore:
		err = end
	}
	s.readFailed(err)
	s.poll.remove(s)
	// Nothing more is parsed here: after a breach, the closing handshake
	// reads on from the frame after it (stopPolling, drain).
	s.fr.nowait = false
}

// epollPoll takes the events ready in epoll instance ep now, without
// waiting, and readNow reads what socket fd holds now (it is
// non-blocking). Neither waits in the kernel, so both skip the runtime's
// system call entry and exit (RawSyscall), as sendEOR does, and for the
// same reason.
func epollPoll(ep uintptr, evs []unix.EpollEvent) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, ep, uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func readNow(fd uintptr, p []byte) (int, error) {
	n, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}
