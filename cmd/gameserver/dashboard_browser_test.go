package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport/impair"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

// dashboardPage is the JSON line web/browsertest/dashboard.mjs prints:
// what the page showed, as text.
type dashboardPage struct {
	First, Second dashboardRead
	Detail        struct {
		Name, Info, Hash string
		Members          []map[string]string
	}
	Requests, Logs []string
}

type dashboardRead struct {
	Status, Node, Conns string
	Transports, Rooms   []map[string]string
	BwIn, BwOut         string
	RTTBars, LossBars   []int
	Drops, Closes       map[string]uint64
}

// The dashboard in Debian's headless chromium (driven by playwright-core,
// web/browsertest/dashboard.mjs) against the real game server with a
// -dashboard-token, while Go players play in three rooms over QUIC, KCP
// and WebSocket, one of them through a UDP proxy that adds 100 ms of round
// trip and loses a tenth of what the server sends it. The page, opened
// with ?token=, must show what the server has: the rooms and their
// members (as /rooms, the hub's list, says), the connections by
// transport, the drops and closes by reason, every connection in the RTT
// and loss histograms, bandwidth, and tick counters that move; a click on
// a room lists its players with their transports, round trips, loss and
// snapshot rates. Every request it makes goes to the server itself. The
// screenshots go to bin/dashboard/; docs/dashboard.png is dashboard.png of
// a run with ROOMWIRE_DASHBOARD_LINGER_MS=50000, which keeps the page open
// 50 s longer, so that its bandwidth line fills.
func TestDashboardBrowser(t *testing.T) {
	script, node, chromium, out := browserTools(t, "dashboard.mjs", "ROOMWIRE_DASHBOARD_OUT", "../../bin/dashboard")

	const secret = "dashboard-test-token"
	o := options{quicAddr: "127.0.0.1:0", kcpAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", ws: true, tick: 30, maxMembers: 16,
		dev: true, protocolID: token.DefaultProtocolID, logLevel: "error", dashboardToken: secret}
	a, stop := serveForTest(t, o)
	defer stop()
	base := "http://" + a.http.String()

	lag, err := impair.NewProxy(impair.ProxyConfig{
		Upstream: a.quic.String(),
		ToServer: impair.Config{Delay: 50 * time.Millisecond, Seed: 1},
		ToClient: impair.Config{Delay: 50 * time.Millisecond, Loss: 0.1, Seed: 2},
	})
	require.NoError(t, err)
	defer lag.Close()
	quic, kcp, ws := "quic://"+a.quic.String(), "kcp://"+a.kcp.String(), "ws://"+a.http.String()+"/ws"
	var players players
	defer players.stop()
	alpha := []*netcode.Client{players.add(t, quic, "alpha"), players.add(t, kcp, "alpha"), players.add(t, ws, "alpha")}
	laggy, steady := players.add(t, "quic://"+lag.Addr().String(), "beta"), players.add(t, kcp, "beta")
	gamma := players.add(t, ws, "gamma")
	require.Len(t, alpha, 3)

	// Something to count by reason: a chat flood over its budget (10 a
	// second, bursts of 20), a refused token, and a client that left.
	for range 25 {
		require.NoError(t, gamma.Emit("chat", []byte("spam")))
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = gamma.Request(rctx, "ping", nil) // answered after the flood, which the stream delivered first
	rcancel()
	require.NoError(t, err)
	_, err = dialDev(t, quic, token.NewKey())
	require.Error(t, err)
	left, err := dialDev(t, kcp, token.DevKey)
	require.NoError(t, err)
	require.NoError(t, left.Close())
	var m struct{ Server netcode.Metrics }
	nt.Eventually(t, func() bool {
		getJSONAuth(t, base+"/metrics.json", "", &m)
		return m.Server.Drops["budget_event:chat"] > 0 && m.Server.Closes["refused"] == 1 && m.Server.Closes["normal"] == 1
	}, "the drops and closes counted")

	res := runDashboard(t, node, script, chromium, out, base+"/dashboard?token="+secret, "beta", 2, 6)
	t.Logf("first read: %+v", res.First)
	t.Logf("room %s: %s; members %v", res.Detail.Name, res.Detail.Info, res.Detail.Members)
	require.Empty(t, res.Logs, "the page's console errors and warnings")
	for _, u := range res.Requests {
		require.True(t, strings.HasPrefix(u, base+"/"), "a request to anywhere but the server: %s", u)
	}

	// What the page shows is what the server has.
	var list []rooms.RoomInfo
	getJSONAuth(t, base+"/rooms", "", &list)
	getJSONAuth(t, base+"/metrics.json", "", &m)
	want := map[string]int{"alpha": 3, "beta": 2, "gamma": 1}
	require.Len(t, list, len(want))
	for _, read := range []dashboardRead{res.First, res.Second} {
		require.Equal(t, "single node", read.Node)
		require.Equal(t, "6", read.Conns)
		require.Len(t, read.Rooms, len(list))
		for i, ri := range list {
			row := read.Rooms[i]
			require.Equal(t, ri.Name, row["name"])
			require.Equal(t, fmt.Sprintf("%d/%d", ri.Members, ri.MaxMembers), row["members"])
			require.Equal(t, fmt.Sprintf("%d/16", want[ri.Name]), row["members"], ri.Name)
			require.Equal(t, arena.Kind, row["kind"])
			require.Equal(t, "30", row["tick_rate"])
			require.Regexp(t, `^\d+\.\d\d$`, row["tick_p50"])
			require.Regexp(t, `^\d+\.\d\d$`, row["tick_p99"])
			require.Regexp(t, `^\d+$`, row["late_ticks"])
		}
		open := map[string]string{}
		for _, tr := range read.Transports {
			open[tr["transport"]] = tr["open"]
		}
		require.Equal(t, map[string]string{"quic": "2", "kcp": "2", "ws": "2"}, open)
		require.Equal(t, m.Server.Drops, read.Drops)
		require.Equal(t, m.Server.Closes, read.Closes)
		rate := regexp.MustCompile(`^\d+(\.\d+)? (B|kB|MB)/s$`)
		for _, bw := range []string{read.BwIn, read.BwOut} {
			require.Regexp(t, rate, bw)
			require.NotEqual(t, "0.0 B/s", bw, "players send inputs and get snapshots")
		}
		require.Equal(t, 6, sum(read.RTTBars), "every connection in the RTT histogram")
		require.Equal(t, 6, sum(read.LossBars), "and in the loss histogram")
		require.GreaterOrEqual(t, sum(read.RTTBars[6:]), 1, "the lagged player above 50 ms")
	}
	for i := range res.First.Rooms {
		var before, after int
		fmt.Sscan(res.First.Rooms[i]["ticks"], &before)
		fmt.Sscan(res.Second.Rooms[i]["ticks"], &after)
		require.Greater(t, after, before, "%s ticks on between two polls", res.First.Rooms[i]["name"])
	}

	// The room clicked: its two players, each as the server sees it.
	require.Equal(t, "beta", res.Detail.Name)
	require.Equal(t, "#room=beta", res.Detail.Hash)
	require.Len(t, res.Detail.Members, 2)
	byID := map[string]map[string]string{}
	for _, mb := range res.Detail.Members {
		byID[mb["id"]] = mb
	}
	lm, sm := byID[laggy.ID().String()], byID[steady.ID().String()]
	require.NotNil(t, lm, "the lagged player listed")
	require.NotNil(t, sm, "the other player listed")
	require.Equal(t, "quic", lm["transport"])
	require.Equal(t, "kcp", sm["transport"])
	var lrtt, srtt, lloss, lrate, srate float64
	fmt.Sscan(lm["rtt_ms"], &lrtt)
	fmt.Sscan(sm["rtt_ms"], &srtt)
	fmt.Sscan(lm["loss_percent"], &lloss)
	fmt.Sscan(lm["snapshots_per_s"], &lrate)
	fmt.Sscan(sm["snapshots_per_s"], &srate)
	require.GreaterOrEqual(t, lrtt, 80.0, "the proxy's 100 ms round trip")
	require.Less(t, srtt, lrtt-40, "the other player's path has no proxy")
	require.Greater(t, lloss, 0.0, "a tenth of the snapshots to the lagged player lost")
	require.InDelta(t, 30, lrate, 10, "snapshots sent at the tick rate")
	require.InDelta(t, 30, srate, 10, "snapshots sent at the tick rate")

	png, err := os.ReadFile(filepath.Join(out, "dashboard.png"))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "a PNG screenshot")
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// getJSONAuth decodes the JSON at url into v, with a bearer token if any.
func getJSONAuth(t *testing.T, url, bearer string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

// runDashboard runs the browser driver once and returns what it read.
func runDashboard(t *testing.T, node, script, chromium, out, url, room string, members, conns int) dashboardPage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // room for ROOMWIRE_DASHBOARD_LINGER_MS
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, "--url", url, "--room", room, "--members", fmt.Sprint(members),
		"--conns", fmt.Sprint(conns), "--out", out, "--chromium", chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "the dashboard in the browser:\n%s%s", stderr.String(), stdout.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res dashboardPage
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &res), stdout.String())
	return res
}

// players are Go clients in arena rooms, each sending an input every
// tick, as a game's players would.
type players struct {
	wg   sync.WaitGroup
	quit chan struct{}
	list []*netcode.Client
}

// add connects a player at url and puts it in room.
func (p *players) add(t *testing.T, url, room string) *netcode.Client {
	t.Helper()
	if p.quit == nil {
		p.quit = make(chan struct{})
	}
	cl, err := dialDev(t, url, token.DevKey)
	require.NoError(t, err, url)
	p.list = append(p.list, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = rooms.Join(ctx, cl, arena.Kind, room)
	require.NoError(t, err, url)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-tick.C:
				_ = cl.SendInput(arena.EncodeInput(nil, 1, 0))
			}
		}
	}()
	return cl
}

func (p *players) stop() {
	if p.quit != nil {
		close(p.quit)
	}
	p.wg.Wait()
	for _, cl := range p.list {
		_ = cl.Close()
	}
}
