package websocket

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
)

// Listener accepts WebSocket sessions. It is an http.Handler to mount where
// clients connect (the game server mounts it at /ws on its HTTP side port)
// and a transport.Listener for netcode's Config.WebSocket. Before it
// upgrades a request it checks, in this order, and answers a refusal with
// the status and a one-line reason (and logs it: a browser shows only that
// the opening handshake failed):
//
//   - the listener is open, else 503;
//   - the Origin header, if any, is in Config.Origins, else 403;
//   - the connection has TLS or Config.Plain accepts it without, else 403;
//   - the client offers the subprotocol roomwire.v1, else 400.
//
// Its methods are safe for concurrent use.
type Listener struct {
	cfg     Config
	addr    net.Addr
	origins map[string]bool

	mu       sync.Mutex // closed, the sends on incoming, and the pollers
	closed   bool
	incoming chan *Session
	done     chan struct{}
	// pollers read the plain TCP sockets of the sessions (poll_linux.go),
	// one per processor, each made with its first session; sessions go to
	// them in turn. noPoll: none can be made here.
	pollers []*poller
	pnext   int
	noPoll  bool

	stats struct {
		upgrades, refusedOrigin, refusedPlain, refusedSubprotocol, refusedBusy, failed atomic.Uint64
	}
}

var _ transport.Listener = (*Listener)(nil)
var _ http.Handler = (*Listener)(nil)

// NewListener returns a listener with cfg; it accepts as soon as it is
// mounted. It logs, as a warning, whether plain ws:// is accepted.
func NewListener(cfg Config) *Listener {
	cfg.populate()
	l := &Listener{
		cfg:      cfg,
		addr:     listenAddr(cfg.Addr),
		origins:  make(map[string]bool, len(cfg.Origins)),
		incoming: make(chan *Session, cfg.Backlog),
		done:     make(chan struct{}),
	}
	for _, o := range cfg.Origins {
		l.origins[normalOrigin(o)] = true
	}
	switch cfg.Plain {
	case PlainLoopback:
		cfg.Logger.Warn("WebSocket: plain ws:// (no TLS) is accepted on connections to a loopback address; all others need wss://", "addr", cfg.Addr)
	case PlainAlways:
		cfg.Logger.Warn("WebSocket: plain ws:// (no TLS) is accepted FROM ANYWHERE: only behind a TLS-terminating proxy or on a trusted network", "addr", cfg.Addr)
	}
	return l
}

// listenAddr is the address a listener reports.
func listenAddr(s string) net.Addr {
	if a, err := net.ResolveTCPAddr("tcp", s); err == nil && s != "" {
		return a
	}
	return textAddr(s)
}

type textAddr string

func (a textAddr) Network() string { return "tcp" }
func (a textAddr) String() string  { return string(a) }

func normalOrigin(o string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
}

// Accept waits for the next upgraded session.
func (l *Listener) Accept(ctx context.Context) (transport.Session, error) {
	return transport.AcceptFrom(ctx, l.incoming, l.done)
}

// Close stops accepting: requests get 503, and sessions upgraded but not
// accepted are closed with code 1, "server closed". Sessions accepted live
// on. It is idempotent.
func (l *Listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	for _, p := range l.pollers {
		if p != nil {
			p.close()
		}
	}
	for {
		select {
		case s := <-l.incoming:
			_ = s.Close(uint16(reliable.CloseGoingAway), "server closed")
		default:
			return nil
		}
	}
}

// Addr is Config.Addr, the address of the HTTP server the listener is
// mounted on.
func (l *Listener) Addr() net.Addr { return l.addr }

// MaxFrame is the frame limit the listener's sessions enforce.
func (l *Listener) MaxFrame() int { return l.cfg.MaxFrame }

// ListenerStats are a listener's counters since it started.
type ListenerStats struct {
	// Upgrades counts the requests upgraded to sessions.
	Upgrades uint64 `json:"upgrades"`
	// RefusedOrigin, RefusedPlain and RefusedSubprotocol count requests
	// refused for an Origin not allowed, for plain ws:// where it is not
	// accepted, and without the roomwire.v1 subprotocol.
	RefusedOrigin      uint64 `json:"refused_origin"`
	RefusedPlain       uint64 `json:"refused_plain"`
	RefusedSubprotocol uint64 `json:"refused_subprotocol"`
	// RefusedBusy counts sessions closed because the accept queue was full.
	RefusedBusy uint64 `json:"refused_busy"`
	// Failed counts requests the WebSocket handshake itself failed (not an
	// upgrade request, a bad key, a connection lost).
	Failed uint64 `json:"failed"`
}

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	st := &l.stats
	return ListenerStats{
		Upgrades: st.upgrades.Load(), RefusedOrigin: st.refusedOrigin.Load(), RefusedPlain: st.refusedPlain.Load(),
		RefusedSubprotocol: st.refusedSubprotocol.Load(), RefusedBusy: st.refusedBusy.Load(), Failed: st.failed.Load(),
	}
}

