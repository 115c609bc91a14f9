// Package quic is Roomwire's QUIC transport: the reliable channel is one
// bidirectional QUIC stream that the client opens, the unreliable channel is
// RFC 9221 datagrams. quic-go does the work; this package adapts it to
// transport.Session and maps QUIC's application close to transport.CloseError.
package quic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

// Config tunes the QUIC transport. The zero value is ready to use.
type Config struct {
	// IdleTimeout closes a connection that hears nothing for this long.
	// Zero means 15 seconds.
	IdleTimeout time.Duration
	// KeepAlive is how long a side hears nothing before it sends a PING,
	// which the peer acknowledges, so that a working path is never silent
	// for longer and netcode can find a dead one without probes of its own.
	// Zero means 1 second; it is at most half of IdleTimeout.
	KeepAlive time.Duration
	// HandshakeTimeout bounds the QUIC/TLS handshake. Zero means 5 seconds.
	HandshakeTimeout time.Duration
	// LocalAddr is the UDP address a client dials from, such as
	// "127.0.0.5:0". Empty lets the system choose. Load tests on one
	// machine spread their bots over loopback addresses with it, as real
	// players come from many, so that per-address limits see them apart.
	LocalAddr string

	// Handshake limits of a listener (PROTOCOL.md 10): the handshakes in
	// progress, from a client's first Initial packet until the listener
	// accepts the connection, each of which holds state in quic-go. An
	// attempt over a limit is refused before any TLS work, with QUIC's
	// CONNECTION_REFUSED: QUIC carries no reason before the handshake.
	//
	// MaxHandshakes caps the handshakes in progress. From half of it on,
	// every new attempt from an address not yet proven must first answer
	// a Retry (RFC 9000 8.1.2; one more round trip, no state on the
	// server), so Initials with forged source addresses cannot fill it.
	// Zero means 1024.
	MaxHandshakes int
	// MaxHandshakesPerIP caps the handshakes in progress from one IP
	// address, counted apart for attempts a Retry proved and the others;
	// beyond it an unproven attempt must answer a Retry and a proven one is
	// refused, so neither one address nor forged packets in its name can
	// take MaxHandshakes. Zero means 32.
	MaxHandshakesPerIP int
	// OnRefuse, if set, learns of each attempt refused for a limit, with a
	// short reason (RefusedHandshakes, RefusedHandshakesPerIP), for
	// counting. It must not block.
	OnRefuse func(reason string)
	// OnHandshakeFailed, if set, learns of each connection of a listener
	// that ended before it was accepted (its QUIC/TLS handshake failed or
	// timed out, or a Divert protocol never called accepted), with the
	// cause; not of those refused for a limit, nor of those cut by the
	// listener's Close. A browser whose WebTransport handshake fails tells
	// its page nothing more than "failed", so this is the one place to see
	// why (a certificate it refused, an ALPN it was not offered). It must
	// not block.
	OnHandshakeFailed func(HandshakeFailure)

	// Divert serves other application protocols on a listener's port, by
	// ALPN: the TLS configuration offers each after roomwire/1, and a
	// connection that negotiated one is handed to its function instead of
	// Accept, on the listener's routing goroutine (the function must not
	// block). The function owns the connection. The connection counts as a
	// handshake in progress (MaxHandshakes, MaxHandshakesPerIP) until the
	// function calls accepted, which it does once the protocol's own
	// handshake is done, or until the connection ends. The WebTransport
	// transport serves HTTP/3 ("h3") this way. A listener with Divert also
	// enables QUIC stream resets with partial delivery, which HTTP/3's
	// WebTransport needs and native clients ignore. Listen only.
	Divert map[string]func(conn *quicgo.Conn, accepted func())
}

// HandshakeFailure is a connection that ended before its listener accepted
// it (Config.OnHandshakeFailed).
type HandshakeFailure struct {
	// Remote is the client's address.
	Remote net.Addr
	// ALPN lists the application protocols the client offered in its TLS
	// ClientHello, if it got that far: "h3" from a browser.
	ALPN []string
	// Err is why the connection ended: a TLS alert in a *quicgo.TransportError,
	// a *quicgo.HandshakeTimeoutError, or the Divert protocol's own close.
	Err error
}

