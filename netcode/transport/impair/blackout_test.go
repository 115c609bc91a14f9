package impair

import (
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseBlackout(t *testing.T) {
	good := []struct {
		in   string
		want Blackout
	}{
		{"", Blackout{}},
		{"3s@10s", Blackout{Start: 10 * time.Second, Length: 3 * time.Second}},
		{"2s@5s/5s", Blackout{Start: 5 * time.Second, Length: 2 * time.Second, Every: 5 * time.Second}},
		{" 500ms @ 0 / 1.5s ", Blackout{Length: 500 * time.Millisecond, Every: 1500 * time.Millisecond}},
	}
	for _, tc := range good {
		b, err := ParseBlackout(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, b, tc.in)
		if tc.in != "" {
			again, err := ParseBlackout(b.String())
			require.NoError(t, err)
			require.Equal(t, b, again, "String gives the syntax back")
		}
	}
	bad := map[string]string{
		"3s":         "no @",
		"3s@":        "start: missing",
		"@10s":       "length: missing",
		"0s@10s":     "length: must be more than 0",
		"-1s@10s":    "length: -1s not in 0..24h0m0s",
		"3s@-1s":     "start: -1s not in",
		"3@10s":      "length: time: missing unit",
		"3s@10s/":    "every: missing",
		"2s@5s/2s":   "every (2s) must be longer than the length (2s)",
		"2s@5s/1s":   "must be longer",
		"25h@1s":     "length: 25h0m0s not in",
		"1s@1s/2s/3": "every: time: unknown unit",
	}
	for in, want := range bad {
		_, err := ParseBlackout(in)
		require.Error(t, err, in)
		require.Contains(t, err.Error(), want, in)
		require.Contains(t, err.Error(), "LENGTH@START", "the error shows the syntax")
	}
	var b Blackout
	require.NoError(t, b.Set("1s@2s"), "a *Blackout is a flag.Value")
	require.Equal(t, "1s@2s", b.String())
	require.Error(t, b.Set("nonsense"))
	require.Equal(t, "1s@2s", b.String(), "a bad value leaves it as it was")
}

func TestBlackoutSchedule(t *testing.T) {
	s := func(d float64) time.Duration { return time.Duration(d * float64(time.Second)) }
	cases := []struct {
		name string
		b    Blackout
		dark []float64 // seconds after the origin
		lit  []float64
	}{
		{"zero", Blackout{}, nil, []float64{0, 1, 100}},
		{"once", Blackout{Start: s(10), Length: s(3)},
			[]float64{10, 11, 12.999}, []float64{0, 9.999, 13, 15, 23}},
		{"repeating", Blackout{Start: s(5), Length: s(2), Every: s(5)},
			[]float64{5, 6.9, 10, 11, 15, 1000, 1001.5}, []float64{0, 4.99, 7, 9.9, 12, 14, 1002}},
		{"repeating until", Blackout{Start: s(5), Length: s(2), Every: s(5), Until: s(30)},
			[]float64{5, 25, 26.5}, []float64{27, 30, 31, 35, 36}},
		{"until inside a window", Blackout{Start: s(5), Length: s(2), Every: s(5), Until: s(26)},
			[]float64{25, 26, 26.9}, []float64{27, 30, 31}},
		{"until before start", Blackout{Start: s(5), Length: s(2), Until: s(5)}, nil, []float64{5, 6}},
	}
	for _, tc := range cases {
		for _, d := range tc.dark {
			dark, left := tc.b.darkAt(s(d))
			require.True(t, dark, "%s at %vs", tc.name, d)
			require.Positive(t, left)
			require.LessOrEqual(t, left, tc.b.Length)
		}
		for _, d := range tc.lit {
			dark, _ := tc.b.darkAt(s(d))
			require.False(t, dark, "%s at %vs", tc.name, d)
		}
	}
	dark, left := Blackout{Start: s(5), Length: s(2), Every: s(5)}.darkAt(s(10.5))
	require.True(t, dark)
	require.Equal(t, s(1.5), left, "what is left of the window")
}

func TestNetwork(t *testing.T) {
	var none *Network
	require.False(t, none.Dark(time.Now()), "a nil network is never dark")

	n := NewNetwork(Blackout{Start: time.Second, Length: time.Second}, Blackout{Start: 1500 * time.Millisecond, Length: time.Second})
	t0 := time.Now()
	require.False(t, n.Dark(t0.Add(1200*time.Millisecond)), "not dark before Start")
	n.Start(t0)
	require.False(t, n.Dark(t0.Add(999*time.Millisecond)))
	require.True(t, n.Dark(t0.Add(time.Second)))
	require.Equal(t, 800*time.Millisecond, n.darkFor(t0.Add(1200*time.Millisecond)))
	require.Equal(t, 900*time.Millisecond, n.darkFor(t0.Add(1600*time.Millisecond)), "the longer of two overlapping windows")
	require.True(t, n.Dark(t0.Add(2200*time.Millisecond)), "the second window")
	require.False(t, n.Dark(t0.Add(2500*time.Millisecond)))
	n.Start(t0.Add(time.Minute))
	require.False(t, n.Dark(t0.Add(time.Second)), "Start again moves the origin")
}

// darkNow returns a network that is dark from now for an hour, and a
// function that ends the blackout.
func darkNow() (*Network, func()) {
	n := NewNetwork(Blackout{Length: time.Hour})
	n.Start(time.Now())
	return n, func() { n.Start(time.Now().Add(-2 * time.Hour)) }
}

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	return c
}

