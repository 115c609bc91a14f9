// Package kcp is Roomwire's second transport: reliable events over a KCP
// session (kcp-go, turbo settings by default) and unreliable datagrams as
// raw UDP packets on the same socket and port, both under the secure packet
// layer of package secure. A client connects only with a connect token
// (package token); every packet after the handshake is sealed and checked
// against replays, so the transport is as safe as QUIC's TLS.
//
// Admission: a Listener keeps no state for a handshake in progress. Its
// CHALLENGE carries everything it needs, sealed, so REQUESTs from forged or
// silent addresses fill nothing; only a RESPONSE, which proves the client
// receives at its address, makes a session and remembers the token. What
// one address may take is capped (Config's admission limits), and refused
// requests are counted in ListenerStats.
//
// Goroutines: a Listener owns one reader and one ticker goroutine for its
// socket; a dialled Session owns the same two for its own socket. kcp-go
// adds two per session (its reader over our in-memory packet conn and its
// sender) and a shared scheduler it starts when the program loads. All of a
// session's goroutines end when it closes, and a Listener's when it closes.
package kcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	kcpgo "github.com/xtaci/kcp-go/v5"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/secure"
	"github.com/roomwire/roomwire/reliable"
)

// Config tunes the KCP transport. Zero fields take the documented defaults.
type Config struct {
	// Key is the private key shared with the token issuer. Servers need it.
	Key token.Key
	// ProtocolID must match the tokens' protocol id.
	ProtocolID uint64
	// MaxClients caps a listener's sessions; a valid request beyond it is
	// answered DENIED. Zero means 1024.
	MaxClients int
	// KeepAlive is how long a side may send nothing before it sends a
	// KEEPALIVE. Zero means 1 second.
	KeepAlive time.Duration
	// Timeout removes a session that received nothing for this long. Zero
	// means the token's timeout (10 s unless the issuer chose otherwise),
	// at most MaxSessionTimeout.
	Timeout time.Duration

	// Admission limits (PROTOCOL.md 7.6, 8.5): what one address may take of
	// a listener, and how far a token is trusted, so that no table can be
	// filled from outside. A request over a limit is refused, and counted
	// in ListenerStats; everyone else goes on.
	//
	// MaxClientsPerIP caps the sessions from one IP address (all its
	// ports); a valid request beyond it is answered DENIED. Zero means 64:
	// enough for a LAN party or an office behind one NAT. Set it to
	// MaxClients to cap only the total.
	MaxClientsPerIP int
	// MaxTokenLifetime refuses a token whose expiry is more than this far
	// in the future, whatever its issuer chose: its REQUEST is dropped like
	// that of any bad token. Tokens carry only an expiry, so this bounds
	// how old a token may be when it is used and how long the listener
	// remembers it. Zero means 5 minutes.
	MaxTokenLifetime time.Duration
	// MaxSessionTimeout caps the session timeout a token may ask for, so a
	// peer that vanishes is removed within it whatever its token says; an
	// explicit Timeout is not capped. It applies to dialled sessions too.
	// Zero means 15 seconds.
	MaxSessionTimeout time.Duration
	// MaxTokens caps the token-reuse table: the token of every admitted
	// session, remembered until it expires. A new session that would need
	// an entry beyond it is answered DENIED. Zero means 65 536.
	MaxTokens int
	// MaxTokensPerIP caps the reuse table's entries for one IP address; a
	// new session beyond it is answered DENIED. Zero means 256.
	MaxTokensPerIP int
	// HandshakeTimeout bounds a client's request → challenge → response.
	// Zero means 5 seconds.
	HandshakeTimeout time.Duration
	// NoDelay, Interval (ms), Resend and NoCongestion are KCP's tuning; all
	// zero means turbo: 1, 10, 2, 1 (no delay, 10 ms, fast resend after 2
	// duplicate acks, no congestion window).
	NoDelay, Interval, Resend, NoCongestion int
	// Window is KCP's send and receive window in segments. Zero means 256.
	Window int
	// LocalAddr is the UDP address a client dials from, such as
	// "127.0.0.5:0". Empty lets the system choose. Load tests on one
	// machine spread their bots over loopback addresses with it, as real
	// players come from many, so that per-address limits see them apart.
	LocalAddr string
}

