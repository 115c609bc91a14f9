// Package netcodetest runs Roomwire servers and clients over real loopback
// transports for tests. Its Transports table is what makes the behaviour
// tests a conformance suite: every test ranges over it, so a new transport
// is one more entry. Production code must not import it.
package netcodetest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/impair"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/netcode/transport/mem"
	"github.com/roomwire/roomwire/netcode/transport/quic"
	"github.com/roomwire/roomwire/netcode/transport/websocket"
	"github.com/roomwire/roomwire/netcode/transport/webtransport"
	"github.com/roomwire/roomwire/reliable"
)

// Transport is one way to run a server and connect clients to it.
type Transport struct {
	// Name is the URL scheme, such as "quic".
	Name string
	// Listen configures cfg to listen on this transport on 127.0.0.1.
	Listen func(t testing.TB, cfg *netcode.Config)
	// URL is the address clients dial for srv.
	URL func(srv *netcode.Server) string
	// Client configures a client for this transport and srv.
	Client func(srv *netcode.Server, cfg *netcode.ClientConfig)
	// Raw opens a bare transport session to srv, for tests that speak the
	// wire protocol by hand. On a challenged transport (webtransport) the
	// server's CHALLENGE has been read: the session is ready for a HELLO
	// without a token.
	Raw func(ctx context.Context, srv *netcode.Server) (transport.Session, error)
}

var (
	memMu        sync.Mutex
	memListeners = map[string]*mem.Listener{}
	memNext      int
)

func memListener(srv *netcode.Server) *mem.Listener {
	memMu.Lock()
	defer memMu.Unlock()
	for _, a := range srv.Addrs() {
		if l := memListeners[a.String()]; l != nil {
			return l
		}
	}
	return nil
}

var devTLS = func() func(t testing.TB) *netcode.Config {
	return func(t testing.TB) *netcode.Config {
		tc, err := netcode.DevTLSConfig()
		require.NoError(t, err)
		return &netcode.Config{TLS: tc}
	}
}()

// Transports are every transport the library ships.
var Transports = []Transport{
	{
		Name: "quic",
		Listen: func(t testing.TB, cfg *netcode.Config) {
			cfg.QUICAddr = "127.0.0.1:0"
			if cfg.TLS == nil {
				cfg.TLS = devTLS(t).TLS
			}
		},
		URL:    func(srv *netcode.Server) string { return "quic://" + srv.Addrs()[0].String() },
		Client: func(_ *netcode.Server, cfg *netcode.ClientConfig) { cfg.InsecureSkipVerify = true },
		Raw: func(ctx context.Context, srv *netcode.Server) (transport.Session, error) {
			return quic.Dial(ctx, srv.Addrs()[0].String(), &tls.Config{InsecureSkipVerify: true}, quic.Config{})
		},
	},
	{
		Name: "kcp",
		Listen: func(t testing.TB, cfg *netcode.Config) {
			cfg.KCPAddr = "127.0.0.1:0"
			if cfg.Tokens == nil {
				cfg.Tokens = &netcode.Tokens{Key: token.DevKey, ProtocolID: ProtocolID}
			}
		},
		URL: func(srv *netcode.Server) string { return "kcp://" + srv.Addrs()[0].String() },
		Client: func(_ *netcode.Server, cfg *netcode.ClientConfig) {
			if cfg.Token == nil {
				cfg.Token = Token()
			}
		},
		Raw: func(ctx context.Context, srv *netcode.Server) (transport.Session, error) {
			return kcp.Dial(ctx, srv.Addrs()[0].String(), Token(), kcp.Config{})
		},
	},
	{
		// WebTransport on the QUIC port (ALPN h3), as browsers use it.
		Name: "webtransport",
		Listen: func(t testing.TB, cfg *netcode.Config) {
			cfg.QUICAddr = "127.0.0.1:0"
			if cfg.TLS == nil {
				cfg.TLS = devTLS(t).TLS
			}
			if cfg.WebTransport == nil {
				cfg.WebTransport = &webtransport.Config{}
			}
		},
		URL:    func(srv *netcode.Server) string { return srv.WebTransportURL() },
		Client: func(_ *netcode.Server, cfg *netcode.ClientConfig) { cfg.InsecureSkipVerify = true },
		Raw: func(ctx context.Context, srv *netcode.Server) (transport.Session, error) {
			s, err := webtransport.Dial(ctx, srv.WebTransportURL(), &tls.Config{InsecureSkipVerify: true}, webtransport.Config{})
			if err != nil {
				return nil, err
			}
			return pastChallenge(s)
		},
	},
	{
		Name: "ws",
		Listen: func(t testing.TB, cfg *netcode.Config) {
			cfg.WebSocket = ServeWebSocket(t, websocket.Config{MaxFrame: cfg.MaxFrame})
		},
		URL:    func(srv *netcode.Server) string { return WebSocketURL(srv) },
		Client: func(*netcode.Server, *netcode.ClientConfig) {},
		Raw: func(ctx context.Context, srv *netcode.Server) (transport.Session, error) {
			s, err := websocket.Dial(ctx, WebSocketURL(srv), websocket.Config{})
			if err != nil {
				return nil, err
			}
			return pastChallenge(s)
		},
	},
	{
		Name: "mem",
		Listen: func(t testing.TB, cfg *netcode.Config) {
			memMu.Lock()
			memNext++
			l := mem.NewListener(fmt.Sprintf("mem-%d", memNext))
			memListeners[l.Addr().String()] = l
			memMu.Unlock()
			t.Cleanup(func() {
				memMu.Lock()
				delete(memListeners, l.Addr().String())
				memMu.Unlock()
			})
			cfg.Listeners = append(cfg.Listeners, l)
		},
		URL: func(srv *netcode.Server) string { return "mem://" + srv.Addrs()[0].String() },
		Client: func(srv *netcode.Server, cfg *netcode.ClientConfig) {
			l := memListener(srv)
			cfg.Dial = func(ctx context.Context, _ string) (transport.Session, error) { return l.Dial(ctx) }
		},
		Raw: func(ctx context.Context, srv *netcode.Server) (transport.Session, error) {
			return memListener(srv).Dial(ctx)
		},
	},
}

