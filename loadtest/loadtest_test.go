package loadtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/loadtest"
	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/impair"
	"github.com/roomwire/roomwire/netcode/transport/websocket"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

func TestMain(m *testing.M) {
	nt.VerifyTestMain(m)
}

// A short mixed run: bots on QUIC, KCP and WebSocket in the same rooms,
// each minting its own token, and a report whose figures hang together.
func TestRunMixed(t *testing.T) {
	srv, hub := startServer(t)
	key := token.DevKey
	addrs := srv.Addrs()
	rep, err := loadtest.Run(context.Background(), loadtest.Config{
		Addr:         "quic://" + addrs[0].String() + ",kcp://" + addrs[1].String() + "," + nt.WebSocketURL(srv),
		Insecure:     true,
		TokenKey:     &key,
		Bots:         6,
		PerRoom:      3,
		Duration:     2 * time.Second,
		PingInterval: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Equal(t, "quic+kcp+ws", rep.Transport)
	require.Equal(t, 6, rep.Connected, "errors: %v", rep.Errors)
	require.Zero(t, rep.Failed)
	require.Empty(t, rep.Errors)
	require.Equal(t, rep.EventsSent, rep.EventsAcked)
	require.Greater(t, rep.EventsSent, int64(6*5), "a join and pings from every bot")
	require.Greater(t, rep.RTT.P50, 0.0)
	require.GreaterOrEqual(t, float64(rep.SnapshotsReceived), 0.8*float64(rep.SnapshotsExpected))
	require.Greater(t, rep.InterpFrames, uint64(6*60))
	require.Greater(t, rep.BytesReceived, rep.BytesSent)
	require.Len(t, hub.Rooms(), 2, "3 bots a room")
	for _, tm := range srv.TransportMetrics() { // bot i on transport i mod 3, in room i / 3
		require.Equal(t, uint64(2), tm.Handshakes["accepted"], "two bots on %s, one in each room", tm.Transport)
	}
	require.Equal(t, 30, rep.TickRate)
	require.Greater(t, rep.InputsSent, int64(6*30), "a second's inputs from every bot at least")
	require.GreaterOrEqual(t, rep.InterpUnderrunPercent, 0.0)
	require.Greater(t, rep.InterpDelayMean, 0.0)
	require.Greater(t, rep.InterpDelay.P99, 0.0)
	require.Greater(t, rep.KbpsDown, rep.KbpsUp)
	require.Greater(t, rep.BotSeconds, 6*2.0)
}

// startServer starts an in-process game server as cmd/gameserver does,
// QUIC, KCP and WebSocket on loopback, the arena at 30 Hz and the ping
// and history-echo handlers; it is closed when the test ends. srv.Addrs() is QUIC's address,
// then KCP's, then the WebSocket side port's.
func startServer(t *testing.T) (*netcode.Server, *rooms.Hub) {
	t.Helper()
	return startServerWith(t, func(*netcode.Config) {})
}

// startServerWith is startServer with the configuration changed by tune.
func startServerWith(t *testing.T, tune func(*netcode.Config)) (*netcode.Server, *rooms.Hub) {
	t.Helper()
	tc, err := netcode.DevTLSConfig()
	require.NoError(t, err)
	cfg := netcode.Config{QUICAddr: "127.0.0.1:0", KCPAddr: "127.0.0.1:0", TLS: tc,
		WebSocket: nt.ServeWebSocket(t, websocket.Config{}),
		Tokens:    &netcode.Tokens{Key: token.DevKey, ProtocolID: token.DefaultProtocolID}}
	tune(&cfg)
	srv, err := netcode.NewServer(cfg)
	require.NoError(t, err)
	hub := rooms.NewHub(srv, rooms.HubOptions{})
	require.NoError(t, hub.Define(arena.Kind, func() rooms.Game { return arena.New() }, rooms.Options{TickRate: 30}))
	srv.Handle("ping", func(_ *netcode.Conn, req []byte) ([]byte, error) { return req, nil })
	arena.EchoHistory(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(context.Background())
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		hub.Close()
	})
	return srv, hub
}

// With Churn, every bot connects again, to the next room, every Churn:
// more connections than bots, every one of them playing.
func TestRunChurn(t *testing.T) {
	srv, hub := startServer(t)
	key := token.DevKey
	addrs := srv.Addrs()
	rep, err := loadtest.Run(context.Background(), loadtest.Config{
		Addr:     "quic://" + addrs[0].String() + ",kcp://" + addrs[1].String(),
		Insecure: true,
		TokenKey: &key,
		Bots:     4,
		PerRoom:  2,
		Duration: 3 * time.Second,
		Churn:    time.Second,
	})
	require.NoError(t, err)
	require.Empty(t, rep.Errors)
	require.Zero(t, rep.Failed)
	require.GreaterOrEqual(t, rep.Connected, 4*3, "each bot connected about once a second")
	require.GreaterOrEqual(t, float64(rep.SnapshotsReceived), 0.8*float64(rep.SnapshotsExpected))
	nt.Eventually(t, func() bool { return srv.Metrics().ConnsActive == 0 }, "every connection closed")
	require.LessOrEqual(t, len(hub.Rooms()), 2, "the bots rotate over their two rooms")
}

// Idle bots connect, stay connected for Duration and join no room.
func TestRunIdle(t *testing.T) {
	srv, hub := startServer(t)
	key := token.DevKey
	addrs := srv.Addrs()
	var peak atomic.Int64
	rep, err := loadtest.Run(context.Background(), loadtest.Config{
		Addr:     "quic://" + addrs[0].String() + ",kcp://" + addrs[1].String(),
		Insecure: true,
		TokenKey: &key,
		Bots:     6,
		Duration: 2500 * time.Millisecond, // progress, each second, sees them all
		Idle:     true,
		Progress: func(loadtest.Progress) { peak.Store(max(peak.Load(), srv.Metrics().ConnsActive)) },
	})
	require.NoError(t, err)
	require.Empty(t, rep.Errors)
	require.Equal(t, 6, rep.Connected)
	require.Zero(t, rep.SnapshotsReceived)
	require.Zero(t, rep.EventsSent)
	require.EqualValues(t, 6, peak.Load(), "all six were connected at once")
	require.Empty(t, hub.Rooms(), "no bot joined a room")
	nt.Eventually(t, func() bool { return srv.Metrics().ConnsActive == 0 }, "every connection closed")
}

// The sampler reads the server's runtime figures; Flat measures their drift
// after warm-up.
func TestSamplerAndFlat(t *testing.T) {
	var n atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i := n.Add(1)
		fmt.Fprintf(w, `{"runtime":{"goroutines":%d,"heap_live_bytes":%d}}`, 100+i%2, 1<<20)
	}))
	defer hs.Close()
	s := &loadtest.Sampler{URL: hs.URL, Every: 10 * time.Millisecond}
	s.Start()
	time.Sleep(100 * time.Millisecond)
	samples, errs := s.Stop()
	require.Zero(t, errs)
	require.GreaterOrEqual(t, len(samples), 5)
	f := loadtest.Flat(samples, 0)
	require.Equal(t, len(samples), f.Samples)
	require.InDelta(t, 101.5, f.GoroutinesMean, 1)
	require.Less(t, f.GoroutinesDev, 0.01)
	require.InDelta(t, 1.0, f.HeapMeanMB, 0.001)
	require.Zero(t, f.HeapDev)

	leak := []loadtest.Sample{{At: 0, Goroutines: 10}, {At: time.Minute, Goroutines: 100}, {At: 2 * time.Minute, Goroutines: 120}, {At: 3 * time.Minute, Goroutines: 160}}
	require.Greater(t, loadtest.Flat(leak, time.Minute).GoroutinesDev, 0.1, "a leak drifts")
	require.Equal(t, 3, loadtest.Flat(leak, time.Minute).Samples, "samples before warm-up are left out")
}

