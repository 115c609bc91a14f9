package netcode_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
)

// A client with no snapshots spaces its clock PINGs 30 s apart once its
// first burst is done, and the first snapshot after that sends the next
// PING at once: the server's connection sees it within seconds, not at
// the end of the idle period.
func TestClockPingFollowsFirstSnapshot(t *testing.T) {
	conns := make(chan *netcode.Conn, 1)
	srv := nt.Server(t, nt.Find("kcp"), nil, func(s *netcode.Server) {
		s.OnConnect(func(c *netcode.Conn) { conns <- c })
	})
	nt.Client(t, nt.Find("kcp"), srv, nil)
	conn := nt.Recv(t, conns, "the connection")
	received := func() uint64 { return conn.Stats().FramesReceived }

	// The burst: 16 PINGs 100 ms apart, after HELLO (and an ACKED or two).
	nt.Eventually(t, func() bool { return received() >= 17 }, "the clock's first PINGs")
	var before uint64
	for settled := false; !settled; {
		before = received()
		time.Sleep(time.Second)
		settled = received() == before
	}
	time.Sleep(2 * time.Second)
	require.Equal(t, before, received(), "an idle client sends no PING within seconds of its burst")

	snap := netcode.NewSnapshot(1)
	snap.Data = append(snap.Data, "state"...)
	conn.SendSnapshot(snap)
	snap.Release()
	nt.Eventually(t, func() bool { return received() > before }, "a PING after the first snapshot")
}
