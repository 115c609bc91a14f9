package loadtest_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/roomwire/roomwire/loadtest"
	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
)

// reportRun runs bots against a fresh in-process server (QUIC and KCP,
// PerRoom 3) for d with pings every 200 ms, and returns the run's
// configuration and report.
func reportRun(t *testing.T, bots int, d time.Duration, networks []loadtest.NetProfile) (loadtest.Config, loadtest.Report) {
	t.Helper()
	srv, _ := startServer(t)
	key := token.DevKey
	addrs := srv.Addrs()
	cfg := loadtest.Config{
		Addr:     "quic://" + addrs[0].String() + ",kcp://" + addrs[1].String(),
		Insecure: true, TokenKey: &key, Bots: bots, PerRoom: 3,
		Duration: d, PingInterval: 200 * time.Millisecond, Networks: networks,
	}
	rep, err := loadtest.Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, bots, rep.Connected, "errors: %v", rep.Errors)
	return cfg, rep
}

// The report's series, distributions and rooms agree with its totals: a
// sample a second, whose bytes and snapshots add up to the run's; every
// ping in the RTT histogram, every bot in the connect-time one, every gap
// in the gap one; each room's delivery.
func TestReportSeries(t *testing.T) {
	_, rep := reportRun(t, 6, 3*time.Second, nil)

	require.GreaterOrEqual(t, len(rep.Series), 3, "a sample a second and a last one")
	var down, snaps, pings float64
	for i, s := range rep.Series {
		require.Greater(t, s.Interval, 0.0, "second %d", i)
		if i > 0 {
			require.Greater(t, s.T, rep.Series[i-1].T)
		}
		down += s.BytesDownPerSec * s.Interval
		snaps += s.SnapshotsPerSec * s.Interval
		pings += float64(s.Pings)
	}
	mid := rep.Series[1]
	require.Equal(t, 6, mid.Bots, "all six in their rooms after a second")
	require.InDelta(t, 6*30, mid.ExpectedPerSec, 0.01)
	require.InDelta(t, 6*30, mid.SnapshotsPerSec, 6*30*0.2, "30 snapshots a second a bot")
	require.Greater(t, mid.Pings, int64(6*3), "five pings a second a bot")
	require.Greater(t, mid.RTTP99, 0.0)
	require.GreaterOrEqual(t, mid.RTTP99, mid.RTTP50)
	require.Greater(t, mid.FramesPerSec, 6*50.0, "60 frames a second a bot")
	require.Greater(t, mid.BytesUpPerSec, 0.0)
	require.InDelta(t, float64(rep.BytesReceived), down, 0.02*float64(rep.BytesReceived), "the series' bytes add up to the total")
	require.InDelta(t, float64(rep.SnapshotsReceived), snaps, 1, "the series' snapshots add up to the total")
	require.EqualValues(t, rep.EventsAcked-int64(rep.Connected), pings, "every ping (acked events less the joins) in a second")

	require.EqualValues(t, pings, sum(rep.RTTHistogram), "every ping in the RTT histogram")
	require.EqualValues(t, rep.Connected, sum(rep.ConnectHistogram), "every connection in the connect-time histogram")
	require.Greater(t, rep.ConnectTime.P50, 0.0)
	require.GreaterOrEqual(t, rep.ConnectTime.Max, rep.ConnectTime.P99)
	require.InDelta(t, float64(rep.SnapshotsReceived), float64(sum(rep.SnapshotGapHistogram)), 6, "a gap per snapshot but a bot's first")
	for _, h := range [][]loadtest.Bucket{rep.RTTHistogram, rep.ConnectHistogram, rep.SnapshotGapHistogram} {
		for i, b := range h {
			require.Greater(t, b.HighMs, b.LowMs)
			if i > 0 {
				require.Equal(t, h[i-1].HighMs, b.LowMs, "buckets adjoin")
			}
		}
	}
	gapPeak := slices.MaxFunc(rep.SnapshotGapHistogram, func(a, b loadtest.Bucket) int { return int(a.Count - b.Count) })
	require.True(t, gapPeak.LowMs >= 30 && gapPeak.HighMs <= 37, "gaps of a 30 Hz tick (33.3 ms) are most common: %+v", gapPeak)

	require.Len(t, rep.Rooms, 2)
	var got int64
	for _, r := range rep.Rooms {
		require.Equal(t, 3, r.Bots, r.Room)
		require.Greater(t, r.DeliveryPercent, 85.0, r.Room)
		require.LessOrEqual(t, r.DeliveryPercent, 105.0, r.Room)
		got += r.SnapshotsReceived
	}
	require.Equal(t, rep.SnapshotsReceived, got, "every snapshot in its room")
	require.True(t, strings.HasSuffix(rep.Rooms[0].Room, "-0") && strings.HasSuffix(rep.Rooms[1].Room, "-1"), "rooms in order")
	require.Empty(t, rep.Profiles, "no network profiles")
}

