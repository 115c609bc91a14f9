package impair_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/transport/impair"
)

// echo is an upstream server that sends every packet back to its sender and
// remembers which address each payload came from.
type echo struct {
	conn *net.UDPConn
	n    atomic.Int64
	done chan struct{}

	mu   sync.Mutex
	from map[string]netip.AddrPort
}

func newEcho(t *testing.T) *echo {
	t.Helper()
	e := &echo{conn: listen(t), done: make(chan struct{}), from: map[string]netip.AddrPort{}}
	_ = e.conn.SetReadBuffer(1 << 20)
	go func() {
		defer close(e.done)
		buf := make([]byte, 4096)
		for {
			n, from, err := e.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			e.mu.Lock()
			e.from[string(buf[:n])] = from
			e.mu.Unlock()
			e.n.Add(1)
			_, _ = e.conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		_ = e.conn.Close()
		<-e.done
	})
	return e
}

func (e *echo) sourceOf(payload string) netip.AddrPort {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.from[payload]
}

func newProxy(t *testing.T, cfg impair.ProxyConfig) *impair.Proxy {
	t.Helper()
	p, err := impair.NewProxy(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// roundTrip sends payload from c to addr and waits up to timeout for the
// same payload to come back; it reports the round trip and whether it did.
func roundTrip(t *testing.T, c *net.UDPConn, addr net.Addr, payload string, timeout time.Duration) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	_, err := c.WriteTo([]byte(payload), addr)
	require.NoError(t, err)
	buf := make([]byte, 4096)
	require.NoError(t, c.SetReadDeadline(start.Add(timeout)))
	for {
		n, _, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, false
		}
		require.NoError(t, err)
		if string(buf[:n]) == payload {
			return time.Since(start), true
		}
	}
}

// The round trip through the proxy is the two directions' delays added.
func TestProxyDelay(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name     string
		up, down time.Duration
	}{
		{"none", 0, 0},
		{"symmetric", 20 * ms, 20 * ms},
		{"asymmetric", 30 * ms, 5 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEcho(t)
			p := newProxy(t, impair.ProxyConfig{
				Upstream: e.conn.LocalAddr().String(),
				ToServer: impair.Config{Delay: tc.up},
				ToClient: impair.Config{Delay: tc.down},
			})
			c := listen(t)
			var rtts []time.Duration
			for i := range 15 {
				rtt, ok := roundTrip(t, c, p.Addr(), fmt.Sprint("ping ", i), 5*time.Second)
				require.True(t, ok, "ping %d lost with no loss configured", i)
				rtts = append(rtts, rtt)
			}
			slices.Sort(rtts)
			want := tc.up + tc.down
			require.GreaterOrEqual(t, rtts[0], want, "fastest round trip")
			// Generous: the machine is shared; the delay itself is exact.
			require.Less(t, rtts[len(rtts)/2], want+50*ms, "median round trip")
		})
	}
}

