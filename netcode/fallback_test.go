package netcode_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
)

// A client given several URLs falls back by itself: a UDP transport whose
// handshake has no answer (a network that drops UDP) gives way to the next
// after FallbackAfter, and Transport tells which one it ended on.
func TestFallbackToWebSocket(t *testing.T) {
	srv := nt.Server(t, nt.Find("ws"), nil, echo)
	hole, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}) // takes packets, answers none
	require.NoError(t, err)
	defer hole.Close()
	urls := "quic://" + hole.LocalAddr().String() + ", " + nt.WebSocketURL(srv)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	cl, err := netcode.Dial(ctx, urls, netcode.ClientConfig{InsecureSkipVerify: true, FallbackAfter: 300 * time.Millisecond})
	require.NoError(t, err)
	defer cl.Close()
	took := time.Since(start)
	t.Logf("connected over %s after %v", cl.Transport(), took)
	require.Equal(t, "ws", cl.Transport())
	require.GreaterOrEqual(t, took, 300*time.Millisecond, "QUIC had its chance")
	require.Less(t, took, 3*time.Second)
	rep, err := cl.Request(ctx, "echo", []byte("over TCP"))
	require.NoError(t, err)
	require.Equal(t, "over TCP", string(rep))

	// A server that answers and refuses is not retried elsewhere.
	refusing := nt.Server(t, nt.Find("ws"), &netcode.Config{
		Authenticate: func(context.Context, netcode.Hello) (netcode.Identity, error) {
			return netcode.Identity{}, errors.New("banned")
		},
	}, nil)
	_, err = netcode.Dial(ctx, nt.WebSocketURL(refusing)+","+nt.WebSocketURL(srv), netcode.ClientConfig{})
	var ce *netcode.CloseError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, netcode.CloseRefused, ce.Code)
	require.Equal(t, "banned", ce.Reason)

	// When none connects, the error names each.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadURL := "ws://" + dead.Addr().String() + "/ws"
	require.NoError(t, dead.Close())
	_, err = netcode.Dial(ctx, "quic://"+hole.LocalAddr().String()+","+deadURL, netcode.ClientConfig{FallbackAfter: 100 * time.Millisecond})
	require.ErrorContains(t, err, "no transport connected")
	require.ErrorContains(t, err, "quic://")
	require.ErrorContains(t, err, deadURL)
}
