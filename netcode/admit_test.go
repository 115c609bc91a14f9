package netcode_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/netcode/transport/quic"
)

// The admission limits seen from clients: what one address can take of a
// server, and what the refused client is told.

// fromIP is a ClientConfig.Dial that connects over QUIC from a socket bound
// to ip, such as 127.0.0.2, a second source address on loopback.
func fromIP(ip string) func(ctx context.Context, addr string) (transport.Session, error) {
	return func(ctx context.Context, addr string) (transport.Session, error) {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			return nil, err
		}
		ra, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			_ = pc.Close()
			return nil, err
		}
		s, err := quic.DialConn(ctx, pc, ra, &tls.Config{InsecureSkipVerify: true}, quic.Config{})
		if err != nil {
			_ = pc.Close()
			return nil, err
		}
		return &socketOwner{Session: s, pc: pc}, nil
	}
}

// socketOwner is a QUIC session that closes the socket it runs on.
type socketOwner struct {
	*quic.Session
	pc net.PacketConn
}

func (o *socketOwner) Close(code uint16, reason string) error {
	err := o.Session.Close(code, reason)
	_ = o.pc.Close()
	return err
}

// connectFrom connects a QUIC client from ip with cfg (its Dial set here).
func connectFrom(srv *netcode.Server, ip string, cfg netcode.ClientConfig) (*netcode.Client, error) {
	cfg.Dial = fromIP(ip)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return netcode.Dial(ctx, "quic://"+srv.Addrs()[0].String(), cfg)
}

// refusedWith asserts that err is the server's refusal with reason.
func refusedWith(t *testing.T, err error, reason string) {
	t.Helper()
	var ce *netcode.CloseError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, netcode.CloseRefused, ce.Code, "%v", err)
	require.Equal(t, reason, ce.Reason)
	require.True(t, ce.Remote)
}

// QUIC connections beyond MaxConnsPerIP from one address are refused with
// a reason, counted; another address connects; a place freed is taken
// again.
func TestQUICConnsPerIP(t *testing.T) {
	const perIP = 3
	srv := nt.Server(t, nt.Find("quic"), &netcode.Config{MaxConnsPerIP: perIP}, nil)
	var from2 []*netcode.Client
	for range perIP {
		c, err := connectFrom(srv, "127.0.0.2", netcode.ClientConfig{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		from2 = append(from2, c)
	}
	for range 2 {
		_, err := connectFrom(srv, "127.0.0.2", netcode.ClientConfig{})
		refusedWith(t, err, "too many connections from your address")
	}
	require.EqualValues(t, 2, srv.Metrics().Drops["quic_conns_per_ip"])
	require.EqualValues(t, 2, srv.Metrics().Closes["refused"])

	start := time.Now()
	c, err := connectFrom(srv, "127.0.0.1", netcode.ClientConfig{})
	require.NoError(t, err, "another address goes on")
	took := time.Since(start)
	require.Less(t, took, time.Second)
	t.Logf("honest QUIC connect from 127.0.0.1 with 127.0.0.2 at its cap: %v", took)
	_ = c.Close()

	require.NoError(t, from2[0].Close())
	nt.Eventually(t, func() bool {
		c, err := connectFrom(srv, "127.0.0.2", netcode.ClientConfig{})
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}, "a place freed by a close is free again")
}

// MaxConns caps QUIC connections in all.
func TestQUICConnsTotal(t *testing.T) {
	srv := nt.Server(t, nt.Find("quic"), &netcode.Config{MaxConns: 2}, nil)
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		c, err := connectFrom(srv, ip, netcode.ClientConfig{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
	}
	_, err := connectFrom(srv, "127.0.0.4", netcode.ClientConfig{})
	refusedWith(t, err, "server full")
	require.False(t, netcode.IsBusy(err), "a full server is not a busy one: retrying soon will not help")
	require.EqualValues(t, 1, srv.Metrics().Drops["quic_conns_total"])
}

// Connections accepted but without an accepted HELLO are capped, on every
// transport; the one refused is told why, and the server takes connections
// again once the silent ones are gone.
func TestPendingHandshakesCapped(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, &netcode.Config{MaxPendingHandshakes: 2}, nil)
		var silent []transport.Session
		for range 2 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s, err := tr.Raw(ctx, srv) // connected, and never a HELLO
			cancel()
			require.NoError(t, err)
			silent = append(silent, s)
		}
		nt.Eventually(t, func() bool { return srv.Metrics().ConnsAccepted == 2 }, "the silent sessions are in their handshake")
		time.Sleep(20 * time.Millisecond) // from counted to registered: microseconds
		_, err := nt.TryClient(tr, srv, netcode.ClientConfig{}, nil)
		refusedWith(t, err, "server busy: too many pending handshakes")
		require.True(t, netcode.IsBusy(err), "worth retrying: %v", err)
		require.EqualValues(t, 1, srv.Metrics().Drops["pending_handshakes"])
		for _, s := range silent {
			_ = s.Close(0, "bye")
		}
		nt.Eventually(t, func() bool {
			c, err := nt.TryClient(tr, srv, netcode.ClientConfig{}, nil)
			if err != nil {
				return false
			}
			_ = c.Close()
			return true
		}, "room again once the silent sessions left")
	})
}

