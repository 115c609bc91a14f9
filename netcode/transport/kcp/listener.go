package kcp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/secure"
	"github.com/roomwire/roomwire/reliable"
)

// tickInterval is how often keepalives and timeouts are checked.
const tickInterval = 100 * time.Millisecond

// Every trimEvery ticks, the listener offers each session's KCP core the
// idle trim (Session.trimIdle), which takes a core that carried no data
// for coreTrimAfter: long enough that a session in use, even a slow one,
// never gives back storage it needs again at once; short enough that the
// many idle sessions of a game server hold only what they need.
const (
	trimEvery     = 10
	coreTrimAfter = 5 * time.Second
)

// ListenerStats count what a listener did with the packets it received.
// Nothing counted as dropped was ever answered.
type ListenerStats struct {
	Received   uint64 `json:"received"`
	Challenges uint64 `json:"challenges"`
	// Denied counts every DENIED sent, for any of the reasons below or
	// because the listener had MaxClients sessions.
	Denied uint64 `json:"denied"`
	// DeniedPerIP counts DENIEDs to an IP address with MaxClientsPerIP
	// sessions.
	DeniedPerIP uint64 `json:"denied_per_ip"`
	// DeniedTokensPerIP counts DENIEDs to an IP address with
	// MaxTokensPerIP tokens remembered.
	DeniedTokensPerIP uint64 `json:"denied_tokens_per_ip"`
	// DeniedTokenTable counts DENIEDs because the token-reuse table held
	// MaxTokens live tokens.
	DeniedTokenTable uint64 `json:"denied_token_table"`
	Accepted         uint64 `json:"accepted"`
	DroppedMalformed uint64 `json:"dropped_malformed"`
	DroppedToken     uint64 `json:"dropped_token"`    // forged, expired, wrong protocol or version
	DroppedLifetime  uint64 `json:"dropped_lifetime"` // expiry more than MaxTokenLifetime ahead
	DroppedReuse     uint64 `json:"dropped_reuse"`    // token already used from another address
	DroppedChallenge uint64 `json:"dropped_challenge"`
	DroppedNoSession uint64 `json:"dropped_no_session"`
	DroppedSession   uint64 `json:"dropped_session"` // failed to open or replayed on a session
	Sessions         int    `json:"sessions"`
	TokensRemembered int    `json:"tokens_remembered"`
	// Reads counts the reader's batched reads (recvmmsg) on Linux: Received
	// / Reads is how many packets a wake-up took. ReadsCoalesced counts the
	// times it slept Config.ReadCoalesce, busy, instead of waiting.
	Reads          uint64 `json:"reads"`
	ReadsCoalesced uint64 `json:"reads_coalesced"`
}

type listenerStats struct {
	received, challenges, denied, accepted              atomic.Uint64
	deniedPerIP, deniedTokensPerIP, deniedTokenTable    atomic.Uint64
	malformed, badToken, reuse, badChallenge, noSession atomic.Uint64
	lifetime, reads, coalesced                          atomic.Uint64
}

// Listener accepts secure KCP sessions on one UDP socket.
type Listener struct {
	cfg        Config
	conn       PacketConn
	opener     *token.Opener
	tickets    *token.Opener // resume tickets, under token.TicketKey(cfg.Key)
	challenger *secure.Challenger

	// used remembers the token of every admitted session and the address
	// it came from; it has its own lock.
	used *token.Table

	mu       sync.Mutex
	sessions map[netip.AddrPort]*Session
	perIP    map[netip.Addr]int // sessions by IP address
	closed   bool
	// closedDropped keeps the drop counts of sessions already gone.
	closedDropped uint64

	// bw writes batches on the socket: AddDatagram's, for every session.
	bw *batchWriter
	// timers are the sessions whose KCP cores need flushes later, driven
	// by timerLoop.
	timers *timers

	accept chan *Session
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	stats  listenerStats

	// The reader's view of how busy the socket is, over windows of
	// busyWindow; only the reader goroutine touches these.
	winStart    int64  // when the window began, Unix ns
	winPackets  int    // packets read in it
	winReads    int    // reads (recvmmsg) in it
	winSessions int    // sessions heard from in it
	epoch       uint32 // the window's number, as Session.readEpoch
	isBusy      bool   // the reader coalesces
}

