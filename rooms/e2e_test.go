package rooms_test

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/transport/impair"
	"github.com/roomwire/roomwire/netcode/transport/mem"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

// recorder is a Game that records what the room did to it.
type recorder struct {
	mu      sync.Mutex
	refuse  error
	inputs  []string
	members int
	size    int                             // extra snapshot bytes
	sleep   func(tick uint32) time.Duration // slow ticks
	aways   []string                        // "away id" and "back id", in order
}

func (g *recorder) Away(c *netcode.Conn) { g.note("away " + c.ID().String()) }
func (g *recorder) Back(c *netcode.Conn) { g.note("back " + c.ID().String()) }

func (g *recorder) note(s string) {
	g.mu.Lock()
	g.aways = append(g.aways, s)
	g.mu.Unlock()
}

func (g *recorder) awayLog() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.aways...)
}

func (g *recorder) Join(*netcode.Conn) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refuse != nil {
		return g.refuse
	}
	g.members++
	return nil
}

func (g *recorder) Leave(*netcode.Conn) {
	g.mu.Lock()
	g.members--
	g.mu.Unlock()
}

func (g *recorder) Input(_ *netcode.Conn, d []byte) {
	g.mu.Lock()
	g.inputs = append(g.inputs, string(d))
	g.mu.Unlock()
}

func (g *recorder) Tick(tick uint32, _ time.Duration, snap []byte) []byte {
	g.mu.Lock()
	size, sleep := g.size, g.sleep
	g.mu.Unlock()
	if sleep != nil {
		time.Sleep(sleep(tick))
	}
	snap = binary.BigEndian.AppendUint32(snap, tick)
	for i := 0; i < size; i++ {
		snap = append(snap, byte(tick)+byte(i))
	}
	return snap
}

type fixture struct {
	srv  *netcode.Server
	hub  *rooms.Hub
	tr   nt.Transport
	game *recorder
}

func newFixture(t *testing.T, tr nt.Transport, opts rooms.Options) *fixture {
	return newFixtureCfg(t, tr, opts, nil)
}

func newFixtureCfg(t *testing.T, tr nt.Transport, opts rooms.Options, cfg *netcode.Config) *fixture {
	f := &fixture{tr: tr, game: &recorder{}}
	f.srv = nt.Server(t, tr, cfg, func(s *netcode.Server) {
		f.hub = rooms.NewHub(s, rooms.HubOptions{})
		require.NoError(t, f.hub.Define("test", func() rooms.Game { return f.game }, opts))
		require.NoError(t, f.hub.Define(arena.Kind, func() rooms.Game { return arena.New() }, opts))
		s.On("chat", func(c *netcode.Conn, msg []byte) {
			if g := f.hub.GameOf(c); g != nil {
				_ = f.hub.To(g.Name()).Except(c).Emit("chat", msg)
			}
		})
	})
	t.Cleanup(f.hub.Close)
	return f
}

// player is a connected client with channels for what it receives.
type player struct {
	*netcode.Client
	chat   chan string
	dm     chan string
	joined chan string
	left   chan string
	snaps  chan uint32
}

func (f *fixture) player(t *testing.T) *player {
	p := &player{chat: make(chan string, 64), dm: make(chan string, 64), joined: make(chan string, 64),
		left: make(chan string, 64), snaps: make(chan uint32, 1024)}
	p.Client = nt.Client(t, f.tr, f.srv, func(c *netcode.Client) {
		c.On("chat", func(b []byte) { p.chat <- string(b) })
		c.On("dm", func(b []byte) { p.dm <- string(b) })
		c.On(rooms.EventMemberJoined, func(b []byte) { p.joined <- string(b) })
		c.On(rooms.EventMemberLeft, func(b []byte) { p.left <- string(b) })
		c.OnSnapshot(func(tick uint32, d []byte) {
			select {
			case p.snaps <- tick:
			default:
			}
		})
	})
	return p
}

func (p *player) join(t *testing.T, kind, room string) rooms.JoinResult {
	t.Helper()
	jr, err := rooms.Join(context.Background(), p.Client, kind, room)
	require.NoError(t, err)
	return jr
}

