//go:build !race

// The race detector makes sync.Pool drop items on purpose, so allocation
// guards run without it (make test runs them in a second pass).

package netcode

import (
	"testing"

	"github.com/stretchr/testify/require"
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
