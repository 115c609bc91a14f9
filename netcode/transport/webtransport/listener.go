// Package webtransport is Roomwire's transport for browsers: WebTransport
// over HTTP/3 (webtransport-go), served on the same UDP port as the native
// QUIC transport and told apart from it by ALPN: native clients offer
// "roomwire/1", browsers "h3".
//
// A session is opened by an Extended CONNECT to path /wt. Its reliable
// channel is the one bidirectional WebTransport stream the client opens,
// carrying the same frames as QUIC's stream 0; its datagrams are
// WebTransport datagrams, at most MaxDatagram bytes. Browsers cannot export
// TLS keying material, so sessions are transport.Challenged: the server's
// first frame is a CHALLENGE that a connect token's proof is bound to
// (PROTOCOL.md 7.7). Closing maps the Roomwire close code and reason onto
// the WebTransport session's close (code, message); a server's close goes
// on the reliable stream first, where browsers read it (Session.Close,
// PROTOCOL.md 12.4).
//
// Listen binds one UDP socket for both protocols and returns the
// WebTransport listener; its QUIC method is the native listener on the
// same socket. Both must be accepted from (netcode's server does); either
// may be closed first, and the socket is released once both are closed and
// their last connection ended. A Session's methods follow transport.Session's
// concurrency rules; a Listener's may be called from any goroutine.
package webtransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	wtgo "github.com/quic-go/webtransport-go"
	"golang.org/x/time/rate"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/quic"
	"github.com/roomwire/roomwire/reliable"
)

const (
	// ALPN is the application protocol browsers offer for HTTP/3.
	ALPN = http3.NextProtoH3
	// Path is the URL path of Roomwire's WebTransport sessions.
	Path = "/wt"
	// MaxDatagram is the largest Roomwire datagram on WebTransport, the
	// WELCOME's value: Chromium offers about 1215 bytes of datagram payload
	// on a fresh path, and HTTP/3 takes a byte or more for the session id.
	MaxDatagram = 1150
)

// Config tunes the WebTransport transport. The zero value is ready to use:
// a listener then admits native clients only, no browser page.
type Config struct {
	// QUIC tunes the QUIC connection a client dials (timeouts, LocalAddr).
	// A listener's connections take the settings given to Listen.
	QUIC quic.Config
	// Origin is the Origin header a client sends, as a browser does; empty
	// sends none, as a native client does.
	Origin string

	// Origins are the page origins whose scripts may open sessions on a
	// listener, as a browser sends them in its Origin header: scheme, host
	// and port, such as "https://play.example.com" or
	// "http://127.0.0.1:8080" (compared without regard to case). "*"
	// allows every origin. A request without an Origin header, from a
	// native client, is always allowed: the check keeps other sites' pages
	// from using a player's browser, which always sends one. It replaces
	// webtransport-go's default, which compares the origin's host:port with
	// the request's. DevOrigins lists a development side port's pages.
	Origins []string
	// HandshakeTimeout closes an HTTP/3 connection that has opened no
	// session within it of its QUIC handshake. Until then the connection
	// counts as a QUIC handshake in progress (quic.Config.MaxHandshakes).
	// Zero means 5 seconds.
	HandshakeTimeout time.Duration
	// Logger receives, at level WARN, what a browser's page never learns
	// (it sees "Opening handshake failed" whatever happened): refused
	// origins, failed WebTransport upgrades, and QUIC/TLS handshakes that
	// failed for a client that offered h3, each with its cause; at most
	// about 10 a second, with a count of those left out. Nil discards.
	Logger *slog.Logger
}