// Bots of a loopback server dial from many loopback addresses, so that the
// server's per-address limits see them as the players they stand for.
func TestBotsSpreadOverLoopback(t *testing.T) {
	srv, _ := startServerWith(t, func(c *netcode.Config) { c.MaxConnsPerIP = 2 })
	key := token.DevKey
	run := func(spread int) loadtest.Report {
		rep, err := loadtest.Run(context.Background(), loadtest.Config{
			Addr: "quic://" + srv.Addrs()[0].String(), Insecure: true, TokenKey: &key, Bots: 6, PerRoom: 6,
			Duration: 500 * time.Millisecond, LoopbackSpread: spread,
		})
		require.NoError(t, err)
		return rep
	}
	require.Equal(t, 6, run(0).Connected, "spread over the default 64 addresses")
	rep := run(1)
	require.Equal(t, 2, rep.Connected, "from 127.0.0.1 alone, two get in")
	require.Equal(t, 4, rep.Failed)
}

// With History, every bot's counters come back from the server exactly
// once and in order, on every transport.
func TestRunHistory(t *testing.T) {
	srv, _ := startServer(t)
	key := token.DevKey
	addrs := srv.Addrs()
	rep, err := loadtest.Run(context.Background(), loadtest.Config{
		Addr:     "quic://" + addrs[0].String() + ",kcp://" + addrs[1].String() + "," + nt.WebSocketURL(srv),
		Insecure: true,
		TokenKey: &key,
		Bots:     3,
		PerRoom:  3,
		Duration: 1500 * time.Millisecond,
		History:  true,
	})
	require.NoError(t, err)
	require.Empty(t, rep.Errors)
	require.Equal(t, 3, rep.Connected)
	require.GreaterOrEqual(t, rep.HistoryChecked, uint64(3*12), "about 15 echoes a bot")
	require.Zero(t, rep.HistoryViolations, "lost %d, duplicated %d, reordered %d", rep.HistoryLost, rep.HistoryDuplicated, rep.HistoryReordered)
	require.Zero(t, rep.Resumed)
	require.Zero(t, rep.Expired)
}