// Defaults of the handshake limits.
const (
	defaultMaxHandshakes      = 1024
	defaultMaxHandshakesPerIP = 32
)

// QUICConfig is the quic-go configuration these settings make, for a
// protocol that dials QUIC itself, such as WebTransport.
func (c Config) QUICConfig() *quicgo.Config {
	idle := c.idleTimeout()
	hs := c.HandshakeTimeout
	if hs <= 0 {
		hs = 5 * time.Second
	}
	return &quicgo.Config{
		EnableDatagrams:      true,
		MaxIdleTimeout:       idle,
		KeepAlivePeriod:      c.keepAlive(),
		HandshakeIdleTimeout: hs,
	}
}

// idleTimeout is IdleTimeout with its default applied.
func (c Config) idleTimeout() time.Duration {
	if c.IdleTimeout <= 0 {
		return 15 * time.Second
	}
	return c.IdleTimeout
}

// keepAlive is KeepAlive with its default and bound applied.
func (c Config) keepAlive() time.Duration {
	k := c.KeepAlive
	if k <= 0 {
		k = time.Second
	}
	return min(k, c.idleTimeout()/2)
}

// withALPN is t offering roomwire/1 when it offers nothing, and then every
// protocol in extra it does not offer yet.
func withALPN(t *tls.Config, extra ...string) *tls.Config {
	t = t.Clone()
	if len(t.NextProtos) == 0 {
		t.NextProtos = []string{reliable.ALPN}
	}
	for _, p := range extra {
		if !slices.Contains(t.NextProtos, p) {
			t.NextProtos = append(t.NextProtos, p)
		}
	}
	return t
}

// serverTLS is the listener's TLS configuration: withALPN, and a hook that
// notes each client's offered protocols for OnHandshakeFailed.
func serverTLS(t *tls.Config, cfg Config) *tls.Config {
	t = withALPN(t, slices.Sorted(maps.Keys(cfg.Divert))...)
	if cfg.OnHandshakeFailed == nil {
		return t
	}
	next := t.GetConfigForClient
	t.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if tk := ticketOf(hello.Context()); tk != nil {
			tk.offered(hello.SupportedProtos)
		}
		if next != nil {
			return next(hello)
		}
		return nil, nil
	}
	return t
}

// Listener accepts QUIC connections and their reliable stream.
type Listener struct {
	ln   *quicgo.Listener
	tr   *quicgo.Transport
	gate *gate
	// own is the socket Listen made, closed with the transport.
	own       net.PacketConn
	closeOnce sync.Once
	keep      time.Duration // Config.keepAlive, for its sessions

	// With Config.Divert, a routing goroutine accepts every connection:
	// native ones wait in native for Accept, up to acceptQueue of them;
	// routed is closed when it ends.
	divert map[string]func(*quicgo.Conn, func())
	native chan *quicgo.Conn
	routed chan struct{}
}

// acceptQueue is how many native connections wait for Accept on a listener
// with Divert; one more is refused. It is larger than quic-go's own queue
// (32), which the routing goroutine drains into it, so that a burst of
// handshakes completed while the server's accept loop waits for a CPU (a
// server pinned to one core) is not refused.
const acceptQueue = 1024

var _ transport.Listener = (*Listener)(nil)
var _ transport.Session = (*Session)(nil)
var _ transport.PathRTT = (*Session)(nil)
var _ transport.KeptAlive = (*Session)(nil)
var _ transport.ReadNotifier = (*Session)(nil)

// Listen binds a QUIC listener on the UDP address addr.
func Listen(addr string, tlsConf *tls.Config, cfg Config) (*Listener, error) {
	if tlsConf == nil {
		return nil, errors.New("quic: listen: a TLS config is required")
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
	}
	l, err := listen(conn, true, tlsConf, cfg)
	if err != nil {
		return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
	}
	return l, nil
}

