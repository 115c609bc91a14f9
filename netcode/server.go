package netcode

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/netcode/transport/quic"
	"github.com/roomwire/roomwire/netcode/transport/websocket"
	"github.com/roomwire/roomwire/netcode/transport/webtransport"
	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

// Config configures a Server. Zero fields take the documented defaults.
type Config struct {
	// QUICAddr is the UDP address the QUIC transport listens on, such as
	// ":7777". Empty disables QUIC.
	QUICAddr string
	// TLS is the server's TLS configuration for QUIC; it needs a
	// certificate. See DevTLSConfig for development.
	TLS *tls.Config
	// QUIC tunes the QUIC transport (and WebTransport's QUIC connections).
	QUIC quic.Config
	// WebTransport, if set, serves WebTransport too, the QUIC of browsers,
	// on QUICAddr's UDP port: HTTP/3 sessions at https://<host>:<port>/wt
	// (WebTransportURL), told apart from native QUIC clients by ALPN ("h3"
	// against "roomwire/1"), with TLS's certificate (CertHash is its
	// SHA-256, which a browser pins). Its Origins must list the origins of
	// the pages that may connect. Its sessions count towards MaxConnsPerIP
	// and MaxConns with QUIC's, and are challenged: with Tokens, a
	// browser's token proof is bound to the server's CHALLENGE (PROTOCOL.md
	// 7.7). Its Logger defaults to Logger. It needs QUICAddr. Nil: off.
	WebTransport *webtransport.Config

	// KCPAddr is the UDP address the KCP transport listens on, such as
	// ":7778": reliable events over KCP and datagrams on the same socket,
	// under the secure packet layer. Empty disables KCP. It needs Tokens.
	KCPAddr string
	// KCP tunes the KCP transport; its Key and ProtocolID come from Tokens,
	// and its admission limits left zero from the ones below.
	KCP kcp.Config

	// WebSocket, if set, accepts clients over WebSocket (ws:// and wss://
	// URLs): browsers, and networks that let no UDP through. The listener
	// is an http.Handler; mount it on an HTTP server of your own (the game
	// server mounts it at /ws on its side port), whose TLS, if any, makes
	// wss://. Its MaxFrame must be at least MaxFrame. WebSocket gives no
	// TLS keying material to bind a token to, so the server opens with a
	// CHALLENGE (PROTOCOL.md 7.7); with Tokens set, WebSocket clients need
	// a token too.
	WebSocket *websocket.Listener

	// Tokens, if set, admit only clients with a valid connect token: in the
	// KCP handshake, and in the HELLO on QUIC and WebTransport. One token
	// admits a player on any transport, once: a token used from one
	// address is refused from another.
	Tokens *Tokens

	// Admission limits, so that no table of the server can be filled from
	// outside (PROTOCOL.md 7.6, 10). A connection over a limit is refused
	// alone, with close code 6 (refused) and the reason quoted, and counted
	// in Metrics.Drops under the name in brackets; everyone else goes on.
	// The KCP transport applies the same limits in its own handshake
	// (kcp.Config) and takes these values for any it leaves zero; QUIC's
	// handshakes in progress, before a connection is accepted, are capped
	// by QUIC.MaxHandshakes and MaxHandshakesPerIP [quic_handshakes,
	// quic_handshakes_per_ip], refused without a reason since QUIC carries
	// none before its handshake.
	//
	// MaxConnsPerIP caps the QUIC connections from one IP address, counted
	// from the end of their QUIC handshake, which proves the address, until
	// they end. A connection beyond it is closed at once, before its stream
	// or HELLO is read: "too many connections from your address"
	// [quic_conns_per_ip]. Zero means 64: enough for a LAN party or an
	// office behind one NAT. It is KCP.MaxClientsPerIP's default too, and
	// WebSocket sessions have a cap of the same size of their own, counted
	// from the upgrade [ws_conns_per_ip].
	MaxConnsPerIP int
	// MaxConns caps the QUIC connections in all, likewise: "server full"
	// [quic_conns_total]. Zero means 1024. It is KCP.MaxClients' default
	// too, and the cap of WebSocket sessions [ws_conns_total].
	MaxConns int
	// MaxPendingHandshakes caps the connections of every transport that
	// were accepted but have no accepted HELLO yet, each for at most
	// HandshakeTimeout. One beyond it is closed at once: "server busy: too
	// many pending handshakes" [pending_handshakes]. Zero means 512: more
	// than one address can hold on both transports.
	MaxPendingHandshakes int
	// MaxTokenLifetime refuses a connect token whose expiry is more than
	// this far in the future, whatever its issuer chose: "connect token
	// expires too far in the future" [token_lifetime] on QUIC, no answer on
	// KCP. Tokens carry only an expiry, so this bounds how old a token may
	// be when it is used and how long the server remembers it. Zero means
	// 5 minutes.
	MaxTokenLifetime time.Duration
	// MaxTokens caps the tokens remembered to refuse their reuse, on each
	// transport: "server busy: too many connect tokens in use"
	// [token_table_full]. Expired tokens are forgotten first. Zero means
	// 65 536.
	MaxTokens int
	// MaxTokensPerIP caps the tokens remembered for one IP address: "too
	// many connect tokens from your address" [tokens_per_ip]. Zero means
	// 256.
	MaxTokensPerIP int

	// Listeners are extra transports to accept connections from, for tests
	// and custom transports. They are closed by Shutdown and Close.
	Listeners []transport.Listener

	// HandshakeTimeout closes a connection that sends no valid HELLO within
	// it. Zero means 5 seconds.
	HandshakeTimeout time.Duration
	// FrameTimeout closes a connection (CloseTimeout) that started a
	// reliable frame and did not complete it within it. Zero means 10
	// seconds.
	FrameTimeout time.Duration
	// WriteTimeout closes a connection (CloseSlowConsumer) whose reliable
	// stream takes longer than this to accept a write: the peer does not
	// read. No goroutine of the server blocks on such a peer for longer.
	// Zero means 10 seconds.
	WriteTimeout time.Duration
	// Budgets bound what each client may send (events, their bytes,
	// datagrams, and single event names); see Budgets for the defaults.
	Budgets Budgets
	// MaxFrame is the largest reliable frame body accepted and sent, in
	// bytes, at least MinMaxFrame. Zero means reliable.DefaultMaxFrame
	// (64 KiB).
	MaxFrame int
	// MaxQueued is how many reliable bytes may wait unsent for one
	// connection before it is closed as a slow consumer. Zero means 1 MiB.
	MaxQueued int
	// Codec encodes each client's snapshot as a delta against the newest
	// snapshot it acknowledged. Nil means unreliable.XORCodec, which works
	// on any game's bytes; clients must use the same codec.
	Codec unreliable.Codec
	// NoDelta sends every snapshot whole, for comparison and debugging.
	NoDelta bool
	// ReliableCopies says when small reliable frames to a client are also
	// copied into datagrams, so that one lost stream segment does not wait
	// for a retransmission timeout. Only clients that copy their own frames
	// get copies. The zero value, CopiesAuto, copies while the path is slow
	// or lossy.
	ReliableCopies CopyMode

	// ResumeWindow is how long the session of a client whose transport
	// died stays away, keeping its id, rooms and queued reliable frames,
	// for the client to resume it (PROTOCOL.md 14); past it the session
	// expires. Zero means DefaultResumeWindow (10 s); negative turns
	// resume off. While away, at most MaxQueued bytes are kept for it.
	ResumeWindow time.Duration

	// Authenticate, if set, admits or refuses each connection from its
	// HELLO. A refusal's error text reaches the client as the close reason.
	Authenticate func(ctx context.Context, h Hello) (Identity, error)
	// Logger receives connection lifecycle and error logs. Nil discards.
	Logger *slog.Logger
}

