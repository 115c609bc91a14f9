//go:build linux

package kcp

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/token"
)

// TestBusyListenerCoalescesReads: while many sessions send at a game's
// rate, the listener's reader sleeps between reads and takes several
// packets a wake-up; one session's quick exchanges never make it sleep;
// and when the players go quiet it waits again, without polling.
func TestBusyListenerCoalescesReads(t *testing.T) {
	l := listen(t, Config{})
	const players = 16
	clients := make([]*Session, players)
	for i := range clients {
		clients[i] = dial(t, l, testToken(t, token.DevKey, time.Minute))
		accept(t, l)
	}

	// One session's request and answer, again and again: never busy.
	echo := listenEcho(t, l)
	before := l.Stats()
	for i := range 300 {
		msg := fmt.Appendf(nil, "ping %03d", i)
		_, err := echo.c.Write(msg)
		require.NoError(t, err)
		got := make([]byte, len(msg))
		_, err = io.ReadFull(echo.c, got)
		require.NoError(t, err)
		require.Equal(t, msg, got)
	}
	after := l.Stats()
	require.Greater(t, after.Received-before.Received, uint64(300), "the exchanges arrived")
	require.Zero(t, after.ReadsCoalesced-before.ReadsCoalesced, "one session's round trips are never delayed")

	// Every player sends a datagram every 2 ms, each on its own clock, so
	// that the packets arrive spread out: 8 a millisecond, for 1.5 s.
	var wg sync.WaitGroup
	stop := time.Now().Add(1500 * time.Millisecond)
	for _, c := range clients {
		wg.Go(func() {
			tk := time.NewTicker(2 * time.Millisecond)
			defer tk.Stop()
			for time.Now().Before(stop) {
				<-tk.C
				_ = c.SendDatagram([]byte("input"))
			}
		})
	}
	// The listener turns busy after a window of such reads.
	require.Eventually(t, func() bool { return l.Stats().ReadsCoalesced > before.ReadsCoalesced },
		time.Second, 5*time.Millisecond, "a busy listener coalesces")
	before = l.Stats()
	time.Sleep(400 * time.Millisecond)
	after = l.Stats()
	wg.Wait()
	got, reads := after.Received-before.Received, after.Reads-before.Reads
	t.Logf("busy: %d packets in %d reads, %d coalesced waits", got, reads, after.ReadsCoalesced-before.ReadsCoalesced)
	require.Greater(t, got, uint64(players*100), "the players' datagrams arrived")
	require.GreaterOrEqual(t, got, 6*reads, "a wake-up reads several players' packets (1 ms of them: 8; about 4 when each is read as it comes)")

	// Quiet again: the reader waits for packets instead of sleeping and
	// reading in turn.
	time.Sleep(2 * busyWindow)
	before = l.Stats()
	time.Sleep(300 * time.Millisecond)
	after = l.Stats()
	require.LessOrEqual(t, after.Reads-before.Reads, after.Received-before.Received+2,
		"a quiet listener reads only when packets come (keep-alives)")
	require.LessOrEqual(t, after.ReadsCoalesced-before.ReadsCoalesced, uint64(2), "and stops coalescing")
}

// echoPair is a dialled session whose accepted peer echoes its stream.
type echoPair struct{ c *Session }

func listenEcho(t *testing.T, l *Listener) echoPair {
	c := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s := accept(t, l)
	go func() { _, _ = io.Copy(s, s) }()
	return echoPair{c: c}
}

// TestDualStackListener: a listener on an IPv6 wildcard serves IPv4
// clients (v4-mapped) and IPv6 clients on the same socket, both ways.
func TestDualStackListener(t *testing.T) {
	l, err := Listen("[::]:0", Config{Key: token.DevKey, ProtocolID: testProtocol})
	if err != nil {
		t.Fatalf("listen on [::]: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	port := l.Addr().(*net.UDPAddr).Port
	for _, host := range []string{"127.0.0.1", "::1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := Dial(ctx, net.JoinHostPort(host, fmt.Sprint(port)), testToken(t, token.DevKey, time.Minute), Config{})
		cancel()
		require.NoError(t, err, host)
		s := accept(t, l)
		require.Equal(t, host, s.remote.Addr().String(), "the peer's address, unmapped")

		_, err = c.Write([]byte("hello from " + host))
		require.NoError(t, err)
		got := make([]byte, len("hello from "+host))
		_, err = io.ReadFull(s, got)
		require.NoError(t, err)
		require.Equal(t, "hello from "+host, string(got))

		require.NoError(t, s.SendDatagram([]byte("snapshot")))
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		d, err := c.ReceiveDatagram(ctx)
		cancel()
		require.NoError(t, err, host)
		require.Equal(t, "snapshot", string(d))
		c.Close(0, "done")
		c.Wait()
	}
}