// ListenConn serves QUIC on a packet conn the caller made, such as an
// impairment wrapper in tests. Closing the listener does not close pc.
func ListenConn(pc net.PacketConn, tlsConf *tls.Config, cfg Config) (*Listener, error) {
	if tlsConf == nil {
		return nil, errors.New("quic: listen: a TLS config is required")
	}
	l, err := listen(pc, false, tlsConf, cfg)
	if err != nil {
		return nil, fmt.Errorf("quic: listen on %s: %w", pc.LocalAddr(), err)
	}
	return l, nil
}

// listen runs a quic-go transport on pc whose connection attempts pass the
// gate first.
func listen(pc net.PacketConn, own bool, tlsConf *tls.Config, cfg Config) (*Listener, error) {
	g := newGate(cfg)
	tr := &quicgo.Transport{Conn: pc, ConnContext: g.connContext, VerifySourceAddress: g.needRetry}
	qc := cfg.QUICConfig()
	qc.EnableStreamResetPartialDelivery = len(cfg.Divert) > 0
	ln, err := tr.Listen(serverTLS(tlsConf, cfg), qc)
	if err != nil {
		_ = tr.Close()
		if own {
			_ = pc.Close()
		}
		return nil, err
	}
	l := &Listener{ln: ln, tr: tr, gate: g, keep: cfg.keepAlive()}
	if own {
		l.own = pc
	}
	if len(cfg.Divert) > 0 {
		l.divert = maps.Clone(cfg.Divert)
		l.native = make(chan *quicgo.Conn, acceptQueue)
		l.routed = make(chan struct{})
		go l.route()
	}
	return l, nil
}

// route accepts every connection of a listener with Divert: those of a
// diverted ALPN go to their function, the others wait for Accept.
func (l *Listener) route() {
	defer close(l.routed)
	for {
		conn, err := l.ln.Accept(context.Background())
		if err != nil {
			return
		}
		t := ticketOf(conn.Context())
		if fn := l.divert[conn.ConnectionState().TLS.NegotiatedProtocol]; fn != nil {
			accepted := func() {}
			if t != nil {
				accepted = t.accepted
			}
			fn(conn, accepted)
			continue
		}
		select {
		case l.native <- conn:
		default:
			_ = conn.CloseWithError(quicgo.ApplicationErrorCode(reliable.CloseRefused), "server busy: accept queue full")
		}
	}
}

// Accept waits for a connection whose QUIC handshake completed. The client's
// stream is accepted lazily, on the session's first Read or Write, so a client
// that never opens one holds up no other; the caller's handshake deadline
// closes it.
func (l *Listener) Accept(ctx context.Context) (transport.Session, error) {
	conn, err := l.accept(ctx)
	if err != nil {
		return nil, err
	}
	if t := ticketOf(conn.Context()); t != nil {
		t.accepted()
	}
	return newSession(conn, nil, l.keep), nil
}

// accept is the next native connection.
func (l *Listener) accept(ctx context.Context) (*quicgo.Conn, error) {
	if l.native == nil {
		return l.ln.Accept(ctx)
	}
	select {
	case conn := <-l.native:
		return conn, nil
	case <-l.routed:
		select { // one routed just before the end
		case conn := <-l.native:
			return conn, nil
		default:
			return nil, quicgo.ErrServerClosed
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the listener. Connections already accepted stay open (those
// handed to a Divert function too); the socket is released once the last
// of them ended.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		err = l.ln.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		if l.routed != nil {
			<-l.routed
			for len(l.native) > 0 {
				_ = (<-l.native).CloseWithError(quicgo.ApplicationErrorCode(reliable.CloseGoingAway), "server closed")
			}
		}
		l.gate.close(func() {
			_ = l.tr.Close()
			if l.own != nil {
				_ = l.own.Close()
			}
		})
	})
	return err
}