// A listener's reader starts to coalesce its reads (Config.ReadCoalesce)
// after a busyWindow in which it read at least busyReads times, each after
// a wake-up, and heard from at least busySessions sessions: many players
// sending, each at a game's rate, whose packets come one by one. A wait of
// a millisecond then gathers several of them and delays none by more than
// a small part of its send interval, and the reader wakes no more often
// than before. It goes on while its reads take at least two packets each
// on average, and stops when they do not (the players went quiet) or
// fewer sessions send. The window is long enough that bursts (a round of
// keep-alive answers from idle sessions, every 100 ms) do not count. One
// session's quick exchanges (a request and its answer, again and again)
// never count, so its round trip is never delayed.
const (
	busyWindow   = 200 * time.Millisecond
	busyReads    = 200 // a wake-up a millisecond
	busySessions = 8
)

// busy says whether the reader should coalesce, at now.
func (l *Listener) busy(now int64) bool {
	if time.Duration(now-l.winStart) >= busyWindow {
		if l.isBusy {
			l.isBusy = l.winPackets >= 2*l.winReads
		} else {
			l.isBusy = l.winReads >= busyReads
		}
		l.isBusy = l.isBusy && l.winSessions >= busySessions
		l.winStart, l.winPackets, l.winReads, l.winSessions = now, 0, 0, 0
		l.epoch++
	}
	return l.isBusy
}

var _ transport.Listener = (*Listener)(nil)

// PacketConn is the socket the transport runs on: a *net.UDPConn, or a
// wrapper such as the tests' impairment conn. The listener and a dialled
// session own theirs and close it.
type PacketConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	SetReadDeadline(t time.Time) error
	LocalAddr() net.Addr
	Close() error
}

// Listen binds a UDP socket at addr and serves the secure handshake on it.
func Listen(addr string, cfg Config) (*Listener, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("kcp: listen %s: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("kcp: listen %s: %w", addr, err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	return ListenConn(conn, cfg), nil
}

// ListenConn serves the secure handshake and sessions on conn, which the
// listener then owns. A *net.UDPConn's socket is taken out of Go's
// network poller (on Linux), so conn itself is closed and must not be used
// again.
func ListenConn(conn PacketConn, cfg Config) *Listener {
	cfg.populate()
	if uc, ok := conn.(*net.UDPConn); ok {
		if u, err := openRaw(uc); err == nil {
			conn = u
		}
	}
	l := &Listener{
		cfg:        cfg,
		conn:       conn,
		opener:     token.NewOpener(cfg.Key, cfg.ProtocolID),
		tickets:    token.NewOpener(token.TicketKey(cfg.Key), cfg.ProtocolID),
		challenger: secure.NewChallenger(),
		sessions:   make(map[netip.AddrPort]*Session),
		perIP:      make(map[netip.Addr]int),
		used:       token.NewTable(token.TableConfig{MaxTokens: cfg.MaxTokens, MaxPerIP: cfg.MaxTokensPerIP, MaxLifetime: cfg.MaxTokenLifetime}),
		bw:         newBatchWriter(conn),
		timers:     newTimers(),
		accept:     make(chan *Session, acceptQueue),
		done:       make(chan struct{}),
	}
	l.wg.Add(2)
	go l.readLoop()
	go l.timerLoop()
	return l
}

// Addr is the bound UDP address.
func (l *Listener) Addr() net.Addr { return l.conn.LocalAddr() }

// Accept returns the next session whose handshake completed.
func (l *Listener) Accept(ctx context.Context) (transport.Session, error) {
	return transport.AcceptFrom(ctx, l.accept, l.done)
}

// Close closes the socket and every session on it, and waits for the
// listener's goroutines. It is idempotent.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		list := make([]*Session, 0, len(l.sessions))
		for _, s := range l.sessions {
			list = append(list, s)
		}
		l.mu.Unlock()
		for _, s := range list {
			s.Close(uint16(reliable.CloseGoingAway), "server closed")
		}
		close(l.done)
		_ = l.conn.Close()
		l.wg.Wait()
		// Sessions accepted by nobody are closed with the rest.
		for {
			select {
			case s := <-l.accept:
				s.Close(uint16(reliable.CloseGoingAway), "server closed")
			default:
				return
			}
		}
	})
	return nil
}

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	l.mu.Lock()
	n := len(l.sessions)
	l.mu.Unlock()
	return ListenerStats{
		Received:          l.stats.received.Load(),
		Challenges:        l.stats.challenges.Load(),
		Denied:            l.stats.denied.Load(),
		DeniedPerIP:       l.stats.deniedPerIP.Load(),
		DeniedTokensPerIP: l.stats.deniedTokensPerIP.Load(),
		DeniedTokenTable:  l.stats.deniedTokenTable.Load(),
		Accepted:          l.stats.accepted.Load(),
		DroppedMalformed:  l.stats.malformed.Load(),
		DroppedToken:      l.stats.badToken.Load(),
		DroppedLifetime:   l.stats.lifetime.Load(),
		DroppedReuse:      l.stats.reuse.Load(),
		DroppedChallenge:  l.stats.badChallenge.Load(),
		DroppedNoSession:  l.stats.noSession.Load(),
		DroppedSession:    l.droppedOnSessions(),
		Sessions:          n,
		TokensRemembered:  l.used.Len(),
		Reads:             l.stats.reads.Load(),
		ReadsCoalesced:    l.stats.coalesced.Load(),
	}
}

