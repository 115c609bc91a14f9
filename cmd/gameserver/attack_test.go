package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
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

// gameServer runs the game server as the binary does, with the default
// limits, on loopback ports of its own, until the test ends.
type gameServer struct {
	quic, kcp, http net.Addr
}

func startGameServer(t *testing.T) gameServer {
	t.Helper()
	g, _ := serveForTest(t, options{quicAddr: "127.0.0.1:0", kcpAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", tick: 30, maxMembers: 16, dev: true, protocolID: token.DefaultProtocolID, logLevel: "error"})
	return g
}

// serveForTest runs serve with o, as the binary does, until stop, which
// cancels it (what SIGINT does) and requires it to return without error; the
// test's cleanup stops it too if the test did not. It returns once the
// server listens.
func serveForTest(t *testing.T, o options) (g gameServer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan gameServer, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, o, slog.New(slog.DiscardHandler), func(q, k, h net.Addr) { ready <- gameServer{q, k, h} })
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, nt.Recv(t, done, "serve to return"))
		})
	}
	t.Cleanup(stop)
	return nt.Recv(t, ready, "the server ready"), stop
}

// dial connects a client, over QUIC for even i and KCP for odd, with a
// token of its own.
func (g gameServer) dial(t *testing.T, i int, cfg netcode.ClientConfig) *netcode.Client {
	t.Helper()
	tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: token.DefaultProtocolID, ClientID: uint64(i)}, time.Now())
	require.NoError(t, err)
	cfg.InsecureSkipVerify, cfg.Token = true, tok
	url := "quic://" + g.quic.String()
	if i%2 == 1 {
		url = "kcp://" + g.kcp.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := netcode.Dial(ctx, url, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func (g gameServer) metrics(t *testing.T) netcode.Metrics {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+g.http.String()+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m struct{ Server netcode.Metrics }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return m.Server
}

func (g gameServer) rooms(t *testing.T) []rooms.RoomInfo {
	t.Helper()
	resp, err := http.Get("http://" + g.http.String() + "/rooms")
	require.NoError(t, err)
	defer resp.Body.Close()
	var list []rooms.RoomInfo
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	return list
}

// honestPlayers are n clients in one arena room, counting what they get.
type honestPlayers struct {
	clients   []*netcode.Client
	snapshots []atomic.Int64
	chats     atomic.Int64
}

func joinHonest(t *testing.T, g gameServer, n int, room string) *honestPlayers {
	t.Helper()
	h := &honestPlayers{snapshots: make([]atomic.Int64, n)}
	for i := 0; i < n; i++ {
		cl := g.dial(t, i, netcode.ClientConfig{})
		cl.OnSnapshot(func(uint32, []byte) { h.snapshots[i].Add(1) })
		cl.On("chat", func([]byte) { h.chats.Add(1) })
		_, err := rooms.Join(context.Background(), cl, arena.Kind, room)
		require.NoError(t, err)
		h.clients = append(h.clients, cl)
	}
	return h
}

// window counts each player's snapshots over d, while each pings every
// 100 ms, and checks that every one got at least 95 % of the 30 a second and
// that none was disconnected. It returns the worst player's snapshot ratio
// and the pings' RTT p99.
func (h *honestPlayers) window(t *testing.T, d time.Duration, during func()) (worst float64, p99 time.Duration) {
	t.Helper()
	before := make([]int64, len(h.snapshots))
	for i := range h.snapshots {
		before[i] = h.snapshots[i].Load()
	}
	start := time.Now()
	stop := make(chan struct{})
	var mu sync.Mutex
	var rtts []time.Duration
	var wg sync.WaitGroup
	for _, cl := range h.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(100 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
				}
				at := time.Now()
				if _, err := cl.Request(context.Background(), "ping", []byte("p")); err == nil {
					mu.Lock()
					rtts = append(rtts, time.Since(at))
					mu.Unlock()
				}
			}
		}()
	}
	if during != nil {
		during()
	}
	if rest := d - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	want := 0.95 * 30 * elapsed.Seconds()
	worst = 1
	for i, cl := range h.clients {
		require.NoError(t, cl.Err(), "honest player %d disconnected", i)
		got := h.snapshots[i].Load() - before[i]
		require.GreaterOrEqual(t, float64(got), want, "honest player %d: %d snapshots in %v", i, got, elapsed)
		worst = min(worst, float64(got)/(30*elapsed.Seconds()))
	}
	require.NotEmpty(t, rtts, "the honest players' pings were answered")
	slices.Sort(rtts)
	return worst, rtts[len(rtts)*99/100]
}

