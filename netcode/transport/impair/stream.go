package impair

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// darkStep bounds one wait for the network to light again, so that a
// deadline set during the wait, or a window that ends early, is noticed
// within it.
const darkStep = 50 * time.Millisecond

// StreamConn puts a stream connection (TCP, as a WebSocket client dials it)
// on a host's Network. While the network is dark the connection stalls, as
// one over a dead path does: a Write waits until the network lights again
// before it hands anything to the socket, and what a Read receives in the
// dark is held back until then. Nothing is lost or reordered, since TCP
// loses nothing; the peer simply hears nothing for the blackout's length,
// and keep-alive timers on either side run as they would. A wait ends
// early, with an error, at the deadline set for it or at Close.
//
// Only the connection's own end is impaired: the peer's kernel still
// acknowledges what this end sends once it is written. A StreamConn hides
// the socket beneath it (it is no *net.TCPConn and offers no
// syscall.Conn), so socket options are not set through it. All methods may
// be called concurrently; reads are served one at a time, writes too.
type StreamConn struct {
	net.Conn
	network *Network

	readDeadline, writeDeadline atomic.Int64 // Unix nanoseconds, 0 for none

	done      chan struct{} // closed by Close
	closeOnce func() error

	rmu     sync.Mutex // one Read at a time; guards held and heldErr
	held    []byte     // received in the dark, not yet returned
	heldErr error      // the error that came with held
	wmu     sync.Mutex // one Write at a time
}

// NewStreamConn wraps c, which the StreamConn owns from now on (Close
// closes it), on network n. A nil n never darkens it.
func NewStreamConn(c net.Conn, n *Network) *StreamConn {
	s := &StreamConn{Conn: c, network: n, done: make(chan struct{})}
	s.closeOnce = sync.OnceValue(func() error {
		close(s.done)
		return s.Conn.Close()
	})
	return s
}

// Read reads from the connection; data that arrives while the network is
// dark is returned once it lights again.
func (s *StreamConn) Read(b []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		if err := waitLight(s.network, s.done, &s.readDeadline); err != nil {
			return 0, s.opError("read", err)
		}
		if len(s.held) > 0 {
			n := copy(b, s.held)
			if s.held = s.held[n:]; len(s.held) == 0 {
				s.held = nil
			}
			return n, nil
		}
		if err := s.heldErr; err != nil {
			s.heldErr = nil
			return 0, err
		}
		n, err := s.Conn.Read(b)
		if !s.network.Dark(time.Now()) {
			return n, err
		}
		// It arrived in the dark: hold it back. This holds at most one
		// read's worth: the loop reads no more until the network lights.
		s.held, s.heldErr = append([]byte(nil), b[:n]...), err
	}
}

// Write writes b once the network is not dark.
func (s *StreamConn) Write(b []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := waitLight(s.network, s.done, &s.writeDeadline); err != nil {
		return 0, s.opError("write", err)
	}
	return s.Conn.Write(b)
}

// Close closes the connection and ends any wait for the network. Later
// calls return the first call's result.
func (s *StreamConn) Close() error { return s.closeOnce() }

// SetDeadline sets the read and write deadlines.
func (s *StreamConn) SetDeadline(t time.Time) error {
	storeDeadline(&s.readDeadline, t)
	storeDeadline(&s.writeDeadline, t)
	return s.Conn.SetDeadline(t)
}

// SetReadDeadline sets the deadline for Read, waits in the dark included.
func (s *StreamConn) SetReadDeadline(t time.Time) error {
	storeDeadline(&s.readDeadline, t)
	return s.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline for Write, waits in the dark included.
func (s *StreamConn) SetWriteDeadline(t time.Time) error {
	storeDeadline(&s.writeDeadline, t)
	return s.Conn.SetWriteDeadline(t)
}

func (s *StreamConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: s.LocalAddr().Network(), Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: err}
}

func storeDeadline(dl *atomic.Int64, t time.Time) {
	if t.IsZero() {
		dl.Store(0)
		return
	}
	dl.Store(max(t.UnixNano(), 1))
}

// waitLight waits while n is dark. It returns net.ErrClosed once done is
// closed and os.ErrDeadlineExceeded once the deadline in dl (Unix
// nanoseconds, 0 for none) has passed, and nil, at once, when n is not
// dark. It looks again every darkStep at most, so the wait lasts the
// blackout and no longer.
func waitLight(n *Network, done <-chan struct{}, dl *atomic.Int64) error {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		now := time.Now()
		left := n.darkFor(now)
		if left <= 0 {
			return nil
		}
		step := min(left, darkStep)
		if dl != nil {
			if d := dl.Load(); d != 0 {
				until := time.Duration(d - now.UnixNano())
				if until <= 0 {
					return os.ErrDeadlineExceeded
				}
				step = min(step, until)
			}
		}
		if t == nil {
			t = time.NewTimer(step)
		} else {
			t.Reset(step)
		}
		select {
		case <-done:
			return net.ErrClosed
		case <-t.C:
		}
	}
}