func TestBroadcastReachesRoomButNotExceptedSender(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{})
		a, b, c := f.player(t), f.player(t), f.player(t)
		outsider := f.player(t)
		a.join(t, "test", "lobby")
		b.join(t, "test", "lobby")
		c.join(t, "test", "lobby")
		outsider.join(t, "test", "elsewhere")
		require.NoError(t, a.Emit("chat", []byte("gg")))
		require.Equal(t, "gg", nt.Recv(t, b.chat, "chat at b"))
		require.Equal(t, "gg", nt.Recv(t, c.chat, "chat at c"))
		nt.Never(t, a.chat, 100*time.Millisecond, "chat echoed to its sender")
		nt.Never(t, outsider.chat, 10*time.Millisecond, "chat leaking to another room")
	})
}

func TestPrivateRoomByID(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{})
		a, b := f.player(t), f.player(t)
		require.Equal(t, 1, f.hub.Members(a.ID().String()), "each connection sits in its private room")
		require.NoError(t, f.hub.To(a.ID().String()).Emit("dm", []byte("psst")))
		require.Equal(t, "psst", nt.Recv(t, a.dm, "dm"))
		nt.Never(t, b.dm, 100*time.Millisecond, "dm to the wrong connection")
	})
}

func TestJoinLeaveEventsAndLeaveStopsDelivery(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{TickRate: 50})
		a, b := f.player(t), f.player(t)
		a.join(t, "test", "r")
		jr := b.join(t, "test", "r")
		require.Equal(t, "r", jr.Room)
		require.Equal(t, 2, jr.Members)
		require.Equal(t, b.ID().String(), nt.Recv(t, a.joined, "member_joined"))
		nt.Recv(t, b.snaps, "a snapshot while in the room")

		require.NoError(t, rooms.Leave(context.Background(), b.Client))
		require.Equal(t, b.ID().String(), nt.Recv(t, a.left, "member_left"))
		require.NoError(t, a.Emit("chat", []byte("anyone?")))
		nt.Never(t, b.chat, 100*time.Millisecond, "chat after leaving")
		// Drain snapshots already in flight, then none may come.
		time.Sleep(50 * time.Millisecond)
		for len(b.snaps) > 0 {
			<-b.snaps
		}
		nt.Never(t, b.snaps, 150*time.Millisecond, "snapshot after leaving")
	})
}

func TestDisconnectLeavesRoomWithOneMemberLeft(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{})
		a, b := f.player(t), f.player(t)
		a.join(t, "test", "r")
		b.join(t, "test", "r")
		require.NoError(t, b.Close())
		require.Equal(t, b.ID().String(), nt.Recv(t, a.left, "member_left"))
		nt.Never(t, a.left, 100*time.Millisecond, "a second member_left")
		nt.Eventually(t, func() bool { return f.hub.Room("r").Info().Members == 1 }, "member removed")
	})
}

// Members lists the room's players in the order they joined, as a copy
// that later joins and leaves leave alone.
func TestMembersListsThePlayers(t *testing.T) {
	f := newFixture(t, nt.Find("mem"), rooms.Options{})
	a, b := f.player(t), f.player(t)
	f.player(t).join(t, "test", "elsewhere")
	a.join(t, "test", "r")
	b.join(t, "test", "r")
	ids := func(list []*netcode.Conn) []netcode.ID {
		out := make([]netcode.ID, 0, len(list))
		for _, c := range list {
			out = append(out, c.ID())
		}
		return out
	}
	before := f.hub.Room("r").Members()
	require.Equal(t, []netcode.ID{a.ID(), b.ID()}, ids(before))
	require.NoError(t, rooms.Leave(context.Background(), a.Client))
	nt.Eventually(t, func() bool { return len(f.hub.Room("r").Members()) == 1 }, "a left")
	require.Equal(t, []netcode.ID{b.ID()}, ids(f.hub.Room("r").Members()))
	require.Equal(t, []netcode.ID{a.ID(), b.ID()}, ids(before), "the earlier copy is unchanged")
}

