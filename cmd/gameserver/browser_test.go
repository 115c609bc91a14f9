package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

// browserResult is the JSON line web/browsertest/arena.mjs prints per run.
type browserResult struct {
	Mode, Transport, ID, Room     string
	Fallback                      []string
	ConnectMs                     float64
	SnapshotRate                  float64
	SnapshotsReceived             int
	DeltasReceived, WholeReceived int
	SnapshotsUndecodable          int
	InputsSent, InputsAcked       int
	InterpFrames, InterpUnderruns int
	MaxDatagram                   int
	Loss                          float64
	RTT                           struct {
		RequestP50, RequestMin, RequestP90 float64
		AckRTT, AckRTTMin, PingRTTMin      float64
	}
}

// The arena page in Debian's headless chromium (driven by playwright-core,
// web/browsertest/arena.mjs) against the real game server, in one room with
// a Go bot on QUIC: the page connects by itself over its best transport
// (WebTransport when the server announces it at /cert-hash, else
// WebSocket), then again with its WebTransport attempt made to fail, over
// the WebSocket fallback; each time it moves its player with the keyboard,
// sees the bot move, chats with it both ways and receives delta snapshots.
// The page's facts come from its own state; the bot's from what it
// received. The round trips measured in the browser go to the test log and
// to bin/browsertest/results.json, the screenshots beside them.
func TestBrowser(t *testing.T) {
	script, node, chromium, out := browserTools(t, "arena.mjs", "ROOMWIRE_BROWSER_OUT", "../../bin/browsertest")

	o := options{quicAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", ws: true, webtransport: true, tick: 30, maxMembers: 16, dev: true, protocolID: token.DefaultProtocolID, logLevel: "error"}
	a, stop := serveForTest(t, o)
	defer stop()

	b := startBot(t, a.quic.String(), "browser-test")
	defer b.stop()

	// The page's first choice is WebTransport if the server serves it.
	best := "websocket"
	if resp, err := http.Get("http://" + a.http.String() + "/cert-hash"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			best = "webtransport"
		}
	}
	require.Equal(t, "webtransport", best, "the server announces WebTransport at /cert-hash")
	var results []browserResult
	for _, mode := range []string{"auto", "fallback"} {
		want := best
		if mode == "fallback" {
			want = "websocket"
		}
		res := runPage(t, node, script, chromium, out, mode, want, fmt.Sprintf("http://%s/?room=%s", a.http, b.room), b.id)
		results = append(results, res)
		require.Equal(t, want, res.Transport, mode)
		if mode == "fallback" {
			require.NotEmpty(t, res.Fallback, "the page tried WebTransport first")
		}
		require.Equal(t, b.room, res.Room)
		require.Positive(t, res.DeltasReceived, mode)
		require.Zero(t, res.SnapshotsUndecodable, mode)

		// What the bot saw of the page: its chat, typed and sent, and its
		// player moving on both axes.
		b.waitChat(t, "hello from the page ("+mode+")")
		b.waitChat(t, "typed in the page ("+mode+")")
		dx, dy := b.moved(res.ID)
		require.GreaterOrEqual(t, dx, float32(40), "%s: the bot saw the page's player move in x", mode)
		require.GreaterOrEqual(t, dy, float32(40), "%s: the bot saw the page's player move in y", mode)
		t.Logf("%s: %s, connect %.0f ms, request RTT p50 %.2f ms (min %.2f, p90 %.2f), datagram ack RTT %.2f ms (min %.2f), PING min %.2f ms, %.1f snapshots/s, %d of %d deltas, max datagram %d",
			mode, res.Transport, res.ConnectMs, res.RTT.RequestP50, res.RTT.RequestMin, res.RTT.RequestP90, res.RTT.AckRTT, res.RTT.AckRTTMin, res.RTT.PingRTTMin,
			res.SnapshotRate, res.DeltasReceived, res.SnapshotsReceived, res.MaxDatagram)
	}
	j, err := json.MarshalIndent(results, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(out, "results.json"), j, 0o644))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// runPage runs the browser driver once and returns its result line.
func runPage(t *testing.T, node, script, chromium, out, mode, want, url string, bot netcode.ID) browserResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, "--url", url, "--bot", bot.String(), "--mode", mode, "--expect", want, "--out", out, "--chromium", chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "%s run of the page:\n%s%s", mode, stderr.String(), stdout.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res browserResult
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &res), stdout.String())
	return res
}