// DevOrigins are the page origins of a development HTTP side port at addr
// (such as ":8080" or "127.0.0.1:8080"): http://127.0.0.1:<port>,
// http://localhost:<port>, and http://<host>:<port> when addr names
// another host.
func DevOrigins(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	out := []string{"http://127.0.0.1:" + port, "http://localhost:" + port}
	if ip, err := netip.ParseAddr(host); host != "" && (err != nil || !ip.IsUnspecified()) {
		if o := "http://" + net.JoinHostPort(host, port); !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// Timing of a connection's end.
const (
	// closeLinger is how long a connection whose session this side closed
	// stays open for the close to reach the peer, which then closes the
	// connection itself; a session the peer closed ends its connection at
	// once.
	closeLinger = time.Second
	// h3NoError is HTTP/3's code for a connection closed without error.
	h3NoError = quicgo.ApplicationErrorCode(http3.ErrCodeNoError)
)

// Listener accepts WebTransport sessions from browsers and Dial.
type Listener struct {
	quic *quic.Listener
	wt   *wtgo.Server
	cfg  Config
	url  string

	logs       *rate.Limiter
	suppressed atomic.Int64

	incoming  chan *Session
	done      chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex
	conns  map[*quicgo.Conn]*h3conn
	live   int // sessions handed to Accept and not ended
	closed bool
	wg     sync.WaitGroup // a goroutine per connection
}

// h3conn is one HTTP/3 connection: it may open one session.
type h3conn struct {
	conn     *quicgo.Conn
	accepted func() // tells the QUIC listener the handshake is done
	timer    *time.Timer
	claimed  bool // a session was asked for (Listener.mu)
	session  bool // a session is live (Listener.mu)
}

var _ transport.Listener = (*Listener)(nil)

type connKey struct{}

// Listen binds a UDP socket at addr that serves native QUIC (quic.Listen
// with qc; see QUIC) and WebTransport, told apart by ALPN, with one TLS
// configuration, which gets both protocols.
func Listen(addr string, tlsConf *tls.Config, qc quic.Config, cfg Config) (*Listener, error) {
	l := newListener(cfg)
	ql, err := quic.Listen(addr, tlsConf, l.divert(qc))
	if err != nil {
		return nil, fmt.Errorf("webtransport: %w", err)
	}
	l.bound(ql)
	return l, nil
}

// ListenConn is Listen on a packet conn the caller made, such as an
// impairment wrapper in tests; closing the listeners does not close pc.
func ListenConn(pc net.PacketConn, tlsConf *tls.Config, qc quic.Config, cfg Config) (*Listener, error) {
	l := newListener(cfg)
	ql, err := quic.ListenConn(pc, tlsConf, l.divert(qc))
	if err != nil {
		return nil, fmt.Errorf("webtransport: %w", err)
	}
	l.bound(ql)
	return l, nil
}

func newListener(cfg Config) *Listener {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Origins = slices.Clone(cfg.Origins)
	l := &Listener{
		cfg:      cfg,
		logs:     rate.NewLimiter(10, 20),
		incoming: make(chan *Session),
		done:     make(chan struct{}),
		conns:    make(map[*quicgo.Conn]*h3conn),
	}
	l.wt = &wtgo.Server{
		H3: &http3.Server{
			Handler: http.HandlerFunc(l.upgrade),
			ConnContext: func(ctx context.Context, conn *quicgo.Conn) context.Context {
				return context.WithValue(ctx, connKey{}, conn)
			},
		},
		CheckOrigin: func(r *http.Request) bool { return l.originAllowed(r.Header.Get("Origin")) },
	}
	return l
}

// divert is qc with HTTP/3 connections handed to the listener, and their
// failed handshakes logged.
func (l *Listener) divert(qc quic.Config) quic.Config {
	d := maps.Clone(qc.Divert)
	if d == nil {
		d = make(map[string]func(*quicgo.Conn, func()))
	}
	d[ALPN] = l.serveConn
	qc.Divert = d
	next := qc.OnHandshakeFailed
	qc.OnHandshakeFailed = func(f quic.HandshakeFailure) {
		if slices.Contains(f.ALPN, ALPN) {
			l.warn("webtransport: connection failed before its session opened", "remote", f.Remote, "err", f.Err)
		}
		if next != nil {
			next(f)
		}
	}
	return qc
}

func (l *Listener) bound(ql *quic.Listener) {
	l.quic = ql
	l.url = URL(ql.Addr())
}

// URL is the WebTransport URL of a listener at addr:
// https://<ip>:<port>/wt, with 127.0.0.1 for an unspecified address.
func URL(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return ""
	}
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return "https://" + netip.AddrPortFrom(ip, ap.Port()).String() + Path
}

// QUIC is the native QUIC listener on the same socket.
func (l *Listener) QUIC() *quic.Listener { return l.quic }

// URL is the listener's WebTransport URL (see URL).
func (l *Listener) URL() string { return l.url }

// Addr is the bound UDP address, the QUIC listener's.
func (l *Listener) Addr() net.Addr { return l.quic.Addr() }

// Accept waits for the next session: its Extended CONNECT was accepted;
// its client may not have opened the reliable stream yet, which the first
// Read or Write waits for, so the caller's handshake deadline covers it.
func (l *Listener) Accept(ctx context.Context) (transport.Session, error) {
	return transport.AcceptFrom(ctx, l.incoming, l.done)
}

// Close stops accepting sessions and closes the connections that have
// none. Sessions already accepted live on; once none is left, Close waits
// for the connections to end (up to about a second for those whose session
// this side closed, so that the close reaches the peer).
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.mu.Lock()
		l.closed = true
		var idle []*quicgo.Conn
		for conn, c := range l.conns {
			if !c.claimed {
				idle = append(idle, conn)
			}
		}
		live := l.live
		l.mu.Unlock()
		for _, conn := range idle {
			_ = conn.CloseWithError(h3NoError, "server closed")
		}
		if live > 0 {
			return
		}
		ended := make(chan struct{})
		go func() { l.wg.Wait(); close(ended) }()
		select {
		case <-ended:
		case <-time.After(2 * closeLinger):
			_ = l.wt.Close() // closes every connection left
			<-ended
		}
	})
	return nil
}