func TestCapacityAndGameRefusal(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{MaxMembers: 2})
		f.player(t).join(t, "test", "small")
		f.player(t).join(t, "test", "small")
		_, err := rooms.Join(context.Background(), f.player(t).Client, "test", "small")
		var re *netcode.RemoteError
		require.ErrorAs(t, err, &re)
		require.Contains(t, re.Message, "full")

		_, err = rooms.Join(context.Background(), f.player(t).Client, "no-such-kind", "")
		require.ErrorAs(t, err, &re)
		require.Contains(t, re.Message, "unknown room kind")

		f.game.mu.Lock()
		f.game.refuse = errRefused
		f.game.mu.Unlock()
		_, err = rooms.Join(context.Background(), f.player(t).Client, "test", "other")
		require.ErrorAs(t, err, &re)
		require.Contains(t, re.Message, "match already started")
	})
}

var errRefused = refusal("match already started")

type refusal string

func (r refusal) Error() string { return string(r) }

func TestJoinOrCreateFillsRoomsThenOpensNew(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{MaxMembers: 2})
		r1 := f.player(t).join(t, arena.Kind, "")
		r2 := f.player(t).join(t, arena.Kind, "")
		r3 := f.player(t).join(t, arena.Kind, "")
		require.Equal(t, r1.Room, r2.Room)
		require.NotEqual(t, r1.Room, r3.Room)
		require.Len(t, f.hub.Rooms(), 2)
	})
}

func TestSnapshotsEveryTickInOrder(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		const rate = 50
		f := newFixture(t, tr, rooms.Options{TickRate: rate})
		p := f.player(t)
		p.join(t, "test", "r")
		first := nt.Recv(t, p.snaps, "first snapshot")
		window := time.Second
		deadline := time.After(window)
		last, n := first, 0
	loop:
		for {
			select {
			case tick := <-p.snaps:
				require.Greater(t, tick, last, "snapshots arrive in tick order")
				last = tick
				n++
			case <-deadline:
				break loop
			}
		}
		// Ticks are scheduled on the clock, so the tick numbers advance by
		// the rate whatever the machine's load; nearly all of them must
		// have been delivered.
		span := int(last - first)
		require.InDelta(t, rate, span, rate/2, "tick numbers advance at the tick rate")
		require.GreaterOrEqual(t, n, span*9/10, "at most a tenth of the ticks missing")
	})
}

func TestInputsReachTheTick(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{TickRate: 50})
		p := f.player(t)
		p.join(t, "test", "r")
		for _, in := range []string{"up", "up", "left"} {
			require.NoError(t, p.SendInput([]byte(in)))
			time.Sleep(5 * time.Millisecond)
		}
		nt.Eventually(t, func() bool {
			f.game.mu.Lock()
			defer f.game.mu.Unlock()
			return len(f.game.inputs) == 3
		}, "three inputs handed to the game")
		f.game.mu.Lock()
		require.Equal(t, []string{"up", "up", "left"}, f.game.inputs)
		f.game.mu.Unlock()
	})
}

func TestLargeSnapshotsArrive(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{TickRate: 20})
		// The room's tick goroutine reads it, and over TCP nothing the race
		// detector sees orders the two: under the game's lock.
		f.game.mu.Lock()
		f.game.size = 6000 // five datagrams
		f.game.mu.Unlock()
		got := make(chan []byte, 4)
		p := f.player(t)
		p.OnSnapshot(func(tick uint32, d []byte) {
			select {
			case got <- append([]byte(nil), d...):
			default:
			}
		})
		p.join(t, "test", "big")
		d := nt.Recv(t, got, "large snapshot")
		require.Len(t, d, 4+6000)
		tick := binary.BigEndian.Uint32(d)
		for i := 0; i < 6000; i++ {
			require.Equal(t, byte(tick)+byte(i), d[4+i])
		}
	})
}

