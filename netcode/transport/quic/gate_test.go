package quic

import (
	"context"
	"net"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/transport"
)

func TestGatePolicies(t *testing.T) {
	var refused []string
	g := newGate(Config{MaxHandshakes: 8, MaxHandshakesPerIP: 2, OnRefuse: func(r string) { refused = append(refused, r) }})
	addr := func(ip string) net.Addr { return &net.UDPAddr{IP: net.ParseIP(ip), Port: 4000} }
	var cancels []context.CancelFunc
	attempt := func(ip string, verified bool) (*ticket, error) {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		out, err := g.connContext(ctx, &quicgo.ClientInfo{RemoteAddr: addr(ip), AddrVerified: verified})
		if err != nil {
			cancel()
			return nil, err
		}
		return ticketOf(out), nil
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()

	// Unproven attempts from one address: MaxHandshakesPerIP get state, then
	// that address must answer a Retry; others need not.
	a1, err := attempt("192.0.2.1", false)
	require.NoError(t, err)
	require.False(t, g.needRetry(addr("192.0.2.1")))
	_, err = attempt("192.0.2.1", false)
	require.NoError(t, err)
	require.True(t, g.needRetry(addr("192.0.2.1")), "its share of unproven handshakes is taken")
	require.False(t, g.needRetry(addr("198.51.100.1")), "another address is not asked")
	_, err = attempt("192.0.2.1", false)
	require.ErrorIs(t, err, errRefused, "an unproven attempt that slipped past the Retry check is refused")

	// Forged Initials in an address's name do not lock that address out:
	// once proven by a Retry, it has a share of its own.
	_, err = attempt("192.0.2.1", true)
	require.NoError(t, err)
	_, err = attempt("192.0.2.1", true)
	require.NoError(t, err)
	_, err = attempt("192.0.2.1", true)
	require.ErrorIs(t, err, errRefused, "a proven address past its share is refused")
	require.Equal(t, []string{RefusedHandshakesPerIP, RefusedHandshakesPerIP}, refused)
	require.Equal(t, 4, g.pending)

	// From half of MaxHandshakes on, every unproven attempt gets a Retry.
	require.True(t, g.needRetry(addr("203.0.113.9")))
	for _, ip := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"} {
		_, err = attempt(ip, true)
		require.NoError(t, err)
	}
	_, err = attempt("203.0.113.5", true)
	require.ErrorIs(t, err, errRefused, "MaxHandshakes in progress")
	require.Equal(t, RefusedHandshakes, refused[len(refused)-1])

	// An accepted connection is no handshake in progress any more; one
	// that ended is gone altogether.
	a1.accepted()
	require.Equal(t, 7, g.pending)
	g.mu.Lock()
	require.Equal(t, 1, g.unverified[transport.IP(addr("192.0.2.1"))], "its unproven share again has room")
	g.mu.Unlock()
	_, err = attempt("203.0.113.5", true)
	require.NoError(t, err, "room again")
	require.Equal(t, 9, g.live)
	idle := make(chan struct{})
	g.close(func() { close(idle) })
	for _, c := range cancels {
		c()
	}
	select {
	case <-idle:
	case <-time.After(5 * time.Second):
		t.Fatal("the gate never became idle after every connection ended")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Zero(t, g.pending)
	require.Zero(t, g.live)
	require.Empty(t, g.verified)
	require.Empty(t, g.unverified)
}