// MinMaxFrame is the smallest frame limit a peer may set: every control
// frame (CLOSE with its longest reason, WELCOME) must fit.
const MinMaxFrame = 1024

// Tokens configure connect tokens (package token).
type Tokens struct {
	// Key is the private key shared with the token issuer.
	Key token.Key
	// ProtocolID is the game's protocol id; tokens for another are refused.
	ProtocolID uint64
}

// Hello is what a client presented when it connected.
type Hello struct {
	// Token is the client's verified connect token, when the server
	// requires tokens.
	Token *token.Claims
	// Version is the client's protocol version.
	Version uint16
	// Auth is the client's own authentication bytes (ClientConfig.Auth),
	// without the connect token.
	Auth []byte
	// RemoteAddr is the client's network address.
	RemoteAddr net.Addr
}

// Identity is what Authenticate learned about a client; Conn.Identity
// returns it.
type Identity struct {
	// User is the application's name for the client, such as a player id.
	User string
	// Data is anything else the application wants to keep with the
	// connection.
	Data any
	// Token is the client's verified connect token, when tokens are on.
	Token *token.Claims
}

func (c *Config) populate() error {
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = reliable.DefaultMaxFrame
	}
	if c.MaxFrame < MinMaxFrame || c.MaxFrame > reliable.MaxFrameLimit {
		return fmt.Errorf("netcode: MaxFrame %d not in %d..%d", c.MaxFrame, MinMaxFrame, reliable.MaxFrameLimit)
	}
	if c.MaxQueued <= 0 {
		c.MaxQueued = 1 << 20
	}
	if c.FrameTimeout <= 0 {
		c.FrameTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	c.Budgets.populate()
	if c.Budgets.EventBytes.PerSecond >= 0 {
		c.Budgets.EventBytes.Burst = max(c.Budgets.EventBytes.Burst, c.MaxFrame) // a whole frame always fits
	}
	if c.MaxConnsPerIP <= 0 {
		c.MaxConnsPerIP = 64
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 1024
	}
	if c.MaxPendingHandshakes <= 0 {
		c.MaxPendingHandshakes = 512
	}
	if c.MaxTokenLifetime <= 0 {
		c.MaxTokenLifetime = token.DefaultMaxLifetime
	}
	if c.ResumeWindow == 0 {
		c.ResumeWindow = DefaultResumeWindow
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = token.DefaultMaxTokens
	}
	if c.MaxTokensPerIP <= 0 {
		c.MaxTokensPerIP = token.DefaultMaxTokensPerIP
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.QUICAddr == "" && c.KCPAddr == "" && c.WebSocket == nil && len(c.Listeners) == 0 {
		return errors.New("netcode: no transport configured (set QUICAddr, KCPAddr, WebSocket or Listeners)")
	}
	if c.WebSocket != nil && c.WebSocket.MaxFrame() < c.MaxFrame {
		return fmt.Errorf("netcode: the WebSocket listener's MaxFrame %d is below MaxFrame %d", c.WebSocket.MaxFrame(), c.MaxFrame)
	}
	if c.KCPAddr != "" && c.Tokens == nil {
		return errors.New("netcode: KCPAddr needs Tokens: the KCP transport admits only connect tokens")
	}
	if c.QUICAddr != "" && c.TLS == nil {
		return errors.New("netcode: QUICAddr needs a TLS config")
	}
	if c.WebTransport != nil && c.QUICAddr == "" {
		return errors.New("netcode: WebTransport needs QUICAddr: it shares QUIC's UDP port")
	}
	return nil
}

// EventHandler handles an event a client emitted. payload is valid only until
// the handler returns; copy it to keep it.
type EventHandler func(c *Conn, payload []byte)

// RequestHandler answers a client's request. Its reply (or error text)
// reaches the client's Request call. req is valid only until it returns.
type RequestHandler func(c *Conn, req []byte) ([]byte, error)

// InputHandler handles an input datagram a client sent. data is valid only
// until it returns. It may run on the transport's receive loop, which
// serves every connection of a KCP listener, so it must not block: queue
// the input for the game, as rooms does, and return.
type InputHandler func(c *Conn, data []byte)

// Server accepts connections on its transports and dispatches their events.
// Register handlers before Serve; all methods are safe for concurrent use.
// Event and request handlers for one connection run one at a time: reliable
// ones in the order their frames arrived, unreliable events as their
// datagrams come; different connections' handlers run concurrently. Input
// handlers run where the datagram is read: on KCP and WebSocket the
// transport's receive loop, on QUIC the connection's datagram goroutine.
type Server struct {
	cfg       Config
	listeners []transport.Listener
	kcp       *kcp.Listener
	wt        *webtransport.Listener
	tokens    *tokenCheck
	quicConns connLimits
	wsConns   connLimits
	codec     unreliable.Codec // nil when NoDelta

	mu           sync.RWMutex
	events       map[string]EventHandler
	requests     map[string]RequestHandler
	onConnect    []func(*Conn)
	onDisconnect []func(*Conn, *CloseError)
	onAway       []func(*Conn)
	onBack       []func(*Conn)

	// Resume tickets: minted with the token key (or a key of the
	// server's own when it has none) and checked like connect tokens.
	ticketKey   token.Key
	ticketProto uint64
	tickets     *tokenCheck
	onInput     InputHandler
	limits      map[string]Rate // per-event budgets: the configuration's and LimitEvent's
	// evLimits is limits as connections take them, made again after a
	// change (newBudget).
	evLimits *eventLimits

	connsMu     sync.Mutex
	conns       map[ID]*Conn
	handshaking map[*Conn]struct{}
	// housekeeping: the walk over the connections runs (housekeep).
	housekeeping bool

	movedMu sync.Mutex
	moved   map[ID]movedTo // sessions handed off (handoff.go)

	metrics    serverMetrics
	transports [numTransports]transportTotals
	listens    [numTransports]bool // the server has a listener of the kind

	ctx      context.Context
	cancel   context.CancelFunc
	closing  atomic.Bool
	serving  atomic.Bool
	wg       sync.WaitGroup // accept loops and connections
	stopOnce sync.Once
	// readers run parked connections' read loops when their streams have
	// bytes again, on goroutines whose stacks earlier loops grew.
	readers warmPool

	listenersOnce sync.Once
}

// NewServer validates cfg and binds its listeners, so the addresses are known
// (Addrs) before Serve starts accepting.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		events:   make(map[string]EventHandler),
		requests: make(map[string]RequestHandler),
		limits:   make(map[string]Rate),
		conns:    make(map[ID]*Conn),

		handshaking: make(map[*Conn]struct{}),
	}
	for name, r := range cfg.Budgets.PerEvent {
		s.limits[name] = r
	}
	s.quicConns = newConnLimits(cfg.MaxConnsPerIP, cfg.MaxConns, refusedConnsPerIP, refusedConnsTotal)
	s.wsConns = newConnLimits(cfg.MaxConnsPerIP, cfg.MaxConns, refusedWSConnsPerIP, refusedWSConnsTotal)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.QUICAddr != "" {
		qc := cfg.QUIC
		onRefuse := qc.OnRefuse
		qc.OnRefuse = func(reason string) {
			s.Drop(reason)
			if onRefuse != nil {
				onRefuse(reason)
			}
		}
		onFailed := qc.OnHandshakeFailed
		qc.OnHandshakeFailed = func(f quic.HandshakeFailure) {
			cfg.Logger.Debug("QUIC handshake failed", "remote", f.Remote, "alpn", f.ALPN, "err", f.Err)
			if onFailed != nil {
				onFailed(f)
			}
		}
		if cfg.WebTransport != nil {
			wc := *cfg.WebTransport
			if wc.Logger == nil {
				wc.Logger = cfg.Logger
			}
			wl, err := webtransport.Listen(cfg.QUICAddr, cfg.TLS, qc, wc)
			if err != nil {
				return nil, err
			}
			s.wt = wl
			s.listeners = append(s.listeners, wl.QUIC())
		} else {
			ln, err := quic.Listen(cfg.QUICAddr, cfg.TLS, qc)
			if err != nil {
				return nil, err
			}
			s.listeners = append(s.listeners, ln)
		}
	}
	if cfg.KCPAddr != "" {
		kc := cfg.kcpConfig()
		ln, err := kcp.Listen(cfg.KCPAddr, kc)
		if err != nil {
			for _, l := range s.listeners {
				_ = l.Close()
			}
			if s.wt != nil {
				_ = s.wt.Close()
			}
			return nil, err
		}
		s.kcp = ln
		s.listeners = append(s.listeners, ln)
	}
	if s.wt != nil {
		s.listeners = append(s.listeners, s.wt)
	}
	tcfg := token.TableConfig{MaxTokens: cfg.MaxTokens, MaxPerIP: cfg.MaxTokensPerIP, MaxLifetime: cfg.MaxTokenLifetime}
	if cfg.Tokens != nil {
		s.tokens = newTokenCheck(cfg.Tokens, tcfg)
		s.ticketKey, s.ticketProto = token.TicketKey(cfg.Tokens.Key), cfg.Tokens.ProtocolID
	} else {
		s.ticketKey, s.ticketProto = token.NewKey(), token.DefaultProtocolID
	}
	s.tickets = newTokenCheck(&Tokens{Key: s.ticketKey, ProtocolID: s.ticketProto}, tcfg)
	if !cfg.NoDelta {
		s.codec = cfg.Codec
		if s.codec == nil {
			s.codec = unreliable.XORCodec{}
		}
	}
	if cfg.WebSocket != nil {
		s.listeners = append(s.listeners, cfg.WebSocket)
	}
	s.listeners = append(s.listeners, cfg.Listeners...)
	for _, l := range s.listeners {
		s.listens[listenerKind(l)] = true
	}
	return s, nil
}

