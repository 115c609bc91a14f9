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
