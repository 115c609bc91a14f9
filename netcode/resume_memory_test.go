//go:build !race

package netcode_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
)

// 500 sessions away at once, each sent three quarters of its MaxQueued in
// reliable events meanwhile: the server's memory grows by less than the
// cap per session, none of it kept twice; sent past the cap, every session
// expires with its reason and the memory goes. (No race detector: it
// changes what the heap holds, and 500 clients under it take too long.)
func TestAwaySessionsMemory(t *testing.T) {
	const (
		sessions = 500
		limit    = 64 << 10
		event    = 1 << 10
	)
	var mu sync.Mutex
	var conns []*netcode.Conn
	var away atomic.Int32
	ended := make(chan *netcode.CloseError, sessions)
	g := &resumeRig{net: &darkNet{}}
	srv := netcodetest.Server(t, netcodetest.Find("kcp"), &netcode.Config{
		MaxQueued: limit, ResumeWindow: time.Minute, MaxConnsPerIP: 2 * sessions, MaxPendingHandshakes: 2 * sessions,
		KCP: kcp.Config{MaxClientsPerIP: 2 * sessions, MaxTokensPerIP: 2 * sessions},
	}, func(s *netcode.Server) {
		s.OnConnect(func(c *netcode.Conn) {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		})
		s.OnAway(func(*netcode.Conn) { away.Add(1) })
		s.OnDisconnect(func(_ *netcode.Conn, ce *netcode.CloseError) { ended <- ce })
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clients := make([]*netcode.Client, sessions)
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := netcode.NewClient(netcode.ClientConfig{Token: netcodetest.Token(), Dial: g.net.dial(t, "kcp", srv)})
			if err := cl.Connect(ctx, "kcp://"+srv.Addrs()[0].String()); err != nil {
				errs <- err
				return
			}
			clients[i] = cl
			_, _ = cl.Request(ctx, "nothing", nil) // a round trip: resume granted
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, cl := range clients {
			if cl != nil {
				_ = cl.Close()
			}
		}
	})
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	g.net.set(true)
	netcodetest.Eventually(t, func() bool { return away.Load() == sessions }, "every session away")
	before := liveHeap()
	payload := make([]byte, event-len("fill")-16)
	mu.Lock()
	all := append([]*netcode.Conn(nil), conns...)
	mu.Unlock()
	require.Len(t, all, sessions)
	send := func(bytes int) {
		for _, c := range all {
			for sent := 0; sent < bytes; sent += event {
				_ = c.Emit("fill", payload)
			}
		}
	}
	send(limit * 3 / 4)
	held := liveHeap() - before
	perSession := held / sessions
	t.Logf("%d sessions away, %d KiB of events queued for each: %d bytes more heap per session (cap %d)", sessions, limit*3/4>>10, perSession, limit)
	require.Greater(t, perSession, int64(limit/2), "the queued events are kept")
	require.Less(t, perSession, int64(limit), "within the per-session cap")
	require.Zero(t, len(ended), "no session ended under its cap")

	send(limit / 2) // past the cap
	for range sessions {
		ce := netcodetest.Recv(t, ended, "a session's end")
		require.Equal(t, netcode.CloseExpired, ce.Code)
		require.Equal(t, fmt.Sprintf("session expired: more than %d bytes queued while away", limit), ce.Reason)
	}
	after := liveHeap() - before
	t.Logf("after every session expired: %d bytes of heap per session more than when they went away", after/sessions)
	require.Less(t, after/sessions, int64(limit/8), "the expired sessions' memory is gone")
	require.Zero(t, srv.Metrics().ConnsActive)
	require.False(t, strings.Contains(fmt.Sprint(srv.Metrics().Closes), "slow"), "expired, not slow consumers")
}

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
