package netcode_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/impair"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/netcode/transport/quic"
	"github.com/roomwire/roomwire/netcode/transport/websocket"
	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

// darkNet is a client's network that a test can switch off: every socket
// the client opens, now or on a redial, drops every packet while dark.
type darkNet struct {
	mu    sync.Mutex
	dark  bool
	conns []*impair.Conn
}

func (n *darkNet) set(dark bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dark = dark
	for _, c := range n.conns {
		c.SetConfig(n.config())
	}
}

func (n *darkNet) config() impair.Config {
	if n.dark {
		return impair.Config{Loss: 1}
	}
	return impair.Config{}
}

func (n *darkNet) open(t testing.TB) *impair.Conn {
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	n.mu.Lock()
	defer n.mu.Unlock()
	c := impair.New(uc, n.config())
	n.conns = append(n.conns, c)
	return c
}

// dial is a ClientConfig.Dial over the dark-able network, for quic and kcp.
func (n *darkNet) dial(t testing.TB, name string, srv *netcode.Server) func(ctx context.Context, _ string) (transport.Session, error) {
	addr := srv.Addrs()[0].(*net.UDPAddr)
	return func(ctx context.Context, _ string) (transport.Session, error) {
		pc := n.open(t)
		if name == "kcp" {
			return kcp.DialConn(ctx, pc, addr.AddrPort(), netcode.DialToken(ctx), kcp.Config{})
		}
		return quic.DialOwned(ctx, pc, addr, &tls.Config{InsecureSkipVerify: true}, quic.Config{})
	}
}

// history records numbered events in the order they came.
type history struct {
	mu  sync.Mutex
	got []uint64
}

func (h *history) add(p []byte) {
	h.mu.Lock()
	h.got = append(h.got, binary.BigEndian.Uint64(p))
	h.mu.Unlock()
}

func (h *history) check(t *testing.T, n uint64, who string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.got, int(n), "%s: events lost or duplicated", who)
	for i, v := range h.got {
		require.Equal(t, uint64(i+1), v, "%s: event %d out of order", who, i)
	}
}

func (h *history) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.got)
}

// checkSession waits for the echoes of n events, then checks that both
// sides got events 1..n once each and in order, and that cl is still the
// connection id, open.
func checkSession(t *testing.T, cl *netcode.Client, id netcode.ID, atServer, atCl *history, n uint64) {
	t.Helper()
	netcodetest.Eventually(t, func() bool { return atCl.len() >= int(n) }, "all echoes")
	time.Sleep(200 * time.Millisecond) // no duplicate trails behind
	atServer.check(t, n, "server")
	atCl.check(t, n, "client")
	require.Equal(t, id, cl.ID())
	require.NoError(t, cl.Err())
}

type resumeRig struct {
	srv              *netcode.Server
	cl               *netcode.Client
	net              *darkNet
	atServer, atCl   *history
	away, back       atomic.Int32
	srvAway, srvBack atomic.Int32
	ended            chan *netcode.CloseError
}

func newResumeRig(t *testing.T, name string, window time.Duration, tune ...func(*netcode.ClientConfig)) *resumeRig {
	g := &resumeRig{net: &darkNet{}, atServer: &history{}, atCl: &history{}, ended: make(chan *netcode.CloseError, 1)}
	tr := netcodetest.Find(name)
	tokens := &netcode.Tokens{Key: token.DevKey, ProtocolID: netcodetest.ProtocolID}
	g.srv = netcodetest.Server(t, tr, &netcode.Config{ResumeWindow: window, Tokens: tokens}, func(s *netcode.Server) {
		s.On("hist", func(c *netcode.Conn, p []byte) {
			g.atServer.add(p)
			_ = c.Emit("hist", p)
		})
		s.Handle("echo", func(_ *netcode.Conn, p []byte) ([]byte, error) { return p, nil })
		s.Handle("slow", func(_ *netcode.Conn, p []byte) ([]byte, error) {
			time.Sleep(time.Second)
			return p, nil
		})
		s.OnAway(func(*netcode.Conn) { g.srvAway.Add(1) })
		s.OnBack(func(*netcode.Conn) { g.srvBack.Add(1) })
		s.OnDisconnect(func(_ *netcode.Conn, ce *netcode.CloseError) {
			select {
			case g.ended <- ce:
			default: // only the first end is looked at
			}
		})
	})
	cfg := netcode.ClientConfig{InsecureSkipVerify: true, Token: netcodetest.Token(), Dial: g.net.dial(t, name, g.srv)}
	for _, f := range tune {
		f(&cfg)
	}
	g.cl = netcode.NewClient(cfg)
	g.cl.On("hist", g.atCl.add)
	g.cl.OnAway(func(error) { g.away.Add(1) })
	g.cl.OnBack(func() { g.back.Add(1) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, g.cl.Connect(ctx, tr.URL(g.srv)))
	t.Cleanup(func() { _ = g.cl.Close() })
	// A round trip after the $resume request: the server granted it.
	_, err := g.cl.Request(ctx, "nothing", nil)
	require.Error(t, err)
	return g
}

// emit sends numbered hist events from n+1 for d, one every gap.
func (g *resumeRig) emit(t *testing.T, n *uint64, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		*n++
		require.NoError(t, g.cl.Emit("hist", binary.BigEndian.AppendUint64(nil, *n)))
	}
}

