// Package transport is the seam between Roomwire's connection logic and the
// network. A transport gives each connection a Session: one reliable, ordered
// byte stream and an unreliable datagram channel. Implementations live in
// subpackages (quic, kcp, websocket; webtransport next) and must pass the
// conformance suite, netcode's behaviour tests over netcodetest.Transports.
//
// A Session's Read and Write may be called from different goroutines, and
// SendDatagram and ReceiveDatagram likewise, but no method is called by two
// goroutines at once except Close, which is safe at any time and more than
// once. After Close, or after the peer closes, every blocking method returns
// an error that satisfies errors.Is(err, net.ErrClosed) or is a *CloseError.
package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Session is one connection's pair of channels.
type Session interface {
	// Read reads from the reliable stream.
	Read(p []byte) (int, error)
	// Write writes to the reliable stream. It blocks only on flow control.
	Write(p []byte) (int, error)
	// SendDatagram sends one unreliable datagram. It does not keep p. It may
	// block briefly when the transport's own queue is full, so callers on
	// latency-critical goroutines should hand datagrams to a sender goroutine.
	SendDatagram(p []byte) error
	// ReceiveDatagram returns the next datagram. The caller owns the slice.
	ReceiveDatagram(ctx context.Context) ([]byte, error)
	// MaxDatagram is the largest datagram SendDatagram accepts now.
	MaxDatagram() int
	// Close ends the session, telling the peer the code and reason where the
	// transport can carry them. It is idempotent.
	Close(code uint16, reason string) error
	// Done is closed once the session has ended, for either side's reason.
	Done() <-chan struct{}
	// RemoteAddr is the peer's network address.
	RemoteAddr() net.Addr
}

// PathRTT is implemented by sessions whose transport measures the path's
// round-trip time itself (QUIC and KCP do, from their acknowledgements).
// netcode uses it to decide whether reliable frames are worth copying into
// datagrams: on a fast, clean path the transport's own retransmission is
// quick enough.
type PathRTT interface {
	// RTT is the transport's smoothed round-trip time, 0 before it has a
	// sample.
	RTT() time.Duration
}

// Challenged is implemented by sessions whose transport gives the
// application no TLS keying material to bind a connect token to: WebSocket
// and WebTransport, since browsers cannot export it. On them the server
// opens the reliable stream with a CHALLENGE frame of random bytes, and the
// client binds its token proof to those instead (PROTOCOL.md 7.7).
type Challenged interface {
	// Challenged marks the session; it does nothing.
	Challenged()
}

// IP is the IP address of a network address, an IPv4-mapped IPv6 address
// as IPv4, or the zero Addr when it has none: what per-address limits and
// connect tokens are bound to (a QUIC connection may change its port).
func IP(a net.Addr) netip.Addr {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Listener accepts sessions from clients.
type Listener interface {
	// Accept waits for the next session whose transport handshake completed.
	Accept(ctx context.Context) (Session, error)
	// Close stops accepting and releases the socket. Sessions already
	// accepted live on. It is idempotent.
	Close() error
	// Addr is the local address the listener is bound to.
	Addr() net.Addr
}

// AcceptFrom waits for the next session on ch for a Listener built on a
// channel: it returns net.ErrClosed once done is closed, and ctx's error
// when ctx ends first.
func AcceptFrom[S Session](ctx context.Context, ch <-chan S, done <-chan struct{}) (Session, error) {
	select {
	case s := <-ch:
		return s, nil
	case <-done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// CloseError reports a session ended by a close code and reason, from the peer
// (Remote) or from this side.
type CloseError struct {
	Code   uint16
	Reason string
	Remote bool
}

func (e *CloseError) Error() string {
	who := "local"
	if e.Remote {
		who = "peer"
	}
	return fmt.Sprintf("closed by %s: code %d: %s", who, e.Code, e.Reason)
}

// Unwrap lets errors.Is(err, net.ErrClosed) hold for every CloseError.
func (e *CloseError) Unwrap() error { return net.ErrClosed }

// AsCloseError returns the *CloseError in err's chain, if any.
func AsCloseError(err error) (*CloseError, bool) {
	var ce *CloseError
	ok := errors.As(err, &ce)
	return ce, ok
}
