package netcode_test

import (
	"bytes"
	"context"
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
// on as before. On QUIC the reader stays, parked in Read.
func TestIdleReaderParks(t *testing.T) {
	for _, c := range []struct {
		name    string
		readers int
	}{{"kcp", 0}, {"quic", 1}} {
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