// bot is a Go player on QUIC in the page's room: it walks left and right,
// says hello every 300 ms, and records the chat it hears and how far each
// player it sees has moved.
type bot struct {
	cl   *netcode.Client
	id   netcode.ID
	room string
	quit chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	chat   []string
	ranges map[netcode.ID]*[4]float32 // min x, max x, min y, max y
}

func startBot(t *testing.T, quicAddr, room string) *bot {
	t.Helper()
	tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: token.DefaultProtocolID}, time.Now())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := &bot{room: room, quit: make(chan struct{}), ranges: map[netcode.ID]*[4]float32{}}
	b.cl = netcode.NewClient(netcode.ClientConfig{InsecureSkipVerify: true, Token: tok})
	b.cl.On("chat", func(p []byte) {
		b.mu.Lock()
		b.chat = append(b.chat, string(p))
		b.mu.Unlock()
	})
	var players []arena.Player
	b.cl.OnSnapshot(func(_ uint32, data []byte) {
		players, _ = arena.Decode(players[:0], data)
		b.mu.Lock()
		for _, p := range players {
			r := b.ranges[p.ID]
			if r == nil {
				r = &[4]float32{p.X, p.X, p.Y, p.Y}
				b.ranges[p.ID] = r
			}
			r[0], r[1], r[2], r[3] = min(r[0], p.X), max(r[1], p.X), min(r[2], p.Y), max(r[3], p.Y)
		}
		b.mu.Unlock()
	})
	require.NoError(t, b.cl.Connect(ctx, "quic://"+quicAddr))
	b.id = b.cl.ID()
	_, err = rooms.Join(ctx, b.cl, arena.Kind, room)
	require.NoError(t, err)
	b.wg.Add(1)
	go b.play()
	return b
}

func (b *bot) play() {
	defer b.wg.Done()
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	start := time.Now()
	var n int
	for {
		select {
		case <-b.quit:
			return
		case <-tick.C:
		}
		dx := int8(127)
		if int(time.Since(start)/time.Second)%2 == 1 {
			dx = -127
		}
		_ = b.cl.SendInput(arena.EncodeInput(nil, dx, 0))
		if n++; n%10 == 0 {
			_ = b.cl.Emit("chat", []byte("hello from the bot"))
		}
	}
}

func (b *bot) stop() {
	close(b.quit)
	b.wg.Wait()
	_ = b.cl.Close()
}

func (b *bot) waitChat(t *testing.T, msg string) {
	t.Helper()
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.chat {
			if c == msg {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "the bot never heard %q; it heard %q", msg, b.heard())
}

func (b *bot) heard() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.chat...)
}

// moved is how far, in x and in y, the bot saw the player with id (32 hex
// digits) range.
func (b *bot) moved(id string) (dx, dy float32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for pid, r := range b.ranges {
		if pid.String() == id {
			return r[1] - r[0], r[3] - r[2]
		}
	}
	return float32(math.NaN()), float32(math.NaN())
}

// browserTools finds what a test that drives Chromium needs: the script of
// web/browsertest to run, node, chromium (CHROMIUM, or Debian's) and
// playwright-core, failing the test with how to get them; and the folder
// for its screenshots (outEnv, or outDefault), made.
func browserTools(t *testing.T, script, outEnv, outDefault string) (scriptPath, node, chromium, out string) {
	t.Helper()
	scriptPath, _ = filepath.Abs("../../web/browsertest/" + script)
	chromium = cmpOr(os.Getenv("CHROMIUM"), "/usr/bin/chromium")
	node, err := exec.LookPath("node")
	need := "the browser tests need node, chromium (apt-get install chromium) and playwright-core (npm ci at the repository's top); .ci/run installs them"
	require.NoError(t, err, need)
	_, err = os.Stat(chromium)
	require.NoError(t, err, need)
	_, err = os.Stat("../../node_modules/playwright-core/package.json")
	require.NoError(t, err, need)
	out, _ = filepath.Abs(cmpOr(os.Getenv(outEnv), outDefault))
	require.NoError(t, os.MkdirAll(out, 0o755))
	return scriptPath, node, chromium, out
}
