package netcode_test

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/transport/impair"
)

// Delivery classes on TCP: a WebSocket client behind a link of 100 KB/s
// each way with a small buffer, and a game whose whole 6 KB snapshots at
// 30 Hz (180 KB/s, NoDelta) do not fit it. Snapshots keep arriving at the
// rate the link allows, each fresh: their age on arrival (the tick's
// server time, by the client's clock estimate, against the arrival) stays
// under 250 ms at p99, where a queue that kept every snapshot would grow
// by 80 KB a second. Reliable events at 10 Hz still arrive, all and in
// order. The server replaced unsent snapshots, which is what keeps the
// queue short.
//
// The age is a timed goal, and a machine slowed by other tests can miss it
// by a few milliseconds (259 ms once, where runs alone give 190-210): a
// run that misses it runs once more, and the second decides. A queue that
// kept every snapshot misses both by seconds.
func TestWebSocketSnapshotsThroughACappedLink(t *testing.T) {
	r := cappedLink(t)
	if r.p99 >= cappedAge {
		t.Logf("age p99 %v over %v: once more", r.p99, cappedAge)
		r = cappedLink(t)
	}
	r.check(t)
}

// cappedAge is the bound on a snapshot's age at arrival, at p99.
const cappedAge = 250 * time.Millisecond

// cappedRun is what one run of TestWebSocketSnapshotsThroughACappedLink
// measured.
type cappedRun struct {
	perSecond, tickRate float64
	p99, worstGap       time.Duration
	replaced            uint64
	events              []uint32
}

// check asserts the test's goals on the run.
func (r cappedRun) check(t *testing.T) {
	t.Helper()
	require.Greater(t, r.perSecond, 5.0, "snapshots keep arriving")
	require.Less(t, r.perSecond, r.tickRate*0.8, "at the rate the link allows, not all of them")
	require.Less(t, r.p99, cappedAge, "each fresh when it arrives")
	require.Less(t, r.worstGap, 500*time.Millisecond)
	require.Positive(t, r.replaced, "a newer snapshot replaced an unsent older one: a queue of all of them would have grown")
	for i, e := range r.events {
		require.Equal(t, uint32(i+1), e, "reliable events in order")
	}
}

// cappedLink runs the test once, with a server of its own.
func cappedLink(t *testing.T) cappedRun {
	const (
		rate     = 100_000 // bytes a second, each way
		tickRate = 30
		state    = 6000
		warmup   = 1700 * time.Millisecond // the clock's PING burst, on an idle link
		run      = 7 * time.Second
		settle   = time.Second // of the run, before ages count
	)
	tr := nt.Find("ws")
	conns := make(chan *netcode.Conn, 1)
	srv := nt.Server(t, tr, &netcode.Config{NoDelta: true}, func(s *netcode.Server) {
		s.OnConnect(func(c *netcode.Conn) { conns <- c })
	})
	proxy, err := impair.NewTCPProxy(impair.TCPConfig{Upstream: srv.Addrs()[0].String(), Rate: rate})
	require.NoError(t, err)
	defer proxy.Close()

	type arrival struct {
		tick     uint32
		at       time.Time
		age, raw time.Duration // by ServerTime, and by the one clock the test shares
	}
	var (
		mu       sync.Mutex
		arrivals []arrival
		events   []uint32
	)
	cl := netcode.NewClient(netcode.ClientConfig{})
	cl.OnSnapshot(func(tick uint32, data []byte) {
		now := time.Now()
		at := time.Unix(0, int64(binary.BigEndian.Uint64(data)))
		a := arrival{tick: tick, at: now, age: cl.ServerTime(now).Sub(at), raw: now.Sub(at)}
		mu.Lock()
		arrivals = append(arrivals, a)
		mu.Unlock()
	})
	cl.On("seq", func(p []byte) {
		mu.Lock()
		events = append(events, binary.BigEndian.Uint32(p))
		mu.Unlock()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, cl.Connect(ctx, "ws://"+proxy.Addr().String()+"/ws"))
	defer cl.Close()
	require.Equal(t, "ws", cl.Transport())
	conn := nt.Recv(t, conns, "the connection")
	time.Sleep(warmup)

	start := time.Now()
	tick := time.NewTicker(time.Second / tickRate)
	defer tick.Stop()
	var sent uint32
	for n := uint32(1); time.Since(start) < run; n++ {
		<-tick.C
		s := netcode.NewSnapshot(n)
		s.Data = binary.BigEndian.AppendUint64(s.Data, uint64(time.Now().UnixNano()))
		s.Data = append(s.Data, make([]byte, state-8)...)
		conn.SendSnapshot(s)
		s.Release()
		if n%3 == 0 {
			sent++
			require.NoError(t, conn.Emit("seq", binary.BigEndian.AppendUint32(nil, sent)))
		}
	}
	end := time.Now()
	nt.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == int(sent)
	}, "every reliable event arrives")
	st := conn.Stats()

	mu.Lock()
	defer mu.Unlock()
	var ages, raws []time.Duration
	var counted int
	var worstGap time.Duration
	prev := start
	for _, a := range arrivals {
		if a.at.Before(start) || a.at.After(end) {
			continue
		}
		worstGap = max(worstGap, a.at.Sub(prev))
		prev = a.at
		if a.at.Sub(start) < settle {
			continue
		}
		counted++
		ages = append(ages, a.age)
		raws = append(raws, a.raw)
	}
	slices.Sort(ages)
	slices.Sort(raws)
	p := func(d []time.Duration, q float64) time.Duration { return d[int(q*float64(len(d)-1))] }
	perSecond := float64(counted) / (end.Sub(start) - settle).Seconds()
	t.Logf("through %d B/s: %.1f snapshots/s of %d/s; age p50 %v p99 %v max %v (same-clock p99 %v); worst gap %v; server replaced %d unsent snapshots, sent %d",
		rate, perSecond, tickRate, p(ages, .5), p(ages, .99), ages[len(ages)-1], p(raws, .99), worstGap, st.SnapshotsReplaced, st.SnapshotsSent)
	return cappedRun{perSecond: perSecond, tickRate: tickRate, p99: p(ages, .99), worstGap: worstGap,
		replaced: st.SnapshotsReplaced, events: slices.Clone(events)}
}