func TestResumeAfterBlackout(t *testing.T) {
	for _, name := range []string{"quic", "kcp"} {
		t.Run(name, func(t *testing.T) {
			g := newResumeRig(t, name, 10*time.Second)
			id := g.cl.ID()
			var n uint64
			g.emit(t, &n, 500*time.Millisecond)
			for round := 1; round <= 2; round++ {
				g.net.set(true)
				g.emit(t, &n, 3*time.Second) // queued while away
				g.net.set(false)
				netcodetest.Eventually(t, func() bool { return g.back.Load() == int32(round) }, "resume %d", round)
				g.emit(t, &n, 500*time.Millisecond)
			}
			netcodetest.Eventually(t, func() bool { return g.atCl.len() >= int(n) }, "all echoes")
			time.Sleep(200 * time.Millisecond) // no duplicate trails behind
			g.atServer.check(t, n, "server")
			g.atCl.check(t, n, "client")
			require.Equal(t, id, g.cl.ID())
			require.Equal(t, int32(2), g.away.Load())
			require.Equal(t, int32(2), g.srvBack.Load())
			require.NoError(t, g.cl.Err())
		})
	}
}

// An idle connection on a transport that keeps alive itself (QUIC's PINGs,
// KCP's KEEPALIVE) sends no reliable frames either way once its clock burst
// is over: those keep-alives tell each side that the other lives, so it
// stays connected, and never away, through a silence longer than the
// client's deadAfter and the server's silentAfter. A dark path is still
// found dead (TestResumeAfterBlackout).
func TestIdleResumableSendsNoFrames(t *testing.T) {
	for _, name := range []string{"quic", "kcp"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newResumeRig(t, name, 10*time.Second)
			time.Sleep(2500 * time.Millisecond) // the clock's PINGs and their ACKEDs
			before := g.cl.Stats()
			time.Sleep(4 * time.Second)
			after := g.cl.Stats()
			require.Equal(t, before.FramesSent, after.FramesSent, "reliable frames the idle client sent")
			require.Equal(t, before.FramesReceived, after.FramesReceived, "reliable frames the idle client received")
			require.Zero(t, g.away.Load(), "the client went away")
			require.Zero(t, g.srvAway.Load(), "the server found the client silent")
			require.NoError(t, g.cl.Err())
		})
	}
}

func TestResumeExpires(t *testing.T) {
	g := newResumeRig(t, "kcp", 1500*time.Millisecond)
	g.net.set(true)
	ce := netcodetest.Recv(t, g.ended, "server-side end")
	require.Equal(t, netcode.CloseExpired, ce.Code)
	require.Contains(t, ce.Reason, "session expired")
	g.net.set(false)
	select {
	case <-g.cl.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client did not end")
	}
	require.True(t, netcode.IsExpired(g.cl.Err()), "client error %v", g.cl.Err())
}

