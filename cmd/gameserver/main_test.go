package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport/websocket"
	"github.com/roomwire/roomwire/netcode/transport/webtransport"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nt.GoleakOptions()...)
}

func TestFlagsAndEnvironment(t *testing.T) {
	t.Setenv("ROOMWIRE_TICK", "60")
	t.Setenv("ROOMWIRE_KCP", "")
	o, err := parseFlags([]string{"-max-members", "8"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 60, o.tick, "from the environment")
	require.Equal(t, 8, o.maxMembers, "from the command line")
	require.Equal(t, "", o.kcpAddr, "an empty variable disables KCP")
	require.True(t, o.dev)
	require.True(t, o.webtransport, "WebTransport is on by default")
	require.Equal(t, netcode.DefaultResumeWindow, o.resume, "resume is on by default")
	require.Equal(t, netcode.DefaultResumeWindow, resumeWindow(o.resume))

	o, err = parseFlags([]string{"-resume", "0"}, io.Discard)
	require.NoError(t, err)
	require.Negative(t, resumeWindow(o.resume), "-resume 0 turns resume off")

	o, err = parseFlags([]string{"-webtransport=false", "-origins", "https://a.example, https://b.example:8443"}, io.Discard)
	require.NoError(t, err)
	require.False(t, o.webtransport)
	require.Equal(t, []string{"https://a.example", "https://b.example:8443"}, o.origins)

	o, err = parseFlags([]string{"-ws-plain", "never"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, websocket.PlainNever, o.wsPlain)
	require.True(t, o.ws)
	_, err = parseFlags([]string{"-ws-plain", "sometimes"}, io.Discard)
	require.ErrorContains(t, err, "-ws-plain")

	t.Setenv("ROOMWIRE_DASHBOARD_TOKEN", "from-env")
	o, err = parseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "from-env", o.dashboardToken)
	o, err = parseFlags([]string{"-dashboard-token", "from-flag"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "from-flag", o.dashboardToken, "the command line wins")

	t.Setenv("ROOMWIRE_TICK", "fast")
	_, err = parseFlags(nil, io.Discard)
	require.ErrorContains(t, err, "ROOMWIRE_TICK")

	var help bytes.Buffer
	_, err = parseFlags([]string{"-h"}, &help)
	require.Error(t, err)
	for _, name := range []string{"-quic", "-kcp", "-http", "-http-tls", "-ws", "-ws-plain", "-tick", "-cert", "-token-key", "-props", "-delta", "-pprof", "-webtransport", "-origins", "-resume", "-dashboard-token", "ROOMWIRE_QUIC", "ROOMWIRE_DASHBOARD_TOKEN"} {
		require.Contains(t, help.String(), name)
	}
}

// The server as the binary runs it: the demo game on every transport, the
// HTTP side port, and on shutdown every client told why, within 5 s.
func TestServeAndShutdown(t *testing.T) {
	o := options{quicAddr: "127.0.0.1:0", kcpAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", webtransport: true, ws: true, tick: 30, maxMembers: 16, dev: true, protocolID: token.DefaultProtocolID, logLevel: "error"}
	a, stop := serveForTest(t, o)

	dial := func(url string, origin string) *netcode.Client {
		tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: token.DefaultProtocolID}, time.Now())
		require.NoError(t, err)
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		cl, err := netcode.Dial(dctx, url, netcode.ClientConfig{InsecureSkipVerify: true, Token: tok, WebTransport: webtransport.Config{Origin: origin}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cl.Close() })
		return cl
	}
	// A page of the side port (-dev) on WebTransport, on the QUIC port.
	_, httpPort, _ := net.SplitHostPort(a.http.String())
	q, k := dial("quic://"+a.quic.String(), ""), dial("kcp://"+a.kcp.String(), "")
	w := dial("ws://"+a.http.String()+"/ws", "")
	require.Equal(t, "ws", w.Transport())
	wt := dial("https://"+a.quic.String()+"/wt", "http://localhost:"+httpPort)
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	_, err := netcode.Dial(dctx, "https://"+a.quic.String()+"/wt", netcode.ClientConfig{InsecureSkipVerify: true, WebTransport: webtransport.Config{Origin: "https://elsewhere.example"}})
	var se *webtransport.StatusError
	require.ErrorAs(t, err, &se, "a page of another origin is refused")
	require.Equal(t, http.StatusForbidden, se.StatusCode)
	for _, cl := range []*netcode.Client{q, k, wt, w} {
		jr, err := rooms.Join(context.Background(), cl, arena.Kind, "demo")
		require.NoError(t, err)
		require.Equal(t, "demo", jr.Room)
	}
	rep, err := q.Request(context.Background(), "ping", []byte("x"))
	require.NoError(t, err)
	require.Equal(t, "x", string(rep))

	resp, err := http.Get("http://" + a.http.String() + "/rooms")
	require.NoError(t, err)
	var list []rooms.RoomInfo
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	resp.Body.Close()
	require.Len(t, list, 1)
	require.Equal(t, 4, list[0].Members, "QUIC, KCP, WebTransport and WebSocket players in one room")
	resp, err = http.Get("http://" + a.http.String() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = http.Get("http://" + a.http.String() + "/debug/pprof/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "no profiles without -pprof")

	start := time.Now()
	stop() // what SIGINT does
	require.Less(t, time.Since(start), 5*time.Second)
	for _, cl := range []*netcode.Client{q, k, wt, w} {
		<-cl.Done()
		var ce *netcode.CloseError
		require.ErrorAs(t, cl.Err(), &ce)
		require.Equal(t, "server shutting down", ce.Reason)
	}
}

// In development mode the pages WebSocket accepts are the side port's own.
func TestDevOrigins(t *testing.T) {
	require.Equal(t, []string{"http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"},
		devOrigins(&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, false))
	require.Equal(t, []string{"https://127.0.0.1:9000", "https://localhost:9000", "https://[::1]:9000", "https://192.168.1.5:9000"},
		devOrigins(&net.TCPAddr{IP: net.IPv4(192, 168, 1, 5), Port: 9000}, true))
}

// With -http-tls the side port speaks TLS, and WebSocket clients connect
// with wss://: here the only transport.
func TestWebSocketOverTLS(t *testing.T) {
	o := options{httpAddr: "127.0.0.1:0", httpTLS: true, ws: true, tick: 30, maxMembers: 16, dev: true, protocolID: token.DefaultProtocolID}
	srv, stop := serveForTest(t, o)
	defer stop()
	addr := srv.http
	tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: token.DefaultProtocolID}, time.Now())
	require.NoError(t, err)
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	cl, err := netcode.Dial(dctx, "wss://"+addr.String()+"/ws", netcode.ClientConfig{InsecureSkipVerify: true, Token: tok})
	require.NoError(t, err)
	defer cl.Close()
	require.Equal(t, "wss", cl.Transport())
	jr, err := rooms.Join(dctx, cl, arena.Kind, "tls")
	require.NoError(t, err)
	require.Equal(t, "tls", jr.Room)
}

// Two game servers in one -cluster, each with its embedded NATS routed to
// the other's: a room joined through either node is the one room, on the
// node that made it; /rooms on both lists it with its owner, /nodes both
// nodes, and so does each node's dashboard.
func TestClusterOfTwo(t *testing.T) {
	freePort := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	routes := []string{fmt.Sprintf("127.0.0.1:%d", freePort()), fmt.Sprintf("127.0.0.1:%d", freePort())}
	type addrs struct{ quic, http net.Addr }
	nodes := make([]addrs, 2)
	ready := []chan addrs{make(chan addrs, 1), make(chan addrs, 1)}
	for i := range 2 { // at once: each waits for the other's NATS to form JetStream's cluster
		o := options{quicAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", ws: true, tick: 30, maxMembers: 16, dev: true, protocolID: token.DefaultProtocolID,
			clusterName: "t", nodeID: fmt.Sprintf("n%d", i+1), natsListen: "127.0.0.1:0", natsCluster: routes[i], natsRoutes: []string{"nats://" + routes[1-i]}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- serve(ctx, o, slog.New(slog.DiscardHandler), func(q, _, h net.Addr) { ready[i] <- addrs{q, h} })
		}()
		t.Cleanup(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	for i := range 2 {
		select {
		case nodes[i] = <-ready[i]:
		case <-time.After(60 * time.Second):
			t.Fatal("node not ready")
		}
	}
	cfg := func() netcode.ClientConfig {
		tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: token.DefaultProtocolID}, time.Now())
		require.NoError(t, err)
		return netcode.ClientConfig{InsecureSkipVerify: true, Token: tok}
	}
	for _, n := range nodes {
		c := cfg()
		cl, err := netcode.Dial(context.Background(), "quic://"+n.quic.String(), c)
		require.NoError(t, err)
		cl, jr, err := rooms.JoinFollow(context.Background(), cl, c, nil, arena.Kind, "shared")
		require.NoError(t, err)
		t.Cleanup(func() { _ = cl.Close() })
		require.Equal(t, "shared", jr.Room)
	}
	getJSON := func(url string, v any) {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	}
	for i, n := range nodes {
		var list []struct {
			Name, Owner string
			Members     int
		}
		getJSON("http://"+n.http.String()+"/rooms", &list)
		require.Len(t, list, 1)
		require.Equal(t, "shared", list[0].Name)
		require.Equal(t, "n1", list[0].Owner)
		if i == 0 {
			require.Equal(t, 2, list[0].Members, "both clients in the room, on the node that made it")
		}
		var ns []struct {
			ID    string
			Addrs []string
		}
		nt.Eventually(t, func() bool {
			getJSON("http://"+n.http.String()+"/nodes", &ns)
			return len(ns) == 2
		}, "both nodes listed")
		require.Equal(t, "n1", ns[0].ID)
		require.Contains(t, ns[0].Addrs, "quic://"+nodes[0].quic.String())
	}
	// The dashboard's data on each node: both nodes, the room with its
	// owner, and its members on the node that has them.
	for i, n := range nodes {
		var d dashboardData
		nt.Eventually(t, func() bool {
			d = dashboardData{}
			getJSON("http://"+n.http.String()+"/dashboard/data.json?room=shared", &d)
			return len(d.Nodes) == 2
		}, "both nodes on the dashboard")
		require.Equal(t, fmt.Sprintf("n%d", i+1), d.Node)
		require.Equal(t, []string{"n1", "n2"}, []string{d.Nodes[0].ID, d.Nodes[1].ID})
		require.Len(t, d.Rooms, 1)
		require.Equal(t, "shared", d.Rooms[0].Name)
		require.Equal(t, "n1", d.Rooms[0].Owner)
		if i == 0 {
			require.NotNil(t, d.Room)
			require.Len(t, d.Room.Members, 2)
		} else {
			require.Nil(t, d.Room)
			require.Contains(t, d.RoomError, "is on node n1")
		}
	}
	resp, err := http.Post("http://"+nodes[1].http.String()+"/drain", "", nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var ns []struct {
		ID       string
		Draining bool
	}
	nt.Eventually(t, func() bool {
		getJSON("http://"+nodes[0].http.String()+"/nodes", &ns)
		return len(ns) == 2 && ns[1].ID == "n2" && ns[1].Draining && !ns[0].Draining
	}, "n2 listed draining after POST /drain")
}
