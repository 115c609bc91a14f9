// Package kcp is Roomwire's second transport: reliable events over KCP
// (kcp-go's ARQ core, turbo settings by default) and unreliable datagrams
// as raw UDP packets on the same socket and port, both under the secure
// packet layer of package secure. A client connects only with a connect
// token (package token); every packet after the handshake is sealed and
// checked against replays, so the transport is as safe as QUIC's TLS.
//
// Admission: a Listener keeps no state for a handshake in progress. Its
// CHALLENGE carries everything it needs, sealed, so REQUESTs from forged or
// silent addresses fill nothing; only a RESPONSE, which proves the client
// receives at its address, makes a session and remembers the token. What
// one address may take is capped (Config's admission limits), and refused
// requests are counted in ListenerStats.
//
// Goroutines: a Listener owns two, whatever its number of sessions, and no
// session has one of its own. The reader reads the socket (in batches,
// recvmmsg, on a *net.UDPConn), opens each packet and handles it inline.
// On Linux the socket is kept out of Go's network poller (rawUDP), and
// while many sessions are sending the reader sleeps Config.ReadCoalesce
// between reads rather than waking for every packet:
// KCP segments go into the session's KCP core, and what the core answers
// leaves in one sendmmsg per batch read; datagrams go to the session's
// DatagramHandler, or its queue for ReceiveDatagram; a Read waiting on the
// session is woken only once the core has bytes for it, and so is a reader
// that NotifyReadable asked to be started, so that the application need
// keep no goroutine in Read on an idle session. The timer
// goroutine flushes the cores that have segments in flight (or owe an
// acknowledgement or a window update) when they are due, from a heap, and
// every 100 ms sends keepalives (in one sendmmsg) and ends silent
// sessions; an idle session costs it that check and nothing else. Write
// runs on its caller's goroutine, and its segments leave before it
// returns. A dialled Session owns the same two goroutines for its own
// socket, reading one packet at a time. All of them end when their socket
// closes: a Listener's at Close, which closes its sessions too, a dialled
// Session's once it ended for either side's reason (Wait waits for them).
// kcp-go starts a process-wide scheduler when the program loads; this
// package does not use it.
package kcp

import (
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
	// ReadCoalesce is how long a listener's reader sleeps between reads
	// while many sessions are sending (a game's players at their input
	// rate), so that one wake-up reads many packets: on a busy server that
	// is most of the CPU a packet costs. Nothing waits longer than this to
	// be read, and only while the listener is busy; one session's quick
	// exchanges never count as busy. Zero means 1 ms; negative turns it
	// off. Dialled sessions read at once.
	ReadCoalesce time.Duration
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
	if c.ReadCoalesce == 0 {
		c.ReadCoalesce = time.Millisecond
	}
}