// KCPStats returns the KCP listener's counters, when KCP is on.
func (s *Server) KCPStats() (kcp.ListenerStats, bool) {
	if s.kcp == nil {
		return kcp.ListenerStats{}, false
	}
	return s.kcp.Stats(), true
}

// Addrs are the bound addresses of the server's listeners, QUIC first
// (WebTransport's too, which shares it), then KCP, then WebSocket (its
// Config.Addr), then Config.Listeners.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, 0, len(s.listeners))
	for _, l := range s.listeners {
		if _, wt := l.(*webtransport.Listener); !wt {
			out = append(out, l.Addr())
		}
	}
	return out
}

// WebTransportURL is the URL browsers open WebTransport sessions at,
// https://<ip>:<QUIC port>/wt (127.0.0.1 when QUICAddr names no host: a
// page served from elsewhere puts its own host there), or "" when
// WebTransport is off.
func (s *Server) WebTransportURL() string {
	if s.wt == nil {
		return ""
	}
	return s.wt.URL()
}

// CertHash is the SHA-256 of the DER form of the server's TLS certificate
// (the first of TLS.Certificates, its leaf), which a browser pins with
// WebTransport's serverCertificateHashes: the page fetches it, as it
// changes with every development certificate. It is nil when WebTransport
// is off or TLS has no fixed certificate.
func (s *Server) CertHash() []byte {
	if s.wt == nil || len(s.cfg.TLS.Certificates) == 0 || len(s.cfg.TLS.Certificates[0].Certificate) == 0 {
		return nil
	}
	h := sha256.Sum256(s.cfg.TLS.Certificates[0].Certificate[0])
	return h[:]
}