func sum(bs []loadtest.Bucket) int64 {
	var n int64
	for _, b := range bs {
		n += b.Count
	}
	return n
}

// The HTML report of a short run parses, holds every chart, each drawing
// data, the run's parameters and the Report as JSON; -csv's files hold
// the same series.
func TestReportHTML(t *testing.T) {
	cfg, rep := reportRun(t, 6, 3*time.Second, nil)
	var buf bytes.Buffer
	require.NoError(t, loadtest.WriteHTML(&buf, cfg, rep))
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)

	plots := map[string]*html.Node{}
	var pre *html.Node
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		if name := attr(n, "data-plot"); name != "" && n.Data == "svg" {
			require.NotContains(t, plots, name, "one chart of each name")
			plots[name] = n
		}
		if n.Data == "pre" && attr(n, "id") == "report-json" {
			pre = n
		}
	}
	for _, name := range loadtest.PlotNames() {
		svg := plots[name]
		require.NotNil(t, svg, "chart %s", name)
		marks := 0
		for m := range svg.Descendants() {
			if m.Type == html.ElementNode && slices.Contains([]string{"path", "rect", "circle"}, m.Data) && attr(m, "class") == "data" {
				marks++
			}
		}
		require.Positive(t, marks, "chart %s draws data", name)
		require.NotContains(t, text(svg), "no data", name)
	}
	require.Len(t, plots, len(loadtest.PlotNames()))

	require.NotNil(t, pre, "the Report's JSON")
	var back loadtest.Report
	require.NoError(t, json.Unmarshal([]byte(text(pre)), &back))
	require.Equal(t, rep.SnapshotsReceived, back.SnapshotsReceived)
	require.Len(t, back.Series, len(rep.Series))
	page := text(doc)
	require.Contains(t, page, cfg.Addr, "the parameters")
	require.Contains(t, page, "bots per room")
	for _, fetch := range []string{"<script", "<link", " src=", "url(", "@import", "href="} {
		require.NotContains(t, buf.String(), fetch, "no scripts, nothing fetched")
	}

	dir := t.TempDir()
	paths, err := loadtest.WriteCSV(dir, rep)
	require.NoError(t, err)
	require.Len(t, paths, 3, "no profiles.csv without profiles")
	rows := readCSV(t, filepath.Join(dir, "series.csv"))
	require.Len(t, rows, len(rep.Series)+1)
	require.Equal(t, "t_s", rows[0][0])
	rows = readCSV(t, filepath.Join(dir, "rooms.csv"))
	require.Len(t, rows, len(rep.Rooms)+1)
	require.Equal(t, rep.Rooms[0].Room, rows[1][0])
	rows = readCSV(t, filepath.Join(dir, "histograms.csv"))
	require.Len(t, rows, 1+len(rep.ConnectHistogram)+len(rep.RTTHistogram)+len(rep.SnapshotGapHistogram))
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	for m := range n.Descendants() {
		if m.Type == html.TextNode {
			b.WriteString(m.Data)
		}
	}
	return b.String()
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	return rows
}

// The HTML report in Debian's headless chromium (playwright-core, as the
// browser test drives it: web/browsertest/screenshot.mjs): every chart is
// laid out with a size, and the screenshot is a picture, large, of many
// colours, the charts' blue among them. It is kept in
// bin/browsertest/report.png.
func TestReportScreenshot(t *testing.T) {
	script, _ := filepath.Abs("../web/browsertest/screenshot.mjs")
	chromium := cmp.Or(os.Getenv("CHROMIUM"), "/usr/bin/chromium")
	node, err := exec.LookPath("node")
	need := "the screenshot test needs node, chromium (apt-get install chromium) and playwright-core (npm ci at the repository's top)"
	require.NoError(t, err, need)
	_, err = os.Stat(chromium)
	require.NoError(t, err, need)
	_, err = os.Stat("../node_modules/playwright-core/package.json")
	require.NoError(t, err, need)

	cfg, rep := reportRun(t, 6, 2*time.Second, nil)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	require.NoError(t, err)
	require.NoError(t, loadtest.WriteHTML(f, cfg, rep))
	require.NoError(t, f.Close())

	out, _ := filepath.Abs("../bin/browsertest")
	require.NoError(t, os.MkdirAll(out, 0o755))
	shot := filepath.Join(out, "report.png")
	_ = os.Remove(shot)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, "--url", "file://"+page, "--out", shot, "--chromium", chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "screenshot.mjs: %s", stderr.String())
	var res struct{ Plots, Width, Height int }
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res), stdout.String())
	require.Equal(t, len(loadtest.PlotNames()), res.Plots, "every chart laid out")

	b, err := os.ReadFile(shot)
	require.NoError(t, err)
	require.Greater(t, len(b), 30_000, "a picture, not a blank page")
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	bounds := img.Bounds()
	require.GreaterOrEqual(t, bounds.Dx(), 1000)
	require.GreaterOrEqual(t, bounds.Dy(), 1000, "the whole page")
	colours, blue := countColours(img)
	require.Greater(t, colours, 50, "text and charts, not a blank page")
	require.Greater(t, blue, 500, "the charts' blue (#1f77b4) drawn")
}

