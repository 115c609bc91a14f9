package netcode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime/debug"
	"strings"
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

// ClientConfig configures a Client. Zero fields take the documented
// defaults.
type ClientConfig struct {
	// TLS is the TLS configuration of QUIC and wss://. Nil verifies the
	// server against the system roots by the URL's host name.
	TLS *tls.Config
	// InsecureSkipVerify accepts any server certificate, for development
	// against a server with a self-signed certificate. Never in production.
	InsecureSkipVerify bool
	// QUIC tunes the QUIC transport, and WebTransport's QUIC connection.
	QUIC quic.Config
	// KCP tunes the KCP transport.
	KCP kcp.Config
	// WebTransport tunes the WebTransport transport: its Origin, if set, is
	// sent as a browser page's would be. Its QUIC field is not used:
	// ClientConfig.QUIC is.
	WebTransport webtransport.Config
	// WebSocket tunes the WebSocket transport (ws:// and wss://); its TLS
	// comes from TLS and InsecureSkipVerify.
	WebSocket websocket.Config
	// FallbackAfter is how long the handshake of a UDP transport (quic://,
	// kcp://, WebTransport) may go unanswered before a client given several
	// URLs tries the next one: a network that drops UDP answers nothing.
	// Zero means 1 second. The last URL has the whole of Connect's context.
	FallbackAfter time.Duration
	// Token is the connect token the matchmaker issued. KCP presents it in
	// its secure handshake; on QUIC it goes in the HELLO with a proof,
	// bound to the TLS connection, that the client holds its key, and on
	// WebTransport and WebSocket likewise, bound to the server's CHALLENGE.
	Token *token.ConnectToken
	// Auth is sent in the HELLO for the server's Authenticate hook (as
	// Hello.Auth), with or without a token.
	Auth []byte
	// RequestTimeout bounds a Request whose context has no deadline. Zero
	// means 10 seconds.
	RequestTimeout time.Duration
	// MaxFrame is the largest reliable frame body accepted and sent. Zero
	// means reliable.DefaultMaxFrame (64 KiB); less than MinMaxFrame is
	// raised to it.
	MaxFrame int
	// MaxQueued is how many reliable bytes may wait unsent. Zero means 1 MiB.
	MaxQueued int
	// ReliableCopies says when small reliable frames are also copied into
	// datagrams, so that one lost stream segment does not wait for a
	// retransmission timeout. The zero value, CopiesAuto, copies while the
	// path is slow or lossy.
	ReliableCopies CopyMode
	// Codec decodes snapshot deltas; it must match the server's. Nil means
	// unreliable.XORCodec.
	Codec unreliable.Codec
	// Dial, if set, replaces the URL's transport: tests use it to run the
	// client over an in-memory or impaired transport.
	Dial func(ctx context.Context, addr string) (transport.Session, error)
	// Logger receives errors. Nil discards.
	Logger *slog.Logger
	// NoResume turns session resume off: by default a client whose
	// transport dies dials again by itself and resumes its session, same
	// id, rooms and reliable events, if the server grants resume
	// (PROTOCOL.md 14; OnAway and OnBack tell).
	NoResume bool
}

