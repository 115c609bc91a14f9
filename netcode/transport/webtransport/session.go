package webtransport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	wtgo "github.com/quic-go/webtransport-go"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

// datagramQueue is how many received datagrams wait for ReceiveDatagram;
// more are dropped, as quic-go drops beyond its own 128. HTTP/3 keeps only
// 32 per session and drops beyond them, so a goroutine per session moves
// them here at once, whatever the reader is doing.
const datagramQueue = 128

// Session is one WebTransport session with its reliable stream.
type Session struct {
	sess *wtgo.Session
	conn *quicgo.Conn
	// dialled is a client's session; pc is the socket Dial made for
	// LocalAddr, if any.
	dialled bool
	pc      net.PacketConn

	stOnce sync.Once
	st     *wtgo.Stream
	stErr  error
	// accept bounds the server's wait for the client's stream: Close
	// cancels it when it gives up waiting.
	accept       context.Context
	cancelAccept context.CancelFunc
	wrote        atomic.Bool // this side has written to the reliable stream
	// ahead is the stream's next byte while the connection's reader is
	// parked (NotifyReadable); Read returns it first.
	ahead transport.ReadAhead

	dgrams  chan []byte
	pumped  chan struct{} // closed when the datagram pump ended
	pumpErr error         // why, once pumped is closed

	closeOnce sync.Once
	closed    chan struct{} // closed when Close's work is done
	mu        sync.Mutex
	local     *transport.CloseError
}

var (
	_ transport.Session      = (*Session)(nil)
	_ transport.Challenged   = (*Session)(nil)
	_ transport.PathRTT      = (*Session)(nil)
	_ transport.ReadNotifier = (*Session)(nil)
)

// newSession wraps sess, on conn; st is the reliable stream when this side
// opened it (Dial), nil on the server, which waits for the client's.
func newSession(sess *wtgo.Session, conn *quicgo.Conn, st *wtgo.Stream, pc net.PacketConn) *Session {
	s := &Session{
		sess: sess, conn: conn, st: st, dialled: st != nil, pc: pc,
		dgrams: make(chan []byte, datagramQueue), pumped: make(chan struct{}), closed: make(chan struct{}),
	}
	s.accept, s.cancelAccept = context.WithCancel(sess.Context())
	if st != nil {
		s.stOnce.Do(func() {})
	}
	go s.pump()
	// One session per connection: once the session ended, so does the
	// connection; at once, unless this side's session close must still
	// reach the peer, which then closes the connection itself.
	context.AfterFunc(sess.Context(), func() {
		s.cancelAccept()
		var se *wtgo.SessionError
		if errors.As(s.endErr(), &se) && !se.Remote {
			time.AfterFunc(closeLinger, func() { _ = conn.CloseWithError(h3NoError, "") })
			return
		}
		_ = conn.CloseWithError(h3NoError, "")
	})
	return s
}

// pump moves datagrams from HTTP/3's short per-session queue to the
// session's.
func (s *Session) pump() {
	defer close(s.pumped)
	for {
		b, err := s.sess.ReceiveDatagram(s.sess.Context())
		if err != nil {
			s.pumpErr = err
			return
		}
		if len(b) > unreliable.MaxDatagram {
			continue // PROTOCOL.md 5.3: receivers drop them
		}
		select {
		case s.dgrams <- b:
		default: // full: dropped, as a socket buffer would
		}
	}
}

// Challenged marks the session: browsers cannot export TLS keying
// material, so the server challenges (transport.Challenged).
func (s *Session) Challenged() {}

// stream returns the reliable stream, waiting for the client to open it on
// the server side.
func (s *Session) stream() (*wtgo.Stream, error) {
	s.stOnce.Do(func() {
		s.st, s.stErr = s.sess.AcceptStream(s.accept)
	})
	return s.st, s.stErr
}

func (s *Session) Read(p []byte) (int, error) {
	if n, ok, err := s.ahead.Take(p); ok {
		return n, s.mapErr(err)
	}
	st, err := s.stream()
	if err != nil {
		return 0, s.mapErr(err)
	}
	n, err := st.Read(p)
	return n, s.mapErr(err)
}

// NotifyReadable lets a server's connection park its reader while the
// stream is idle (transport.ReadNotifier): webtransport-go tells no one
// when a stream has bytes, so a goroutine of the session's reads one ahead
// (transport.ReadAhead).
func (s *Session) NotifyReadable(f func()) bool {
	st, err := s.stream()
	if err != nil {
		return false // Read returns the error at once
	}
	return s.ahead.Notify(st, f)
}

func (s *Session) Write(p []byte) (int, error) {
	s.wrote.Store(true)
	st, err := s.stream()
	if err != nil {
		return 0, s.mapErr(err)
	}
	n, err := st.Write(p)
	return n, s.mapErr(err)
}

// DatagramTooLargeError is SendDatagram's error for a datagram over
// MaxDatagram.
type DatagramTooLargeError struct {
	Size int
}

func (e *DatagramTooLargeError) Error() string {
	return fmt.Sprintf("webtransport: datagram of %d bytes > %d", e.Size, MaxDatagram)
}

// SendDatagram sends p as one WebTransport datagram; it refuses more than
// MaxDatagram bytes. HTTP/3 copies p.
func (s *Session) SendDatagram(p []byte) error {
	if len(p) > MaxDatagram {
		return &DatagramTooLargeError{Size: len(p)}
	}
	return s.mapErr(s.sess.SendDatagram(p))
}

