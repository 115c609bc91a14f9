package loadtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
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

// A 3 s blackout outlasts the client's 2 s dead-transport detection: every
// bot resumes its session, and the history check finds every reliable
// event of both directions delivered once and in order.
func TestRunBlackoutResumes(t *testing.T) {
	srv, _ := startServer(t)
	key := token.DevKey
	addrs := srv.Addrs()
	for _, addr := range []string{"quic://" + addrs[0].String(), "kcp://" + addrs[1].String(), nt.WebSocketURL(srv)} {
		rep, err := loadtest.Run(context.Background(), loadtest.Config{
			Addr:     addr,
			Insecure: true,
			TokenKey: &key,
			Bots:     4,
			PerRoom:  2,
			Duration: 6 * time.Second,
			Blackout: impair.Blackout{Start: time.Second, Length: 3 * time.Second},
		})
		require.NoError(t, err, addr)
		require.Empty(t, rep.Errors, addr)
		require.Equal(t, 4, rep.Connected, addr)
		require.EqualValues(t, 4, rep.Resumed, "%s: every bot resumed", addr)
		require.Zero(t, rep.Expired, addr)
		require.GreaterOrEqual(t, rep.HistoryChecked, uint64(4*40), addr)
		require.Zero(t, rep.HistoryViolations, "%s: lost %d, duplicated %d, reordered %d", addr, rep.HistoryLost, rep.HistoryDuplicated, rep.HistoryReordered)
	}
}