// Each direction loses its own share, and the proxy counts it.
func TestProxyLoss(t *testing.T) {
	const n = 1000
	for _, tc := range []struct {
		up, down float64
	}{
		{0.2, 0},
		{0, 0.2},
		{0.1, 0.1},
	} {
		t.Run(fmt.Sprintf("up%.0f%%/down%.0f%%", tc.up*100, tc.down*100), func(t *testing.T) {
			e := newEcho(t)
			p := newProxy(t, impair.ProxyConfig{
				Upstream: e.conn.LocalAddr().String(),
				ToServer: impair.Config{Loss: tc.up, Seed: 1},
				ToClient: impair.Config{Loss: tc.down, Seed: 1},
			})
			c := listen(t)
			_ = c.SetReadBuffer(1 << 20)
			var got atomic.Int64
			readDone := make(chan struct{})
			go func() {
				defer close(readDone)
				buf := make([]byte, 4096)
				for {
					if _, _, err := c.ReadFrom(buf); err != nil {
						return
					}
					got.Add(1)
				}
			}()
			defer func() { _ = c.Close(); <-readDone }()

			for i := range n {
				_, err := c.WriteTo(fmt.Appendf(nil, "%06d", i), p.Addr())
				require.NoError(t, err)
				if i%20 == 19 {
					time.Sleep(time.Millisecond) // pace, so no socket buffer overflows
				}
			}
			// Wait until every packet's fate is settled.
			deadline := time.Now().Add(patience)
			for {
				st := p.Stats()
				settled := st.ToServer.Packets == n &&
					st.ToServer.Dropped+st.ToServer.Delivered == n &&
					st.ToClient.Packets == uint64(e.n.Load()) &&
					st.ToClient.Dropped+st.ToClient.Delivered == st.ToClient.Packets &&
					uint64(got.Load()) == st.ToClient.Delivered
				if settled {
					break
				}
				require.False(t, time.Now().After(deadline), "not settled: %+v, echoed %d, received %d", st, e.n.Load(), got.Load())
				time.Sleep(5 * time.Millisecond)
			}
			st := p.Stats()
			share := func(d impair.DirectionStats) float64 { return float64(d.Dropped) / float64(d.Packets) }
			require.InDelta(t, tc.up, share(st.ToServer), 0.05, "client→server loss: %+v", st.ToServer)
			if st.ToClient.Packets > 0 {
				require.InDelta(t, tc.down, share(st.ToClient), 0.05, "server→client loss: %+v", st.ToClient)
			}
			survive := (1 - tc.up) * (1 - tc.down)
			require.InDelta(t, survive, float64(got.Load())/n, 0.06, "round trips that survived")
			require.Equal(t, uint64(n*6), st.ToServer.Bytes)
			require.Equal(t, 1, st.Clients)
		})
	}
}

// Every client address gets an upstream socket of its own, kept for as
// long as it talks, and the answers find their way back to the right one.
func TestProxyManyClients(t *testing.T) {
	const clients = 16
	e := newEcho(t)
	p := newProxy(t, impair.ProxyConfig{Upstream: e.conn.LocalAddr().String()})
	conns := make([]*net.UDPConn, clients)
	sources := map[netip.AddrPort]bool{}
	for i := range conns {
		conns[i] = listen(t)
		payload := fmt.Sprint("client ", i)
		_, ok := roundTrip(t, conns[i], p.Addr(), payload, 5*time.Second)
		require.True(t, ok, "client %d got no answer", i)
		src := e.sourceOf(payload)
		require.True(t, src.IsValid())
		require.NotEqual(t, p.Addr().(*net.UDPAddr).AddrPort(), src, "the listening socket is not an upstream socket")
		sources[src] = true
	}
	require.Len(t, sources, clients, "distinct upstream sockets")
	for i, c := range conns { // a second packet leaves from the same socket
		payload := fmt.Sprint("again ", i)
		_, ok := roundTrip(t, c, p.Addr(), payload, 5*time.Second)
		require.True(t, ok)
		require.Equal(t, e.sourceOf(fmt.Sprint("client ", i)), e.sourceOf(payload), "client %d moved", i)
	}
	st := p.Stats()
	require.Equal(t, clients, st.Clients)
	require.Equal(t, uint64(clients), st.ClientsOpened)
	// The proxy counts a packet once its write returned, which the echo's
	// answer can overtake: the last counts may come a moment after.
	require.Eventually(t, func() bool {
		st = p.Stats()
		return st.ToServer.Packets == uint64(2*clients) && st.ToClient.Delivered == uint64(2*clients)
	}, patience, time.Millisecond, "packets counted: %d to the server, %d delivered to clients", st.ToServer.Packets, st.ToClient.Delivered)
}