// Addr is the bound UDP address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Dial connects to a QUIC server at addr (host:port) and opens the reliable
// stream.
func Dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg Config) (*Session, error) {
	if cfg.LocalAddr == "" {
		return dial(ctx, addr, cfg.keepAlive(), tlsConf, func(tc *tls.Config) (*quicgo.Conn, error) {
			return quicgo.DialAddr(ctx, addr, tc, cfg.QUICConfig())
		})
	}
	la, err := net.ResolveUDPAddr("udp", cfg.LocalAddr)
	if err != nil {
		return nil, fmt.Errorf("quic: local address: %w", err)
	}
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quic: dial %s: %w", addr, err)
	}
	pc, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, fmt.Errorf("quic: dial from %s: %w", cfg.LocalAddr, err)
	}
	return DialOwned(ctx, pc, ra, tlsConf, cfg)
}

// DialOwned is DialConn that hands pc to the session: the session closes
// it when it closes, and a failed dial closes it at once. For a socket
// made for this one connection, such as an impairment conn.
func DialOwned(ctx context.Context, pc net.PacketConn, addr net.Addr, tlsConf *tls.Config, cfg Config) (*Session, error) {
	s, err := DialConn(ctx, pc, addr, tlsConf, cfg)
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	s.pc = pc
	return s, nil
}

// DialConn is Dial over a packet conn the caller made; the session does not
// close pc.
func DialConn(ctx context.Context, pc net.PacketConn, addr net.Addr, tlsConf *tls.Config, cfg Config) (*Session, error) {
	return dial(ctx, addr.String(), cfg.keepAlive(), tlsConf, func(tc *tls.Config) (*quicgo.Conn, error) {
		return quicgo.Dial(ctx, pc, addr, tc, cfg.QUICConfig())
	})
}

// dial completes a QUIC handshake with connect and opens the reliable
// stream.
func dial(ctx context.Context, addr string, keep time.Duration, tlsConf *tls.Config, connect func(*tls.Config) (*quicgo.Conn, error)) (*Session, error) {
	if tlsConf == nil {
		return nil, errors.New("quic: dial: a TLS config is required")
	}
	conn, err := connect(withALPN(tlsConf))
	if err != nil {
		return nil, fmt.Errorf("quic: dial %s: %w", addr, closeErrorOf(err))
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		_ = conn.CloseWithError(0, "no stream")
		return nil, fmt.Errorf("quic: open stream: %w", closeErrorOf(err))
	}
	return newSession(conn, st, keep), nil
}

// Session is one QUIC connection with its reliable stream.
type Session struct {
	conn *quicgo.Conn

	stOnce sync.Once
	st     *quicgo.Stream
	stErr  error

	closeOnce sync.Once
	mu        sync.Mutex
	local     *transport.CloseError
	// pc, if set, is the socket Dial made for LocalAddr: closed with the
	// session.
	pc   net.PacketConn
	keep time.Duration

	// ahead is the stream's next byte while the connection's reader is
	// parked (NotifyReadable); Read returns it first.
	ahead transport.ReadAhead
}

func newSession(conn *quicgo.Conn, st *quicgo.Stream, keep time.Duration) *Session {
	s := &Session{conn: conn, st: st, keep: keep}
	if st != nil {
		s.stOnce.Do(func() {})
	}
	return s
}

