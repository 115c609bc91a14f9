package quic_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/transport/quic"
)

func TestMain(m *testing.M) { nt.VerifyTestMain(m) }

// deaf is a socket that sends but never hears an answer: a client whose
// handshake can never complete, or whose source address was forged.
type deaf struct{ c *net.UDPConn }

func (d deaf) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		if _, _, err := d.c.ReadFrom(b); err != nil {
			return 0, nil, err
		}
	}
}
func (d deaf) WriteTo(b []byte, a net.Addr) (int, error) { return d.c.WriteTo(b, a) }
func (d deaf) Close() error                              { return d.c.Close() }
func (d deaf) LocalAddr() net.Addr                       { return d.c.LocalAddr() }
func (d deaf) SetDeadline(t time.Time) error             { return d.c.SetDeadline(t) }
func (d deaf) SetReadDeadline(t time.Time) error         { return d.c.SetReadDeadline(t) }
func (d deaf) SetWriteDeadline(t time.Time) error        { return d.c.SetWriteDeadline(t) }

// 64 handshakes from one address that never complete hold at most that
// address's share of state; a client from another address gets in at once.
func TestHandshakeFloodFromOneIP(t *testing.T) {
	tc, err := netcode.DevTLSConfig()
	require.NoError(t, err)
	l, err := quic.Listen("127.0.0.1:0", tc, quic.Config{})
	require.NoError(t, err)
	defer l.Close()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		s, err := l.Accept(context.Background())
		if err == nil {
			_ = s.Close(0, "bye")
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	var wg sync.WaitGroup
	const n = 64
	for range n {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			conn, err := quicgo.Dial(ctx, deaf{c}, l.Addr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"roomwire/1"}},
				&quicgo.Config{HandshakeIdleTimeout: 10 * time.Second})
			if err == nil {
				_ = conn.CloseWithError(0, "")
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	require.Eventually(t, func() bool { return l.HandshakesInProgress() == 32 }, 5*time.Second, 5*time.Millisecond,
		"the address's share of unproven handshakes fills")
	time.Sleep(300 * time.Millisecond) // the flood goes on: Initials resent, every one answered by a Retry
	require.Equal(t, 32, l.HandshakesInProgress(), "and no more")

	start := time.Now()
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	s, err := quic.Dial(dctx, l.Addr().String(), &tls.Config{InsecureSkipVerify: true}, quic.Config{})
	require.NoError(t, err)
	took := time.Since(start)
	t.Logf("honest QUIC handshake from 127.0.0.1 during %d stuck handshakes from 127.0.0.2: %v", n, took)
	require.Less(t, took, time.Second)
	_, _ = s.Write([]byte{0}) // the server sees the stream
	<-accepted
	_ = s.Close(0, "bye")
}

// IsRefused tells quic-go's CONNECTION_REFUSED from the server apart from
// other transport errors and from our own.
func TestIsRefused(t *testing.T) {
	require.True(t, quic.IsRefused(fmt.Errorf("dial: %w", &quicgo.TransportError{Remote: true, ErrorCode: quicgo.ConnectionRefused})))
	require.False(t, quic.IsRefused(&quicgo.TransportError{Remote: false, ErrorCode: quicgo.ConnectionRefused}), "ours, not the server's")
	require.False(t, quic.IsRefused(&quicgo.TransportError{Remote: true, ErrorCode: quicgo.ProtocolViolation}))
	require.False(t, quic.IsRefused(errors.New("connection refused")))
}
