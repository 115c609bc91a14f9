package rooms

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/transport/mem"
	"github.com/roomwire/roomwire/rooms/arena"
)

// benchRoom is an arena room with n members connected over the in-memory
// transport, whose datagrams are counted and discarded: what is measured is
// Roomwire's own work per tick, from inputs to queued datagrams.
func benchRoom(tb testing.TB, n int) (*GameRoom, *atomic.Int64) {
	tr := nt.Find("mem")
	cfg := &netcode.Config{}
	srv := nt.Server(tb, tr, cfg, nil)
	var sent atomic.Int64
	cfg.Listeners[0].(*mem.Listener).SendDatagramHook = func(*mem.Session, []byte) error {
		sent.Add(1) // every member's sender goroutine runs this
		return nil
	}
	hub := NewHub(srv, HubOptions{})
	tb.Cleanup(hub.Close)
	// A slow tick rate keeps the room's own loop out of the measurement.
	require.NoError(tb, hub.Define(arena.Kind, func() Game { return arena.New() }, Options{TickRate: 1, MaxMembers: n}))
	for i := 0; i < n; i++ {
		cl := nt.Client(tb, tr, srv, nil)
		_, err := Join(context.Background(), cl, arena.Kind, "bench")
		require.NoError(tb, err)
	}
	g := hub.Room("bench")
	require.NotNil(tb, g)
	require.Equal(tb, n, g.Info().Members)
	return g, &sent
}

func benchmarkTick(b *testing.B, n int) {
	g, _ := benchRoom(b, n)
	var batch netcode.Batch
	conns := append([]*netcode.Conn(nil), g.members...)
	input := arena.EncodeInput(nil, 10, -10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range conns {
			g.pushInput(c, input)
		}
		g.step(uint32(1000+i), 0, time.Now(), &batch)
		batch.Flush()
	}
}

// BenchmarkTick10 and BenchmarkTick100 are one whole tick of a 10- and a
// 100-member arena: an input from every member, the game step, the snapshot
// and its hand-off to every member's sender.
func BenchmarkTick10(b *testing.B)  { benchmarkTick(b, 10) }
func BenchmarkTick100(b *testing.B) { benchmarkTick(b, 100) }

func benchmarkBroadcastSnapshot(b *testing.B, n int) {
	g, _ := benchRoom(b, n)
	data := make([]byte, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snap := netcode.NewSnapshot(uint32(i))
		snap.Data = append(snap.Data, data...)
		g.mu.Lock()
		for _, m := range g.members {
			m.SendSnapshot(snap)
		}
		g.mu.Unlock()
		snap.Release()
	}
}

// BenchmarkBroadcastSnapshot10 and 100 hand one 1000-byte snapshot to every
// member of a room.
func BenchmarkBroadcastSnapshot10(b *testing.B)  { benchmarkBroadcastSnapshot(b, 10) }
func BenchmarkBroadcastSnapshot100(b *testing.B) { benchmarkBroadcastSnapshot(b, 100) }

// BenchmarkBroadcastEvent100 emits one reliable 64-byte event to a
// 100-member room, encoded once.
func BenchmarkBroadcastEvent100(b *testing.B) {
	g, _ := benchRoom(b, 100)
	msg := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := g.hub.To(g.name).Emit("state", msg); err != nil {
			b.Fatal(err)
		}
	}
}

// A member flooding inputs is capped per tick; the others' still get in.
func TestInputsCappedPerMember(t *testing.T) {
	g, _ := benchRoom(t, 2)
	var batch netcode.Batch
	flooder, other := g.members[0], g.members[1]
	in := arena.EncodeInput(nil, 1, 1)
	for i := 0; i < 20; i++ {
		g.pushInput(flooder, in)
	}
	g.pushInput(other, in)
	g.inMu.Lock()
	queued, dropped := len(g.inputs), g.inDropped
	g.inMu.Unlock()
	require.Equal(t, 8+1, queued, "8 from the flooder, 1 from the other")
	require.EqualValues(t, 12, dropped)
	g.step(5000, 0, time.Now(), &batch)
	batch.Flush()
	g.pushInput(flooder, in)
	g.inMu.Lock()
	require.Len(t, g.inputs, 1, "the cap starts over each tick")
	g.inMu.Unlock()
}