// stream returns the reliable stream, waiting for the client to open it on
// the server side.
func (s *Session) stream() (*quicgo.Stream, error) {
	s.stOnce.Do(func() {
		s.st, s.stErr = s.conn.AcceptStream(s.conn.Context())
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
// stream is idle (transport.ReadNotifier): quic-go tells no one when a
// stream has bytes, so a goroutine of the session's reads one ahead
// (transport.ReadAhead).
func (s *Session) NotifyReadable(f func()) bool {
	st, err := s.stream()
	if err != nil {
		return false // Read returns the error at once
	}
	return s.ahead.Notify(st, f)
}

func (s *Session) Write(p []byte) (int, error) {
	st, err := s.stream()
	if err != nil {
		return 0, s.mapErr(err)
	}
	n, err := st.Write(p)
	return n, s.mapErr(err)
}

// SendDatagram sends p as one QUIC datagram; quic-go copies it.
func (s *Session) SendDatagram(p []byte) error {
	return s.mapErr(s.conn.SendDatagram(p))
}

// DatagramQueueLen is quic-go v0.64.1's send queue for datagrams
// (maxDatagramSendQueueLen): SendDatagram blocks only while it is full.
func (s *Session) DatagramQueueLen() int { return 32 }

// ReceiveDatagram returns the next datagram quic-go has queued.
func (s *Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	b, err := s.conn.ReceiveDatagram(ctx)
	return b, s.mapErr(err)
}

// MaxDatagram is the protocol's datagram limit, which always fits a QUIC
// datagram frame in a 1280-byte packet.
func (s *Session) MaxDatagram() int { return unreliable.MaxDatagram }

// RTT is quic-go's smoothed round-trip time for the connection.
func (s *Session) RTT() time.Duration { return s.conn.ConnectionStats().SmoothedRTT }

// Heard counts the QUIC packets received on the connection, quic-go's
// keep-alive PINGs and acknowledgements included.
func (s *Session) Heard() uint64 { return s.conn.ConnectionStats().PacketsReceived }

// KeepAlive is Config.KeepAlive: quic-go sends a PING once it has heard
// nothing for that long.
func (s *Session) KeepAlive() time.Duration { return s.keep }

// Close closes the connection with an application error code and reason.
func (s *Session) Close(code uint16, reason string) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.local = &transport.CloseError{Code: code, Reason: reason}
		s.mu.Unlock()
		_ = s.conn.CloseWithError(quicgo.ApplicationErrorCode(code), reason)
		if s.pc != nil {
			_ = s.pc.Close()
		}
	})
	return nil
}

// ExportKeyingMaterial derives bytes from the connection's TLS secrets
// (RFC 5705): both ends get the same, no one else can. Netcode binds a
// connect token to the connection with it.
func (s *Session) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	st := s.conn.ConnectionState().TLS
	return st.ExportKeyingMaterial(label, context, length)
}

// Done is closed when the QUIC connection ends.
func (s *Session) Done() <-chan struct{} { return s.conn.Context().Done() }

// RemoteAddr is the peer's UDP address.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// closeErrorOf is err as a transport.CloseError when it is the peer's
// application close, such as a server refusing the connection right after
// the handshake, so that the caller learns the code and reason.
func closeErrorOf(err error) error {
	var ae *quicgo.ApplicationError
	if errors.As(err, &ae) && ae.ErrorCode <= 0xffff {
		return &transport.CloseError{Code: uint16(ae.ErrorCode), Reason: ae.ErrorMessage, Remote: ae.Remote}
	}
	return err
}

// mapErr turns quic-go's close errors into transport.CloseError.
func (s *Session) mapErr(err error) error {
	if err == nil {
		return nil
	}
	var ae *quicgo.ApplicationError
	if errors.As(err, &ae) {
		code := uint16(ae.ErrorCode)
		if ae.ErrorCode > 0xffff {
			code = uint16(reliable.CloseProtocolError) // not a Roomwire close code
		}
		return &transport.CloseError{Code: code, Reason: ae.ErrorMessage, Remote: ae.Remote}
	}
	s.mu.Lock()
	local := s.local
	s.mu.Unlock()
	if local != nil {
		return local
	}
	var ie *quicgo.IdleTimeoutError
	if errors.As(err, &ie) {
		return &transport.CloseError{Code: uint16(reliable.CloseTimeout), Reason: "idle timeout", Remote: false}
	}
	if IsRefused(err) {
		// quic-go's server refuses a handshake it completed when its accept
		// queue is full; to the application that is a busy server.
		return &transport.CloseError{Code: uint16(reliable.CloseRefused), Reason: "server busy: QUIC accept queue full (CONNECTION_REFUSED)", Remote: true}
	}
	return err
}

// IsRefused reports whether err is quic-go's CONNECTION_REFUSED from the
// server: it refused the handshake before any application data, as when
// its accept queue is full.
func IsRefused(err error) bool {
	var te *quicgo.TransportError
	return errors.As(err, &te) && te.Remote && te.ErrorCode == quicgo.ConnectionRefused
}