// pastChallenge returns s once its CHALLENGE is read, or closes it.
func pastChallenge(s transport.Session) (transport.Session, error) {
	if err := readChallenge(s); err != nil {
		_ = s.Close(0, "")
		return nil, err
	}
	return s, nil
}

// readChallenge reads the CHALLENGE a server opens a challenged session
// with (PROTOCOL.md 3.3.10), so that a raw session is where a QUIC one is
// before its HELLO: the tests that speak the protocol by hand send no
// token, which is what the challenge is for.
func readChallenge(s transport.Session) error {
	var f [reliable.HeaderLen + reliable.ChallengeLen]byte
	if _, err := io.ReadFull(s, f[:]); err != nil {
		return fmt.Errorf("netcodetest: reading the CHALLENGE: %w", err)
	}
	if reliable.FrameType(f[0]) != reliable.FrameChallenge {
		return fmt.Errorf("netcodetest: first frame %s, want CHALLENGE", reliable.FrameType(f[0]))
	}
	return nil
}

// ServeWebSocket serves a WebSocket listener configured by cfg at /ws on
// an HTTP server on 127.0.0.1, until the test ends (after the netcode
// server's own cleanup, which was registered later).
func ServeWebSocket(t testing.TB, cfg websocket.Config) *websocket.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg.Addr = ln.Addr().String()
	wl := websocket.NewListener(cfg)
	mux := http.NewServeMux()
	mux.Handle("/ws", wl)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
	})
	return wl
}

// WebSocketURL is the ws:// URL of srv's WebSocket listener, served by
// ServeWebSocket.
func WebSocketURL(srv *netcode.Server) string {
	for _, a := range srv.Addrs() {
		if a.Network() == "tcp" {
			return "ws://" + a.String() + "/ws"
		}
	}
	panic("netcodetest: the server has no WebSocket listener")
}

// ProtocolID is the protocol id of the tests' connect tokens.
const ProtocolID = token.DefaultProtocolID

// Token issues a connect token under token.DevKey for ProtocolID.
func Token() *token.ConnectToken {
	tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: ProtocolID, ClientID: 1}, time.Now())
	if err != nil {
		panic(err)
	}
	return tok
}

// GoleakOptions are the options every TestMain that runs transports passes
// to goleak: kcp-go starts a process-wide scheduler when the program loads
// and never stops it.
func GoleakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"),
	}
}