func (c *Config) populate() {
	if c.MaxClients <= 0 {
		c.MaxClients = 1024
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.MaxClientsPerIP <= 0 {
		c.MaxClientsPerIP = 64
	}
	if c.MaxTokenLifetime <= 0 {
		c.MaxTokenLifetime = token.DefaultMaxLifetime
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = 15 * time.Second
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = token.DefaultMaxTokens
	}
	if c.MaxTokensPerIP <= 0 {
		c.MaxTokensPerIP = token.DefaultMaxTokensPerIP
	}
	if c.NoDelay == 0 && c.Interval == 0 && c.Resend == 0 && c.NoCongestion == 0 {
		c.NoDelay, c.Interval, c.Resend, c.NoCongestion = 1, 10, 2, 1
	}
	if c.Window <= 0 {
		c.Window = 256
	}
}

// kcpConv is every session's KCP conversation id: each session has its own
// packet conn, so ids need not tell sessions apart.
const kcpConv = 1

// queue lengths per session: KCP segments waiting for kcp-go's reader and
// datagrams waiting for ReceiveDatagram. Beyond them packets are dropped,
// as a socket buffer would.
const (
	kcpQueue      = 512
	datagramQueue = 128
	// disconnectCopies is how many DISCONNECT packets a closing side sends,
	// since any one may be lost.
	disconnectCopies = 3
)

var bufPool = sync.Pool{New: func() any { return new([secure.MaxPacket]byte) }}

// Stats count a session's or listener's secure-layer packets.
type Stats struct {
	PacketsSent, PacketsReceived uint64
	// Dropped counts packets that failed to open, were replays, or had no
	// session; none of them was answered.
	Dropped uint64
}

// Session is one KCP connection with its datagram channel.
type Session struct {
	remote  netip.AddrPort
	raddr   *net.UDPAddr
	sealer  *secure.Sealer
	opener  *secure.Opener // reader goroutine only
	send    func([]byte) error
	claims  *token.Claims
	timeout time.Duration
	keep    time.Duration

	kcp   *kcpgo.UDPSession
	vconn *packetConn
	dgram chan []byte

	lastRecv, lastSend atomic.Int64 // unix nanoseconds
	sent, received     atomic.Uint64
	dropped            atomic.Uint64

	closeOnce sync.Once
	closeErr  atomic.Pointer[transport.CloseError]
	done      chan struct{}
	onClose   func(*Session)
	// wait, on a dialled session, waits for its reader and ticker.
	wait func()
	// challenge is the sequence number of the challenge that admitted the
	// session (server side), to tell a repeated RESPONSE from a new one.
	challenge uint64
}

var _ transport.Session = (*Session)(nil)
var _ transport.PathRTT = (*Session)(nil)

func newSession(cfg *Config, remote netip.AddrPort, claims *token.Claims, sealer *secure.Sealer, opener *secure.Opener, send func([]byte) error, onClose func(*Session)) *Session {
	s := &Session{
		remote:  remote,
		raddr:   net.UDPAddrFromAddrPort(remote),
		sealer:  sealer,
		opener:  opener,
		send:    send,
		claims:  claims,
		timeout: sessionTimeout(cfg, claims.Timeout),
		keep:    cfg.KeepAlive,
		dgram:   make(chan []byte, datagramQueue),
		done:    make(chan struct{}),
		onClose: onClose,
	}
	now := time.Now().UnixNano()
	s.lastRecv.Store(now)
	s.lastSend.Store(now)
	s.vconn = &packetConn{s: s, in: make(chan segment, kcpQueue), closed: make(chan struct{})}
	k, _ := kcpgo.NewConn4(kcpConv, s.raddr, nil, 0, 0, false, s.vconn)
	k.SetNoDelay(cfg.NoDelay, cfg.Interval, cfg.Resend, cfg.NoCongestion)
	k.SetWindowSize(cfg.Window, cfg.Window)
	k.SetMtu(secure.MaxPayload)
	k.SetStreamMode(true)
	k.SetWriteDelay(false)
	k.SetACKNoDelay(true)
	s.kcp = k
	return s
}

// sessionTimeout is the timeout of a session whose token asks for
// fromToken: the configured Timeout, else the token's (10 s if it names
// none) but at most MaxSessionTimeout, since whoever holds a token chose
// its timeout and a peer that vanishes must not hold its place for hours.
func sessionTimeout(cfg *Config, fromToken time.Duration) time.Duration {
	if cfg.Timeout > 0 {
		return cfg.Timeout
	}
	if fromToken <= 0 {
		fromToken = 10 * time.Second
	}
	return min(fromToken, cfg.MaxSessionTimeout)
}

// seal sends one sealed packet of type t.
func (s *Session) seal(t secure.PacketType, payload []byte) error {
	buf := bufPool.Get().(*[secure.MaxPacket]byte)
	p := s.sealer.Seal(buf[:0], t, payload)
	err := s.send(p)
	bufPool.Put(buf)
	if err == nil {
		s.sent.Add(1)
		s.lastSend.Store(time.Now().UnixNano())
	}
	return err
}

// handle takes one sealed packet from the reader goroutine; scratch is the
// reader's buffer to open it into.
func (s *Session) handle(p, scratch []byte) {
	t, payload, err := s.opener.Open(scratch[:0], p)
	if err != nil {
		s.dropped.Add(1)
		return
	}
	s.received.Add(1)
	s.lastRecv.Store(time.Now().UnixNano())
	switch t {
	case secure.PacketKeepAlive:
	case secure.PacketKCP:
		buf := bufPool.Get().(*[secure.MaxPacket]byte)
		n := copy(buf[:], payload)
		if !s.vconn.push(buf, n) {
			bufPool.Put(buf)
		}
	case secure.PacketDatagram:
		select {
		case s.dgram <- append([]byte(nil), payload...):
		default:
			s.dropped.Add(1) // the application is not reading: drop, like a full socket buffer
		}
	case secure.PacketDisconnect:
		code, reason, err := secure.ParseDisconnect(payload)
		if err != nil {
			code, reason = uint16(reliable.CloseProtocolError), "malformed disconnect"
		}
		s.shut(&transport.CloseError{Code: code, Reason: reason, Remote: true}, false)
	default:
		s.dropped.Add(1) // DENIED or CHALLENGE on an open session
	}
}

// tick sends a keepalive after KeepAlive of silence and closes a session
// that heard nothing for its timeout.
func (s *Session) tick(now time.Time) {
	n := now.UnixNano()
	if d := time.Duration(n - s.lastRecv.Load()); d > s.timeout {
		s.shut(&transport.CloseError{Code: uint16(reliable.CloseTimeout), Reason: fmt.Sprintf("peer silent for %v", d.Round(time.Millisecond))}, false)
		return
	}
	if time.Duration(n-s.lastSend.Load()) >= s.keep {
		_ = s.seal(secure.PacketKeepAlive, nil)
	}
}

func (s *Session) err() error {
	if ce := s.closeErr.Load(); ce != nil {
		return ce
	}
	return net.ErrClosed
}

// Read reads from the reliable stream.
func (s *Session) Read(p []byte) (int, error) {
	n, err := s.kcp.Read(p)
	if err != nil {
		return n, s.err()
	}
	return n, nil
}

// Write writes to the reliable stream.
func (s *Session) Write(p []byte) (int, error) {
	select {
	case <-s.done:
		return 0, s.err()
	default:
	}
	n, err := s.kcp.Write(p)
	if err != nil {
		return n, s.err()
	}
	return n, nil
}

// SendDatagram seals p into one UDP packet.
func (s *Session) SendDatagram(p []byte) error {
	select {
	case <-s.done:
		return s.err()
	default:
	}
	if len(p) > secure.MaxPayload {
		return fmt.Errorf("kcp: datagram of %d bytes > %d", len(p), secure.MaxPayload)
	}
	return s.seal(secure.PacketDatagram, p)
}

// ReceiveDatagram returns the next datagram.
func (s *Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	select {
	case d := <-s.dgram:
		return d, nil
	case <-s.done:
		return nil, s.err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// MaxDatagram is the largest datagram that fits one sealed packet.
func (s *Session) MaxDatagram() int { return secure.MaxPayload }

// Close tells the peer the code and reason with DISCONNECT packets and ends
// the session.
func (s *Session) Close(code uint16, reason string) error {
	s.shut(&transport.CloseError{Code: code, Reason: reason}, true)
	return nil
}

func (s *Session) shut(ce *transport.CloseError, tell bool) {
	s.closeOnce.Do(func() {
		s.closeErr.Store(ce)
		if tell {
			var b [2 + secure.MaxReason]byte
			p := secure.AppendDisconnect(b[:0], ce.Code, ce.Reason)
			for i := 0; i < disconnectCopies; i++ {
				_ = s.seal(secure.PacketDisconnect, p)
			}
		}
		close(s.done)
		_ = s.kcp.Close()
		s.vconn.shut()
		if s.onClose != nil {
			s.onClose(s)
		}
	})
}

// Wait waits until the session's own goroutines ended, after Close. Only a
// dialled session has any; a listener's sessions share the listener's.
func (s *Session) Wait() {
	if s.wait != nil {
		s.wait()
	}
}

// Done is closed when the session ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// RemoteAddr is the peer's UDP address.
func (s *Session) RemoteAddr() net.Addr { return s.raddr }

// TokenClaims is what the client's connect token said; netcode hands it to
// the server's auth hook.
func (s *Session) TokenClaims() *token.Claims { return s.claims }

// RTT is KCP's smoothed round-trip time, 0 before its first sample.
func (s *Session) RTT() time.Duration { return time.Duration(s.kcp.GetSRTT()) * time.Millisecond }

// Stats returns the session's packet counters.
func (s *Session) Stats() Stats {
	return Stats{PacketsSent: s.sent.Load(), PacketsReceived: s.received.Load(), Dropped: s.dropped.Load()}
}

// packetConn is the net.PacketConn kcp-go runs on: reads are the session's
// opened KCP packets, writes are sealed and sent.
type packetConn struct {
	s      *Session
	in     chan segment
	closed chan struct{}
	once   sync.Once
}

// segment is an opened KCP packet in a pooled buffer.
type segment struct {
	buf *[secure.MaxPacket]byte
	n   int
}

func (c *packetConn) push(b *[secure.MaxPacket]byte, n int) bool {
	select {
	case <-c.closed:
		return false
	case c.in <- segment{b, n}:
		return true
	default:
		return false // kcp-go is behind: drop; KCP resends
	}
}

func (c *packetConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case seg := <-c.in:
		n := copy(p, seg.buf[:seg.n])
		bufPool.Put(seg.buf)
		return n, c.s.raddr, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *packetConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	if err := c.s.seal(secure.PacketKCP, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *packetConn) shut() {
	c.once.Do(func() { close(c.closed) })
}

func (c *packetConn) Close() error                     { c.shut(); return nil }
func (c *packetConn) LocalAddr() net.Addr              { return c.s.raddr }
func (c *packetConn) SetDeadline(time.Time) error      { return nil }
func (c *packetConn) SetReadDeadline(time.Time) error  { return nil }
func (c *packetConn) SetWriteDeadline(time.Time) error { return nil }