const (
	// datagramQueue is how many datagrams wait for ReceiveDatagram;
	// beyond it they are dropped, as a socket buffer would. The queue is
	// made at the first datagram, and never with HandleDatagrams.
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
	conn    PacketConn   // the socket, shared with the listener's other sessions
	bw      *batchWriter // the same, for AddDatagram
	timers  *timers      // the socket's
	cfg     *Config      // the listener's or dialled session's, populated
	sealer  *secure.Sealer
	opener  *secure.Opener // receive goroutine only
	claims  *token.Claims
	timeout time.Duration
	keep    time.Duration
	// answerKeepAlive: a dialled session answers a KEEPALIVE with one, and
	// keeps its own for a longer silence (clientKeepAlive).
	answerKeepAlive bool
	// readEpoch is the listener's busy window this session was last heard
	// in (Listener.busy); its reader goroutine's alone.
	readEpoch uint32
	// interval is KCP's, in mono units: how long owed work may wait.
	interval int64

	mu     sync.Mutex
	kcp    *kcpgo.KCP // made at the first segment either way
	out    *outbox    // where output goes while a loop holds mu; nil: sent at once
	closed bool
	rest   []byte // what a short Read left of a segment, in rbuf
	rbuf   []byte
	// A Read or Write waiting sets rwait or wwait and waits on readable
	// or writable (made at the first wait); whoever makes progress
	// possible clears the flag and sends.
	rwait, wwait bool
	// onReadable, with rwait, is NotifyReadable's f: called in place of a
	// Read's wake-up.
	onReadable func()
	// ackOwed: acknowledgements wait for the Read that was woken (input).
	ackOwed bool
	// The idle trim's view of the core (trimIdle): its mark when last
	// looked at, since when (unix nanoseconds) it has not changed, and
	// whether the core was trimmed since.
	mark        uint64
	markSince   int64
	coreTrimmed bool
	// lent: the trim lent the core's flush buffer (releaseBuffer), and
	// core gets one back before the core is used.
	lent               bool
	readable, writable chan struct{}

	// ti and due (mono) are the session's place in timers, guarded by
	// timers.mu.
	ti  int
	due int64

	dmu     sync.Mutex // guards making dgram
	dgram   atomic.Pointer[chan []byte]
	handler atomic.Pointer[func([]byte)]

	lastRecv, lastSend atomic.Int64 // unix nanoseconds
	// A listener's session times its KEEPALIVEs' answers (8.6): kaSent is
	// when one went with none answered since, kaRTT the newest round trip
	// so measured and kaAt when (unix nanoseconds). An idle session's KCP
	// takes a sample only from the rare data it carries, so its smoothed
	// RTT can stay where a busy moment left it; these are fresh.
	kaSent, kaRTT, kaAt atomic.Int64
	sent, received      atomic.Uint64
	dropped             atomic.Uint64

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

var (
	_ transport.Session         = (*Session)(nil)
	_ transport.PathRTT         = (*Session)(nil)
	_ transport.KeptAlive       = (*Session)(nil)
	_ transport.DatagramHandler = (*Session)(nil)
	_ transport.TrySender       = (*Session)(nil)
	_ transport.BatchSender     = (*Session)(nil)
	_ transport.ReadNotifier    = (*Session)(nil)
)

// newSession makes a session with remote over conn; onClose runs once it
// ended.
func newSession(cfg *Config, conn PacketConn, bw *batchWriter, t *timers, remote netip.AddrPort, claims *token.Claims, sealer *secure.Sealer, opener *secure.Opener, onClose func(*Session)) *Session {
	s := &Session{
		remote:   remote,
		raddr:    net.UDPAddrFromAddrPort(remote),
		conn:     conn,
		bw:       bw,
		timers:   t,
		cfg:      cfg,
		sealer:   sealer,
		opener:   opener,
		claims:   claims,
		timeout:  sessionTimeout(cfg, claims.Timeout),
		keep:     cfg.KeepAlive,
		ti:       -1,
		interval: int64(cfg.Interval) * int64(time.Millisecond),
		done:     make(chan struct{}),
		onClose:  onClose,
	}
	now := time.Now().UnixNano()
	s.lastRecv.Store(now)
	s.lastSend.Store(now)
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

// core returns the session's KCP core, made at the first need (s.mu held).
func (s *Session) core() *kcpgo.KCP {
	switch {
	case s.kcp == nil:
		s.kcp = newCore(s.cfg, s.output)
	case s.lent:
		restoreBuffer(s.kcp)
		s.lent = false
	}
	return s.kcp
}

// output sends one packet of the core's (s.mu held): into the outbox of
// the loop that drives the core now, or at once.
func (s *Session) output(p []byte) {
	if s.out != nil {
		s.out.add(s, secure.PacketKCP, p)
		return
	}
	_ = s.seal(secure.PacketKCP, p)
}

// send writes one sealed packet to the peer.
func (s *Session) send(p []byte) error {
	_, err := s.conn.WriteToUDPAddrPort(p, s.remote)
	return err
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

// sealInto seals a packet of type t into b, to be written through w at
// b.Flush, and counts it sent, as seal does.
func (s *Session) sealInto(b *transport.Batch, w transport.BatchWriter, t secure.PacketType, payload []byte) error {
	p := s.sealer.Seal(b.Buffer(secure.MaxPacket), t, payload)
	s.sent.Add(1)
	s.lastSend.Store(time.Now().UnixNano())
	return b.Add(w, s.raddr, p)
}

// handle takes one sealed packet from the receive goroutine, received at
// now (unix nanoseconds); scratch is that goroutine's buffer to open it
// into, and out its outbox for the answers (nil: sent at once).
func (s *Session) handle(p, scratch []byte, now int64, out *outbox) {
	t, payload, err := s.opener.Open(scratch[:0], p)
	if err != nil {
		s.dropped.Add(1)
		return
	}
	s.received.Add(1)
	s.lastRecv.Store(now)
	switch t {
	case secure.PacketKeepAlive:
		if sent := s.kaSent.Swap(0); sent != 0 && time.Duration(now-sent) < s.keep {
			s.kaRTT.Store(now - sent) // an answer to ours
			s.kaAt.Store(now)
		}
		if s.answerKeepAlive && time.Duration(now-s.lastSend.Load()) >= s.keep/3 {
			// A client answers the server's KEEPALIVE at once (8.6), so
			// a server's sessions answer right after its tick's batch of
			// keepalives, together, instead of each at its own moment.
			_ = s.seal(secure.PacketKeepAlive, nil)
		}
	case secure.PacketKCP:
		s.input(payload, out)
	case secure.PacketDatagram:
		s.datagram(payload)
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

// input puts one opened KCP packet into the core; what it answers goes
// out through out. It wakes a waiting Read only once the core has bytes
// for it, and a waiting Write once acknowledgements made room.
//
// Acknowledgements leave at once (KCP's ackNoDelay), with one exception:
// data that wakes a waiting Read is acknowledged when that Read is done,
// as it waits again (Read), or by the reply it writes first, so that a
// request and its reply cost two packets, not four. Should the reader
// never come back, the timer goroutine sends them within an interval.
func (s *Session) input(p []byte, out *outbox) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	k := s.core()
	s.out = out
	push, wask := scan(p)
	later := push && s.rwait // acknowledge when the Read is done, if it is woken
	bad := k.Input(p, true, !later) < 0
	if wask {
		kcpFlush(k, false) // the window size it asked for
	}
	s.wake()
	owed := false
	if later {
		if s.rwait { // nothing to read yet after all (a gap before it)
			kcpFlush(k, true)
		} else {
			s.ackOwed, owed = true, true
		}
	}
	s.out = nil
	s.mu.Unlock()
	if owed {
		s.timers.add(s, mono()+s.interval)
	}
	if bad {
		s.dropped.Add(1) // sealed by the peer, but no KCP packet
	}
}

// wake wakes a waiting Read if the core has a message for it and a waiting
// Write if the send window has room (s.mu held).
func (s *Session) wake() {
	if s.rwait && s.kcp.PeekSize() > 0 {
		s.rwait = false
		notify(s.readable)
		s.readableNow()
	}
	if s.wwait && s.kcp.WaitSnd() < s.cfg.Window {
		s.wwait = false
		notify(s.writable)
	}
}

// readableNow calls NotifyReadable's f, if one waits (s.mu held).
func (s *Session) readableNow() {
	if f := s.onReadable; f != nil {
		s.onReadable = nil
		f()
	}
}

// NotifyReadable implements transport.ReadNotifier: a listener's session
// then costs its idle connection no goroutine at all. Acknowledgements
// owed for what the reader was started for leave now, as they would when
// a Read waits again.
func (s *Session) NotifyReadable(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.rest) > 0 || (s.kcp != nil && s.kcp.PeekSize() > 0) {
		return false
	}
	if s.ackOwed {
		s.ackOwed = false
		kcpFlush(s.core(), true)
	}
	s.rwait, s.onReadable = true, f
	return true
}

// notify sends on a 1-buffered wake-up channel without blocking.
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// update flushes the core for the timer goroutine, its packets into out:
// due retransmissions, window probes, owed acknowledgements. It says
// whether and when (mono) the core needs the next.
//
// It calls the core's flush, not Update: Update flushes only when an
// interval has passed since its last own flush, whatever Write and input
// flushed since, and kcp-go's UDPSession drives its core the same way,
// rescheduling by what flush returns.
func (s *Session) update(out *outbox) (due int64, again bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.kcp == nil {
		return 0, false
	}
	s.out = out
	next := kcpFlush(s.core(), false)
	s.out = nil
	s.ackOwed = false
	s.wake()
	return mono() + int64(next)*int64(time.Millisecond), s.kcp.WaitSnd() > 0
}

// tick sends a keepalive after KeepAlive of silence, into out, and closes
// a session that heard nothing for its timeout.
func (s *Session) tick(now time.Time, out *outbox) {
	n := now.UnixNano()
	if d := time.Duration(n - s.lastRecv.Load()); d > s.timeout {
		s.shut(&transport.CloseError{Code: uint16(reliable.CloseTimeout), Reason: fmt.Sprintf("peer silent for %v", d.Round(time.Millisecond))}, false)
		return
	}
	if time.Duration(n-s.lastSend.Load()) >= s.keep {
		if !s.answerKeepAlive {
			s.kaSent.Store(n)
		}
		if out != nil {
			out.add(s, secure.PacketKeepAlive, nil)
		} else {
			_ = s.seal(secure.PacketKeepAlive, nil)
		}
	}
}

// trimIdle trims the session's KCP core (trimCore) once it carried no
// data for coreTrimAfter, and then not again until it carried some. The
// listener calls it about once a second for each of its sessions.
func (s *Session) trimIdle(now time.Time) {
	n := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kcp == nil || s.closed {
		return
	}
	if m := coreMark(s.kcp); m != s.mark || s.markSince == 0 {
		s.mark, s.markSince, s.coreTrimmed = m, n, false
		return
	}
	if !s.coreTrimmed && time.Duration(n-s.markSince) >= coreTrimAfter {
		trimCore(s.kcp)
		s.lent = releaseBuffer(s.kcp)
		s.coreTrimmed = true
	}
}

func (s *Session) err() error {
	if ce := s.closeErr.Load(); ce != nil {
		return ce
	}
	return net.ErrClosed
}

// Read reads from the reliable stream. Bytes that arrived before the
// session ended are read first; then it returns the reason it ended.
func (s *Session) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		s.mu.Lock()
		if len(s.rest) > 0 {
			n := copy(p, s.rest)
			s.rest = s.rest[n:]
			s.mu.Unlock()
			return n, nil
		}
		if s.kcp != nil {
			if size := s.kcp.PeekSize(); size > 0 {
				n := s.recv(p, size)
				s.mu.Unlock()
				// Reading may have opened a window the peer saw shut:
				// the core tells it at its next flush.
				s.timers.add(s, mono()+s.interval)
				return n, nil
			}
		}
		if s.ackOwed && !s.closed { // the data this Read was woken for is read
			s.ackOwed = false
			kcpFlush(s.core(), true)
		}
		if s.closed {
			s.mu.Unlock()
			return 0, s.err()
		}
		if s.readable == nil {
			s.readable = make(chan struct{}, 1)
		}
		s.rwait = true
		c := s.readable
		s.mu.Unlock()
		select {
		case <-c:
		case <-s.done:
		}
	}
}

// recv takes the core's next message, of size bytes, into p, keeping what
// does not fit for the next Read (s.mu held).
func (s *Session) recv(p []byte, size int) int {
	if len(p) >= size {
		return s.kcp.Recv(p)
	}
	if cap(s.rbuf) < size {
		s.rbuf = make([]byte, size)
	}
	buf := s.rbuf[:size]
	s.kcp.Recv(buf)
	n := copy(p, buf)
	s.rest = buf[n:]
	return n
}

// Write writes to the reliable stream: its segments leave before it
// returns. It blocks only while the send window is full, until the peer's
// acknowledgements make room.
func (s *Session) Write(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, s.err()
		}
		k := s.core()
		if k.WaitSnd() < s.cfg.Window {
			for b := p; len(b) > 0; {
				n := min(len(b), mss)
				k.Send(b[:n]) // one message of one segment: stream mode's wire
				b = b[n:]
			}
			next := kcpFlush(k, false) // now, not at the next interval
			s.ackOwed = false          // the segments carry them
			due := mono() + int64(next)*int64(time.Millisecond)
			again := k.WaitSnd() > 0
			s.mu.Unlock()
			if again {
				s.timers.add(s, due)
			}
			return len(p), nil
		}
		if s.writable == nil {
			s.writable = make(chan struct{}, 1)
		}
		s.wwait = true
		c := s.writable
		s.mu.Unlock()
		select {
		case <-c:
		case <-s.done:
		}
	}
}

