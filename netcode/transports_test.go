package netcode_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
)

// transportMetrics is srv's entry for the transport called name.
func transportMetrics(t *testing.T, srv *netcode.Server, name string) netcode.TransportMetrics {
	t.Helper()
	for _, tm := range srv.TransportMetrics() {
		if tm.Transport == name {
			return tm
		}
	}
	t.Fatalf("no transport %q in %+v", name, srv.TransportMetrics())
	panic("unreachable")
}

// Each transport's connections and totals: the gauges follow what is
// connected, handshakes are counted by outcome, and the byte totals keep
// what a connection carried after it ended.
func TestTransportMetrics(t *testing.T) {
	want := map[string]string{"quic": netcode.TransportQUIC, "kcp": netcode.TransportKCP, "webtransport": netcode.TransportWebTransport, "ws": netcode.TransportWebSocket, "mem": netcode.TransportOther}
	// The transports a server listens on: WebTransport's shares QUIC's port,
	// so its server listens on both.
	listens := map[string][]string{"webtransport": {netcode.TransportQUIC, netcode.TransportWebTransport}}
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		name := want[tr.Name]
		transports := make(chan string, 1)
		srv := nt.Server(t, tr, &netcode.Config{
			Authenticate: func(_ context.Context, h netcode.Hello) (netcode.Identity, error) {
				if string(h.Auth) == "intruder" {
					return netcode.Identity{}, errors.New("go away")
				}
				return netcode.Identity{}, nil
			},
		}, func(s *netcode.Server) {
			echo(s)
			s.OnConnect(func(c *netcode.Conn) { transports <- c.Transport() })
		})
		var got []string
		for _, tm := range srv.TransportMetrics() {
			got = append(got, tm.Transport)
		}
		wantListens, ok := listens[tr.Name]
		if !ok {
			wantListens = []string{name}
		}
		require.Equal(t, wantListens, got, "only the transports the server listens on")

		cl := nt.Client(t, tr, srv, nil)
		require.Equal(t, name, nt.Recv(t, transports, "the connect hook"))
		_, err := cl.Request(context.Background(), "echo", []byte("hello"))
		require.NoError(t, err)
		tm := transportMetrics(t, srv, name)
		require.Equal(t, 1, tm.Open)
		require.Zero(t, tm.Handshaking)
		require.Equal(t, map[string]uint64{"accepted": 1}, tm.Handshakes)
		require.Greater(t, tm.Totals.BytesReceived, uint64(0))
		require.Greater(t, tm.Totals.BytesSent, uint64(0))
		// The request and a clock PING at least; a frame whose copy came
		// first by datagram (copies.go) is counted once the stream brings it.
		nt.Eventually(t, func() bool {
			tm = transportMetrics(t, srv, name)
			return tm.Totals.FramesReceived >= 2
		}, "frames received: %+v", tm.Totals)

		_, err = nt.TryClient(tr, srv, netcode.ClientConfig{Auth: []byte("intruder")}, nil)
		require.Error(t, err)
		before := tm
		require.NoError(t, cl.Close())
		nt.Eventually(t, func() bool {
			tm = transportMetrics(t, srv, name)
			return tm.Open == 0 && tm.Handshaking == 0
		}, "both connections ended: %+v", tm)
		require.Equal(t, map[string]uint64{"accepted": 1, "refused": 1}, tm.Handshakes)
		require.GreaterOrEqual(t, tm.Totals.BytesReceived, before.Totals.BytesReceived+uint64(len("intruder")), "the ended connections' bytes are kept")
		require.GreaterOrEqual(t, tm.Totals.BytesSent, before.Totals.BytesSent)
		require.GreaterOrEqual(t, tm.Totals.FramesReceived, before.Totals.FramesReceived)
	})
}