// A blackout darkens each bot's network, which the bots dial over on
// every transport: a blackout too short for any transport to give up on
// its connection delays the reliable events (the pings' round trips show
// it) but loses, duplicates and reorders none.
func TestRunBlackout(t *testing.T) {
	srv, _ := startServer(t)
	key := token.DevKey
	addrs := srv.Addrs()
	for _, addr := range []string{"quic://" + addrs[0].String(), "kcp://" + addrs[1].String(), nt.WebSocketURL(srv)} {
		rep, err := loadtest.Run(context.Background(), loadtest.Config{
			Addr:         addr,
			Insecure:     true,
			TokenKey:     &key,
			Bots:         2,
			PerRoom:      2,
			Duration:     2 * time.Second,
			PingInterval: 100 * time.Millisecond,
			Blackout:     impair.Blackout{Start: 500 * time.Millisecond, Length: 400 * time.Millisecond},
		})
		require.NoError(t, err, addr)
		t.Logf("%s: ping RTT max %.0f ms, %d echoes checked, %d violations, %d resumed", addr, rep.RTT.Max, rep.HistoryChecked, rep.HistoryViolations, rep.Resumed)
		require.Empty(t, rep.Errors, addr)
		require.Equal(t, 2, rep.Connected, addr)
		require.Greater(t, rep.RTT.Max, 200.0, "%s: a ping waited out the blackout", addr)
		require.GreaterOrEqual(t, rep.HistoryChecked, uint64(2*15), "%s: a blackout turns the history check on", addr)
		require.Zero(t, rep.HistoryViolations, "%s: lost %d, duplicated %d, reordered %d", addr, rep.HistoryLost, rep.HistoryDuplicated, rep.HistoryReordered)
		require.Zero(t, rep.Expired, addr)
	}
}

// A blackout dials the bots' transports itself, so it refuses a Dial of
// the caller's, and transports it cannot darken.
func TestRunBlackoutRefuses(t *testing.T) {
	bo := impair.Blackout{Start: time.Second, Length: time.Second}
	_, err := loadtest.Run(context.Background(), loadtest.Config{
		Addr: "quic://127.0.0.1:1", Blackout: bo,
		Client: netcode.ClientConfig{Dial: func(context.Context, string) (transport.Session, error) { return nil, nil }},
	})
	require.ErrorContains(t, err, "leave Client.Dial unset")
	rep, err := loadtest.Run(context.Background(), loadtest.Config{Addr: "wt://127.0.0.1:1/wt", Blackout: bo})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Failed)
	require.Len(t, rep.Errors, 1)
	require.Contains(t, rep.Errors[0], "cannot darken wt://")
}

// blackoutTransports are the transports a blackout darkens.
var blackoutTransports = []string{"quic", "kcp", "ws"}

// blackoutRun is one transport's run of runEachTransport.
type blackoutRun struct {
	srv  *netcode.Server
	rep  loadtest.Report
	err  error
	took time.Duration
}

