package rooms_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

// moveRoom moves the game room name from f to g the way a cluster does:
// freeze, hand each member's session off, adopt the sessions and the room
// at g, release it at f, send the clients on.
func moveRoom(t *testing.T, f, g *fixture, name string) *rooms.FrozenRoom {
	t.Helper()
	fr, err := f.hub.Freeze(name)
	require.NoError(t, err)
	var hs []*netcode.Handoff
	var adopted []*netcode.Conn
	for _, c := range fr.Members {
		h, err := c.StartHandoff(g.tr.URL(g.srv))
		require.NoError(t, err)
		hs = append(hs, h)
		a, err := g.srv.Adopt(h.State())
		require.NoError(t, err)
		adopted = append(adopted, a)
	}
	_, err = g.hub.Adopt(fr.Kind, fr.Name, fr.Tick, fr.State, adopted)
	require.NoError(t, err)
	fr.Release()
	for _, h := range hs {
		h.Commit()
	}
	return fr
}

// A room moved to another server goes on there from the next tick, with
// its players where they were, the same sessions, no member_left, and
// chat between them.
func TestRoomMovesToAnotherServer(t *testing.T) {
	tr := nt.Find("quic")
	cfg := func() *netcode.Config {
		return &netcode.Config{Tokens: &netcode.Tokens{Key: token.DevKey, ProtocolID: nt.ProtocolID}}
	}
	from := newFixtureCfg(t, tr, rooms.Options{TickRate: 50}, cfg())
	to := newFixtureCfg(t, tr, rooms.Options{TickRate: 50}, cfg())
	players := make([]*player, 2)
	var inSnap atomic.Int32 // players in the newest snapshot player 0 decoded
	for i := range players {
		p := &player{chat: make(chan string, 64), joined: make(chan string, 64), left: make(chan string, 64), snaps: make(chan uint32, 1024)}
		cl, err := nt.TryClient(tr, from.srv, netcode.ClientConfig{Token: nt.Token()}, func(c *netcode.Client) {
			c.On("chat", func(b []byte) { p.chat <- string(b) })
			c.On(rooms.EventMemberLeft, func(b []byte) { p.left <- string(b) })
			c.OnSnapshot(func(tick uint32, d []byte) {
				select {
				case p.snaps <- tick:
				default:
				}
				if ps, err := arena.Decode(nil, d); err == nil && i == 0 {
					inSnap.Store(int32(len(ps)))
				}
			})
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cl.Close() })
		p.Client = cl
		p.join(t, arena.Kind, "moving")
		players[i] = p
	}
	_, err := players[0].Request(context.Background(), "nothing", nil) // resume granted by now
	require.Error(t, err)
	ids := []netcode.ID{players[0].ID(), players[1].ID()}
	time.Sleep(200 * time.Millisecond)

	fr := moveRoom(t, from, to, "moving")
	require.Nil(t, from.hub.Room("moving"))
	require.NotNil(t, to.hub.Room("moving"))
	for _, p := range players {
		for len(p.snaps) > 0 {
			<-p.snaps
		}
	}
	nt.Eventually(t, func() bool {
		info := to.hub.Room("moving").Info()
		return info.Away == 0 && info.Members == 2
	}, "both players resumed on the new server")
	for i, p := range players {
		deadline := time.After(10 * time.Second)
		for got := false; !got; {
			select {
			case tick := <-p.snaps:
				got = tick > fr.Tick
			case <-deadline:
				t.Fatalf("player %d: no snapshot past tick %d from the new server", i, fr.Tick)
			}
		}
		require.Equal(t, ids[i], p.ID(), "the same session")
		require.NoError(t, p.Err())
	}
	require.Equal(t, to.hub.Room("moving"), to.hub.GameOf(to.srv.Conn(ids[0])))
	require.NoError(t, players[0].Emit("chat", []byte("still here")))
	require.Equal(t, "still here", nt.Recv(t, players[1].chat, "chat on the new server"))
	nt.Never(t, players[0].left, 100*time.Millisecond, "member_left for a move")
	require.Equal(t, int32(2), inSnap.Load(), "both players in the moved game")
}

// A room whose game is not Movable does not freeze; a frozen room that
// thaws goes on.
func TestFreezeAndThaw(t *testing.T) {
	f := newFixture(t, nt.Find("mem"), rooms.Options{TickRate: 100})
	p := f.player(t)
	p.join(t, "test", "still")
	_, err := f.hub.Freeze("still")
	require.ErrorIs(t, err, rooms.ErrNotMovable)
	q := f.player(t)
	q.join(t, arena.Kind, "frozen")
	fr, err := f.hub.Freeze("frozen")
	require.NoError(t, err)
	ticks := f.hub.Room("frozen").Info().Ticks
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, ticks, f.hub.Room("frozen").Info().Ticks, "no tick while frozen")
	_, err = rooms.Join(context.Background(), p.Client, arena.Kind, "frozen")
	require.Error(t, err, "a frozen room takes no one")
	fr.Thaw()
	nt.Eventually(t, func() bool { return f.hub.Room("frozen").Info().Ticks > ticks }, "ticking again")
}