// serveConn takes over an HTTP/3 connection from the QUIC listener (its
// Divert function, on the listener's routing goroutine).
func (l *Listener) serveConn(conn *quicgo.Conn, accepted func()) {
	c := &h3conn{conn: conn, accepted: accepted}
	c.timer = time.AfterFunc(l.cfg.HandshakeTimeout, func() {
		_ = conn.CloseWithError(h3NoError, fmt.Sprintf("no WebTransport session within %v", l.cfg.HandshakeTimeout))
	})
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.timer.Stop()
		_ = conn.CloseWithError(h3NoError, "server closed")
		return
	}
	l.conns[conn] = c
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		// It returns once the connection ended, or at once if it could
		// not start serving it.
		err := l.wt.ServeQUICConn(conn)
		c.timer.Stop()
		_ = conn.CloseWithError(h3NoError, "")
		l.mu.Lock()
		delete(l.conns, conn)
		l.mu.Unlock()
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.warn("webtransport: serving HTTP/3 failed", "remote", conn.RemoteAddr(), "err", err)
		}
	}()
}

// upgrade is the HTTP/3 handler: an Extended CONNECT to /wt from an
// allowed origin becomes a session; anything else is answered with an
// HTTP error and logged.
func (l *Listener) upgrade(w http.ResponseWriter, r *http.Request) {
	conn, _ := r.Context().Value(connKey{}).(*quicgo.Conn)
	l.mu.Lock()
	c := l.conns[conn]
	l.mu.Unlock()
	if c == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodConnect || r.URL.Path != Path {
		l.refuse(c, w, http.StatusNotFound, "not a WebTransport request for "+Path, true, "method", r.Method, "path", r.URL.Path)
		return
	}
	origin := r.Header.Get("Origin")
	if !l.originAllowed(origin) {
		l.refuse(c, w, http.StatusForbidden, "origin not allowed (webtransport.Config.Origins)", true, "origin", origin)
		return
	}
	l.mu.Lock()
	second, closed := c.claimed, l.closed
	c.claimed = true
	l.mu.Unlock()
	switch {
	case second: // the first may be live: leave the connection to it
		l.refuse(c, w, http.StatusConflict, "a second session on one connection", false)
		return
	case closed:
		l.refuse(c, w, http.StatusServiceUnavailable, "server closed", true)
		return
	}
	sess, err := l.wt.Upgrade(w, r)
	if err != nil {
		l.refuse(c, w, http.StatusBadRequest, err.Error(), true, "origin", origin)
		return
	}
	c.timer.Stop()
	s := newSession(sess, conn, nil, nil)
	l.mu.Lock()
	c.session = true
	l.live++
	l.mu.Unlock()
	context.AfterFunc(sess.Context(), func() {
		l.mu.Lock()
		c.session = false
		l.live--
		l.mu.Unlock()
	})
	select {
	case l.incoming <- s:
		c.accepted()
	case <-l.done:
		_ = s.Close(uint16(reliable.CloseGoingAway), "server closed")
	case <-s.Done():
	}
}

// refuse answers a request that opens no session with status and logs
// why; with end, it closes the connection soon after, once the answer had
// time to arrive.
func (l *Listener) refuse(c *h3conn, w http.ResponseWriter, status int, why string, end bool, args ...any) {
	l.warn("webtransport: session refused: "+why, append([]any{"remote", c.conn.RemoteAddr(), "status", status}, args...)...)
	w.WriteHeader(status)
	l.mu.Lock()
	live := c.session
	l.mu.Unlock()
	if !end || live {
		return
	}
	c.timer.Stop()
	c.accepted() // logged here; the QUIC listener need not report it again
	time.AfterFunc(closeLinger, func() { _ = c.conn.CloseWithError(h3NoError, why) })
}

// originAllowed applies Config.Origins to a request's Origin header.
func (l *Listener) originAllowed(origin string) bool {
	if origin == "" {
		return true // a native client: browsers always send one
	}
	for _, o := range l.cfg.Origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// warn logs what a browser's page cannot see, at most about 10 a second.
func (l *Listener) warn(msg string, args ...any) {
	if !l.logs.Allow() {
		l.suppressed.Add(1)
		return
	}
	if n := l.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	l.cfg.Logger.Warn(msg, args...)
}
