package rooms_test

import (
	"context"
	"fmt"
	"time"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

// The README's library example, kept compiling and running here.
func Example() {
	ctx := context.Background()
	tlsConf, _ := netcode.DevTLSConfig()
	srv, _ := netcode.NewServer(netcode.Config{QUICAddr: "127.0.0.1:0", TLS: tlsConf})
	hub := rooms.NewHub(srv, rooms.HubOptions{})
	_ = hub.Define("arena", func() rooms.Game { return arena.New() }, rooms.Options{TickRate: 30, MaxMembers: 16})
	srv.Handle("ping", func(c *netcode.Conn, req []byte) ([]byte, error) { return req, nil })
	srv.On("chat", func(c *netcode.Conn, msg []byte) {
		if g := hub.GameOf(c); g != nil {
			_ = hub.To(g.Name()).Except(c).Emit("chat", msg)
		}
	})
	go srv.Serve(ctx)
	defer srv.Close()
	defer hub.Close()

	cl, _ := netcode.Dial(ctx, "quic://"+srv.Addrs()[0].String(), netcode.ClientConfig{InsecureSkipVerify: true})
	defer cl.Close()
	got := make(chan uint32, 1)
	cl.OnSnapshot(func(tick uint32, snap []byte) {
		select {
		case got <- tick:
		default:
		}
	})
	room, _ := rooms.Join(ctx, cl, "arena", "")
	reply, err := cl.Request(ctx, "ping", []byte("hi"))
	fmt.Println(room.Room, string(reply), err, <-got > 0)
	// Output: arena-1 hi <nil> true
}

// tagGame is a custom Game: each player holds a score, an input of 1
// scores a point, and the snapshot lists the scores in join order.
type tagGame struct {
	order  []*netcode.Conn
	scores map[*netcode.Conn]byte
}

func (g *tagGame) Join(p *netcode.Conn) error {
	if len(g.order) == 4 {
		return fmt.Errorf("tag: four players at most")
	}
	g.order = append(g.order, p)
	g.scores[p] = 0
	return nil
}

func (g *tagGame) Leave(p *netcode.Conn) {
	delete(g.scores, p)
	for i, q := range g.order {
		if q == p {
			g.order = append(g.order[:i], g.order[i+1:]...)
		}
	}
}

func (g *tagGame) Input(p *netcode.Conn, data []byte) {
	if len(data) == 1 && data[0] == 1 {
		g.scores[p]++
	}
}

func (g *tagGame) Tick(_ uint32, _ time.Duration, snap []byte) []byte {
	for _, p := range g.order {
		snap = append(snap, g.scores[p])
	}
	return snap
}

// A custom Game in a room: the room calls it one method at a time, never
// concurrently, so it needs no locks; the tick's snapshot goes to every
// member as a delta against what each acknowledged.
func Example_customGame() {
	ctx := context.Background()
	tlsConf, _ := netcode.DevTLSConfig()
	srv, _ := netcode.NewServer(netcode.Config{QUICAddr: "127.0.0.1:0", TLS: tlsConf})
	hub := rooms.NewHub(srv, rooms.HubOptions{})
	_ = hub.Define("tag", func() rooms.Game { return &tagGame{scores: map[*netcode.Conn]byte{}} }, rooms.Options{TickRate: 20})
	go srv.Serve(ctx)
	defer srv.Close()
	defer hub.Close()

	cl, _ := netcode.Dial(ctx, "quic://"+srv.Addrs()[0].String(), netcode.ClientConfig{InsecureSkipVerify: true})
	defer cl.Close()
	scores := make(chan byte, 64)
	cl.OnSnapshot(func(_ uint32, snap []byte) {
		if len(snap) == 1 {
			select {
			case scores <- snap[0]:
			default:
			}
		}
	})
	jr, _ := rooms.Join(ctx, cl, "tag", "playground")
	_ = cl.SendInput([]byte{1})
	for s := range scores {
		if s == 1 {
			break
		}
	}
	fmt.Println(jr.Room, jr.TickRate, "score 1")
	// Output: playground 20 score 1
}
