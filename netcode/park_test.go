package netcode_test

import (
	"bytes"
	"context"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
)

// serverReaders counts the goroutines that run a server connection's read
// loop.
func serverReaders() int {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	return strings.Count(b.String(), "netcode.(*Conn).serveReads")
}

// On KCP, which says when its stream is readable, an idle connection's
// read loop parks: the server keeps no goroutine for it, and a new one
// reads what comes next, each time. Requests, events and the close all go
// on as before. So on WebSocket, where Linux's poll loops read the
// sockets, and on QUIC and WebTransport, where a small goroutine of the
// session's reads the stream's next byte ahead instead of the read loop.
func TestIdleReaderParks(t *testing.T) {
	wsReaders := 0
	if runtime.GOOS != "linux" {
		wsReaders = 1 // the session's Read reads its socket
	}
	for _, c := range []struct {
		name    string
		readers int
	}{{"kcp", 0}, {"ws", wsReaders}, {"quic", 0}, {"webtransport", 0}} {
		t.Run(c.name, func(t *testing.T) {
			tr := nt.Find(c.name)
			ended := make(chan *netcode.CloseError, 1)
			got := make(chan []byte, 8)
			srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
				echo(s)
				s.On("note", func(conn *netcode.Conn, p []byte) {
					got <- bytes.Clone(p)
					_ = conn.Emit("noted", p)
				})
				s.OnDisconnect(func(_ *netcode.Conn, ce *netcode.CloseError) { ended <- ce })
			})
			noted := make(chan []byte, 8)
			cl := nt.Client(t, tr, srv, func(cl *netcode.Client) {
				cl.On("noted", func(p []byte) { noted <- bytes.Clone(p) })
			})
			for i := range 3 {
				nt.Eventually(t, func() bool { return serverReaders() == c.readers }, "%d server readers while idle", c.readers)
				msg := []byte{byte(i), 1, 2, 3}
				rep, err := cl.Request(context.Background(), "echo", msg)
				require.NoError(t, err)
				require.Equal(t, msg, rep)
				require.NoError(t, cl.Emit("note", msg))
				require.Equal(t, msg, nt.Recv(t, got, "the event"))
				require.Equal(t, msg, nt.Recv(t, noted, "the server's answer"))
			}
			nt.Eventually(t, func() bool { return serverReaders() == c.readers }, "%d server readers while idle", c.readers)
			cl.Close()
			select {
			case ce := <-ended:
				require.Equal(t, netcode.CloseNormal, ce.Code, "the server-side close: %v", ce)
			case <-time.After(10 * time.Second):
				t.Fatal("the server did not end the parked connection")
			}
			nt.Eventually(t, func() bool { return serverReaders() == 0 }, "no server reader after the close")
		})
	}
}

// A busy stream keeps its read loop: requests back to back on KCP do not
// park it between frames, which would start a goroutine for each and add
// its scheduling to every round trip.
func TestBusyReaderDoesNotPark(t *testing.T) {
	tr := nt.Find("kcp")
	srv := nt.Server(t, tr, nil, echo)
	cl := nt.Client(t, tr, srv, nil)
	const requests = 200
	before := netcode.ReadLoopStarts()
	for i := range requests {
		rep, err := cl.Request(context.Background(), "echo", []byte{byte(i)})
		require.NoError(t, err)
		require.Equal(t, []byte{byte(i)}, rep)
	}
	require.Less(t, netcode.ReadLoopStarts()-before, uint64(requests/10), "read loops started for %d requests back to back", requests)
}

// An idle WebSocket client PINGs each second, so that a dead TCP path is
// found soon (PROTOCOL 14.8); the server answers on the reader's
// goroutine, its ACKED with the PONG, so the connection's writer goroutine
// is not woken for it and ends after its linger, as on every idle
// connection.
func TestIdleWebSocketWriterEnds(t *testing.T) {
	tr := nt.Find("ws")
	conns := make(chan *netcode.Conn, 1)
	srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
		s.OnConnect(func(c *netcode.Conn) { conns <- c })
	})
	cl := nt.Client(t, tr, srv, nil)
	conn := nt.Recv(t, conns, "the connection")
	pongs := func() uint64 { return cl.Stats().FramesReceived }
	start := pongs()
	// Past the writer's 2 s linger, with a PING a second meanwhile.
	deadline := time.Now().Add(10 * time.Second)
	for netcode.WriterRunning(conn) || pongs() < start+3 {
		require.True(t, time.Now().Before(deadline), "the server's writer still runs after %d frames to the idle client", pongs()-start)
		time.Sleep(50 * time.Millisecond)
	}
	for range 3 { // and it stays asleep across the next PINGs
		was := pongs()
		for pongs() == was {
			require.True(t, time.Now().Before(deadline), "no PONG")
			time.Sleep(10 * time.Millisecond)
		}
		require.False(t, netcode.WriterRunning(conn), "a PING woke the server's writer")
	}
}

// A client that sends a request every few hundred milliseconds, as a bot
// pings, has the ACKED for each go with its REPLY, in the reply's write on
// the reader's goroutine: the connection's writer goroutine is not woken
// 250 ms later for it, so it ends after its linger and stays asleep.
func TestRequestsLeaveTheWriterAsleep(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		conns := make(chan *netcode.Conn, 1)
		srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
			echo(s)
			s.OnConnect(func(c *netcode.Conn) { conns <- c })
		})
		cl := nt.Client(t, tr, srv, nil)
		conn := nt.Recv(t, conns, "the connection")
		ask := func(i int) {
			rep, err := cl.Request(context.Background(), "echo", []byte{byte(i)})
			require.NoError(t, err)
			require.Equal(t, []byte{byte(i)}, rep)
		}
		// Past the writer's 2 s linger, with a request every 400 ms.
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; netcode.WriterRunning(conn) || i < 3; i++ {
			require.True(t, time.Now().Before(deadline), "the server's writer still runs after %d requests", i)
			ask(i)
			time.Sleep(400 * time.Millisecond)
		}
		for i := range 4 { // each later request's ACKED, due 250 ms after it, went with its REPLY
			ask(i)
			time.Sleep(400 * time.Millisecond)
			require.False(t, netcode.WriterRunning(conn), "request %d woke the server's writer", i)
		}
	})
}