// runEachTransport runs cfg (its Addr set here) on each of quic, kcp and ws
// at once, each against a server of its own started with startServer and
// then given to prepare (if set), and returns the runs by transport name.
// The runs go on goroutines of their own rather than as parallel subtests,
// which -parallel (GOMAXPROCS by default: 2 on a 2-core machine) would run
// two at a time.
func runEachTransport(t *testing.T, cfg loadtest.Config, prepare func(*netcode.Server)) map[string]*blackoutRun {
	t.Helper()
	key := token.DevKey
	cfg.Insecure, cfg.TokenKey = true, &key
	runs := make(map[string]*blackoutRun)
	var wg sync.WaitGroup
	for _, name := range blackoutTransports {
		srv, _ := startServer(t)
		if prepare != nil {
			prepare(srv)
		}
		addrs := srv.Addrs()
		c := cfg
		c.Addr = map[string]string{"quic": "quic://" + addrs[0].String(), "kcp": "kcp://" + addrs[1].String(), "ws": nt.WebSocketURL(srv)}[name]
		run := &blackoutRun{srv: srv}
		runs[name] = run
		wg.Add(1)
		go func() {
			defer wg.Done()
			begin := time.Now()
			run.rep, run.err = loadtest.Run(context.Background(), c)
			run.took = time.Since(begin)
		}()
	}
	wg.Wait()
	return runs
}

// eachTransport runs check on each transport's run as a subtest.
func eachTransport(t *testing.T, runs map[string]*blackoutRun, check func(t *testing.T, run *blackoutRun)) {
	t.Helper()
	for _, name := range blackoutTransports {
		t.Run(name, func(t *testing.T) {
			run := runs[name]
			require.NoError(t, run.err)
			check(t, run)
		})
	}
}

// A 3 s blackout outlasts the client's 2 s dead-transport detection: every
// bot resumes its session, the history check finds every reliable event of
// both directions delivered once and in order, and snapshots flow again
// soon after the network returns.
func TestRunBlackoutResumes(t *testing.T) {
	t.Parallel()
	runs := runEachTransport(t, loadtest.Config{
		Bots:     4,
		PerRoom:  2,
		Duration: 6 * time.Second,
		Blackout: impair.Blackout{Start: time.Second, Length: 3 * time.Second},
	}, nil)
	eachTransport(t, runs, func(t *testing.T, run *blackoutRun) {
		rep := run.rep
		require.Empty(t, rep.Errors)
		require.Equal(t, 4, rep.Connected)
		require.EqualValues(t, 4, rep.Resumed, "every bot resumed")
		require.Zero(t, rep.Expired)
		require.GreaterOrEqual(t, rep.HistoryChecked, uint64(4*40))
		require.Zero(t, rep.HistoryViolations, "lost %d, duplicated %d, reordered %d", rep.HistoryLost, rep.HistoryDuplicated, rep.HistoryReordered)
		// Each bot's one blackout ended in its room, and was followed by a
		// resume and by snapshots again, soon.
		t.Logf("resumed %.0f ms (p50) %.0f ms (max), snapshots back %.0f ms (p50) %.0f ms (max) after the network returned",
			rep.ResumeAfter.P50, rep.ResumeAfter.Max, rep.SnapshotResume.P50, rep.SnapshotResume.Max)
		require.EqualValues(t, 4, rep.Blackouts)
		require.EqualValues(t, 4, rep.Away)
		require.EqualValues(t, 4, rep.ResumeCount, "each resume after its blackout ended")
		require.EqualValues(t, 4, rep.SnapshotResumeCount, "snapshots after every blackout")
		require.Greater(t, rep.SnapshotResume.P50, 0.0)
		require.GreaterOrEqual(t, rep.SnapshotResume.Max, rep.SnapshotResume.P99)
		require.Less(t, rep.SnapshotResume.P99, 2000.0, "snapshots flow again within 2 s of the network's return")
	})
}

