package netcode

import (
	"sync"
	"time"

	"github.com/roomwire/roomwire/reliable"
)

const (
	// clockSamples is how many PONGs the clock estimate keeps: at one PING
	// a second, about half a minute, over which clock drift is negligible.
	clockSamples = 32
	// clockBurst PINGs go out clockBurstGap apart after WELCOME, so that
	// the estimate is good within two seconds; then one every clockPeriod.
	clockBurst    = 16
	clockBurstGap = 100 * time.Millisecond
	clockPeriod   = time.Second
	// clockScale is the excess round trip at which a sample's weight falls
	// to a quarter.
	clockScale = 5 * time.Millisecond
	// clockMinTolerance is the least excess round trip beyond which a
	// sample is discarded (see clockSync.estimate).
	clockMinTolerance = 5 * time.Millisecond
)

// clockIdlePeriod spaces the PINGs while no snapshot arrives (a
// connection in a lobby): the estimate only serves snapshots, and a
// server with thousands of idle connections should not answer a PING
// from each every second, nor hold the buffers an exchange takes (its
// idle trims let them go after a few seconds). Clocks drift by far
// less than a millisecond in that time, and the first snapshot after
// an idle spell brings the next PING forward (snapshotWake).
// It is a variable for tests, which shorten it.
var clockIdlePeriod = 30 * time.Second

type clockSample struct {
	rtt, offset time.Duration
}

// clockSync estimates the server's clock from PING/PONG round trips. Each
// sample's offset assumes the PING and the PONG took half the round trip
// each; its error is at most half the queueing delay it suffered, so the
// samples with the shortest round trips are trusted most (see estimate).
// The PONG reader adds; any goroutine reads.
type clockSync struct {
	mu      sync.Mutex
	samples [clockSamples]clockSample
	n, next int
	off     time.Duration // the estimate, valid when n > 0
}

func (c *clockSync) add(sent, server, now time.Time) {
	rtt := now.Sub(sent)
	if rtt < 0 {
		return
	}
	c.mu.Lock()
	c.samples[c.next] = clockSample{rtt: rtt, offset: server.Add(rtt / 2).Sub(now)}
	c.next = (c.next + 1) % len(c.samples)
	c.n = min(c.n+1, len(c.samples))
	c.off = estimate(c.samples[:c.n])
	c.mu.Unlock()
}

// estimate is the weighted mean of the samples' offsets. With m the least
// round trip held and e = rtt − m a sample's excess, a sample with
// e > max(5 ms, m/4) is discarded (its PING or PONG was queued or
// retransmitted: a retransmission adds at least a round trip, and at
// least a KCP or QUIC minimum timeout), and the others weigh
// 1 / (1 + e/5 ms)²: the least delayed dominate, but with symmetric jitter
// several share the weight and their errors average out.
func estimate(s []clockSample) time.Duration {
	least := s[0].rtt
	for _, x := range s[1:] {
		least = min(least, x.rtt)
	}
	tol := max(clockMinTolerance, least/4)
	var sum, weights float64
	for _, x := range s {
		e := x.rtt - least
		if e > tol {
			continue
		}
		k := 1 + float64(e)/float64(clockScale)
		w := 1 / (k * k)
		sum += w * float64(x.offset)
		weights += w
	}
	return time.Duration(sum / weights)
}

// offset is server clock minus local clock; ok is false before any sample.
func (c *clockSync) offset() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.off, c.n > 0
}

// ServerTime is the client's estimate of the server's clock at local time
// now, from PING/PONG round trips (before the first PONG, the server time
// of the least delayed recent snapshots' arrivals, which runs behind by
// their one-way latency).
func (c *Client) ServerTime(now time.Time) time.Time {
	if off, ok := c.clock.offset(); ok {
		return now.Add(off)
	}
	c.snaps.mu.Lock()
	defer c.snaps.mu.Unlock()
	if c.snaps.newest != nil {
		return time.Unix(0, c.snaps.play.streamTime(now))
	}
	return now
}

// clockLoop sends PINGs for the clock estimate: clockBurst quickly after
// connecting, then one every clockPeriod while snapshots arrive and every
// clockIdlePeriod while none do (the burst's estimate serves a room joined
// in between, and its first snapshot wakes the loop), until the
// connection closes.
func (c *Client) clockLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	var snaps uint64
	for i := 1; ; i++ {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.clockWake:
			if !t.Stop() {
				<-t.C
			}
		}
		// A PING at the end of an idle spell (no snapshot woke the loop)
		// is not copied (5.17): the idle clock needs no fast sample.
		idle := c.clockIdle.Swap(false)
		if b, ok := c.out.begin(); ok {
			c.out.noCopy = idle
			_ = c.enqueued(c.out.end(reliable.AppendPing(b, uint64(time.Now().UnixNano()))))
		}
		n := c.cstats.snapshotsReceived.Load()
		switch {
		case i < clockBurst:
			t.Reset(clockBurstGap)
			snaps = n
		case n != snaps:
			snaps = n
			t.Reset(clockPeriod)
		default:
			c.clockIdle.Store(true)
			t.Reset(clockIdlePeriod)
		}
	}
}

// snapshotWake brings the clock's next PING forward when a snapshot
// arrives while clockLoop waits out clockIdlePeriod: the connection just
// joined a room, and the estimate should follow its path from now on.
func (c *Client) snapshotWake() {
	if c.clockIdle.Load() && c.clockIdle.CompareAndSwap(true, false) {
		select {
		case c.clockWake <- struct{}{}:
		default:
		}
	}
}

func (c *Client) onPong(f reliable.Frame) {
	c.clock.add(time.Unix(0, int64(f.Echo)), time.Unix(0, int64(f.Time)), time.Now())
}
