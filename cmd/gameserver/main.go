// Command gameserver runs a Roomwire game server with the built-in arena demo
// game: QUIC on UDP :7777 with a development certificate, WebTransport for
// browsers on the same port (https://<host>:7777/wt), KCP on UDP :7778,
// and an HTTP side port (:8080) with the browser demo (/), the JavaScript
// client (/roomwire.js), WebSocket clients at /ws, /healthz, /rooms,
// /metrics (Prometheus text, or JSON for Accept: application/json),
// /metrics.json, a live read-only dashboard at /dashboard (its data at
// /dashboard/data.json and /rooms/{name}; -dashboard-token guards them) and,
// with -pprof, net/http/pprof's profiles under /debug/pprof/. Clients of every transport present connect tokens; in
// development mode (-dev, the default) the built-in public dev key checks
// them, and pages of the side port's own origins may connect. Every flag can also be set
// from an environment variable named ROOMWIRE_ and the flag in upper case
// (-tick → ROOMWIRE_TICK, -max-members → ROOMWIRE_MAX_MEMBERS).
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/roomwire/roomwire/cluster"
	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/netcode/transport/websocket"
	"github.com/roomwire/roomwire/netcode/transport/webtransport"
	"github.com/roomwire/roomwire/promexport"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
	"github.com/roomwire/roomwire/web"
)