// Close tells the peer the code and reason with DISCONNECT packets and ends
// the session.
func (s *Session) Close(code uint16, reason string) error {
	s.shut(&transport.CloseError{Code: code, Reason: reason}, true)
	return nil
}

func (s *Session) shut(ce *transport.CloseError, tell bool) {
	s.closeOnce.Do(func() {
		s.closeErr.Store(ce)
		s.mu.Lock()
		s.closed = true
		s.readableNow() // Read returns the error now
		s.mu.Unlock()
		if tell {
			var b [2 + secure.MaxReason]byte
			p := secure.AppendDisconnect(b[:0], ce.Code, ce.Reason)
			for i := 0; i < disconnectCopies; i++ {
				_ = s.seal(secure.PacketDisconnect, p)
			}
		}
		close(s.done)
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

// RTT is KCP's smoothed round-trip time, 0 before its first sample, or on
// a listener's session the round trip of its newest answered KEEPALIVE
// when that is lower and taken within the last 3 KeepAlive: the path as it
// is now, on a session too idle for KCP to sample it.
func (s *Session) RTT() time.Duration {
	s.mu.Lock()
	var srtt time.Duration
	if s.kcp != nil {
		srtt = time.Duration(kcpSRTT(s.kcp)) * time.Millisecond
	}
	s.mu.Unlock()
	if at := s.kaAt.Load(); at != 0 && time.Duration(time.Now().UnixNano()-at) < 3*s.keep {
		if ka := time.Duration(s.kaRTT.Load()); ka < srtt {
			return ka
		}
	}
	return srtt
}

// Heard counts the packets that came from the peer and opened, keep-alives
// included.
func (s *Session) Heard() uint64 { return s.received.Load() }

// KeepAlive is how long the listener's side stays silent before it sends a
// keep-alive, which the dialling side answers at once (PROTOCOL.md 8.6).
func (s *Session) KeepAlive() time.Duration { return s.cfg.KeepAlive }

// Stats returns the session's packet counters.
func (s *Session) Stats() Stats {
	return Stats{PacketsSent: s.sent.Load(), PacketsReceived: s.received.Load(), Dropped: s.dropped.Load()}
}