// VerifyTestMain runs the package's tests and then fails the run if
// goroutines are left, like goleak.VerifyTestMain with GoleakOptions, but
// gives them up to drainTime to end: a QUIC endpoint keeps a closed
// connection's state for a few probe timeouts to answer late packets, which
// on an impaired path with a long round trip takes seconds.
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		var err error
		for deadline := time.Now().Add(drainTime); ; time.Sleep(100 * time.Millisecond) {
			if err = goleak.Find(GoleakOptions()...); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// drainTime bounds VerifyTestMain's wait for goroutines to end.
const drainTime = 10 * time.Second

// Find returns the transport called name.
func Find(name string) Transport {
	for _, tr := range Transports {
		if tr.Name == name {
			return tr
		}
	}
	panic("netcodetest: no transport " + name)
}

// Each runs f as a subtest for every transport.
func Each(t *testing.T, f func(t *testing.T, tr Transport)) {
	for _, tr := range Transports {
		t.Run(tr.Name, func(t *testing.T) { f(t, tr) })
	}
}

// Server starts a server on tr, configured by cfg (which may be nil) and then
// by setup (which may be nil; register handlers there). It is closed when
// the test ends.
func Server(t testing.TB, tr Transport, cfg *netcode.Config, setup func(*netcode.Server)) *netcode.Server {
	t.Helper()
	if cfg == nil {
		cfg = &netcode.Config{}
	}
	tr.Listen(t, cfg)
	srv, err := netcode.NewServer(*cfg)
	require.NoError(t, err)
	if setup != nil {
		setup(srv)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(context.Background())
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return srv
}

// Client connects a client to srv over tr, after setup (which may be nil)
// registered its handlers. It is closed when the test ends.
func Client(t testing.TB, tr Transport, srv *netcode.Server, setup func(*netcode.Client)) *netcode.Client {
	t.Helper()
	cl, err := TryClient(tr, srv, netcode.ClientConfig{}, setup)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// TryClient connects like Client but returns the error and leaves closing to
// the caller.
func TryClient(tr Transport, srv *netcode.Server, cfg netcode.ClientConfig, setup func(*netcode.Client)) (*netcode.Client, error) {
	tr.Client(srv, &cfg)
	cl := netcode.NewClient(cfg)
	if setup != nil {
		setup(cl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Connect(ctx, tr.URL(srv)); err != nil {
		return nil, err
	}
	return cl, nil
}

// Eventually waits up to 10 s for cond, polling; it fails the test with msg
// when cond never holds.
func Eventually(t testing.TB, cond func() bool, msg string, args ...any) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, append([]any{msg}, args...)...)
}

// Recv waits up to 10 s for a value on ch.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// Never asserts that nothing arrives on ch for d.
func Never[T any](t testing.TB, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(d):
	}
}

// EachB runs f as a sub-benchmark for every transport.
func EachB(b *testing.B, f func(b *testing.B, tr Transport)) {
	for _, tr := range Transports {
		b.Run(tr.Name, func(b *testing.B) { f(b, tr) })
	}
}

// Impaired returns tr (quic or kcp) with every socket, the server's and each
// client's, wrapped in an impairment conn, so traffic both ways suffers
// cfg's loss, delay, jitter, reordering and duplication. Each socket draws
// from its own seed, derived from cfg.Seed.
func Impaired(tr Transport, cfg impair.Config) Transport {
	var seq atomic.Uint64
	open := func() (*impair.Conn, error) {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		cc := cfg
		cc.Seed = cfg.Seed*1000 + seq.Add(1)
		return impair.New(c, cc), nil
	}
	wrap := func(t testing.TB) *impair.Conn {
		c, err := open()
		require.NoError(t, err)
		return c
	}
	out := Transport{Name: tr.Name + "-impaired", Raw: tr.Raw}
	switch tr.Name {
	case "quic":
		out.Listen = func(t testing.TB, c *netcode.Config) {
			pc := wrap(t)
			t.Cleanup(func() { _ = pc.Close() }) // after the server's own cleanup
			if c.TLS == nil {
				c.TLS = devTLS(t).TLS
			}
			ln, err := quic.ListenConn(pc, c.TLS, c.QUIC)
			require.NoError(t, err)
			c.Listeners = append(c.Listeners, ln)
		}
		out.URL = func(srv *netcode.Server) string { return "quic://" + srv.Addrs()[0].String() }
		out.Client = func(srv *netcode.Server, c *netcode.ClientConfig) {
			addr := srv.Addrs()[0]
			qc := c.QUIC
			c.InsecureSkipVerify = true
			c.Dial = func(ctx context.Context, _ string) (transport.Session, error) {
				pc, err := open()
				if err != nil {
					return nil, err
				}
				return quic.DialOwned(ctx, pc, addr, &tls.Config{InsecureSkipVerify: true}, qc)
			}
		}
	case "kcp":
		out.Listen = func(t testing.TB, c *netcode.Config) {
			if c.Tokens == nil {
				c.Tokens = &netcode.Tokens{Key: token.DevKey, ProtocolID: ProtocolID}
			}
			kc := c.KCP
			kc.Key, kc.ProtocolID = c.Tokens.Key, c.Tokens.ProtocolID
			c.Listeners = append(c.Listeners, kcp.ListenConn(wrap(t), kc))
		}
		out.URL = func(srv *netcode.Server) string { return "kcp://" + srv.Addrs()[0].String() }
		out.Client = func(srv *netcode.Server, c *netcode.ClientConfig) {
			if c.Token == nil {
				c.Token = Token()
			}
			tok, kc := c.Token, c.KCP
			remote := srv.Addrs()[0].(*net.UDPAddr).AddrPort()
			c.Dial = func(ctx context.Context, _ string) (transport.Session, error) {
				pc, err := open()
				if err != nil {
					return nil, err
				}
				t := netcode.DialToken(ctx) // a resume ticket, or the client's token
				if t == nil {
					t = tok
				}
				return kcp.DialConn(ctx, pc, remote, t, kc)
			}
		}
	default:
		panic("netcodetest: cannot impair " + tr.Name)
	}
	return out
}