// A connection id alone resumes nothing: a RESUME without the session's
// ticket is refused with a reason, and the session goes on.
func TestResumeStolenIDRefused(t *testing.T) {
	g := newResumeRig(t, "quic", 10*time.Second)
	tr := netcodetest.Find("quic")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, auth := range [][]byte{nil, make([]byte, token.WireSize+token.ProofSize)} {
		s, err := tr.Raw(ctx, g.srv)
		require.NoError(t, err)
		b, err := reliable.AppendResume(nil, reliable.Version, g.cl.ID(), 1, auth)
		require.NoError(t, err)
		_, err = s.Write(b)
		require.NoError(t, err)
		f, err := reliable.NewReader(s, reliable.DefaultMaxFrame).Next()
		if err != nil { // the transport's close overtook the CLOSE frame
			require.ErrorContains(t, err, "code 6: resume refused: bad resume ticket")
		} else {
			require.Equal(t, reliable.FrameClose, f.Type)
			require.Equal(t, netcode.CloseRefused, f.Code)
			require.Equal(t, "resume refused: bad resume ticket", string(f.Payload))
		}
		_ = s.Close(0, "")
	}
	var n uint64
	g.emit(t, &n, 100*time.Millisecond)
	netcodetest.Eventually(t, func() bool { return g.atCl.len() == int(n) }, "echoes")
	require.NoError(t, g.cl.Err())
}