// A 15 s blackout outlasts the server's default 10 s resume window: every
// bot's session expires (the client gives up when the window the server
// granted has passed, the server too), none resumes, and the history check
// finds every echo of what was delivered before the blackout exactly once
// and in order. The counters emitted in the dark and never echoed are not
// lost: the connection ended, and nothing promised them (historyCheck's
// finish without tail).
func TestRunBlackoutExpires(t *testing.T) {
	t.Parallel()
	runs := runEachTransport(t, loadtest.Config{
		Bots:     4,
		PerRoom:  2,
		Duration: 25 * time.Second,
		Blackout: impair.Blackout{Start: 2 * time.Second, Length: 15 * time.Second},
	}, nil)
	eachTransport(t, runs, func(t *testing.T, run *blackoutRun) {
		rep := run.rep
		t.Logf("run took %v; %d echoes checked; errors %v", run.took.Round(time.Millisecond), rep.HistoryChecked, rep.Errors)
		require.Equal(t, 4, rep.Connected)
		require.EqualValues(t, 4, rep.Away, "every bot lost its transport")
		require.EqualValues(t, 4, rep.Expired, "every bot's session expired")
		require.Zero(t, rep.Resumed)
		require.Zero(t, rep.Blackouts, "the sessions ended in the dark")
		require.Zero(t, rep.SnapshotResumeCount)
		// Dark at 2 s, dead after 2 s more, then the 10 s window: the
		// bots end at about 14 s after connecting, not at their
		// blackout's end (17 s) nor their duration's.
		require.Less(t, run.took, 17*time.Second, "the bots ended when their sessions expired")
		require.Greater(t, run.took, 12*time.Second, "the bots waited out the resume window")
		var disconnects []string
		for _, e := range rep.Errors {
			if strings.HasPrefix(e, "disconnected: ") {
				disconnects = append(disconnects, e)
			}
		}
		require.Len(t, disconnects, 1, "the same disconnect for every bot: %v", rep.Errors)
		require.Contains(t, disconnects[0], "session expired: not resumed within 10s (×4)")
		require.GreaterOrEqual(t, rep.HistoryChecked, uint64(4*15), "about 20 echoes a bot before the dark")
		require.Zero(t, rep.HistoryViolations, "lost %d, duplicated %d, reordered %d", rep.HistoryLost, rep.HistoryDuplicated, rep.HistoryReordered)
		nt.Eventually(t, func() bool { return run.srv.Metrics().Closes["expired"] == 4 }, "the server let the four sessions expire too: %v", run.srv.Metrics().Closes)
	})
}

// Blackouts of 2 s every 5 s for 30 s: each either outlasts the client's
// 2 s dead-transport detection, and the session resumes, or the transport
// lives through it; either way no session expires, no connection ends,
// snapshots flow again after every blackout, and every reliable event of
// both directions is delivered once and in order.
func TestRunBlackoutRepeats(t *testing.T) {
	t.Parallel()
	const bots, windows = 4, 5 // dark at 5, 10, 15, 20 and 25 s
	serverBack := make(map[*netcode.Server]*atomic.Int64)
	runs := runEachTransport(t, loadtest.Config{
		Bots:     bots,
		PerRoom:  2,
		Duration: 30 * time.Second,
		Blackout: impair.Blackout{Start: 5 * time.Second, Length: 2 * time.Second, Every: 5 * time.Second, Until: 30 * time.Second},
	}, func(srv *netcode.Server) {
		n := new(atomic.Int64)
		serverBack[srv] = n
		srv.OnBack(func(*netcode.Conn) { n.Add(1) })
	})
	eachTransport(t, runs, func(t *testing.T, run *blackoutRun) {
		rep := run.rep
		t.Logf("%d blackouts: %d away, %d resumed (server %d); %d echoes checked; resumed %.0f/%.0f ms (p50/max), snapshots back %.0f/%.0f ms (p50/max)",
			rep.Blackouts, rep.Away, rep.Resumed, serverBack[run.srv].Load(), rep.HistoryChecked,
			rep.ResumeAfter.P50, rep.ResumeAfter.Max, rep.SnapshotResume.P50, rep.SnapshotResume.Max)
		require.Empty(t, rep.Errors, "no connection ended")
		require.Equal(t, bots, rep.Connected)
		require.Zero(t, rep.Expired)
		require.EqualValues(t, bots*windows, rep.Blackouts)
		require.EqualValues(t, rep.Blackouts, rep.SnapshotResumeCount, "snapshots flowed again after every blackout")
		require.Equal(t, rep.Away, rep.Resumed, "every transport lost was resumed")
		require.Equal(t, rep.Resumed, rep.ResumeCount, "each resume came after a blackout's end, one for each")
		require.LessOrEqual(t, rep.Resumed, rep.Blackouts)
		require.GreaterOrEqual(t, serverBack[run.srv].Load(), rep.Resumed, "the server resumed each session the client resumed")
		require.GreaterOrEqual(t, rep.HistoryChecked, uint64(bots*250), "about 300 echoes a bot")
		require.Zero(t, rep.HistoryViolations, "lost %d, duplicated %d, reordered %d", rep.HistoryLost, rep.HistoryDuplicated, rep.HistoryReordered)
		require.Zero(t, run.srv.Metrics().Closes["expired"])
	})
}