type options struct {
	quicAddr   string
	kcpAddr    string
	dev        bool
	tokenKey   string
	protocolID uint64
	httpAddr   string
	httpTLS    bool
	ws         bool
	wsPlain    websocket.PlainPolicy
	pprof      bool
	tick       int
	maxMembers int
	props      int
	noDelta    bool
	copies     netcode.CopyMode
	cert, key  string
	logLevel   string

	// dashboardToken, when set, must come with the requests of the
	// dashboard's page and data (?token= or Authorization: Bearer).
	dashboardToken string

	// webtransport serves WebTransport on the QUIC port, to pages of
	// origins: those of -origins, and in -dev mode the side port's own,
	// which serve adds once it bound the side port.
	webtransport bool
	origins      []string

	// Limits (README "Limits"); zero takes the library's default.
	eventRate, datagramRate, chatRate   float64
	maxRooms, roomCreates, roomsPerConn int
	frameTimeout, writeTimeout          time.Duration
	resume                              time.Duration
	maxConns, maxConnsPerIP, maxPending int
	tokenLifetime, sessionTimeout       time.Duration

	// The cluster (-cluster): empty clusterName runs a single node.
	clusterName, nodeID     string
	natsURL                 string
	natsListen, natsCluster string
	natsRoutes, publicAddrs []string
	drainTimeout            time.Duration
}

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gameserver:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("gameserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.quicAddr, "quic", ":7777", "UDP `address` for QUIC clients; empty disables")
	fs.StringVar(&o.kcpAddr, "kcp", ":7778", "UDP `address` for KCP clients (reliable KCP and datagrams on one socket); empty disables")
	fs.BoolVar(&o.webtransport, "webtransport", true, "serve WebTransport for browsers on the QUIC port too (https://<host>:<port>/wt, told apart from native QUIC by ALPN h3)")
	origins := fs.String("origins", "", "comma-separated page `origins` (scheme://host[:port]) whose pages may open WebTransport sessions and WebSocket connections, besides, in -dev mode, the side port's own (http://127.0.0.1:<port>, http://localhost:<port>); native clients send no Origin and are always accepted")
	fs.BoolVar(&o.dev, "dev", true, "development mode: accept connect tokens minted with the built-in, public dev key (never in production)")
	fs.StringVar(&o.tokenKey, "token-key", "", "`file` with the 64-hex-digit connect token key shared with the matchmaker; turns -dev off")
	fs.Uint64Var(&o.protocolID, "protocol-id", token.DefaultProtocolID, "connect tokens' protocol `id`")
	fs.StringVar(&o.httpAddr, "http", ":8080", "TCP `address` of the HTTP side port (/healthz, /rooms, /metrics, /metrics.json, /dashboard); empty disables")
	fs.BoolVar(&o.httpTLS, "http-tls", false, "serve the HTTP side port over TLS (the -cert and -key, or the development certificate), so that WebSocket clients can use wss:// without a proxy")
	fs.BoolVar(&o.ws, "ws", true, "accept WebSocket clients (ws:// and wss://) at /ws on the HTTP side port")
	wsPlain := fs.String("ws-plain", "loopback", "when WebSocket clients may connect without TLS (ws://): `loopback` (on connections to a loopback address: this machine, or a TLS-terminating proxy on it), always (behind a TLS-terminating proxy elsewhere) or never")
	fs.BoolVar(&o.pprof, "pprof", false, "serve net/http/pprof's profiles under /debug/pprof/ on the HTTP side port")
	fs.StringVar(&o.dashboardToken, "dashboard-token", "", "`secret` that requests of the dashboard (/dashboard, /dashboard/data.json, /rooms/{name}) must carry as ?token= or an Authorization: Bearer header; empty: no check (keep the side port private). Prefer the environment variable, which other users cannot see in ps")
	fs.IntVar(&o.tick, "tick", 30, "arena tick `rate` in Hz, 1-128")
	fs.IntVar(&o.maxMembers, "max-members", 16, "players per arena room")
	fs.IntVar(&o.props, "props", 0, "static props in every arena snapshot (state that never changes)")
	delta := fs.Bool("delta", true, "send snapshots as deltas against each client's acknowledged baseline")
	fs.Var(&o.copies, "copies", "copy small reliable frames into datagrams to beat retransmission timeouts: `auto` (while the path is slow or lossy), always or off")
	fs.Float64Var(&o.eventRate, "event-rate", 500, "reliable events and requests a client may send a `second` (bursts of twice as many); more are dropped, and a client that keeps at twice the rate is closed")
	fs.Float64Var(&o.datagramRate, "datagram-rate", 1000, "datagrams a client may send a `second` (bursts of twice as many)")
	fs.Float64Var(&o.chatRate, "chat-rate", 10, "chat events a client may send a `second` (bursts of twice as many)")
	fs.IntVar(&o.maxRooms, "max-rooms", 10000, "game rooms alive at once, in `all`")
	fs.IntVar(&o.roomCreates, "room-creates", 10, "game rooms one client may create a `minute`")
	fs.IntVar(&o.roomsPerConn, "rooms-per-conn", 64, "rooms one client may be in at once, its private room included")
	fs.DurationVar(&o.frameTimeout, "frame-timeout", 10*time.Second, "`time` a client has to complete a reliable frame it began")
	fs.DurationVar(&o.writeTimeout, "write-timeout", 10*time.Second, "`time` a client's stream may take to accept a write before the client is closed as not reading")
	fs.DurationVar(&o.resume, "resume", netcode.DefaultResumeWindow, "`time` a client whose network dropped has to resume its session (same id, rooms, every reliable event once); 0 turns resume off")
	fs.IntVar(&o.maxConns, "max-conns", 1024, "connections in `all`, on each of QUIC and KCP")
	fs.IntVar(&o.maxConnsPerIP, "max-conns-per-ip", 64, "connections from one IP `address`, on each of QUIC and KCP")
	fs.IntVar(&o.maxPending, "max-pending-handshakes", 512, "connections without an accepted HELLO yet, in `all`")
	fs.DurationVar(&o.tokenLifetime, "max-token-lifetime", 5*time.Minute, "refuse connect tokens that expire more than this `long` from now")
	fs.DurationVar(&o.sessionTimeout, "max-session-timeout", 15*time.Second, "the longest KCP session `timeout` honoured from a token")
	fs.StringVar(&o.cert, "cert", "", "TLS certificate `file` (PEM); empty uses a self-signed development certificate")
	fs.StringVar(&o.key, "key", "", "TLS private key `file` (PEM), with -cert")
	fs.StringVar(&o.logLevel, "log", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&o.clusterName, "cluster", "", "join the cluster of this `name` on NATS: a room directory shared by every node, join-or-create and broadcasts across nodes; empty runs a single node")
	fs.StringVar(&o.nodeID, "node-id", "", "this node's `id` in the cluster; empty: the host name and a random suffix")
	fs.StringVar(&o.natsURL, "nats", "", "`URL` of an external NATS cluster with JetStream (nats://host:4222); empty embeds a NATS server in this node")
	fs.StringVar(&o.natsListen, "nats-listen", "127.0.0.1:4222", "the embedded NATS server's client `address`")
	fs.StringVar(&o.natsCluster, "nats-cluster", "", "the embedded NATS server's route `address`, where its peers connect; empty: no peers")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "in a cluster, `how long` a stopping node (SIGTERM, Ctrl-C) drains first: no new rooms here, and it waits for its players to leave; 0 stops at once")
	natsRoutes := fs.String("nats-routes", "", "comma-separated route `URLs` of the other nodes' embedded NATS servers (nats://host:port)")
	publicAddrs := fs.String("public-addr", "", "comma-separated `URLs` clients should dial for this node (quic://host:port, kcp://…, ws://…/ws), where they differ from the listen addresses")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gameserver [flags]\n\nRuns a Roomwire game server with the arena demo game.\n\nFlags (each also read from the environment variable shown):\n")
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(stderr, "  -%s %s\n    \t%s (default %q, env %s)\n", f.Name, name, usage, f.DefValue, envName(f.Name))
		})
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(envName(f.Name)); ok && !set[f.Name] {
			if err := fs.Set(f.Name, v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	o.noDelta = !*delta
	o.natsRoutes, o.publicAddrs = splitList(*natsRoutes), splitList(*publicAddrs)
	o.origins = splitList(*origins)
	if o.webtransport && o.quicAddr == "" {
		o.webtransport = false // it shares QUIC's port
	}
	switch *wsPlain {
	case "loopback":
		o.wsPlain = websocket.PlainLoopback
	case "always":
		o.wsPlain = websocket.PlainAlways
	case "never":
		o.wsPlain = websocket.PlainNever
	default:
		return o, fmt.Errorf("-ws-plain %q: want loopback, always or never", *wsPlain)
	}
	if o.props < 0 || o.props > 2000 {
		return o, fmt.Errorf("-props %d not in 0..2000", o.props)
	}
	if (o.cert == "") != (o.key == "") {
		return o, errors.New("-cert and -key go together")
	}
	if set["token-key"] || (o.tokenKey != "" && !set["dev"]) {
		o.dev = false // a real key replaces the dev key
	}
	if o.quicAddr == "" && o.kcpAddr == "" && (!o.ws || o.httpAddr == "") {
		return o, errors.New("-quic and -kcp are both empty and WebSocket is off (-ws, on the -http side port): no transport to serve")
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return o, nil
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// perSecond is a budget of r a second in bursts of 2r; 0 is the default.
func perSecond(r float64) netcode.Rate {
	if r == 0 {
		return netcode.Rate{}
	}
	return netcode.Rate{PerSecond: r, Burst: max(1, int(2*r))}
}

func envName(flagName string) string {
	return "ROOMWIRE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func run(args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("-log: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, o, log, nil)
}

// serve runs the server until ctx is cancelled, then shuts down within 5 s.
// ready, if not nil, receives the bound addresses (nil for a disabled one)
// once the server accepts.
func serve(ctx context.Context, o options, log *slog.Logger, ready func(quic, kcp, http net.Addr)) error {
	// The side port first: in -dev mode its pages' origins may connect.
	var httpLn net.Listener
	var httpAddr net.Addr
	if o.httpAddr != "" {
		ln, err := net.Listen("tcp", o.httpAddr)
		if err != nil {
			return fmt.Errorf("http side port: %w", err)
		}
		httpLn, httpAddr = ln, ln.Addr()
		if o.dev {
			o.origins = append(webtransport.DevOrigins(httpAddr.String()), o.origins...)
		}
	}
	g, err := newServer(o, log, httpLn)
	if err != nil {
		if httpLn != nil {
			_ = httpLn.Close()
		}
		return err
	}
	srv, hub, ws, tlsConf := g.srv, g.hub, g.ws, g.tls

	var httpSrv *http.Server
	httpDone := make(chan error, 1)
	if httpLn != nil {
		httpSrv = &http.Server{Handler: web.NewHandler(pageOptions(o, srv, sideHandler(g, o))), ReadHeaderTimeout: 5 * time.Second}
		ln := httpLn
		if o.httpTLS {
			hc := tlsConf.Clone()
			hc.NextProtos = []string{"http/1.1"} // WebSocket upgrades need HTTP/1.1
			ln = tls.NewListener(websocket.TCPListener(ln, 0), hc)
		}
		go func() { httpDone <- httpSrv.Serve(ln) }()
	}

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(context.Background()) }()
	addrs := srv.Addrs()
	var quicAddr, kcpAddr net.Addr
	if o.quicAddr != "" {
		quicAddr, addrs = addrs[0], addrs[1:]
	}
	if o.kcpAddr != "" {
		kcpAddr = addrs[0]
	}
	log.Info("game server ready", "quic", quicAddr, "kcp", kcpAddr, "http", httpAddr, "websocket", ws != nil, "pprof", o.pprof, "tick", o.tick, "game", arena.Kind)
	if o.webtransport {
		log.Info("webtransport ready", "url", srv.WebTransportURL(), "origins", o.origins,
			"cert_sha256", base64.StdEncoding.EncodeToString(srv.CertHash()))
	}
	if ready != nil {
		ready(quicAddr, kcpAddr, httpAddr)
	}

	<-ctx.Done()
	if g.node != nil && o.drainTimeout > 0 {
		drain(g, o.drainTimeout, log)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown deadline passed; connections closed hard", "err", err)
	}
	<-serveDone
	hub.Close()
	if g.node != nil {
		_ = g.node.Close() // leaves the directory at once, rather than at its TTL
	}
	if httpSrv != nil {
		_ = httpSrv.Shutdown(sctx)
		<-httpDone
	}
	log.Info("stopped")
	return nil
}

// game is what newServer builds.
type game struct {
	srv  *netcode.Server
	hub  *rooms.Hub
	ws   *websocket.Listener // nil without WebSocket
	tls  *tls.Config
	node *cluster.Node // nil without -cluster
}

// newServer builds the server serve runs, not yet serving: the transports
// (WebSocket, when on, for the HTTP side port httpLn), the cluster node
// (with -cluster), the arena rooms and the ping, chat and history-echo
// handlers, and the TLS configuration it used.
func newServer(o options, log *slog.Logger, httpLn net.Listener) (*game, error) {
	tlsConf, err := loadTLS(o, log)
	if err != nil {
		return nil, err
	}
	key, err := tokenKey(o, log)
	if err != nil {
		return nil, err
	}
	var ws *websocket.Listener
	if o.ws && httpLn != nil {
		ws = newWebSocket(o, log, httpLn.Addr())
	}
	var wt *webtransport.Config
	if o.webtransport {
		wt = &webtransport.Config{Origins: o.origins}
	}
	srv, err := netcode.NewServer(netcode.Config{
		QUICAddr:     o.quicAddr,
		KCPAddr:      o.kcpAddr,
		WebTransport: wt,
		WebSocket:    ws,
		TLS:          tlsConf,
		Tokens:       &netcode.Tokens{Key: key, ProtocolID: o.protocolID},
		NoDelta:      o.noDelta,
		Logger:       log,

		ReliableCopies: o.copies,
		FrameTimeout:   o.frameTimeout,

		MaxConns:             o.maxConns,
		MaxConnsPerIP:        o.maxConnsPerIP,
		MaxPendingHandshakes: o.maxPending,
		MaxTokenLifetime:     o.tokenLifetime,
		KCP:                  kcp.Config{MaxSessionTimeout: o.sessionTimeout},
		WriteTimeout:         o.writeTimeout,
		ResumeWindow:         resumeWindow(o.resume),
		Budgets:              netcode.Budgets{Events: perSecond(o.eventRate), Datagrams: perSecond(o.datagramRate)},
	})
	if err != nil {
		return nil, err
	}
	g := &game{srv: srv, ws: ws, tls: tlsConf}
	hopts := rooms.HubOptions{Logger: log, MaxGameRooms: o.maxRooms, CreatesPerMinute: o.roomCreates, MaxRoomsPerConn: o.roomsPerConn}
	if o.clusterName != "" {
		if g.node, err = joinCluster(o, srv, httpLn, &netcode.Tokens{Key: key, ProtocolID: o.protocolID}, log); err != nil {
			_ = srv.Close()
			return nil, err
		}
		if hopts.Adapter, err = g.node.Adapter(); err != nil {
			_ = g.node.Close()
			_ = srv.Close()
			return nil, err
		}
		hopts.Directory = g.node.Directory()
	}
	hub := rooms.NewHub(srv, hopts)
	g.hub = hub
	srv.LimitEvent("chat", perSecond(cmp.Or(o.chatRate, 10)))
	arena.EchoHistory(srv) // the bots' history check (botclient -history, -blackout), with its own budget
	if err := hub.Define(arena.Kind, func() rooms.Game { return arena.NewWithProps(o.props) }, rooms.Options{TickRate: o.tick, MaxMembers: o.maxMembers}); err != nil {
		_ = srv.Close()
		if g.node != nil {
			_ = g.node.Close()
		}
		return nil, err
	}
	if g.node != nil {
		if err := g.node.Serve(srv, hub); err != nil { // hand rooms off on a drain, and take others'
			_ = srv.Close()
			_ = g.node.Close()
			return nil, err
		}
	}
	srv.Handle("ping", func(_ *netcode.Conn, req []byte) ([]byte, error) { return req, nil })
	srv.On("chat", func(c *netcode.Conn, msg []byte) {
		if g := hub.GameOf(c); g != nil {
			_ = hub.To(g.Name()).Except(c).Emit("chat", msg)
		}
	})
	return g, nil
}

// joinCluster starts this node's membership of the -cluster: its embedded
// NATS server (or a connection to -nats) and its directory entry, with the
// URLs clients dial for it: -public-addr, else its listen addresses.
func joinCluster(o options, srv *netcode.Server, httpLn net.Listener, tokens *netcode.Tokens, log *slog.Logger) (*cluster.Node, error) {
	addrs := o.publicAddrs
	if len(addrs) == 0 {
		list := srv.Addrs()
		if o.quicAddr != "" {
			addrs, list = append(addrs, "quic://"+dialable(list[0])), list[1:]
		}
		if o.kcpAddr != "" {
			addrs = append(addrs, "kcp://"+dialable(list[0]))
		}
		if o.ws && httpLn != nil {
			scheme := "ws://"
			if o.httpTLS {
				scheme = "wss://"
			}
			addrs = append(addrs, scheme+dialable(httpLn.Addr())+"/ws")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cluster.Config{
		Name: o.clusterName, NodeID: o.nodeID, Addrs: addrs,
		NATS: o.natsURL, Listen: o.natsListen, ClusterListen: o.natsCluster, Routes: o.natsRoutes,
		Tokens: tokens, Logger: log,
	}, func() int { return int(srv.Metrics().ConnsActive) })
	if err != nil {
		return nil, err
	}
	log.Info("cluster joined", "cluster", o.clusterName, "node", n.ID(), "nats", n.NATSURL(), "addrs", addrs)
	return n, nil
}

// dialable is a listen address as clients dial it: an unspecified host
// (":7777", "0.0.0.0") becomes 127.0.0.1; give -public-addr elsewhere.
func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// newWebSocket is the WebSocket listener for the side port at addr: the
// page origins of -ws-origins, or in development mode the server's own.
func newWebSocket(o options, log *slog.Logger, addr net.Addr) *websocket.Listener {
	origins := o.origins
	if o.dev {
		origins = append(devOrigins(addr, o.httpTLS), origins...)
		log.Warn("DEVELOPMENT MODE: WebSocket accepts pages from the server's own origins; set -origins for a game's site", "origins", origins)
	}
	return websocket.NewListener(websocket.Config{
		Addr:    addr.String(),
		Origins: origins,
		Plain:   o.wsPlain,
		Logger:  log,
	})
}

// devOrigins are the origins of the pages the side port at addr serves:
// 127.0.0.1, localhost and [::1] at its port, and its own address if it is
// a specific one.
func devOrigins(addr net.Addr, withTLS bool) []string {
	scheme := "http://"
	if withTLS {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil
	}
	hosts := []string{"127.0.0.1", "localhost", "::1"}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
		hosts = append(hosts, host)
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, scheme+net.JoinHostPort(h, port))
	}
	return out
}