func (l *Listener) droppedOnSessions() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d uint64
	for _, s := range l.sessions {
		d += s.dropped.Load()
	}
	return d + l.closedDropped
}

// readLoop is the listener's reader: it handles every packet inline,
// with the answers of a batch read leaving in one batch write.
func (l *Listener) readLoop() {
	defer l.wg.Done()
	scratch := make([]byte, secure.MaxPacket)
	var out *outbox // nil for single reads: answers leave at once
	switch l.conn.(type) {
	case *rawUDP, *net.UDPConn:
		out = &outbox{w: newBatchWriter(l.conn)}
	}
	handle := func(p []byte, from netip.AddrPort, now int64) { l.packet(p, from, now, scratch, out) }
	switch c := l.conn.(type) {
	case *rawUDP:
		l.readRaw(c, handle, out.flush)
	case *net.UDPConn:
		readUDP(c, handle, out.flush)
	default:
		readEach(l.conn, handle)
	}
}

// packet handles one received packet.
func (l *Listener) packet(p []byte, from netip.AddrPort, now int64, scratch []byte, out *outbox) {
	l.stats.received.Add(1)
	l.winPackets++
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if len(p) == 0 || len(p) > secure.MaxPacket {
		l.stats.malformed.Add(1)
		return
	}
	switch secure.PacketType(p[0]) {
	case secure.PacketRequest:
		l.request(p, from)
	case secure.PacketResponse:
		l.response(p, from)
	default:
		l.mu.Lock()
		s := l.sessions[from]
		l.mu.Unlock()
		if s == nil {
			l.stats.noSession.Add(1)
			return
		}
		if s.readEpoch != l.epoch {
			s.readEpoch = l.epoch
			l.winSessions++
		}
		s.handle(p, scratch, now, out)
	}
}

// timerLoop drives the KCP cores that need it and, every tickInterval,
// keepalives, timeouts and the token table, and every trimEvery ticks the
// idle trim, until the listener closes.
func (l *Listener) timerLoop() {
	defer l.wg.Done()
	var list []*Session
	ticks := 0
	l.timers.run(l.done, &outbox{w: newBatchWriter(l.conn)}, func(now time.Time, out *outbox) {
		l.mu.Lock()
		list = list[:0]
		for _, s := range l.sessions {
			list = append(list, s)
		}
		l.mu.Unlock()
		l.used.Expire(now)
		ticks++
		trim := ticks%trimEvery == 0
		for _, s := range list {
			s.tick(now, out)
			if trim {
				s.trimIdle(now)
			}
		}
		clear(list)
	})
}