func TestSlowTicksAreCountedNotBunched(t *testing.T) {
	tr := nt.Find("mem")
	f := newFixture(t, tr, rooms.Options{TickRate: 50})
	f.game.sleep = func(tick uint32) time.Duration {
		if tick%10 == 0 {
			return 70 * time.Millisecond // three and a half periods
		}
		return 0
	}
	p := f.player(t)
	p.join(t, "test", "r")
	var ticks []uint32
	deadline := time.After(time.Second)
loop:
	for {
		select {
		case tk := <-p.snaps:
			ticks = append(ticks, tk)
		case <-deadline:
			break loop
		}
	}
	info := f.hub.Room("r").Info()
	require.Greater(t, info.LateTicks, uint64(0), "late ticks counted")
	jumps := 0
	for i := 1; i < len(ticks); i++ {
		if ticks[i]-ticks[i-1] > 1 {
			jumps++
		}
	}
	require.Greater(t, jumps, 0, "missed ticks are skipped, not run back to back")
	require.LessOrEqual(t, len(ticks), 50, "no more than one snapshot per tick period")
}

func TestStuckMemberDoesNotBlockTheRoom(t *testing.T) {
	tr := nt.Find("mem")
	cfg := &netcode.Config{}
	f := newFixtureCfg(t, tr, rooms.Options{TickRate: 50}, cfg)
	// The first client's datagram sends block as if its path were jammed.
	stuck := make(chan struct{})
	defer close(stuck)
	var blocked atomic.Int32
	cfg.Listeners[0].(*mem.Listener).SendDatagramHook = func(s *mem.Session, p []byte) error {
		if s.RemoteAddr().String() == "client-1" {
			blocked.Add(1)
			<-stuck
			return net.ErrClosed
		}
		return s.Deliver(p)
	}
	jammed, healthy := f.player(t), f.player(t)
	jammed.join(t, "test", "r")
	healthy.join(t, "test", "r")
	nt.Eventually(t, func() bool { return blocked.Load() > 0 }, "the jammed member's sender blocked")
	start := nt.Recv(t, healthy.snaps, "snapshot")
	deadline := time.After(500 * time.Millisecond)
	last := start
loop:
	for {
		select {
		case tk := <-healthy.snaps:
			last = tk
		case <-deadline:
			break loop
		}
	}
	require.GreaterOrEqual(t, int(last-start), 15, "the healthy member kept getting snapshots at the tick rate")
	require.Zero(t, f.hub.Room("r").Info().LateTicks, "the tick loop never waited on the jammed member")
}

func TestEmptyRoomIsDisposedAfterGrace(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{TickRate: 50, EmptyGrace: 100 * time.Millisecond})
		p := f.player(t)
		p.join(t, "test", "brief")
		require.NotNil(t, f.hub.Room("brief"))
		require.NoError(t, rooms.Leave(context.Background(), p.Client))
		nt.Eventually(t, func() bool { return f.hub.Room("brief") == nil }, "empty room disposed")
		p.join(t, "test", "brief") // a new room of the same name can be made
		require.NotNil(t, f.hub.Room("brief"))
	})
}

func TestGameRoomCannotTakeAPrivateRoomName(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{})
		victim, attacker := f.player(t), f.player(t)
		_, err := rooms.Join(context.Background(), attacker.Client, "test", victim.ID().String())
		var re *netcode.RemoteError
		require.ErrorAs(t, err, &re)
		require.Contains(t, re.Message, "connection id")
		require.NoError(t, f.hub.To(victim.ID().String()).Emit("dm", []byte("private")))
		require.Equal(t, "private", nt.Recv(t, victim.dm, "dm"))
		nt.Never(t, attacker.dm, 100*time.Millisecond, "another connection's private message")
	})
}

func TestRefusedJoinKeepsTheCurrentRoom(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{MaxMembers: 1})
		a, b := f.player(t), f.player(t)
		a.join(t, "test", "mine")
		b.join(t, "test", "full")
		_, err := rooms.Join(context.Background(), a.Client, "test", "full")
		require.Error(t, err)
		require.Equal(t, "mine", f.hub.GameOf(f.srv.Conn(a.ID())).Name())
		jr := a.join(t, "test", "mine")
		require.Equal(t, 1, jr.Members, "rejoining the room one is in changes nothing")
	})
}