// Client is a game client's connection to a Roomwire server. Register
// handlers with On and OnSnapshot before Connect so that nothing the server
// sends early is missed. Event handlers run one at a time: reliable events in
// arrival order on the client's reader goroutine, unreliable ones on its
// datagram goroutine; the snapshot handler runs on the datagram goroutine.
// All methods are safe for concurrent use, except Interpolate, which is
// for one render loop.
type Client struct {
	peer
	cstats    clientStats // what only a client counts; the rest is peer.stats
	cfg       ClientConfig
	id        ID
	transport atomic.Pointer[string] // the scheme of the URL connected to (a resume may change it)

	mu           sync.RWMutex
	events       map[string]func(payload []byte)
	onSnapshot   func(tick uint32, data []byte)
	onDisconnect func(*CloseError)
	onConnect    func()
	onAway       func(error)
	onBack       func()

	url    string              // what Connect was given, for redials
	moveTo string              // where a handoff sent the session, for redials (under mu)
	ticket *token.ConnectToken // the newest resume ticket (under mu)
	window time.Duration       // the server's resume window (under mu)

	// maxDatagram is the largest datagram both ends of the current
	// transport take: a resume on another transport changes it.
	maxDatagram atomic.Int32
	reasm       unreliable.Reassembler // datagram goroutine only
	snaps       snapshotReceiver
	clock       clockSync
	// clockIdle: clockLoop waits out clockIdlePeriod, and the first
	// snapshot wakes it on clockWake (snapshotWake).
	clockIdle atomic.Bool
	clockWake chan struct{}
	inputs    inputHistory
	interpA   []byte // Interpolate's frame copies
	interpB   []byte
	connected atomic.Bool
	done      chan struct{}

	unhandled  atomic.Uint64
	inCallback atomic.Int32 // callbacks running: Close must not wait on them
}

// NewClient returns an unconnected client.
func NewClient(cfg ClientConfig) *Client {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = reliable.DefaultMaxFrame
	}
	cfg.MaxFrame = min(max(cfg.MaxFrame, MinMaxFrame), reliable.MaxFrameLimit)
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 1 << 20
	}
	if cfg.FallbackAfter <= 0 {
		cfg.FallbackAfter = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, events: make(map[string]func([]byte)), done: make(chan struct{}), clockWake: make(chan struct{}, 1)}
	c.inputAcked = func(n uint32) { // an INPUT datagram arrived: its inputs need not go again
		if n > c.inputs.acked.Load() {
			c.inputs.acked.Store(n)
		}
	}
	c.snaps.codec = cfg.Codec
	if c.snaps.codec == nil {
		c.snaps.codec = unreliable.XORCodec{}
	}
	return c
}

// Dial connects to a server at rawURL and completes the Roomwire handshake.
// The URL names the transport: "quic://host:7777", "kcp://host:7778",
// WebTransport's "https://host:7777/wt" (also "wt://host:7777/wt"; the path
// defaults to /wt), or WebSocket, "ws://host:8080/ws" and, with TLS,
// "wss://host/ws". Several URLs separated by commas
// ("quic://h:7777,ws://h:8080/ws") are tried in order: the client moves on
// when a transport fails to connect, or when a UDP transport's handshake
// has no answer within FallbackAfter, as on a network that drops UDP;
// Client.Transport tells which one it ended on. A refusal by the server
// comes back as a *CloseError with its reason, and is not retried on the
// next URL.
func Dial(ctx context.Context, rawURL string, cfg ClientConfig) (*Client, error) {
	c := NewClient(cfg)
	if err := c.Connect(ctx, rawURL); err != nil {
		return nil, err
	}
	return c, nil
}

// On registers the handler for a server event, replacing any earlier one.
// payload is valid only until the handler returns.
func (c *Client) On(event string, h func(payload []byte)) {
	c.mu.Lock()
	c.events[event] = h
	c.mu.Unlock()
}

// OnSnapshot sets the handler for whole snapshots. Snapshots older than the
// newest delivered are dropped before it. data is valid only until it
// returns.
func (c *Client) OnSnapshot(h func(tick uint32, data []byte)) {
	c.mu.Lock()
	c.onSnapshot = h
	c.mu.Unlock()
}

// OnConnect sets the callback run once the server welcomed the client,
// before Connect returns and before any event is dispatched.
func (c *Client) OnConnect(h func()) {
	c.mu.Lock()
	c.onConnect = h
	c.mu.Unlock()
}

// OnAway sets the callback run when the client's transport was lost and it
// starts resuming its session; err says why. Events emitted meanwhile are
// queued. OnBack or OnDisconnect follows.
func (c *Client) OnAway(h func(err error)) {
	c.mu.Lock()
	c.onAway = h
	c.mu.Unlock()
}