// request answers a REQUEST with a CHALLENGE, or DENIED when the client
// could not be admitted anyway, keeping no state for it: the client's
// address is not proven yet, so nothing it sends may fill a table. Its
// token is remembered only at the RESPONSE (response).
func (l *Listener) request(p []byte, from netip.AddrPort) {
	if len(p) != secure.RequestSize {
		l.stats.malformed.Add(1)
		return
	}
	now := time.Now()
	claims, err := l.opener.Open(p[1:], now)
	if errors.Is(err, token.ErrForged) {
		if claims, err = l.tickets.Open(p[1:], now); err == nil {
			claims.Ticket = true // a resume: the server takes it for nothing else
		}
	}
	if err != nil {
		l.stats.badToken.Add(1)
		return
	}
	tokenErr := l.tokenRefused(claims, from, now, l.used.Check)
	if tokenErr == errDropped {
		return
	}
	l.mu.Lock()
	closed := l.closed
	// A REQUEST from an address with a session is answered too: the client
	// may have restarted on the same port. Its RESPONSE replaces the old
	// session; a stray CHALLENGE costs nothing and amplifies nothing.
	deny := l.full(from)
	l.mu.Unlock()
	if closed {
		return
	}
	if deny == nil {
		deny = tokenErr
	}

	sealer := secure.NewSealer(claims.ServerToClient, l.cfg.ProtocolID)
	buf := bufPool.Get().(*[secure.MaxPacket]byte)
	defer bufPool.Put(buf)
	var out []byte
	if deny != nil {
		l.countDenied(deny)
		out = sealer.SealSeq(buf[:0], secure.PacketDenied, secure.HandshakeSeq(), nil)
	} else {
		var ch [secure.ChallengeSize]byte
		c := l.challenger.AppendChallenge(ch[:0], claims, from)
		out = sealer.SealSeq(buf[:0], secure.PacketChallenge, secure.HandshakeSeq(), c)
		l.stats.challenges.Add(1)
	}
	_, _ = l.conn.WriteToUDPAddrPort(out, from)
}

// Why a listener answers DENIED.
var (
	errFull      = errors.New("kcp: server full")
	errFullForIP = errors.New("kcp: too many sessions from one address")
	// errDropped marks a token that gets no answer at all.
	errDropped = errors.New("kcp: dropped")
)

// full says why the listener has no room for a session of addr, or nil,
// not counting the session addr already has, which a new handshake
// replaces (l.mu held).
func (l *Listener) full(addr netip.AddrPort) error {
	n, fromIP := len(l.sessions), l.perIP[addr.Addr()]
	if _, ok := l.sessions[addr]; ok {
		n, fromIP = n-1, fromIP-1
	}
	switch {
	case n >= l.cfg.MaxClients:
		return errFull
	case fromIP >= l.cfg.MaxClientsPerIP:
		return errFullForIP
	}
	return nil
}

// tokenRefused puts a token to the reuse table through check (Check or
// Use). It returns nil to go on, errDropped for a token that gets no answer
// (counted), or the table's error for a token to answer DENIED.
func (l *Listener) tokenRefused(cl *token.Claims, from netip.AddrPort, now time.Time, check func(*token.Claims, netip.AddrPort, time.Time) error) error {
	err := check(cl, from, now)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, token.ErrLifetime):
		l.stats.lifetime.Add(1)
		return errDropped
	case errors.Is(err, token.ErrReused):
		l.stats.reuse.Add(1)
		return errDropped
	}
	return err // ErrTooManyFromIP, ErrTableFull
}