// ReceiveDatagram returns the next datagram received.
func (s *Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	select {
	case b := <-s.dgrams:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.pumped:
		select {
		case b := <-s.dgrams:
			return b, nil
		default:
			return nil, s.mapErr(s.pumpErr)
		}
	}
}

// MaxDatagram is the package's MaxDatagram, 1150 bytes: room below the
// maxDatagramSize Chromium offers (1215 on loopback).
func (s *Session) MaxDatagram() int { return MaxDatagram }

// RTT is quic-go's smoothed round-trip time for the connection.
func (s *Session) RTT() time.Duration { return s.conn.ConnectionStats().SmoothedRTT }

// Close ends the session with a Roomwire close code and reason; it does
// not block.
//
// A client's session is closed at once with the code and reason as the
// WebTransport session's close code and message (a
// CLOSE_WEBTRANSPORT_SESSION capsule), which resets its streams.
//
// The server's close must reach browsers, and Chromium (in the draft of
// WebTransport it speaks with webtransport-go) takes the STOP_SENDING that
// comes with webtransport-go's session close for an error before it reads
// the capsule: its page learns neither code nor reason. So the server's
// close travels on the reliable stream first: the stream's send side is
// ended cleanly after the CLOSE frame netcode wrote last (or after a CLOSE
// frame of its own when nothing was written yet: a refusal before the
// first frame), which the client answers by closing the session; only if
// it does not within a second is the session closed as a client's is.
func (s *Session) Close(code uint16, reason string) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.local = &transport.CloseError{Code: code, Reason: reason}
		s.mu.Unlock()
		if s.dialled {
			_ = s.sess.CloseWithError(wtgo.SessionErrorCode(code), reason)
			close(s.closed)
			return
		}
		go s.closeByStream(code, reason)
	})
	return nil
}

// closeByStream is the server's close (see Close).
func (s *Session) closeByStream(code uint16, reason string) {
	defer close(s.closed)
	giveUp := time.NewTimer(closeLinger)
	defer giveUp.Stop()
	// The client opens its stream at once; one that has not, within the
	// linger, hears the session close alone.
	stop := time.AfterFunc(closeLinger, s.cancelAccept)
	st, err := s.stream()
	stop.Stop()
	if err == nil && s.sess.Context().Err() == nil {
		if !s.wrote.Swap(true) {
			_ = st.SetWriteDeadline(time.Now().Add(closeLinger))
			_, _ = st.Write(reliable.AppendClose(nil, reliable.CloseCode(code), reliable.TruncateReason(reason)))
		}
		_ = st.Close()
		select {
		case <-s.sess.Context().Done(): // the client closed on the CLOSE frame
		case <-giveUp.C:
		}
	}
	_ = s.sess.CloseWithError(wtgo.SessionErrorCode(code), reason)
}

// Wait waits for the session's own goroutines to end after Close; on a
// dialled session also for its connection, and socket, to be gone: at
// once if the peer closed, within about a second if it does not answer
// this side's close.
func (s *Session) Wait() {
	<-s.closed
	<-s.pumped
	if s.dialled {
		<-s.conn.Context().Done()
		if s.pc != nil {
			_ = s.pc.Close()
		}
	}
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.sess.Context().Done() }

// RemoteAddr is the peer's UDP address.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// mapErr turns WebTransport's and QUIC's close errors into
// transport.CloseError: the peer's session close carries its code and
// reason.
func (s *Session) mapErr(err error) error {
	if err == nil {
		return nil
	}
	var se *wtgo.SessionError
	if errors.As(err, &se) && se.Remote {
		return sessionClose(se)
	}
	s.mu.Lock()
	local := s.local
	s.mu.Unlock()
	if local != nil {
		return local
	}
	if se != nil {
		return sessionClose(se)
	}
	// The session's own close, if it ended: an error on the stream may
	// come from the connection, which a session's end closes.
	if end := s.endErr(); errors.As(end, &se) {
		return sessionClose(se)
	}
	var he *http3.Error
	if errors.As(err, &he) {
		return &transport.CloseError{Code: uint16(reliable.CloseProtocolError), Reason: "webtransport: " + he.Error(), Remote: he.Remote}
	}
	var ae *quicgo.ApplicationError
	if errors.As(err, &ae) {
		// The connection closed under the session, without a session close.
		if ae.ErrorCode == h3NoError {
			return &transport.CloseError{Code: uint16(reliable.CloseNormal), Reason: cmp.Or(ae.ErrorMessage, "connection closed"), Remote: ae.Remote}
		}
		return &transport.CloseError{Code: uint16(reliable.CloseInternal), Reason: ae.Error(), Remote: ae.Remote}
	}
	var ie *quicgo.IdleTimeoutError
	if errors.As(err, &ie) {
		return &transport.CloseError{Code: uint16(reliable.CloseTimeout), Reason: "idle timeout"}
	}
	return err
}

// endErr is why the session ended, nil while it lives: webtransport-go
// hands the session's close error to every Accept after its end.
func (s *Session) endErr() error {
	select {
	case <-s.sess.Context().Done():
	default:
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.sess.AcceptUniStream(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// sessionClose is a WebTransport session close as a Roomwire close: its
// code is the Roomwire close code, its message the reason.
func sessionClose(se *wtgo.SessionError) *transport.CloseError {
	code := uint16(reliable.CloseProtocolError) // not a Roomwire close code
	if se.ErrorCode <= 0xffff {
		code = uint16(se.ErrorCode)
	}
	return &transport.CloseError{Code: code, Reason: se.Message, Remote: se.Remote}
}
