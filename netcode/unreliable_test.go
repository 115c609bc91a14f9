package netcode_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/unreliable"
)

// Unreliable and latest-only events reach the same On handlers as reliable
// ones, both ways.
func TestUnreliableEventsBothWays(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		up := make(chan string, 16)
		srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
			s.On("aim", func(c *netcode.Conn, p []byte) {
				up <- string(p)
				_ = c.EmitLatest("hit", p)
				_ = c.EmitUnreliable("fx", p)
			})
		})
		down := make(chan string, 16)
		cl := nt.Client(t, tr, srv, func(c *netcode.Client) {
			c.On("hit", func(p []byte) { down <- "hit " + string(p) })
			c.On("fx", func(p []byte) { down <- "fx " + string(p) })
		})
		require.NoError(t, cl.EmitLatest("aim", []byte("north")))
		require.Equal(t, "north", nt.Recv(t, up, "latest event at the server"))
		got := []string{nt.Recv(t, down, "event at the client"), nt.Recv(t, down, "event at the client")}
		require.ElementsMatch(t, []string{"hit north", "fx north"}, got)
		require.NoError(t, cl.EmitUnreliable("aim", []byte("south")))
		require.Equal(t, "south", nt.Recv(t, up, "unreliable event at the server"))
		require.Error(t, cl.EmitUnreliable("aim", make([]byte, 2000)), "an event must fit one datagram")
	})
}

// A sequenced event older than the newest of its name is dropped.
func TestLatestEventsDropStaleOnes(t *testing.T) {
	tr := nt.Find("mem")
	got := make(chan string, 8)
	srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
		s.On("pos", func(_ *netcode.Conn, p []byte) { got <- string(p) })
	})
	raw, err := tr.Raw(context.Background(), srv)
	require.NoError(t, err)
	defer raw.Close(0, "")
	helloRaw(t, raw)
	id := readWelcome(t, raw)
	send := func(dseq, evseq uint16, payload string) {
		d := unreliable.AppendHeader(nil, unreliable.Header{Kind: unreliable.KindEvent, Seq: dseq})
		d, err := unreliable.AppendEvent(d, true, evseq, "pos", []byte(payload))
		require.NoError(t, err)
		require.NoError(t, raw.SendDatagram(d))
	}
	send(1, 5, "five")
	require.Equal(t, "five", nt.Recv(t, got, "newest position"))
	send(2, 3, "three") // reordered: older than five
	send(3, 6, "six")
	require.Equal(t, "six", nt.Recv(t, got, "next position"))
	nt.Never(t, got, 50*time.Millisecond, "a stale position")
	require.EqualValues(t, 1, srv.Conn(id).Stats().DatagramsStale)
}

// Snapshots that arrive in a burst, as a busy client reads them, share
// one acknowledgement (PROTOCOL.md 5.11): a client sending no inputs
// answers 20 snapshots sent back to back (each once the one before
// arrived, so that none replaces another) with an ACK for every 5 ms the
// burst took, not one each; and one that comes on its own, later, with
// one more.
func TestSnapshotBurstSharesAnAck(t *testing.T) {
	tr := nt.Find("mem")
	srv := nt.Server(t, tr, nil, nil)
	got := make(chan uint32, 64)
	cl := nt.Client(t, tr, srv, func(c *netcode.Client) {
		c.OnSnapshot(func(tick uint32, _ []byte) { got <- tick })
	})
	conn := srv.Conn(cl.ID())
	send := func(tick uint32) {
		s := netcode.NewSnapshot(tick)
		s.Data = append(s.Data, byte(tick))
		conn.SendSnapshot(s)
		s.Release()
		require.Equal(t, tick, nt.Recv(t, got, "a snapshot"))
	}
	received := func() uint64 { return conn.Stats().DatagramsReceived }
	send(1)
	nt.Eventually(t, func() bool { return received() == 1 }, "the first snapshot's ACK")
	time.Sleep(20 * time.Millisecond)

	before := received()
	start := time.Now()
	for tick := uint32(2); tick < 22; tick++ {
		send(tick)
	}
	took := time.Since(start)
	time.Sleep(50 * time.Millisecond) // any ACK still on its way
	acks := received() - before
	bound := 2 + uint64(took/(5*time.Millisecond))
	require.GreaterOrEqual(t, acks, uint64(1), "the burst is acknowledged")
	require.LessOrEqual(t, acks, bound, "20 snapshots in %v drew %d ACKs", took, acks)

	before = received()
	send(22)
	nt.Eventually(t, func() bool { return received() == before+1 }, "its own ACK")
}