// One client floods chat into its room (the demo relays chat to the room):
// the sender pays. Its room-mates stay connected and keep ≥ 95 % of their
// snapshots; the flood is throttled to the chat budget and the attacker is
// closed, over budget, within a second.
func TestChatFloodSenderPays(t *testing.T) {
	g := startGameServer(t)
	honest := joinHonest(t, g, 10, "flood")
	attacker := g.dial(t, 10, netcode.ClientConfig{MaxQueued: 256 << 20})
	_, err := rooms.Join(context.Background(), attacker, arena.Kind, "flood")
	require.NoError(t, err)

	msg := make([]byte, 100)
	var sent int
	var closedAfter time.Duration
	worst, p99 := honest.window(t, 5*time.Second, func() {
		start := time.Now()
		for sent = 0; sent < 2_000_000 && time.Since(start) < 2*time.Second; sent++ {
			if attacker.Emit("chat", msg) != nil {
				break
			}
		}
		select {
		case <-attacker.Done():
		case <-time.After(time.Second):
		}
		closedAfter = time.Since(start)
	})
	var ce *netcode.CloseError
	require.ErrorAs(t, attacker.Err(), &ce, "the attacker is closed")
	require.Equal(t, netcode.CloseOverBudget, ce.Code, "reason %q", ce.Reason)
	require.Less(t, closedAfter, time.Second+100*time.Millisecond, "within a second of the flood's start")
	relayed := honest.chats.Load()
	require.LessOrEqual(t, relayed, int64(10*(20+10*5)), "at most the chat budget reached each room-mate")
	m := g.metrics(t)
	require.Greater(t, m.Drops["budget_event:chat"], uint64(0))
	require.Equal(t, uint64(1), m.Closes["over_budget"])
	t.Logf("attacker sent %d chats, closed after %v; room-mates got %d in all; honest snapshots ≥ %.1f %%, ping p99 %v; drops %v",
		sent, closedAfter, relayed, 100*worst, p99, m.Drops)
}

// Four clients join-or-create distinct room names: two as fast as they can,
// which the join budget throttles and then closes, and two at 5 a second,
// within the join budget, which the cap on rooms created a minute refuses.
// The rooms alive stay within the caps, and the honest players' snapshots
// stay at ≥ 95 %.
func TestRoomFloodCapped(t *testing.T) {
	g := startGameServer(t)
	honest := joinHonest(t, g, 10, "honest")
	const attackers, perMinute = 4, 10
	var created, refused atomic.Int64
	attackerClients := make([]*netcode.Client, attackers)
	for a := range attackerClients {
		attackerClients[a] = g.dial(t, 20+a, netcode.ClientConfig{})
	}
	worst, p99 := honest.window(t, 5*time.Second, func() {
		var wg sync.WaitGroup
		for a, cl := range attackerClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				for n := 0; n < 10_000 && time.Since(start) < 2500*time.Millisecond; n++ {
					if a >= 2 {
						time.Sleep(200 * time.Millisecond)
					}
					_, err := rooms.Join(context.Background(), cl, arena.Kind, fmt.Sprintf("flood-%d-%d", a, n))
					var re *netcode.RemoteError
					switch {
					case err == nil:
						created.Add(1)
					case errors.As(err, &re):
						refused.Add(1)
					default:
						return // closed: over budget
					}
				}
			}()
		}
		wg.Wait()
	})
	require.LessOrEqual(t, created.Load(), int64(attackers*perMinute), "each attacker created at most its rooms a minute")
	require.Greater(t, refused.Load(), int64(0))
	alive := len(g.rooms(t))
	require.LessOrEqual(t, alive, attackers*perMinute+1, "rooms alive")
	m := g.metrics(t)
	require.Greater(t, m.Drops["room_creates"], uint64(0), "the paced attackers hit the creation cap; drops %v", m.Drops)
	require.Greater(t, m.Drops["budget_event:$join"], uint64(0), "the fast ones the join budget")
	require.Equal(t, uint64(2), m.Closes["over_budget"], "the fast ones were closed")
	t.Logf("created %d, refused %d, rooms alive %d; honest snapshots ≥ %.1f %%, ping p99 %v; drops %v, closes %v",
		created.Load(), refused.Load(), alive, 100*worst, p99, m.Drops, m.Closes)
}
