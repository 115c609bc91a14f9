package netcode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
)

// On every transport: with CopiesAlways both sides copy their frames into
// datagrams and the requests still complete once each; with the default,
// CopiesAuto, a fast clean path (loopback) soon stops copying, so copies
// cost nothing there. A machine slowed by other work (a host that steals
// its CPU) makes loopback look slow, and copies rightly go on: an auto run
// that copies runs once more, and the second decides.
func TestReliableCopiesModes(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		for _, mode := range []netcode.CopyMode{netcode.CopiesAlways, netcode.CopiesAuto} {
			t.Run(fmt.Sprint(mode), func(t *testing.T) {
				if mode == netcode.CopiesAuto {
					if copied := testCopiesMode(t, tr, mode, false); copied >= 10 {
						t.Logf("%d copies on loopback: once more", copied)
						testCopiesMode(t, tr, mode, true)
					}
					return
				}
				testCopiesMode(t, tr, mode, true)
			})
		}
	})
}

// testCopiesMode runs TestReliableCopiesModes once, asserting its goals
// for mode (the auto one only if final), and returns the copies sent.
func testCopiesMode(t *testing.T, tr nt.Transport, mode netcode.CopyMode, final bool) uint64 {
	calls := 0
	srv := nt.Server(t, tr, &netcode.Config{ReliableCopies: mode}, func(s *netcode.Server) {
		s.Handle("echo", func(_ *netcode.Conn, p []byte) ([]byte, error) {
			calls++ // handlers of one connection run one at a time
			return p, nil
		})
	})
	cl, err := nt.TryClient(tr, srv, netcode.ClientConfig{ReliableCopies: mode}, nil)
	require.NoError(t, err)
	defer func() { _ = cl.Close() }()
	const n = 100
	for i := 0; i < n; i++ {
		p := []byte(fmt.Sprint(i))
		rep, err := cl.Request(context.Background(), "echo", p)
		require.NoError(t, err)
		require.Equal(t, p, rep)
		if i%10 == 0 {
			time.Sleep(copiesTestPause) // let the datagram sender run its rounds
		}
	}
	cs, ss := cl.Stats(), srv.Conn(cl.ID()).Stats()
	require.Equal(t, n, calls, "each request handled once")
	if mode == netcode.CopiesAlways {
		require.Greater(t, cs.CopiesSent, uint64(n/10), "the client copies")
		require.Greater(t, ss.CopiesSent, uint64(0), "the server copies for a client that copies")
	} else if final {
		require.Less(t, cs.CopiesSent+ss.CopiesSent, uint64(10), "no copies on a fast, clean path")
	}
	return cs.CopiesSent + ss.CopiesSent
}

const copiesTestPause = 40 * time.Millisecond

// An idle clock's PING, sent after a spell without snapshots, is not
// copied, nor is the PONG that answers it, even with CopiesAlways: a
// connection in a lobby needs no fast clock sample, and the copies and
// their acknowledgements would cost an idle session more than the PING.
// Once snapshots flow, PINGs and PONGs are copied again.
func TestIdleClockPingsAreNotCopied(t *testing.T) {
	t.Cleanup(netcode.SetClockIdlePeriod(time.Second)) // first: it runs after the others
	tr := nt.Find("kcp")
	conns := make(chan *netcode.Conn, 1)
	srv := nt.Server(t, tr, &netcode.Config{ReliableCopies: netcode.CopiesAlways}, func(s *netcode.Server) {
		s.OnConnect(func(c *netcode.Conn) { conns <- c })
	})
	cl, err := nt.TryClient(tr, srv, netcode.ClientConfig{ReliableCopies: netcode.CopiesAlways}, nil)
	require.NoError(t, err)
	defer func() { _ = cl.Close() }()
	conn := nt.Recv(t, conns, "the connection")
	copies := func() (uint64, uint64) { return cl.Stats().CopiesSent, conn.Stats().CopiesSent }
	// The burst's PINGs (16, 100 ms apart) and their PONGs are copied;
	// wait for the copies of its last to be acknowledged.
	nt.Eventually(t, func() bool { c, s := copies(); return c > 0 && s > 0 }, "the burst's copies")
	var c0, s0 uint64
	for settled := false; !settled; {
		c0, s0 = copies()
		time.Sleep(300 * time.Millisecond)
		c, s := copies()
		settled = c == c0 && s == s0
	}
	frames := conn.Stats().FramesReceived
	time.Sleep(3500 * time.Millisecond) // three idle PINGs at least
	require.GreaterOrEqual(t, conn.Stats().FramesReceived, frames+2, "idle PINGs")
	c, s := copies()
	require.Equal(t, c0, c, "the client copied an idle PING")
	require.Equal(t, s0, s, "the server copied the PONG of an idle PING")

	// Snapshots: the next PING comes at once, and it and its PONG are
	// copied.
	tickSnapshots(t, conn, 50*time.Millisecond)
	nt.Eventually(t, func() bool { c, s := copies(); return c > c0 && s > s0 }, "copies of the PINGs and PONGs while snapshots flow")
}