// Against a server with resume off, a client (resume on by default) gets
// no grant and no ACKED: it must not hold its frames, nor close when they
// pass its MaxQueued, nor take its transport's end for a pause.
func TestResumeOffServer(t *testing.T) {
	tr := netcodetest.Find("kcp")
	got := &history{}
	srv := netcodetest.Server(t, tr, &netcode.Config{ResumeWindow: -1}, func(s *netcode.Server) {
		s.On("hist", func(_ *netcode.Conn, p []byte) { got.add(p) })
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := netcode.Dial(ctx, tr.URL(srv), netcode.ClientConfig{InsecureSkipVerify: true, Token: netcodetest.Token(), MaxQueued: 4 << 10})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	const n = 200 // 200 × 108 bytes: five times the client's MaxQueued
	pad := make([]byte, 100)
	for i := uint64(1); i <= n; i++ {
		require.NoError(t, cl.Emit("hist", append(binary.BigEndian.AppendUint64(nil, i), pad...)))
		if i%20 == 0 {
			netcodetest.Eventually(t, func() bool { return got.len() == int(i) }, "events up to %d", i)
		}
	}
	got.check(t, n, "server")
	require.NoError(t, cl.Err())
	require.NoError(t, srv.Close())
	select {
	case <-cl.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the client waits to resume on a server that never granted it")
	}
	require.False(t, netcode.IsExpired(cl.Err()), "client error %v", cl.Err())
}

// A client whose QUIC path dies, and whose UDP stays blocked, resumes on
// the next transport of its URL list (WebSocket, or KCP when only QUIC's
// port is blocked): the same session, every reliable event of both ways
// delivered once and in order, and datagrams sized for the new transport.
func TestResumeOnAnotherTransport(t *testing.T) {
	for _, next := range []string{"ws", "kcp"} {
		t.Run("quic-to-"+next, func(t *testing.T) {
			tc, err := netcode.DevTLSConfig()
			require.NoError(t, err)
			atServer, atCl := &history{}, &history{}
			srv := netcodetest.Server(t, netcodetest.Find("quic"), &netcode.Config{
				TLS: tc, KCPAddr: "127.0.0.1:0", WebSocket: netcodetest.ServeWebSocket(t, websocket.Config{}),
				Tokens: &netcode.Tokens{Key: token.DevKey, ProtocolID: netcodetest.ProtocolID},
			}, func(s *netcode.Server) {
				s.On("hist", func(c *netcode.Conn, p []byte) {
					atServer.add(p)
					_ = c.Emit("hist", p)
				})
			})
			addrs := srv.Addrs()
			quicAddr, kcpAddr := addrs[0].(*net.UDPAddr), addrs[1].(*net.UDPAddr)
			wsURL := netcodetest.WebSocketURL(srv)
			urls := "quic://" + quicAddr.String() + ","
			if next == "ws" {
				urls += wsURL
			} else {
				urls += "kcp://" + kcpAddr.String()
			}
			udp := &darkNet{} // the QUIC path; dark from the drop on
			cl := netcode.NewClient(netcode.ClientConfig{
				Token: netcodetest.Token(), FallbackAfter: 300 * time.Millisecond,
				Dial: func(ctx context.Context, host string) (transport.Session, error) {
					switch host {
					case quicAddr.String():
						return quic.DialOwned(ctx, udp.open(t), quicAddr, &tls.Config{InsecureSkipVerify: true}, quic.Config{})
					case kcpAddr.String():
						return kcp.Dial(ctx, host, netcode.DialToken(ctx), kcp.Config{})
					}
					return websocket.Dial(ctx, wsURL, websocket.Config{})
				},
			})
			cl.On("hist", atCl.add)
			back := make(chan struct{}, 1)
			cl.OnBack(func() { back <- struct{}{} })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, cl.Connect(ctx, urls))
			t.Cleanup(func() { _ = cl.Close() })
			require.Equal(t, "quic", cl.Transport())
			_, err = cl.Request(ctx, "nothing", nil) // a round trip: resume granted
			require.Error(t, err)
			id := cl.ID()
			// The largest unreliable event QUIC and WebSocket take; KCP's
			// datagrams are smaller (sealing).
			big := make([]byte, unreliable.MaxDatagram-unreliable.HeaderLen-unreliable.EventOverhead-len("big"))
			require.NoError(t, cl.EmitUnreliable("big", big))
			g := &resumeRig{cl: cl}
			var n uint64
			g.emit(t, &n, 300*time.Millisecond)
			udp.set(true)
			g.emit(t, &n, 2500*time.Millisecond)
			netcodetest.Recv(t, back, "the resume")
			require.Equal(t, next, cl.Transport())
			g.emit(t, &n, 300*time.Millisecond)
			checkSession(t, cl, id, atServer, atCl, n)
			if next == "ws" {
				require.NoError(t, cl.EmitUnreliable("big", big))
			} else {
				require.ErrorIs(t, cl.EmitUnreliable("big", big), unreliable.ErrTooLarge, "sized for KCP now")
			}
		})
	}
}

// twinned is a resume's transport whose RESUME also goes out, at the same
// moment, on a twin QUIC transport to the same server with the same ticket
// and its own proof (PROTOCOL.md 7.7): two resumes of one session at once.
type twinned struct {
	*quic.Session
	twin   *quic.Session
	ticket *token.ConnectToken
	once   sync.Once
	got    chan twinAnswer
}

// twinAnswer is the first frame the twin got, or the error its read ended
// with (a refusal's transport close may overtake its CLOSE frame).
type twinAnswer struct {
	f   reliable.Frame
	err error
}

func (s *twinned) Write(b []byte) (int, error) {
	s.once.Do(func() {
		resume, err := s.twinResume(b)
		if err != nil {
			s.got <- twinAnswer{err: err}
			return
		}
		go func() { // the twin's session stays open: a winner holds the session
			if _, err := s.twin.Write(resume); err != nil {
				s.got <- twinAnswer{err: err}
				return
			}
			f, err := reliable.NewReader(s.twin, reliable.DefaultMaxFrame).Next()
			f.Payload = append([]byte(nil), f.Payload...)
			s.got <- twinAnswer{f, err}
		}()
	})
	return s.Session.Write(b)
}

// twinResume is the client's RESUME b with the twin's own proof.
func (s *twinned) twinResume(b []byte) ([]byte, error) {
	f, err := reliable.NewReader(bytes.NewReader(b), reliable.DefaultMaxFrame).Next()
	if err != nil {
		return nil, err
	}
	if f.Type != reliable.FrameResume {
		return nil, fmt.Errorf("the client's first frame is %v", f.Type)
	}
	binding, err := s.twin.ExportKeyingMaterial("EXPORTER-roomwire-token", nil, 32)
	if err != nil {
		return nil, err
	}
	proof := token.Proof(s.ticket.ClientToServer, binding)
	return reliable.AppendResume(nil, reliable.Version, f.ConnID, f.Received, append(s.ticket.AppendWire(nil), proof[:]...))
}

// Two resumes of one session at once, each with the session's ticket and a
// valid proof: exactly one wins; the other is refused with a reason.
func TestResumeConcurrentOneWinner(t *testing.T) {
	var twinOn atomic.Bool
	got := make(chan twinAnswer, 1)
	g := newResumeRig(t, "quic", 10*time.Second, func(cfg *netcode.ClientConfig) {
		dial := cfg.Dial
		cfg.Dial = func(ctx context.Context, host string) (transport.Session, error) {
			s, err := dial(ctx, host)
			if err != nil || !twinOn.Load() {
				return s, err
			}
			twin, err := dial(ctx, host)
			if err != nil {
				t.Logf("twin dial: %v", err)
				return s, nil
			}
			twinOn.Store(false)
			t.Cleanup(func() { _ = twin.Close(0, "") })
			return &twinned{Session: s.(*quic.Session), twin: twin.(*quic.Session), ticket: netcode.DialToken(ctx), got: got}, nil
		}
	})
	twinOn.Store(true)
	g.net.set(true)
	netcodetest.Eventually(t, func() bool { return g.away.Load() == 1 }, "the client away")
	g.net.set(false)
	twin := netcodetest.Recv(t, got, "the twin's answer")

	clientWon := false
	select {
	case <-g.cl.Done():
	case <-time.After(3 * time.Second):
		clientWon = g.back.Load() == 1
	}
	twinWon := twin.err == nil && twin.f.Type == reliable.FrameResumed
	require.True(t, clientWon != twinWon, "exactly one winner: client %v, twin %v (twin's answer %v, %v)", clientWon, twinWon, twin.f.Type, twin.err)
	var code uint16
	var reason string
	switch {
	case twinWon:
		var ce *netcode.CloseError
		require.ErrorAs(t, g.cl.Err(), &ce)
		code, reason = uint16(ce.Code), ce.Reason
	case twin.err != nil:
		ce, ok := transport.AsCloseError(twin.err)
		require.True(t, ok, "the twin's read ended with %v", twin.err)
		code, reason = ce.Code, ce.Reason
	default:
		require.Equal(t, reliable.FrameClose, twin.f.Type)
		code, reason = uint16(twin.f.Code), string(twin.f.Payload)
	}
	if !twinWon {
		require.NoError(t, g.cl.Err())
	}
	require.EqualValues(t, netcode.CloseRefused, code)
	require.Contains(t, []string{"resume refused: session is being resumed", "resume refused: stale resume ticket"}, reason)
	drops := g.srv.Metrics().Drops
	require.EqualValues(t, 1, drops["resume_busy"]+drops["resume_stale"])
	require.EqualValues(t, 1, g.srvBack.Load())
}

// A NAT in front of the client rebinds mid-session: its UDP mapping moves
// to a new source port, or its TCP flow is reset. The session goes on as
// the same connection with every reliable event of both ways delivered
// once and in order, either kept alive by the transport itself or resumed.
func TestResumeAfterNATRebinding(t *testing.T) {
	for _, name := range []string{"quic", "kcp", "ws"} {
		t.Run(name, func(t *testing.T) {
			atServer, atCl := &history{}, &history{}
			cfg := &netcode.Config{}
			if name == "ws" {
				cfg.WebSocket = netcodetest.ServeWebSocket(t, websocket.Config{})
			}
			tr := netcodetest.Find(name)
			if name == "ws" {
				tr = netcodetest.Find("quic")
			}
			srv := netcodetest.Server(t, tr, cfg, func(s *netcode.Server) {
				s.On("hist", func(c *netcode.Conn, p []byte) {
					atServer.add(p)
					_ = c.Emit("hist", p)
				})
			})
			var rebind func() int
			var dial func(ctx context.Context, _ string) (transport.Session, error)
			switch name {
			case "ws":
				upstream := strings.TrimSuffix(strings.TrimPrefix(netcodetest.WebSocketURL(srv), "ws://"), "/ws")
				p, err := impair.NewTCPProxy(impair.TCPConfig{Upstream: upstream})
				require.NoError(t, err)
				t.Cleanup(func() { _ = p.Close() })
				rebind = p.Reset
				dial = func(ctx context.Context, _ string) (transport.Session, error) {
					return websocket.Dial(ctx, "ws://"+p.Addr().String()+"/ws", websocket.Config{})
				}
			default:
				p, err := impair.NewProxy(impair.ProxyConfig{Upstream: srv.Addrs()[0].String()})
				require.NoError(t, err)
				t.Cleanup(func() { _ = p.Close() })
				rebind = p.Rebind
				addr := p.Addr().String()
				dial = func(ctx context.Context, _ string) (transport.Session, error) {
					if name == "kcp" {
						return kcp.Dial(ctx, addr, netcode.DialToken(ctx), kcp.Config{})
					}
					return quic.Dial(ctx, addr, &tls.Config{InsecureSkipVerify: true}, quic.Config{})
				}
			}
			cl := netcode.NewClient(netcode.ClientConfig{Token: netcodetest.Token(), Dial: dial})
			cl.On("hist", atCl.add)
			var back atomic.Int32
			cl.OnBack(func() { back.Add(1) })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, cl.Connect(ctx, tr.URL(srv)))
			t.Cleanup(func() { _ = cl.Close() })
			_, err := cl.Request(ctx, "nothing", nil) // a round trip: resume granted
			require.Error(t, err)
			id := cl.ID()
			g := &resumeRig{cl: cl}
			var n uint64
			g.emit(t, &n, 300*time.Millisecond)
			require.Equal(t, map[string]int{"quic": 1, "kcp": 1, "ws": 2}[name], rebind())
			g.emit(t, &n, 3*time.Second)
			checkSession(t, cl, id, atServer, atCl, n)
			t.Logf("%s after a NAT rebinding: %d resumes", name, back.Load())
			if name != "quic" { // QUIC may follow the new address by itself
				require.EqualValues(t, 1, back.Load(), "resumed")
			}
		})
	}
}