func TestSnapshotsFollowARoomChange(t *testing.T) {
	tr := nt.Find("mem")
	f := newFixture(t, tr, rooms.Options{TickRate: 100})
	p := f.player(t)
	p.join(t, "test", "old")
	time.Sleep(300 * time.Millisecond) // the old room's ticks run ahead
	p.join(t, "test", "new")
	// The new room counts from its own start; its snapshots must arrive
	// though their ticks are lower than the old room's. One of the old
	// room's may still be on its way, as datagrams and the join's reply
	// travel apart.
	deadline := time.After(10 * time.Second)
	for {
		select {
		case tick := <-p.snaps:
			if tick < 30 {
				return
			}
		case <-deadline:
			t.Fatal("no snapshot from the new room, whose ticks are below the old room's")
		}
	}
}

// The client's clock estimate and interpolation over a live room.
func TestInterpolationAndClock(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		f := newFixture(t, tr, rooms.Options{TickRate: 50})
		p := f.player(t)
		_, ok := p.Interpolate(time.Now())
		require.False(t, ok, "nothing to interpolate before the first snapshot")
		p.join(t, "test", "r")
		time.Sleep(600 * time.Millisecond) // snapshots and a few PINGs
		now := time.Now()
		skew := p.ServerTime(now).Sub(now)
		require.Less(t, skew.Abs(), 20*time.Millisecond, "one machine, one clock: the estimate is close")
		// A window of 30 frames at 60 Hz passes with fewer than a third of
		// them underrun. A loaded machine can stall the process for a
		// good part of half a second, so three windows are allowed, and
		// one must pass; an interpolation that lags its stream fails all.
		frames, best := 0, 30
		for w := 0; w < 3 && best >= 10; w++ {
			underruns := 0
			for i := 0; i < 30; i++ {
				in, ok := p.Interpolate(time.Now())
				require.True(t, ok)
				frames++
				if in.Underrun {
					underruns++
					time.Sleep(time.Second / 60)
					continue
				}
				require.GreaterOrEqual(t, in.Alpha, 0.0)
				require.LessOrEqual(t, in.Alpha, 1.0)
				require.False(t, in.To.Time.Before(in.From.Time))
				require.False(t, in.RenderTime.Before(in.From.Time))
				require.True(t, in.RenderTime.Before(in.To.Time) || in.RenderTime.Equal(in.To.Time))
				require.Positive(t, in.Delay, "a snapshot newer than the render time is held")
				require.GreaterOrEqual(t, in.Target, 20*time.Millisecond, "at least a 20 ms interval behind the stream")
				require.Equal(t, binary.BigEndian.Uint32(in.To.Data), in.To.Tick, "the frame's data is its tick's snapshot")
				time.Sleep(time.Second / 60)
			}
			best = min(best, underruns)
		}
		require.Less(t, best, 10, "underruns in the best window of 30 frames")
		st := p.Stats()
		require.EqualValues(t, frames, st.InterpFrames)
		require.Greater(t, st.RTT, time.Duration(0), "datagram acks measured a round trip")
	})
}

// A member whose network drops for 5 s stays in its room: the game is told
// it is away and then back, the room counts it away meanwhile (the server
// takes it for away after 3 s of silence), the other member sees no
// member_left or member_joined, and snapshots reach it again after the
// resume, as the same connection.
func TestAwayMemberStaysInRoom(t *testing.T) {
	for _, name := range []string{"quic", "kcp"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nt.Find(name), rooms.Options{})
			a := f.player(t)
			a.join(t, "test", "r")
			dark := impair.NewNetwork(impair.Blackout{Start: 100 * time.Millisecond, Length: 5 * time.Second})
			f.tr = nt.Impaired(nt.Find(name), impair.Config{Network: dark})
			b := f.player(t)
			b.join(t, "test", "r")
			require.Equal(t, b.ID().String(), nt.Recv(t, a.joined, "member_joined"))
			id := b.ID().String()
			nt.Recv(t, b.snaps, "a snapshot before the drop")

			dark.Start(time.Now())
			room := f.hub.Room("r")
			nt.Eventually(t, func() bool { return room.Info().Away == 1 }, "b counted away")
			require.Equal(t, []string{"away " + id}, f.game.awayLog())

			nt.Eventually(t, func() bool { return room.Info().Away == 0 }, "b back")
			require.Equal(t, []string{"away " + id, "back " + id}, f.game.awayLog())
			require.Equal(t, id, b.ID().String(), "the same connection")
			require.Equal(t, 2, room.Info().Members)
			for len(b.snaps) > 0 { // drain what came before the drop
				<-b.snaps
			}
			nt.Recv(t, b.snaps, "a snapshot after the resume")
			nt.Never(t, a.left, 200*time.Millisecond, "a member_left for a resume")
			require.Empty(t, a.joined, "a member_joined for a resume")
		})
	}
}