// OnBack sets the callback run each time the client resumed its session on
// a new transport.
func (c *Client) OnBack(h func()) {
	c.mu.Lock()
	c.onBack = h
	c.mu.Unlock()
}

// OnDisconnect sets the callback run once when the connection ends, with the
// reason.
func (c *Client) OnDisconnect(h func(*CloseError)) {
	c.mu.Lock()
	c.onDisconnect = h
	c.mu.Unlock()
}

// Connect dials rawURL (one URL or several, comma-separated, as for Dial)
// and completes the handshake; it may be called once.
func (c *Client) Connect(ctx context.Context, rawURL string) error {
	if !c.connected.CompareAndSwap(false, true) {
		return errors.New("netcode: Connect called twice")
	}
	c.url = rawURL
	sess, scheme, err := c.dialAny(ctx, rawURL)
	if err == nil {
		c.transport.Store(&scheme)
	}
	if err != nil {
		close(c.done)
		if _, ok := transport.AsCloseError(err); ok {
			return closeErrorFrom(err) // refused as soon as it connected: the server's code and reason
		}
		return err
	}
	c.init(sess, c.cfg.MaxFrame, c.cfg.MaxQueued, c.cfg.ReliableCopies, c.cfg.Logger)
	if !c.cfg.NoResume {
		c.res = newResumeState(&c.peer, c.cfg.MaxQueued)
		c.away = c.awaitResume
	}
	c.dispatch = c.dispatchFrame
	// The server copies only for a client that copies; ours does, from its
	// first frames until the path proves fast and clean.
	c.copies.peer.Store(true)
	c.copies.on.Store(c.cfg.ReliableCopies != CopiesOff)
	// On a challenged transport the HELLO waits for the server's CHALLENGE,
	// which the token proof is bound to; run sends it.
	_, challenged := sess.(transport.Challenged)
	if !challenged {
		if err := c.hello(nil); err != nil {
			_ = sess.Close(uint16(CloseInternal), err.Error())
			close(c.done)
			return err
		}
	}

	welcome := make(chan error, 1)
	go c.run(welcome, challenged)
	select {
	case err := <-welcome:
		if err != nil {
			<-c.done
			return err
		}
		return nil
	case <-ctx.Done():
		c.close(&CloseError{Code: CloseNormal, Reason: "connect cancelled"})
		<-c.done
		return fmt.Errorf("netcode: connect %s: %w", rawURL, ctx.Err())
	}
}