// arrives reports whether a packet reaches c within d.
func arrives(t *testing.T, c net.PacketConn, d time.Duration) bool {
	t.Helper()
	buf := make([]byte, 64)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	_, _, err := c.ReadFrom(buf)
	if err != nil {
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "unexpected error %v", err)
		return false
	}
	return true
}

// While the network is dark nothing gets through either way, on the
// pass-through path and the queued one, on a socket opened before the
// blackout or during it; once it lights, everything does again.
func TestConnBlackout(t *testing.T) {
	for _, cfg := range []Config{{}, {Delay: time.Millisecond}} {
		t.Run("delay="+cfg.Delay.String(), func(t *testing.T) {
			n, light := darkNow()
			peer := listenLoopback(t)
			defer peer.Close()
			cfg.Network = n
			before := New(listenLoopback(t), cfg)
			defer before.Close()
			for _, c := range []*Conn{before, New(listenLoopback(t), cfg)} {
				defer c.Close()
				_, err := c.WriteTo([]byte("out"), peer.LocalAddr())
				require.NoError(t, err, "a packet lost in the dark still counts as written")
				require.False(t, arrives(t, peer, 100*time.Millisecond), "sent in the dark")
				_, err = peer.WriteTo([]byte("in"), c.LocalAddr())
				require.NoError(t, err)
				require.False(t, arrives(t, c, 100*time.Millisecond), "received in the dark")
				st := c.Stats()
				require.Equal(t, uint64(2), st.Blacked)
				require.Equal(t, uint64(1), st.Sent)
				require.Zero(t, st.Delivered)
			}
			light()
			_, err := before.WriteTo([]byte("out"), peer.LocalAddr())
			require.NoError(t, err)
			require.True(t, arrives(t, peer, time.Second), "sent after the blackout")
			_, err = peer.WriteTo([]byte("in"), before.LocalAddr())
			require.NoError(t, err)
			require.True(t, arrives(t, before, time.Second), "received after the blackout")
		})
	}
}

// A packet delayed into a blackout is lost in it.
func TestConnBlackoutCatchesDelayed(t *testing.T) {
	n := NewNetwork(Blackout{Start: 100 * time.Millisecond, Length: time.Hour})
	n.Start(time.Now())
	peer := listenLoopback(t)
	defer peer.Close()
	c := New(listenLoopback(t), Config{Delay: 300 * time.Millisecond, Network: n})
	defer c.Close()
	_, err := c.WriteTo([]byte("late"), peer.LocalAddr())
	require.NoError(t, err)
	require.False(t, arrives(t, peer, 600*time.Millisecond))
	require.Equal(t, Stats{Sent: 1, Blacked: 1}, c.Stats())
}