// On registers the handler for event, replacing any earlier one.
func (s *Server) On(event string, h EventHandler) {
	s.mu.Lock()
	s.events[event] = h
	s.mu.Unlock()
}

// LimitEvent gives event, reliable or unreliable, a budget of its own per
// connection, on top of Budgets.Events, unless Config.Budgets.PerEvent
// names it already (the configuration wins). Connections opened later get
// it.
func (s *Server) LimitEvent(event string, r Rate) {
	s.mu.Lock()
	if _, set := s.cfg.Budgets.PerEvent[event]; !set {
		s.limits[event] = r
		s.evLimits = nil
	}
	s.mu.Unlock()
}

// newBudget makes a connection's budgets.
func (s *Server) newBudget() *budget {
	s.mu.RLock()
	l := s.evLimits
	s.mu.RUnlock()
	if l == nil {
		s.mu.Lock()
		if s.evLimits == nil {
			s.evLimits = newEventLimits(s.limits)
		}
		l = s.evLimits
		s.mu.Unlock()
	}
	return newBudget(&s.cfg.Budgets, l)
}

// Handle registers the request handler for event, replacing any earlier one.
func (s *Server) Handle(event string, h RequestHandler) {
	s.mu.Lock()
	s.requests[event] = h
	s.mu.Unlock()
}

