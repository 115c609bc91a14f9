package rooms

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
)

// clockGame records when its ticks run, as offsets into the hub's slots.
type clockGame struct {
	hub    *Hub
	period time.Duration

	mu      sync.Mutex
	offsets []time.Duration
}

func (g *clockGame) Join(*netcode.Conn) error    { return nil }
func (g *clockGame) Leave(*netcode.Conn)         {}
func (g *clockGame) Input(*netcode.Conn, []byte) {}
func (g *clockGame) Tick(_ uint32, _ time.Duration, snap []byte) []byte {
	off := time.Since(g.hub.epoch) % g.period
	g.mu.Lock()
	g.offsets = append(g.offsets, off)
	g.mu.Unlock()
	return snap
}

func (g *clockGame) medianOffset() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	o := slices.Clone(g.offsets)
	slices.Sort(o)
	return o[len(o)/2]
}

// Rooms of one tick rate created at different moments still tick together,
// at the start of the hub's slots, and their tickers end with their rooms.
func TestRoomsOfOneRateTickInPhase(t *testing.T) {
	tr := nt.Find("mem")
	srv := nt.Server(t, tr, &netcode.Config{}, nil)
	hub := NewHub(srv, HubOptions{})
	t.Cleanup(hub.Close)
	const rate = 20
	period := time.Second / rate
	var games []*clockGame
	var mu sync.Mutex
	require.NoError(t, hub.Define("clock", func() Game {
		g := &clockGame{hub: hub, period: period}
		mu.Lock()
		games = append(games, g)
		mu.Unlock()
		return g
	}, Options{TickRate: rate, EmptyGrace: 100 * time.Millisecond}))

	// Three rooms, a third of a period apart: each on its own clock they
	// would tick a third of a period apart too.
	for _, name := range []string{"a", "b", "c"} {
		cl := nt.Client(t, tr, srv, nil)
		_, err := Join(context.Background(), cl, "clock", name)
		require.NoError(t, err)
		time.Sleep(period / 3)
	}
	time.Sleep(20 * period)
	mu.Lock()
	require.Len(t, games, 3)
	for i, g := range games {
		off := g.medianOffset()
		require.Less(t, off, period/4, "room %d ticks %v into the slot, not at its start", i, off)
	}
	mu.Unlock()

	// Empty rooms are disposed after their grace, and with the last of them
	// its ticker's goroutine ends.
	srv.Conns(func(c *netcode.Conn) { c.Close("test over") })
	require.Eventually(t, func() bool {
		hub.mu.Lock()
		defer hub.mu.Unlock()
		for _, shard := range hub.tickers[period] {
			shard.mu.Lock()
			running := shard.running
			shard.mu.Unlock()
			if running {
				return false
			}
		}
		return len(hub.games) == 0
	}, 5*time.Second, 10*time.Millisecond, "the rooms are disposed and their tickers end")
}