// On a timed schedule, packets are lost inside the window only. Each
// packet's send time is bounded by the clock read before and after its
// write, so the test holds however the goroutines are scheduled.
func TestConnBlackoutWindow(t *testing.T) {
	const start, length = 150 * time.Millisecond, 250 * time.Millisecond
	n := NewNetwork(Blackout{Start: start, Length: length})
	peer := listenLoopback(t)
	defer peer.Close()
	c := New(listenLoopback(t), Config{Network: n})
	defer c.Close()

	type sent struct{ lo, hi time.Duration }
	var (
		mu   sync.Mutex
		got  = map[byte]bool{}
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		buf := make([]byte, 8)
		for {
			_ = peer.SetReadDeadline(time.Now().Add(time.Second))
			k, _, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			if k == 1 {
				mu.Lock()
				got[buf[0]] = true
				mu.Unlock()
			}
		}
	}()
	origin := time.Now()
	n.Start(origin)
	var times []sent
	for i := 0; i < 60; i++ {
		lo := time.Since(origin)
		_, err := c.WriteTo([]byte{byte(i)}, peer.LocalAddr())
		require.NoError(t, err)
		times = append(times, sent{lo, time.Since(origin)})
		time.Sleep(10 * time.Millisecond)
	}
	<-done // a second without packets
	mu.Lock()
	defer mu.Unlock()
	var in, out, edge int
	for i, s := range times {
		switch {
		case s.lo >= start && s.hi < start+length:
			in++
			require.False(t, got[byte(i)], "packet %d sent at %v..%v, inside the window", i, s.lo, s.hi)
		case s.hi < start || s.lo >= start+length:
			out++
			require.True(t, got[byte(i)], "packet %d sent at %v..%v, outside the window", i, s.lo, s.hi)
		default:
			edge++ // sent as the window opened or closed: either fate
		}
	}
	require.Greater(t, in, 5)
	require.Greater(t, out, 10)
	blacked := int(c.Stats().Blacked)
	require.GreaterOrEqual(t, blacked, in)
	require.LessOrEqual(t, blacked, in+edge, "no more lost than the window's")
}

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	return client, server
}

// readWithin reads from c for d and returns what came.
func readWithin(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	buf := make([]byte, 64)
	k, err := c.Read(buf)
	if err != nil {
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "unexpected error %v", err)
	}
	return string(buf[:k])
}

// A StreamConn stalls in the dark, both ways, and loses nothing.
func TestStreamConnBlackout(t *testing.T) {
	n, light := darkNow()
	raw, server := tcpPair(t)
	defer server.Close()
	c := NewStreamConn(raw, n)
	defer c.Close()

	_, err := server.Write([]byte("down"))
	require.NoError(t, err)
	require.Empty(t, readWithin(t, c, 150*time.Millisecond), "held in the dark")

	require.NoError(t, c.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	_, err = c.Write([]byte("x"))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "a write waits in the dark until its deadline")
	require.NoError(t, c.SetWriteDeadline(time.Time{}))

	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("up"))
		wrote <- err
	}()
	require.Empty(t, readWithin(t, server, 150*time.Millisecond), "nothing goes up in the dark")
	light()
	require.NoError(t, <-wrote)
	require.Equal(t, "up", readWithin(t, server, time.Second))
	require.Equal(t, "down", readWithin(t, c, time.Second), "held, not lost")

	// Close ends a wait in the dark.
	n.Start(time.Now())
	go func() {
		_, err := c.Write([]byte("never"))
		wrote <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, c.Close())
	require.ErrorIs(t, <-wrote, net.ErrClosed)
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, net.ErrClosed)
	require.NoError(t, c.Close(), "Close again gives the first result")
}

// A TCP proxy with a Network forwards nothing in the dark, and everything
// once it lights.
func TestTCPProxyBlackout(t *testing.T) {
	up := echoServer(t)
	n, light := darkNow()
	p, err := NewTCPProxy(TCPConfig{Upstream: up, Network: n})
	require.NoError(t, err)
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("echo"))
	require.NoError(t, err)
	require.Empty(t, readWithin(t, c, 200*time.Millisecond), "stalled in the dark")
	light()
	require.Equal(t, "echo", readWithin(t, c, time.Second))

	n.Start(time.Now()) // dark again: Close still ends the proxy at once
	_, err = c.Write([]byte("held"))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	closed := time.Now()
	require.NoError(t, p.Close())
	require.Less(t, time.Since(closed), time.Second)
}