// countDenied counts a DENIED for reason.
func (l *Listener) countDenied(reason error) {
	l.stats.denied.Add(1)
	switch {
	case errors.Is(reason, errFullForIP):
		l.stats.deniedPerIP.Add(1)
	case errors.Is(reason, token.ErrTooManyFromIP):
		l.stats.deniedTokensPerIP.Add(1)
	case errors.Is(reason, token.ErrTableFull):
		l.stats.deniedTokenTable.Add(1)
	}
}

// response admits a client that echoed its challenge from the address the
// challenge was sent to: the address is proven now, so its token is
// remembered.
func (l *Listener) response(p []byte, from netip.AddrPort) {
	if len(p) != secure.ResponseSize {
		l.stats.malformed.Add(1)
		return
	}
	challenge := p[1:]
	l.mu.Lock()
	old := l.sessions[from]
	l.mu.Unlock()
	if old != nil && old.challenge == binary.BigEndian.Uint64(challenge) {
		_ = old.seal(secure.PacketKeepAlive, nil) // our confirmation was lost
		return
	}
	now := time.Now()
	adm, err := l.challenger.Verify(challenge, from, now)
	if err != nil {
		l.stats.badChallenge.Add(1)
		return
	}
	cl := adm.Claims
	cl.ProtocolID = l.cfg.ProtocolID
	send := func(b []byte) error {
		_, err := l.conn.WriteToUDPAddrPort(b, from)
		return err
	}
	deny := func(reason error) {
		l.countDenied(reason)
		buf := bufPool.Get().(*[secure.MaxPacket]byte)
		_ = send(secure.NewSealer(cl.ServerToClient, l.cfg.ProtocolID).SealSeq(buf[:0], secure.PacketDenied, secure.HandshakeSeq(), nil))
		bufPool.Put(buf)
	}
	if err := l.tokenRefused(cl, from, now, l.used.Check); err != nil {
		if err != errDropped {
			deny(err)
		}
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	if err := l.full(from); err != nil {
		l.mu.Unlock()
		deny(err)
		return
	}
	// The token takes its entry last, once nothing else refuses the
	// session, under l.mu so that two RESPONSEs of one token from two
	// addresses admit one.
	if err := l.tokenRefused(cl, from, now, l.used.Use); err != nil {
		l.mu.Unlock()
		if err != errDropped {
			deny(err)
		}
		return
	}
	old = l.sessions[from] // again: it may have timed out meanwhile
	c2s, s2c := secure.SessionKeys(cl.ClientToServer, cl.ServerToClient, challenge)
	s := newSession(&l.cfg, l.conn, l.bw, l.timers, from, cl,
		secure.NewSealer(s2c, l.cfg.ProtocolID),
		secure.NewOpener(c2s, l.cfg.ProtocolID),
		l.forget)
	s.challenge = binary.BigEndian.Uint64(challenge)
	l.sessions[from] = s
	if old == nil {
		l.perIP[from.Addr()]++
	}
	l.mu.Unlock()
	if old != nil {
		// A new handshake from the address of a session: the client
		// restarted, and the old session is dead. (Its forget finds the new
		// session in the map and leaves it.)
		old.shut(&transport.CloseError{Code: uint16(reliable.CloseTimeout), Reason: "replaced by a new connection from the same address"}, false)
	}

	_ = s.seal(secure.PacketKeepAlive, nil) // confirms the connection
	select {
	case l.accept <- s:
		l.stats.accepted.Add(1)
	default:
		s.Close(uint16(reliable.CloseRefused), "server busy: accept queue full")
	}
}

// acceptQueue is how many admitted sessions wait for Accept; one more is
// refused. The reader admits a whole batch of handshakes before the
// server's accept loop runs (on a server pinned to one core, not at all
// meanwhile), so it holds a burst of players connecting at once.
const acceptQueue = 1024

// forget removes a closed session.
func (l *Listener) forget(s *Session) {
	l.mu.Lock()
	if l.sessions[s.remote] == s {
		delete(l.sessions, s.remote)
		ip := s.remote.Addr()
		if l.perIP[ip]--; l.perIP[ip] <= 0 {
			delete(l.perIP, ip)
		}
		l.closedDropped += s.dropped.Load()
	}
	l.mu.Unlock()
}
