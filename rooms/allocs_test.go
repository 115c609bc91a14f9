//go:build !race

// The race detector makes sync.Pool drop items on purpose, so allocation
// guards run without it (make test runs them in a second pass).

package rooms

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/rooms/arena"
)

func TestAllocsTickIsZero(t *testing.T) {
	for _, n := range []int{10, 100} {
		g, _ := benchRoom(t, n)
		var batch netcode.Batch
		conns := append([]*netcode.Conn(nil), g.members...)
		input := arena.EncodeInput(nil, 1, 1)
		tick := uint32(1000)
		step := func() {
			for _, c := range conns {
				g.pushInput(c, input)
			}
			tick++
			g.step(tick, 0, time.Now(), &batch)
			batch.Flush()
		}
		for i := 0; i < 100; i++ {
			step() // warm the pools and buffers
		}
		require.Zero(t, testing.AllocsPerRun(500, step), "a tick of a %d-member room allocates", n)
	}
}

func TestAllocsBroadcastEventIsZero(t *testing.T) {
	g, _ := benchRoom(t, 100)
	msg := make([]byte, 64)
	// Paced like a game server's broadcasts, so that the members' writers
	// keep up and their queues stay at their steady-state size.
	emit := func() {
		_ = g.hub.To(g.name).Emit("state", msg)
		time.Sleep(200 * time.Microsecond)
	}
	for i := 0; i < 200; i++ {
		emit()
	}
	require.Zero(t, testing.AllocsPerRun(500, emit))
}