// tokenKey is the connect token key: from -token-key, or the public dev key
// in development mode.
func tokenKey(o options, log *slog.Logger) (token.Key, error) {
	if o.tokenKey != "" {
		return token.LoadKeyFile(o.tokenKey)
	}
	if !o.dev {
		return token.Key{}, errors.New("no connect token key: set -token-key FILE (or -dev for the public development key)")
	}
	log.Warn("DEVELOPMENT MODE: connect tokens are checked against the built-in dev key, which is public: anyone can mint tokens for this server. Set -token-key FILE in production.")
	return token.DevKey, nil
}

func loadTLS(o options, log *slog.Logger) (*tls.Config, error) {
	if o.cert != "" {
		cert, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, nil
	}
	log.Warn("using a self-signed development certificate; clients must skip verification (-insecure). Set -cert and -key in production.")
	return netcode.DevTLSConfig()
}

// pageOptions are the browser side of the HTTP port (package web): the
// arena page at /, the JavaScript client, and in development mode
// /dev-token, minting tokens under the public dev key; every other route,
// /ws among them, is next's (sideHandler). /cert-hash is announced once the
// server serves WebTransport: web.Options' WebTransportPort and CertSHA256.
func pageOptions(o options, srv *netcode.Server, next http.Handler) web.Options {
	wo := web.Options{ProtocolID: o.protocolID, Next: next}
	if o.dev {
		key := token.DevKey
		wo.DevKey = &key
	}
	if o.webtransport {
		if ua, ok := srv.Addrs()[0].(*net.UDPAddr); ok {
			wo.WebTransportPort, wo.CertSHA256 = ua.Port, srv.CertHash()
		}
	}
	return wo
}