// OnAway adds a callback run when a connection's transport died and the
// connection waits, in its rooms, for its client to resume it (within
// Config.ResumeWindow): a game may freeze the player's avatar. OnBack or,
// past the window, OnDisconnect follows.
func (s *Server) OnAway(f func(*Conn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onAway = append(s.onAway, f)
}

// OnBack adds a callback run when an away connection was resumed on a new
// transport: same id, same rooms, nothing lost.
func (s *Server) OnBack(f func(*Conn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onBack = append(s.onBack, f)
}

// OnConnect adds a callback run for each connection after its handshake,
// before any of its events is dispatched.
func (s *Server) OnConnect(f func(*Conn)) {
	s.mu.Lock()
	s.onConnect = append(s.onConnect, f)
	s.mu.Unlock()
}

// OnDisconnect adds a callback run once for each connection that ended, with
// the reason, after its goroutines stopped.
func (s *Server) OnDisconnect(f func(*Conn, *CloseError)) {
	s.mu.Lock()
	s.onDisconnect = append(s.onDisconnect, f)
	s.mu.Unlock()
}

// OnInput sets the handler for clients' input datagrams. Inputs older than
// the newest one received from the same connection are dropped before it.
func (s *Server) OnInput(h InputHandler) {
	s.mu.Lock()
	s.onInput = h
	s.mu.Unlock()
}

// Conn returns the open connection with the given id, or nil.
func (s *Server) Conn(id ID) *Conn {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return s.conns[id]
}

// Conns calls f for each open connection.
func (s *Server) Conns(f func(*Conn)) {
	s.connsMu.Lock()
	list := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		list = append(list, c)
	}
	s.connsMu.Unlock()
	for _, c := range list {
		f(c)
	}
}

// Metrics returns the server's counters.
func (s *Server) Metrics() Metrics { return s.metrics.snapshot() }

// Drop counts something dropped or refused for reason, a short name of the
// caller's own (the rooms layer counts its caps here), in Metrics.Drops.
func (s *Server) Drop(reason string) { s.metrics.drops.Add(reason, 1) }

// Serve accepts connections until ctx is cancelled or the server is shut
// down; it then returns ErrServerClosed. Cancelling ctx closes the server
// as Close does.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("netcode: Serve called twice")
	}
	if s.closing.Load() {
		return ErrServerClosed
	}
	s.housekeep()
	for _, l := range s.listeners {
		s.wg.Add(1)
		go s.acceptLoop(l)
	}
	select {
	case <-ctx.Done():
		s.Close()
	case <-s.ctx.Done():
	}
	return ErrServerClosed
}