// Beyond MaxClients new addresses are refused; idle mappings expire and
// make room.
func TestProxyCapAndExpiry(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, impair.ProxyConfig{Upstream: e.conn.LocalAddr().String(), MaxClients: 2, IdleTimeout: 300 * time.Millisecond})
	a, b, c := listen(t), listen(t), listen(t)
	for _, x := range []*net.UDPConn{a, b} {
		_, ok := roundTrip(t, x, p.Addr(), "hello", 5*time.Second)
		require.True(t, ok)
	}
	_, err := c.WriteTo([]byte("refused"), p.Addr())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Stats().Refused == 1 }, patience, time.Millisecond)
	require.Equal(t, 2, p.Stats().Clients)
	require.Equal(t, int64(2), e.n.Load(), "the refused packet never went upstream")

	require.Eventually(t, func() bool { return p.Stats().Clients == 0 }, patience, 10*time.Millisecond, "idle mappings expire")
	require.Equal(t, uint64(2), p.Stats().ClientsExpired)
	_, ok := roundTrip(t, c, p.Addr(), "room now", 5*time.Second)
	require.True(t, ok)
	st := p.Stats()
	require.Equal(t, 1, st.Clients)
	require.Equal(t, uint64(3), st.ClientsOpened)
}

// Close discards what is delayed, stops every goroutine (TestMain checks),
// and is safe twice; the counters stay readable.
func TestProxyClose(t *testing.T) {
	e := newEcho(t)
	p, err := impair.NewProxy(impair.ProxyConfig{
		Upstream: e.conn.LocalAddr().String(),
		ToServer: impair.Config{Delay: time.Hour},
		ToClient: impair.Config{Delay: time.Hour},
	})
	require.NoError(t, err)
	c := listen(t)
	for i := range 100 {
		_, err := c.WriteTo(fmt.Append(nil, i), p.Addr())
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return p.Stats().ToServer.Packets == 100 }, patience, time.Millisecond)
	start := time.Now()
	require.NoError(t, p.Close())
	require.Less(t, time.Since(start), 5*time.Second)
	err = p.Close()
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, err, impair.ErrProxyClosed)
	st := p.Stats()
	require.Zero(t, st.Clients)
	require.Zero(t, st.ToServer.Delivered)
	require.Zero(t, e.n.Load())
}

// A datagram too large to relay whole is dropped and counted, not cut.
func TestProxyOversize(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, impair.ProxyConfig{Upstream: e.conn.LocalAddr().String()})
	c := listen(t)
	_, err := c.WriteTo(make([]byte, impair.MaxProxyPacket+1), p.Addr())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Stats().Oversize == 1 }, patience, time.Millisecond)
	_, ok := roundTrip(t, c, p.Addr(), string(make([]byte, impair.MaxProxyPacket)), 5*time.Second)
	require.True(t, ok, "the largest relayed size")
	require.Equal(t, int64(1), e.n.Load())
}

func TestProxyConfigErrors(t *testing.T) {
	for _, cfg := range []impair.ProxyConfig{
		{},
		{Upstream: "127.0.0.1:0"},
		{Upstream: "127.0.0.1"},
		{Upstream: "0.0.0.0:7777"},
		{Upstream: "127.0.0.1:7777", Listen: "127.0.0.1:notaport"},
	} {
		p, err := impair.NewProxy(cfg)
		require.Error(t, err, "%+v", cfg)
		require.Nil(t, p)
	}
}

// Rebind sends each client's next packet from a new upstream port, as a
// rebinding NAT does, and the client's traffic goes on through it.
func TestProxyRebind(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, impair.ProxyConfig{Upstream: e.conn.LocalAddr().String()})
	c := listen(t)
	_, ok := roundTrip(t, c, p.Addr(), "before", 5*time.Second)
	require.True(t, ok)
	require.Equal(t, 1, p.Rebind())
	_, ok = roundTrip(t, c, p.Addr(), "after", 5*time.Second)
	require.True(t, ok)
	before, after := e.sourceOf("before"), e.sourceOf("after")
	require.Equal(t, before.Addr(), after.Addr())
	require.NotEqual(t, before.Port(), after.Port(), "a new source port")
	require.Equal(t, uint64(2), p.Stats().ClientsOpened)
	require.Equal(t, 1, p.Stats().Clients)
}
