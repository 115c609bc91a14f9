//go:build !race

// The race detector makes sync.Pool drop items on purpose, so allocation
// guards run without it (make test runs them in a second pass).

package netcode

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/unreliable"
)

func TestAllocsDeltaSendIsZero(t *testing.T) {
	for _, n := range []int{1, 100} {
		ms := newMembers(n)
		data := make([]byte, 0, 8<<10)
		tick := uint32(1)
		for ; tick < 40; tick++ {
			sendTick(ms, tick, arenaLike(data[:0], tick))
		}
		before := ms[0].stats.snapshotsDelta.Load()
		allocs := testing.AllocsPerRun(200, func() {
			data = arenaLike(data[:0], tick)
			sendTick(ms, tick, data)
			tick++
		})
		require.Zero(t, allocs, "per-tick delta send to %d members", n)
		require.GreaterOrEqual(t, ms[0].stats.snapshotsDelta.Load()-before, uint64(200), "the sends were deltas")
	}
}

func TestAllocsInterpolateIsZero(t *testing.T) {
	c := NewClient(ClientConfig{})
	const interval = time.Second / 30
	var env []byte
	tick := uint32(1)
	arrive := func() {
		st := serverStart.Add(time.Duration(tick) * interval)
		env = unreliable.AppendEnvelope(env[:0], unreliable.Envelope{Time: st.UnixNano()})
		env = arenaLike(env, tick)
		if _, _, err := c.snaps.add(tick, 1, env, localAt(st.Add(50*time.Millisecond))); err != nil {
			panic(err)
		}
		tick++
	}
	for range 2 * playoutWindow { // fill the ring, the window and the frame copies
		arrive()
		c.Interpolate(localAt(serverStart.Add(time.Duration(tick) * interval)))
	}
	frame := 0
	allocs := testing.AllocsPerRun(1000, func() {
		if frame%2 == 0 {
			arrive()
		}
		now := localAt(serverStart.Add(time.Duration(tick)*interval + time.Duration(frame%2)*interval/2))
		if _, ok := c.Interpolate(now); !ok {
			panic("no snapshot")
		}
		frame++
	})
	require.Zero(t, allocs, "a render frame (and a snapshot's arrival every other frame)")
}