// dialAny dials the comma-separated URLs of rawURLs in turn until one
// connects (see Dial); it returns the scheme of the one it ended on.
func (c *Client) dialAny(ctx context.Context, rawURLs string) (transport.Session, string, error) {
	urls := strings.Split(rawURLs, ",")
	var errs []error
	for i, raw := range urls {
		raw = strings.TrimSpace(raw)
		u, err := url.Parse(raw)
		if err != nil {
			return nil, "", fmt.Errorf("netcode: bad server URL %q: %w", raw, err)
		}
		dctx, cancel := ctx, context.CancelFunc(func() {})
		last := i == len(urls)-1
		if !last && (u.Scheme == "quic" || u.Scheme == "kcp") {
			dctx, cancel = context.WithTimeout(ctx, c.cfg.FallbackAfter)
		}
		sess, err := c.dial(dctx, u, raw)
		cancel()
		if err == nil {
			return sess, u.Scheme, nil
		}
		if len(urls) == 1 {
			return nil, "", err
		}
		if _, refused := transport.AsCloseError(err); refused || ctx.Err() != nil {
			return nil, "", fmt.Errorf("netcode: connect %s: %w", raw, err)
		}
		c.cfg.Logger.Info("transport failed; trying the next", "url", raw, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", raw, err))
	}
	return nil, "", fmt.Errorf("netcode: no transport connected: %w", errors.Join(errs...))
}

func (c *Client) dial(ctx context.Context, u *url.URL, rawURL string) (transport.Session, error) {
	tok := c.dialToken()
	if c.cfg.Dial != nil {
		return c.cfg.Dial(context.WithValue(ctx, dialTokenKey{}, tok), u.Host)
	}
	switch u.Scheme {
	case "quic":
		return quic.Dial(ctx, u.Host, c.tlsConfig(u), c.cfg.QUIC)
	case "kcp":
		if tok == nil {
			return nil, errors.New("netcode: kcp:// needs ClientConfig.Token, a connect token")
		}
		return kcp.Dial(ctx, u.Host, tok, c.cfg.KCP)
	case "https", "wt":
		wc := c.cfg.WebTransport
		wc.QUIC = c.cfg.QUIC
		return webtransport.Dial(ctx, rawURL, c.tlsConfig(u), wc)
	case "ws", "wss":
		wc := c.cfg.WebSocket
		if wc.MaxFrame == 0 {
			wc.MaxFrame = c.cfg.MaxFrame
		}
		if u.Scheme == "wss" {
			wc.TLS = c.tlsConfig(u)
		}
		return websocket.Dial(ctx, rawURL, wc)
	}
	return nil, fmt.Errorf("netcode: unsupported transport %q in %q (want quic://, kcp://, https:// for WebTransport, ws:// or wss://)", u.Scheme, rawURL)
}

// tlsConfig is the TLS configuration for a QUIC, WebTransport or wss://
// server at u.
func (c *Client) tlsConfig(u *url.URL) *tls.Config {
	tc := c.cfg.TLS
	if tc == nil {
		tc = &tls.Config{ServerName: u.Hostname()}
	}
	if c.cfg.InsecureSkipVerify {
		tc = tc.Clone()
		tc.InsecureSkipVerify = true
	}
	return tc
}

// run is the client's reader goroutine: it owns the other goroutines and
// ends after all of them, closing done.
func (c *Client) run(welcome chan<- error, challenged bool) {
	defer close(c.done)
	r := reliable.NewReader(countingReader{&c.peer}, c.cfg.MaxFrame)
	f, err := r.Next()
	if challenged && err == nil {
		switch f.Type {
		case reliable.FrameChallenge:
			if herr := c.hello(f.Payload); herr != nil {
				c.close(&CloseError{Code: CloseInternal, Reason: herr.Error()})
			} else {
				f, err = r.Next()
			}
		case reliable.FrameClose: // handled below
		default:
			c.close(&CloseError{Code: CloseProtocolError, Reason: fmt.Sprintf("first frame is %s, want CHALLENGE", f.Type)})
		}
	}
	switch {
	case c.closeErr.Load() != nil:
	case err != nil:
		c.close(c.readError(err))
	case f.Type == reliable.FrameClose:
		c.close(&CloseError{Code: f.Code, Reason: string(f.Payload), Remote: true})
	case f.Type != reliable.FrameWelcome:
		c.close(&CloseError{Code: CloseProtocolError, Reason: fmt.Sprintf("first frame is %s, want WELCOME", f.Type)})
	case f.Version != reliable.Version:
		c.close(&CloseError{Code: CloseVersionMismatch, Reason: fmt.Sprintf("server speaks version %d, client %d", f.Version, reliable.Version)})
	case f.MaxDatagram < unreliable.MinDatagram:
		c.close(&CloseError{Code: CloseProtocolError, Reason: fmt.Sprintf("server datagram limit %d < %d", f.MaxDatagram, unreliable.MinDatagram)})
	}
	if ce := c.closeErr.Load(); ce != nil {
		c.finish()
		welcome <- ce
		return
	}
	c.id = f.ConnID
	c.setMaxDatagram(f.MaxDatagram)
	c.startReceiving(false, func(d []byte) (unreliable.Header, []byte, bool) { return c.parseDatagram(d, time.Now()) }, c.handleDatagram)
	c.pong = c.onPong
	if c.res != nil {
		c.askResume()
	}
	c.mu.RLock()
	hc := c.onConnect
	c.mu.RUnlock()
	if hc != nil {
		c.call(hc)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.clockLoop()
	}()
	welcome <- nil

	ce := c.readLoop(r)
	c.finish()
	c.mu.RLock()
	h := c.onDisconnect
	c.mu.RUnlock()
	if h != nil {
		c.call(func() { h(ce) })
	}
}

// setMaxDatagram takes the server's largest datagram, from its WELCOME or
// RESUMED, for the current transport.
func (c *Client) setMaxDatagram(server uint16) {
	c.maxDatagram.Store(int32(min(int(server), c.session().MaxDatagram(), unreliable.MaxDatagram)))
}

// hello queues the HELLO: the token's wire form and a proof bound to the
// connection (to challenge, on a challenged transport), then the
// application's auth bytes.
func (c *Client) hello(challenge []byte) error {
	auth := c.cfg.Auth
	if c.cfg.Token != nil {
		if _, isKCP := c.session().(*kcp.Session); !isKCP { // KCP presented it in its handshake
			var err error
			if auth, err = tokenAuth(c.cfg.Token, c.session(), challenge, c.cfg.Auth); err != nil {
				return err
			}
		}
	}
	b, _ := c.out.begin()
	b, err := reliable.AppendHello(b, reliable.Version, auth)
	if err != nil {
		c.out.abort()
		return fmt.Errorf("netcode: bad hello: %w", err)
	}
	return c.out.end(b)
}

// ID is the connection id the server assigned: the name of the client's
// private room.
func (c *Client) ID() ID { return c.id }

// Transport is the scheme of the URL the client connected with: "quic",
// "kcp", "ws" or "wss" (or a custom Dial's), the one it ended on when Dial
// had several, or the one its last resume went over; empty before it
// connected.
func (c *Client) Transport() string {
	if t := c.transport.Load(); t != nil {
		return *t
	}
	return ""
}

// Emit sends a reliable event to the server.
func (c *Client) Emit(event string, payload []byte) error { return c.emit(event, payload) }

// Request sends a reliable event and waits for the server handler's reply.
// It fails with ErrRequestTimeout when ctx (or, without a deadline,
// RequestTimeout) expires first, with a *RemoteError when the handler
// failed or there is none, and with a *CloseError when the connection ends.
func (c *Client) Request(ctx context.Context, event string, payload []byte) ([]byte, error) {
	return c.request(ctx, event, payload, c.cfg.RequestTimeout)
}

// Close closes the connection with CloseNormal and waits until the client's
// goroutines ended (called from a handler, it does not wait). It is
// idempotent.
func (c *Client) Close() error {
	if !c.connected.Load() {
		return nil
	}
	c.close(&CloseError{Code: CloseNormal, Reason: "client closed"})
	if c.inCallback.Load() == 0 {
		<-c.done
	}
	return nil
}

// Done is closed when the connection ended and its goroutines stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is the reason the connection ended, or nil while it is open.
func (c *Client) Err() error { return c.err() }

// Stats returns the connection's counters.
func (c *Client) Stats() Stats {
	st := c.statsNow()
	c.cstats.fill(&st)
	return st
}

func (c *Client) dispatchFrame(f reliable.Frame) {
	if f.Type == reliable.FrameEvent && string(f.Name) == resumeName {
		c.granted(f.Payload)
		return
	}
	if f.Type == reliable.FrameEvent && string(f.Name) == movedName {
		already := c.resumeURL() == string(f.Payload) // a replay, on the server it names
		c.setMoveTo(string(f.Payload))
		if c.res.on() && !already {
			// Go now rather than wait for the old server's close, which
			// may be lost: the reader, its read failed, resumes there.
			c.dropTransport(CloseMoved, "moved")
		}
		return
	}
	c.mu.RLock()
	h := c.events[string(f.Name)]
	c.mu.RUnlock()
	if f.Type == reliable.FrameRequest {
		// Servers do not send requests in this version; answer so the
		// sender does not wait for its timeout.
		_ = c.reply(f.ID, nil, fmt.Errorf("client has no request handlers"))
		return
	}
	if h == nil {
		c.unhandled.Add(1)
		return
	}
	c.callEvent(h, f.Payload)
}

func (c *Client) callEvent(h func([]byte), p []byte) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	c.inCallback.Add(1)
	defer c.recoverCallback()
	h(p)
}