// A member away past the resume window leaves its room once: the other
// member sees one member_left, and the game a Leave after the Away.
func TestAwayMemberExpiresLeavesOnce(t *testing.T) {
	f := newFixtureCfg(t, nt.Find("kcp"), rooms.Options{}, &netcode.Config{ResumeWindow: time.Second})
	a := f.player(t)
	a.join(t, "test", "r")
	dark := impair.NewNetwork(impair.Blackout{Length: time.Minute})
	f.tr = nt.Impaired(nt.Find("kcp"), impair.Config{Network: dark})
	b := f.player(t)
	b.join(t, "test", "r")
	id := b.ID().String()
	require.Equal(t, id, nt.Recv(t, a.joined, "member_joined"))
	dark.Start(time.Now())
	require.Equal(t, id, nt.Recv(t, a.left, "member_left"))
	nt.Never(t, a.left, 300*time.Millisecond, "a second member_left")
	require.Equal(t, []string{"away " + id}, f.game.awayLog())
	room := f.hub.Room("r")
	require.Equal(t, 1, room.Info().Members)
	require.Zero(t, room.Info().Away)
	f.game.mu.Lock()
	require.Equal(t, 1, f.game.members, "the game saw b leave")
	f.game.mu.Unlock()
}

// heldDirectory is a cluster directory whose claims wait until the test
// lets them through, as a claim waits on NATS.
type heldDirectory struct {
	entered chan struct{}
	release chan struct{}
}

func (d heldDirectory) Claim(*netcode.Conn, string, string) (*rooms.Redirect, error) {
	d.entered <- struct{}{}
	<-d.release
	return nil, nil
}

func (heldDirectory) Release(string) {}

// A connection that ends while its join waits on the directory is not
// left in the room once the claim returns: its disconnect hook ran while
// it was in none, and the room would otherwise keep a member that is
// gone, counted, sent snapshots and holding a place, for as long as the
// room lives.
func TestJoinEndingAfterDisconnectLeavesNoMember(t *testing.T) {
	dir := heldDirectory{entered: make(chan struct{}, 1), release: make(chan struct{})}
	game := &recorder{}
	var hub *rooms.Hub
	conns := make(chan *netcode.Conn, 1)
	tr := nt.Find("quic")
	srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
		hub = rooms.NewHub(s, rooms.HubOptions{Directory: dir})
		require.NoError(t, hub.Define("test", func() rooms.Game { return game }, rooms.Options{}))
		s.OnConnect(func(c *netcode.Conn) { conns <- c })
	})
	t.Cleanup(hub.Close)
	cl := nt.Client(t, tr, srv, nil)
	conn := nt.Recv(t, conns, "the connection")
	joined := make(chan error, 1)
	go func() { // as a matchmaker beside the connection's reader would
		_, err := hub.JoinGame(conn, "test", "r")
		joined <- err
	}()
	nt.Recv(t, dir.entered, "the claim")
	require.NoError(t, cl.Close())
	nt.Eventually(t, func() bool { return srv.Metrics().ConnsActive == 0 }, "the connection ended")
	close(dir.release)
	require.Error(t, nt.Recv(t, joined, "the join's end"), "a join that ended on a closed connection")
	require.NotNil(t, hub.Room("r"), "the room was made")
	require.Zero(t, hub.Room("r").Info().Members, "no member left behind")
	require.Nil(t, hub.GameOf(conn))
	require.Empty(t, hub.RoomsOf(conn))
	game.mu.Lock()
	defer game.mu.Unlock()
	require.Zero(t, game.members, "the game saw the player leave")
}