func (s *Server) acceptLoop(l transport.Listener) {
	defer s.wg.Done()
	for {
		sess, err := l.Accept(s.ctx)
		if err != nil {
			if !s.closing.Load() {
				s.cfg.Logger.Error("accept failed; listener stopped", "addr", l.Addr(), "err", err)
			}
			return
		}
		s.wg.Add(1)
		go s.serveConn(sess)
	}
}

// stop stops accepting and closes the listeners, once.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		s.closing.Store(true)
		s.cancel() // the accept loops end
	})
}

// closeListeners releases the sockets, once every connection is gone: a
// transport such as KCP sends its close packets on the listener's socket.
func (s *Server) closeListeners() {
	s.listenersOnce.Do(func() {
		for _, l := range s.listeners {
			_ = l.Close()
		}
		s.readers.close()
	})
}

// Shutdown stops accepting, closes every connection with the reason "server
// shutting down" and waits for their goroutines until ctx expires; then it
// closes whatever is left without waiting for flushes.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	s.closeAll(CloseGoingAway, "server shutting down")
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.closeListeners()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.allConns(func(c *Conn) { c.closeSession() })
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, and waits for
// the server's goroutines. It is idempotent.
func (s *Server) Close() error {
	s.stop()
	s.closeAll(CloseGoingAway, "server closed")
	s.wg.Wait()
	s.closeListeners()
	return nil
}

// closeAll closes every connection, those still in their handshake too.
func (s *Server) closeAll(code CloseCode, reason string) {
	s.allConns(func(c *Conn) { c.close(&CloseError{Code: code, Reason: reason}) })
}

// allConns calls f for every connection, open or in its handshake.
func (s *Server) allConns(f func(*Conn)) {
	s.connsMu.Lock()
	list := make([]*Conn, 0, len(s.conns)+len(s.handshaking))
	for _, c := range s.conns {
		list = append(list, c)
	}
	for c := range s.handshaking {
		list = append(list, c)
	}
	s.connsMu.Unlock()
	for _, c := range list {
		f(c)
	}
}

func (s *Server) lookupEvent(name []byte) EventHandler {
	s.mu.RLock()
	h := s.events[string(name)]
	s.mu.RUnlock()
	return h
}

func (s *Server) lookupRequest(name []byte) RequestHandler {
	s.mu.RLock()
	h := s.requests[string(name)]
	s.mu.RUnlock()
	return h
}

func (s *Server) inputHandler() InputHandler {
	s.mu.RLock()
	h := s.onInput
	s.mu.RUnlock()
	return h
}
