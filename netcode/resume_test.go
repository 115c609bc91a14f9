package netcode_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
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
	"github.com/roomwire/roomwire/reliable"
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
		s, err := quic.DialConn(ctx, pc, addr, &tls.Config{InsecureSkipVerify: true}, quic.Config{})
		if err != nil {
			_ = pc.Close()
			return nil, err
		}
		return &closing{s, pc}, nil
	}
}

// closing closes the socket under its QUIC session.
type closing struct {
	*quic.Session
	pc *impair.Conn
}

func (c *closing) Close(code uint16, reason string) error {
	err := c.Session.Close(code, reason)
	_ = c.pc.Close()
	return err
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

type resumeRig struct {
	srv              *netcode.Server
	cl               *netcode.Client
	net              *darkNet
	atServer, atCl   *history
	away, back       atomic.Int32
	srvAway, srvBack atomic.Int32
	ended            chan *netcode.CloseError
}

func newResumeRig(t *testing.T, name string, window time.Duration) *resumeRig {
	g := &resumeRig{net: &darkNet{}, atServer: &history{}, atCl: &history{}, ended: make(chan *netcode.CloseError, 1)}
	tr := netcodetest.Find(name)
	g.srv = netcodetest.Server(t, tr, &netcode.Config{ResumeWindow: window}, func(s *netcode.Server) {
		s.On("hist", func(c *netcode.Conn, p []byte) {
			g.atServer.add(p)
			_ = c.Emit("hist", p)
		})
		s.OnAway(func(*netcode.Conn) { g.srvAway.Add(1) })
		s.OnBack(func(*netcode.Conn) { g.srvBack.Add(1) })
		s.OnDisconnect(func(_ *netcode.Conn, ce *netcode.CloseError) { g.ended <- ce })
	})
	cfg := netcode.ClientConfig{InsecureSkipVerify: true, Token: netcodetest.Token(), Dial: g.net.dial(t, name, g.srv)}
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
