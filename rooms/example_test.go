package rooms_test

import (
	"context"
	"fmt"

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