func (c *Client) call(f func()) {
	c.inCallback.Add(1)
	defer c.recoverCallback()
	f()
}

func (c *Client) recoverCallback() {
	c.inCallback.Add(-1)
	if r := recover(); r != nil {
		c.log.Error("recovered panic in client callback", "panic", r, "stack", string(debug.Stack()))
	}
}

// handleDatagram handles one datagram from the server (datagram goroutine):
// snapshot fragments are reassembled, decoded against their baseline and
// delivered; unreliable events go to their handlers.
func (c *Client) handleDatagram(h unreliable.Header, body []byte) {
	switch h.Kind {
	case unreliable.KindSnapshot:
		c.onSnapshotFragment(body)
	case unreliable.KindReliable:
		if c.onCopies(body) {
			c.stats.datagramsBad.Add(1)
		}
	case unreliable.KindEvent:
		ev, ok, err := c.acceptEvent(body)
		if err != nil {
			c.stats.datagramsBad.Add(1)
		}
		if ok && c.err() == nil {
			c.mu.RLock()
			hd := c.events[string(ev.Name)]
			c.mu.RUnlock()
			if hd != nil {
				c.callEvent(hd, ev.Payload)
			} else {
				c.unhandled.Add(1)
			}
		}
	default:
		c.stats.datagramsBad.Add(1)
	}
}

