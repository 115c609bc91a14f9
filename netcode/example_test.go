package netcode_test

import (
	"context"
	"fmt"
	"time"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
)

// A server with a named event and a request handler, and a client that
// talks to it over QUIC: events both ways, and a request with its reply.
func Example() {
	ctx := context.Background()
	tlsConf, _ := netcode.DevTLSConfig() // a self-signed certificate, for development
	srv, _ := netcode.NewServer(netcode.Config{QUICAddr: "127.0.0.1:0", TLS: tlsConf})
	srv.On("hello", func(c *netcode.Conn, name []byte) {
		_ = c.Emit("welcome", append([]byte("hi, "), name...))
	})
	srv.Handle("add", func(_ *netcode.Conn, req []byte) ([]byte, error) {
		return []byte{req[0] + req[1]}, nil
	})
	go srv.Serve(ctx)
	defer srv.Close()

	cl, err := netcode.Dial(ctx, "quic://"+srv.Addrs()[0].String(), netcode.ClientConfig{InsecureSkipVerify: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()
	welcome := make(chan string, 1)
	cl.On("welcome", func(p []byte) { welcome <- string(p) })
	_ = cl.Emit("hello", []byte("ada"))
	sum, err := cl.Request(ctx, "add", []byte{2, 3})
	fmt.Println(<-welcome, sum[0], err, cl.Transport())
	// Output: hi, ada 5 <nil> quic
}

// A server that admits only clients with a connect token its backend
// minted (a matchmaker that shares the key), over KCP, and learns who
// each client is from its token.
func Example_tokens() {
	ctx := context.Background()
	key := token.NewKey()         // the secret the matchmaker and the servers share
	const protocolID = 0x524f4f4d // the game and its version
	srv, _ := netcode.NewServer(netcode.Config{
		KCPAddr: "127.0.0.1:0",
		Tokens:  &netcode.Tokens{Key: key, ProtocolID: protocolID},
	})
	players := make(chan uint64, 1)
	srv.OnConnect(func(c *netcode.Conn) { players <- c.Identity().Token.ClientID })
	go srv.Serve(ctx)
	defer srv.Close()

	// The matchmaker, for player 42: a token for this server, valid 45 s.
	addr := "kcp://" + srv.Addrs()[0].String()
	tok, _ := token.Issue(key, token.Params{ProtocolID: protocolID, ClientID: 42, Servers: []string{addr}}, time.Now())

	cl, err := netcode.Dial(ctx, addr, netcode.ClientConfig{Token: tok})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()
	fmt.Println("player", <-players, "on", cl.Transport())

	_, err = netcode.Dial(ctx, addr, netcode.ClientConfig{})
	fmt.Println("without a token:", err != nil)
	// Output:
	// player 42 on kcp
	// without a token: true
}

// A client renders the server's snapshots interpolated: each frame, it asks
// for the two snapshots around the render time and blends them by Alpha.
func ExampleClient_Interpolate() {
	ctx := context.Background()
	tlsConf, _ := netcode.DevTLSConfig()
	srv, _ := netcode.NewServer(netcode.Config{QUICAddr: "127.0.0.1:0", TLS: tlsConf})
	srv.OnConnect(func(c *netcode.Conn) {
		go func() { // a stand-in for a room's tick loop: 30 snapshots a second
			for tick := uint32(1); c.Err() == nil && tick <= 60; tick++ {
				s := netcode.NewSnapshot(tick)
				s.Data = append(s.Data, byte(tick)) // the game state: one byte
				c.SendSnapshot(s)
				s.Release()
				time.Sleep(time.Second / 30)
			}
		}()
	})
	go srv.Serve(ctx)
	defer srv.Close()

	cl, _ := netcode.Dial(ctx, "quic://"+srv.Addrs()[0].String(), netcode.ClientConfig{InsecureSkipVerify: true})
	defer cl.Close()
	var blended bool
	for frame := 0; frame < 120 && !blended; frame++ { // the render loop, at 60 frames a second
		if in, ok := cl.Interpolate(time.Now()); ok && in.To.Tick > in.From.Tick {
			x := float64(in.From.Data[0]) + in.Alpha*float64(in.To.Data[0]-in.From.Data[0])
			blended = x >= float64(in.From.Data[0]) && x <= float64(in.To.Data[0])
		}
		time.Sleep(time.Second / 60)
	}
	fmt.Println("rendered between two snapshots:", blended)
	// Output: rendered between two snapshots: true
}