// sideHandler serves the HTTP side port: WebSocket clients at /ws (when ws
// is not nil), health, the room list, metrics in the Prometheus text format
// and as JSON, the live dashboard (behind -dashboard-token, if set), and the
// profiles with -pprof.
func sideHandler(g *game, o options) http.Handler {
	srv, hub, ws := g.srv, g.hub, g.ws
	mux := http.NewServeMux()
	if ws != nil {
		mux.Handle("/ws", ws)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /rooms", func(w http.ResponseWriter, r *http.Request) {
		if g.node == nil {
			writeJSON(w, hub.Rooms())
			return
		}
		writeJSON(w, clusterRooms(r.Context(), g))
	})
	if g.node != nil {
		mux.HandleFunc("GET /nodes", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, g.node.Nodes())
		})
		mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
			if err := g.node.Drain(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			writeJSON(w, g.node.MoveRooms(r.Context())) // each room's handoff
		})
	}
	metricsJSON := func(w http.ResponseWriter, _ *http.Request) {
		m := map[string]any{"server": srv.Metrics(), "transports": srv.TransportMetrics(), "kinds": hub.Kinds(), "runtime": runtimeFigures()}
		if ks, ok := srv.KCPStats(); ok {
			m["kcp"] = ks
		}
		if ws != nil {
			m["websocket"] = ws.Stats()
		}
		writeJSON(w, m)
	}
	prom := promexport.Handler(srv, hub)
	mux.HandleFunc("GET /metrics.json", metricsJSON)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if wantsJSON(r.Header.Values("Accept")) {
			metricsJSON(w, r)
			return
		}
		prom.ServeHTTP(w, r)
	})
	newDashboard(g).routes(mux, o.dashboardToken)
	if o.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// wantsJSON reports whether an Accept header prefers application/json to