func (c *Client) onSnapshotFragment(body []byte) {
	sh, frag, err := unreliable.ParseSnapshotHeader(body)
	if err != nil {
		c.stats.datagramsBad.Add(1)
		return
	}
	now := time.Now()
	stale, dropped := c.reasm.Stale, c.reasm.Dropped
	tick, env, done := c.reasm.Add(sh, frag, now)
	c.stats.datagramsStale.Add(c.reasm.Stale - stale)
	c.cstats.snapshotsIncomplete.Add(c.reasm.Dropped - dropped)
	if !done {
		return
	}
	data, undecodable, err := c.snaps.add(tick, sh.Epoch, env, now)
	switch {
	case err != nil:
		c.stats.datagramsBad.Add(1)
		return
	case undecodable:
		c.cstats.snapshotsUndecodable.Add(1)
		c.acknowledge(now) // tell the server what we do hold
		return
	}
	c.cstats.snapshotsReceived.Add(1)
	c.snapshotWake()
	c.acknowledge(now)
	c.mu.RLock()
	hs := c.onSnapshot
	c.mu.RUnlock()
	if hs != nil {
		c.callSnapshot(hs, tick, data)
	}
}

// EmitUnreliable sends an event as a datagram: it may be lost, duplicated
// or reordered, and is never resent. The server's handler for the name
// receives it like a reliable event, on the connection's datagram
// goroutine.
func (c *Client) EmitUnreliable(event string, payload []byte) error {
	return c.emitDatagram(event, payload, false, int(c.maxDatagram.Load()))
}

// EmitLatest sends an event as a sequenced datagram: the server drops one
// older than the newest of the same name it received.
func (c *Client) EmitLatest(event string, payload []byte) error {
	return c.emitDatagram(event, payload, true, int(c.maxDatagram.Load()))
}

func (c *Client) callSnapshot(h func(uint32, []byte), tick uint32, data []byte) {
	c.inCallback.Add(1)
	defer c.recoverCallback()
	h(tick, data)
}