// The QUIC token table's policies, each refusing one token with a reason
// and counting it.
func TestQUICTokenPolicies(t *testing.T) {
	srv := nt.Server(t, nt.Find("quic"), &netcode.Config{
		Tokens:           &netcode.Tokens{Key: token.DevKey, ProtocolID: nt.ProtocolID},
		MaxTokenLifetime: time.Minute,
		MaxTokensPerIP:   2,
		MaxTokens:        3,
	}, nil)
	issue := func(ttl time.Duration) *token.ConnectToken {
		tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: nt.ProtocolID, ClientID: 1, TTL: ttl}, time.Now())
		require.NoError(t, err)
		return tok
	}
	connect := func(ip string, tok *token.ConnectToken) error {
		c, err := connectFrom(srv, ip, netcode.ClientConfig{Token: tok})
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
		}
		return err
	}

	refusedWith(t, connect("127.0.0.2", issue(time.Hour)), "connect token expires too far in the future")
	require.EqualValues(t, 1, srv.Metrics().Drops["token_lifetime"])

	reused := issue(time.Minute)
	require.NoError(t, connect("127.0.0.2", reused))
	require.NoError(t, connect("127.0.0.2", reused), "the same token from the same address again: no new entry")
	require.NoError(t, connect("127.0.0.2", issue(time.Minute)))
	refusedWith(t, connect("127.0.0.2", issue(time.Minute)), "too many connect tokens from your address")
	require.EqualValues(t, 1, srv.Metrics().Drops["tokens_per_ip"])
	refusedWith(t, connect("127.0.0.3", reused), "connect token already used from another address")
	require.EqualValues(t, 1, srv.Metrics().Drops["token_reused"])

	require.NoError(t, connect("127.0.0.3", issue(time.Minute)), "another address goes on")
	refusedWith(t, connect("127.0.0.4", issue(time.Minute)), "server busy: too many connect tokens in use")
	require.EqualValues(t, 1, srv.Metrics().Drops["token_table_full"])
}

// A KCP client whose token asks for an hour-long session timeout vanishes
// without a DISCONNECT: the server removes it within its own cap, not the
// token's hour.
func TestKCPLongTokenSilentPeerTimesOut(t *testing.T) {
	const limit = time.Second
	type gone struct {
		at time.Time
		ce *netcode.CloseError
	}
	left := make(chan gone, 1)
	srv := nt.Server(t, nt.Find("kcp"), &netcode.Config{KCP: kcp.Config{MaxSessionTimeout: limit}}, func(s *netcode.Server) {
		s.OnDisconnect(func(_ *netcode.Conn, ce *netcode.CloseError) { left <- gone{time.Now(), ce} })
	})
	tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: nt.ProtocolID, ClientID: 1, TTL: time.Minute, Timeout: time.Hour}, time.Now())
	require.NoError(t, err)

	var sock *net.UDPConn
	remote := srv.Addrs()[0].(*net.UDPAddr).AddrPort()
	cl, err := netcode.Dial(context.Background(), "kcp://"+remote.String(), netcode.ClientConfig{
		Token: tok,
		// Without resume: the subject is when the transport gives up, not
		// the resume window after it (TestResumeExpires).
		NoResume: true,
		Dial: func(ctx context.Context, _ string) (transport.Session, error) {
			pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return nil, err
			}
			sock = pc
			return kcp.DialConn(ctx, pc, remote, tok, kcp.Config{})
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	nt.Eventually(t, func() bool { return srv.Metrics().ConnsActive == 1 }, "the client joined")

	vanished := time.Now()
	require.NoError(t, sock.Close()) // no DISCONNECT, nothing more
	g := nt.Recv(t, left, "the server noticing the silent peer")
	after := g.at.Sub(vanished)
	t.Logf("a silent KCP peer whose token says 1 h, server cap %v: closed after %v (%v)", limit, after, g.ce)
	require.Equal(t, netcode.CloseTimeout, g.ce.Code)
	// The client's clock PINGs (every 100 ms just after connecting) were
	// the last it sent, so the silence began about when it vanished.
	require.GreaterOrEqual(t, after, limit/2, "a timeout, not an error")
	require.Less(t, after, limit+2*time.Second, "within the server's cap, far from the token's hour")
	require.EqualValues(t, 1, srv.Metrics().Closes["timeout"])
}
