package rooms_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/transport/impair"
	"github.com/roomwire/roomwire/rooms"
)

// churnGame has a 3000-byte state of which a few bytes change every tick,
// like a game's entities, and logs every snapshot it produced and every
// input it was handed.
type churnGame struct {
	mu     sync.Mutex
	state  []byte
	log    map[uint32][]byte
	inputs []uint32
}

func (g *churnGame) Join(*netcode.Conn) error { return nil }
func (g *churnGame) Leave(*netcode.Conn)      {}
func (g *churnGame) Input(_ *netcode.Conn, d []byte) {
	g.mu.Lock()
	g.inputs = append(g.inputs, binary.BigEndian.Uint32(d))
	g.mu.Unlock()
}
func (g *churnGame) Tick(tick uint32, _ time.Duration, snap []byte) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := uint32(0); i < 12; i++ {
		g.state[(tick*97+i*131)%uint32(len(g.state))] = byte(tick + i)
	}
	g.log[tick] = append([]byte(nil), g.state...)
	return append(snap, g.state...)
}

// Under loss, delay, jitter, reordering and duplication, on both transports:
// every snapshot the client decodes is byte-identical to what the tick
// produced, none is applied out of order, reliable events arrive exactly
// once and in order both ways, and inputs reach the game once each, in
// order.
func TestDeliveryUnderImpairment(t *testing.T) {
	for _, base := range []string{"quic", "kcp"} {
		for _, loss := range []float64{0.05, 0.20} {
			t.Run(fmt.Sprintf("%s/loss%.0f%%", base, loss*100), func(t *testing.T) {
				testImpaired(t, base, loss)
			})
		}
	}
}

func testImpaired(t *testing.T, base string, loss float64) {
	tr := nt.Impaired(nt.Find(base), impair.Config{Seed: 7, Loss: loss, Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond, Duplicate: 0.02})
	game := &churnGame{state: make([]byte, 3000), log: make(map[uint32][]byte)}
	var upMu sync.Mutex
	var ups []uint32
	srv := nt.Server(t, tr, &netcode.Config{HandshakeTimeout: 10 * time.Second}, func(s *netcode.Server) {
		hub := rooms.NewHub(s, rooms.HubOptions{})
		t.Cleanup(hub.Close)
		require.NoError(t, hub.Define("churn", func() rooms.Game { return game }, rooms.Options{TickRate: 30}))
		s.On("up", func(c *netcode.Conn, p []byte) {
			upMu.Lock()
			ups = append(ups, binary.BigEndian.Uint32(p))
			upMu.Unlock()
			_ = c.Emit("down", p)
		})
	})

	var mu sync.Mutex
	var downs []uint32
	var last uint32
	decoded, mismatched, outOfOrder := 0, 0, 0
	cl := nt.Client(t, tr, srv, func(c *netcode.Client) {
		c.On("down", func(p []byte) {
			mu.Lock()
			downs = append(downs, binary.BigEndian.Uint32(p))
			mu.Unlock()
		})
		c.OnSnapshot(func(tick uint32, d []byte) {
			game.mu.Lock()
			want, ok := game.log[tick]
			game.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			decoded++
			if !ok || string(want) != string(d) {
				mismatched++
			}
			if tick <= last {
				outOfOrder++
			}
			last = tick
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := rooms.Join(ctx, cl, "churn", "r")
	require.NoError(t, err)

	const inputs, events = 90, 30
	var b [4]byte
	for i := uint32(1); i <= inputs; i++ {
		binary.BigEndian.PutUint32(b[:], i)
		require.NoError(t, cl.SendInput(b[:]))
		if i%3 == 0 {
			require.NoError(t, cl.Emit("up", b[:])) // a copy is queued: b may change
		}
		time.Sleep(time.Second / 30)
	}
	// Keep the input stream alive a little so the last inputs are resent
	// until acknowledged, as a playing client's would be.
	for i := 0; i < 15; i++ {
		binary.BigEndian.PutUint32(b[:], inputs+uint32(i)+1)
		require.NoError(t, cl.SendInput(b[:]))
		time.Sleep(time.Second / 30)
	}

	nt.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(downs) == events
	}, "every reliable event echoed")
	upMu.Lock()
	require.Len(t, ups, events)
	for i, v := range ups {
		require.Equal(t, uint32(3*(i+1)), v, "client → server events exactly once, in order")
	}
	upMu.Unlock()
	mu.Lock()
	for i, v := range downs {
		require.Equal(t, uint32(3*(i+1)), v, "server → client events exactly once, in order")
	}
	require.Zero(t, mismatched, "every decoded snapshot equals what its tick produced")
	require.Zero(t, outOfOrder, "no snapshot applied out of order")
	ticks := int(last)
	require.Greater(t, decoded, ticks/3, "snapshots keep arriving: %d of about %d ticks", decoded, ticks)
	decodedNow := decoded // snapshots still arrive: read it under mu
	mu.Unlock()

	game.mu.Lock()
	got := append([]uint32(nil), game.inputs...)
	game.mu.Unlock()
	require.GreaterOrEqual(t, len(got), inputs, "the inputs all arrived")
	for i, v := range got {
		require.Equal(t, uint32(i+1), v, "inputs reach the tick once each, in order")
	}
	st := srv.Conn(cl.ID()).Stats()
	require.Greater(t, st.SnapshotsDelta, uint64(0), "deltas against acknowledged baselines were sent")
	require.Greater(t, st.InputsRedundant, uint64(0), "inputs were sent more than once and de-duplicated")
	t.Logf("%s loss %.0f%%: decoded %d snapshots of ~%d ticks; server sent %d (%d deltas); client stats %+v",
		base, loss*100, decodedNow, ticks, st.SnapshotsSent, st.SnapshotsDelta, cl.Stats())
}