// the Prometheus formats (text/plain, application/openmetrics-text): it
// names JSON with a quality above zero and at least theirs. Wildcards
// count for neither, so a scraper or a browser gets the text format.
func wantsJSON(accept []string) bool {
	jsonQ, promQ := 0.0, 0.0
	for _, header := range accept {
		for _, part := range strings.Split(header, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil {
					continue
				}
			}
			switch mt {
			case "application/json":
				jsonQ = max(jsonQ, q)
			case "text/plain", "application/openmetrics-text":
				promQ = max(promQ, q)
			}
		}
	}
	return jsonQ > 0 && jsonQ >= promQ
}

// runtimeFigures are the process's goroutines, live heap (after the last
// collection) and goroutine stacks, which a soak watches for leaks
// (loadtest.Sampler) and a load test divides by its connections.
func runtimeFigures() map[string]uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	return map[string]uint64{"goroutines": uint64(runtime.NumGoroutine()), "heap_live_bytes": v(0), "stack_bytes": v(1)}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// resumeWindow is Config.ResumeWindow for the -resume flag, where 0 means
// off (and the Config's zero means the default).
func resumeWindow(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// clusterRoom is a room of /rooms in a cluster: the directory's entry, with
// the figures of a room this node owns.
type clusterRoom struct {
	rooms.RoomInfo
	Owner string `json:"owner,omitempty"`
}

// clusterRooms lists the cluster's rooms, each with its owner node; with
// the directory unreachable, this node's own.
func clusterRooms(ctx context.Context, g *game) []clusterRoom {
	local := map[string]rooms.RoomInfo{}
	for _, ri := range g.hub.Rooms() {
		local[ri.Name] = ri
	}
	list, err := g.node.Rooms(ctx)
	out := make([]clusterRoom, 0, len(list))
	if err != nil {
		for _, ri := range local {
			out = append(out, clusterRoom{ri, g.node.ID()})
		}
		return out
	}
	for _, e := range list {
		ri, ok := local[e.Name]
		if !ok || e.Owner != g.node.ID() {
			ri = rooms.RoomInfo{Name: e.Name, Kind: e.Kind}
		}
		out = append(out, clusterRoom{ri, e.Owner})
	}
	return out
}

// drain marks the node draining, hands its rooms to other nodes, and waits,
// up to timeout, for its connections to end: the moved ones go as soon as
// their clients are sent on; a room that could not move is served until
// its players leave or the timeout, when the shutdown closes them.
func drain(g *game, timeout time.Duration, log *slog.Logger) {
	deadline := time.Now().Add(timeout)
	if !g.node.Draining() {
		if err := g.node.Drain(); err != nil {
			log.Warn("drain", "err", err)
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	moved := g.node.MoveRooms(ctx)
	cancel()
	log.Info("draining", "timeout", timeout, "rooms_handed_off", len(moved), "connections", g.srv.Metrics().ConnsActive)
	for g.srv.Metrics().ConnsActive > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}