// A request in flight when the network drops, and one made while away,
// complete after the resume with their replies; one pending when the
// session expires fails with the expiry, a typed error. None hangs.
func TestResumeRequests(t *testing.T) {
	type answer struct {
		reply []byte
		err   error
	}
	ask := func(cl *netcode.Client, name, payload string) chan answer {
		ch := make(chan answer, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := cl.Request(ctx, name, []byte(payload))
			ch <- answer{r, err}
		}()
		return ch
	}
	t.Run("resumed", func(t *testing.T) {
		g := newResumeRig(t, "kcp", 10*time.Second)
		inFlight := ask(g.cl, "slow", "in flight") // answered while away
		time.Sleep(100 * time.Millisecond)
		g.net.set(true)
		netcodetest.Eventually(t, func() bool { return g.away.Load() == 1 }, "the client away")
		whileAway := ask(g.cl, "echo", "while away")
		time.Sleep(time.Second)
		g.net.set(false)
		a := netcodetest.Recv(t, inFlight, "the reply to the request in flight")
		require.NoError(t, a.err)
		require.Equal(t, "in flight", string(a.reply))
		a = netcodetest.Recv(t, whileAway, "the reply to the request made while away")
		require.NoError(t, a.err)
		require.Equal(t, "while away", string(a.reply))
		require.EqualValues(t, 1, g.back.Load())
	})
	t.Run("expired", func(t *testing.T) {
		g := newResumeRig(t, "kcp", 1500*time.Millisecond)
		g.net.set(true)
		pending := ask(g.cl, "echo", "never answered")
		a := netcodetest.Recv(t, pending, "the pending request's end")
		require.Error(t, a.err)
		require.True(t, netcode.IsExpired(a.err), "a typed expiry, got %v", a.err)
	})
}