// ServeHTTP upgrades a request to a session, or refuses it (see Listener).
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	origin := r.Header.Get("Origin")
	switch {
	case closed:
		l.refuse(w, r, http.StatusServiceUnavailable, "server closed", nil)
		return
	case origin != "" && !l.origins[normalOrigin(origin)]:
		l.refuse(w, r, http.StatusForbidden, fmt.Sprintf("origin %q not allowed", origin), &l.stats.refusedOrigin)
		return
	case !l.plainAccepted(r):
		l.refuse(w, r, http.StatusForbidden, "plain ws:// not accepted here: use wss://", &l.stats.refusedPlain)
		return
	case !offers(r, Subprotocol):
		l.refuse(w, r, http.StatusBadRequest, "the WebSocket subprotocol "+Subprotocol+" is required", &l.stats.refusedSubprotocol)
		return
	}
	heard := new(activity)
	hook := &hijackHook{ResponseWriter: w}
	ws, err := websocket.Accept(hook, r, &websocket.AcceptOptions{
		Subprotocols: []string{Subprotocol},
		// The Origin was checked above, against the allow-list.
		InsecureSkipVerify: true,
		OnPingReceived:     heard.onPing,
		OnPongReceived:     heard.onPong,
	})
	if err != nil || hook.conn == nil {
		l.stats.failed.Add(1)
		l.cfg.Logger.Info("WebSocket handshake failed", "remote", r.RemoteAddr, "err", err)
		if err == nil {
			_ = ws.CloseNow()
		}
		return // Accept answered the request
	}
	err = tune(hook.conn, l.cfg.NotSentLowat)
	if err != nil {
		l.cfg.Logger.Debug("WebSocket: cannot set TCP_NOTSENT_LOWAT", "remote", r.RemoteAddr, "err", err)
	}
	// The session frames by hand from here on. The library's connection
	// started nothing and holds only buffers; its finalizer would close
	// the socket under the session.
	runtime.SetFinalizer(ws, nil)
	var poll *poller
	if pollable(hook.conn) {
		poll = l.poller()
	}
	s := newSession(nil, hook.conn, heard, &l.cfg, &serverSide{early: hook.early, lowat1: err == nil && l.cfg.NotSentLowat == 1, poll: poll})
	l.stats.upgrades.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = s.Close(uint16(reliable.CloseGoingAway), "server closed")
		return
	}
	select {
	case l.incoming <- s:
	default:
		l.stats.refusedBusy.Add(1)
		_ = s.Close(uint16(reliable.CloseRefused), "server busy: accept queue full")
	}
}

// poller is the next poller for a session, or nil when sessions are read
// by their Read (Config.ReaderPerSession, or no poller here).
func (l *Listener) poller() *poller {
	if l.cfg.ReaderPerSession {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.noPoll {
		return nil
	}
	if l.pollers == nil {
		l.pollers = make([]*poller, runtime.GOMAXPROCS(0))
	}
	i := l.pnext % len(l.pollers)
	l.pnext++
	if l.pollers[i] == nil {
		p, err := newPoller()
		if err != nil {
			l.noPoll = true
			return nil
		}
		l.pollers[i] = p
	}
	return l.pollers[i]
}

func (l *Listener) refuse(w http.ResponseWriter, r *http.Request, status int, reason string, count *atomic.Uint64) {
	if count != nil {
		count.Add(1)
	}
	l.cfg.Logger.Info("WebSocket upgrade refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "status", status, "reason", reason)
	http.Error(w, "websocket: "+reason, status)
}

// plainAccepted reports whether r may go on: it has TLS, or Config.Plain
// accepts it without.
func (l *Listener) plainAccepted(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	switch l.cfg.Plain {
	case PlainAlways:
		return true
	case PlainNever:
		return false
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return isLoopback(local)
}

// offers reports whether r offers the subprotocol p.
func offers(r *http.Request, p string) bool {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, t := range strings.Split(h, ",") {
			if strings.EqualFold(strings.TrimSpace(t), p) {
				return true
			}
		}
	}
	return false
}

// hijackHook hands the listener the connection under an upgrade: the
// WebSocket library hijacks it through the hook, and the listener then
// tunes the socket and clears the deadlines the HTTP server had set.
type hijackHook struct {
	http.ResponseWriter
	conn  net.Conn
	early []byte // what the HTTP server read past the request
}

func (h *hijackHook) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		h.early = append([]byte(nil), b...)
	}
	if e := withEOR(c); e != c { // writes go through it from now on
		c = e
		brw.Writer.Reset(c)
	}
	h.conn = c
	return c, brw, nil
}

func (h *hijackHook) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// errNoSocket reports a connection with no socket to tune.
var errNoSocket = errors.New("not a socket")

// tune sets TCP_NOTSENT_LOWAT to lowat on c's socket (not if lowat < 0).
func tune(c net.Conn, lowat int) error {
	if lowat < 0 {
		return nil
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errNoSocket
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setNotSentLowat(fd, lowat) }); err != nil {
		return err
	}
	return serr
}

// TCPListener wraps a TCP listener for an HTTP server with TLS of its own
// (wss:// without a proxy in front): the handler cannot reach beneath a
// TLS connection it is handed, so the connections are tuned as they are
// accepted (TCP_NOTSENT_LOWAT and MSG_EOR writes, Config.NotSentLowat), TLS
// is then layered on them. Without TLS the handler tunes the connection
// itself and this is not needed.
func TCPListener(ln net.Listener, notSentLowat int) net.Listener {
	if notSentLowat == 0 {
		notSentLowat = defaultNotSentLowat
	}
	return &tunedListener{Listener: ln, lowat: notSentLowat}
}

type tunedListener struct {
	net.Listener
	lowat int
}

func (l *tunedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	_ = tune(c, l.lowat)
	return withEOR(c), nil
}