// countColours counts img's distinct colours, and its pixels near the
// charts' first colour, #1f77b4.
func countColours(img image.Image) (distinct, blue int) {
	seen := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			seen[r<<16|g<<8|bl] = true
			if near(r, 0x1f) && near(g, 0x77) && near(bl, 0xb4) {
				blue++
			}
		}
	}
	return len(seen), blue
}

func near(a, b uint32) bool { return a+12 >= b && a <= b+12 }

// A bot behind -net loss=20% loses a fifth of its datagrams each way: the
// loss its client measures on the way to the server and the snapshots it
// misses on the way back are both about 20 %.
func TestNetProfileLoss(t *testing.T) {
	nets, err := loadtest.ParseNet("loss=20%")
	require.NoError(t, err)
	_, rep := reportRun(t, 10, 4*time.Second, nets)
	require.Len(t, rep.Profiles, 1)
	p := rep.Profiles[0]
	t.Logf("profile %+v", p)
	require.Equal(t, "custom", p.Name)
	require.Equal(t, 10, p.Bots)
	require.Equal(t, 10, p.Connected)
	// Some 1000 decided datagrams: one standard deviation of the measure
	// is about 1.3 points.
	require.Greater(t, p.DatagramsSent, uint64(700), "enough datagrams to measure")
	require.InDelta(t, 20, p.LossPercent, 5, "loss measured bot → server")
	require.InDelta(t, 80, p.DeliveryPercent, 7, "snapshots delivered server → bot")
	require.Greater(t, p.RTT.P99, p.RTT.P50, "lost stream packets wait for retransmission")
}

// -net-mix deals the bots out by weight, and each profile's figures are
// its own: the bad path's round trips take its delay both ways (about
// 240 ms), the LAN's next to nothing.
func TestNetMix(t *testing.T) {
	nets, err := loadtest.ParseNetMix("lan:2,bad:1")
	require.NoError(t, err)
	_, rep := reportRun(t, 6, 3*time.Second, nets)
	require.Len(t, rep.Profiles, 2)
	lan, bad := rep.Profiles[0], rep.Profiles[1]
	t.Logf("lan %+v", lan)
	t.Logf("bad %+v", bad)
	require.Equal(t, "lan", lan.Name)
	require.Equal(t, "bad", bad.Name)
	require.Equal(t, 4, lan.Bots)
	require.Equal(t, 2, bad.Bots)
	require.Less(t, lan.RTT.P50, 20.0)
	// 120 ms ± 40 ms each way; one way alone would stay under 160 ms. (Not
	// the 240 ms median of two draws: a request's first copy to arrive,
	// on the stream or in a datagram, answers it.)
	require.Greater(t, bad.RTT.P50, 170.0, "delayed both ways, not only on the way out")
	require.Less(t, bad.RTT.P50, 400.0)
	require.Greater(t, lan.DeliveryPercent, 90.0)
}

// Network profiles impair UDP: a bot on ws:// behind one fails to dial,
// saying why, and a Dial of the caller's is refused.
func TestNetProfileRefuses(t *testing.T) {
	nets, err := loadtest.ParseNet("wifi")
	require.NoError(t, err)
	rep, err := loadtest.Run(context.Background(), loadtest.Config{Addr: "ws://127.0.0.1:1/ws", Networks: nets})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Failed)
	require.Len(t, rep.Errors, 1)
	require.Contains(t, rep.Errors[0], "cannot impair ws://")
	require.Equal(t, 1, rep.Profiles[0].Bots)
	require.Zero(t, rep.Profiles[0].Connected)

	_, err = loadtest.Run(context.Background(), loadtest.Config{
		Addr: "quic://127.0.0.1:1", Networks: nets,
		Client: netcode.ClientConfig{Dial: func(context.Context, string) (transport.Session, error) { return nil, nil }},
	})
	require.ErrorContains(t, err, "leave Client.Dial unset")
}