// A resume ticket resumes and does nothing else: as the connect token of a
// new connection it is refused, so a player cannot turn its tickets into
// admissions its matchmaker never granted.
func TestResumeTicketIsNoConnectToken(t *testing.T) {
	for _, name := range []string{"quic", "kcp"} {
		t.Run(name, func(t *testing.T) {
			var ticket atomic.Pointer[token.ConnectToken]
			orig := netcodetest.Token()
			g := newResumeRig(t, name, 10*time.Second, func(cfg *netcode.ClientConfig) {
				cfg.Token = orig
				dial := cfg.Dial
				cfg.Dial = func(ctx context.Context, host string) (transport.Session, error) {
					if tok := netcode.DialToken(ctx); tok != orig {
						ticket.Store(tok) // and unspent: this redial goes nowhere
						return nil, errors.New("held back by the test")
					}
					return dial(ctx, host)
				}
			})
			g.net.set(true)
			netcodetest.Eventually(t, func() bool { return ticket.Load() != nil }, "a redial with the ticket")
			g.net.set(false)

			tr := netcodetest.Find(name)
			_, err := netcodetest.TryClient(tr, g.srv, netcode.ClientConfig{Token: ticket.Load(), NoResume: true}, nil)
			var ce *netcode.CloseError
			require.ErrorAs(t, err, &ce, "a ticket as a connect token")
			require.Equal(t, netcode.CloseRefused, ce.Code)
			if name == "kcp" { // the KCP handshake takes it, for a resume
				require.Equal(t, "a resume ticket is not a connect token", ce.Reason)
				require.EqualValues(t, 1, g.srv.Metrics().Drops["ticket_as_token"])
			} else {
				require.Contains(t, ce.Reason, "connect token")
			}
		})
	}
}
