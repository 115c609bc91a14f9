package loadtest

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// PlotNames are the names WriteHTML gives its charts (their data-plot
// attribute), in the order they appear, for tests and tools that look
// for them.
func PlotNames() []string {
	return []string{
		"rtt-histogram", "rtt-over-time", "snapshots-per-second", "bandwidth",
		"snapshot-gap", "underruns", "loss", "connect-time", "room-delivery",
	}
}

// WriteHTML writes r, the report of a run of cfg, as one self-contained
// HTML page: the run's parameters, its main figures, the charts named in
// PlotNames (inline SVG drawn here, no script, nothing fetched), each network
// profile's figures, and the Report's JSON. It is the bot client's -html
// output. cfg's secrets (the token key) are left out.
func WriteHTML(w io.Writer, cfg Config, r Report) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	page := htmlPage{
		Title:     fmt.Sprintf("Roomwire load test: %d bots, %s", r.Bots, r.Transport),
		Generated: time.Now().Format(time.RFC3339),
		Params:    params(cfg),
		Figures:   figures(r),
		Plots:     charts(r),
		Profiles:  r.Profiles,
		Errors:    r.Errors,
		JSON:      string(js),
	}
	return pageTemplate.Execute(w, page)
}

// htmlPage is what the page template shows.
type htmlPage struct {
	Title, Generated string
	Params, Figures  [][2]string
	Plots            []template.HTML
	Profiles         []ProfileFigures
	Errors           []string
	JSON             string
}

// params lists the run's parameters as the run took them (defaults filled
// in).
func params(cfg Config) [][2]string {
	_ = cfg.populate() // defaults only: the run itself reported any error
	p := [][2]string{
		{"server", cfg.Addr},
		{"bots", fmt.Sprint(cfg.Bots)},
		{"bots per room", fmt.Sprint(cfg.PerRoom)},
		{"room kind", cfg.Kind},
		{"duration", cfg.Duration.String()},
		{"ping interval", cfg.PingInterval.String()},
		{"connect timeout", cfg.ConnectTimeout.String()},
		{"connect tokens", map[bool]string{true: "minted by the bots", false: "none"}[cfg.TokenKey != nil]},
		{"reliable copies", cfg.Client.ReliableCopies.String()},
	}
	opt := func(name string, on bool, v string) {
		if on {
			p = append(p, [2]string{name, v})
		}
	}
	opt("room prefix", cfg.RoomPrefix != "", cfg.RoomPrefix)
	opt("drain", cfg.Drain > 0, cfg.Drain.String())
	opt("churn", cfg.Churn > 0, cfg.Churn.String())
	opt("idle", cfg.Idle, "yes")
	opt("blackout", cfg.Blackout.Length > 0, cfg.Blackout.String())
	opt("rejoin", cfg.Rejoin, "yes")
	opt("history check", cfg.History, "yes")
	for _, n := range cfg.Networks {
		p = append(p, [2]string{"network " + n.Name, fmt.Sprintf("%s (weight %d)", n.Spec, max(n.Weight, 1))})
	}
	return p
}

// figures lists the report's main figures.
func figures(r Report) [][2]string {
	pct := func(a, b float64) string {
		if b <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f %%", 100*a/b)
	}
	f := [][2]string{
		{"transport", r.Transport},
		{"bots", fmt.Sprintf("%d connected, %d failed of %d (%d connects retried)", r.Connected, r.Failed, r.Bots, r.ConnectRetries)},
		{"duration", fmt.Sprintf("%.1f s", r.DurationSeconds)},
		{"connect time (ms)", fmt.Sprintf("p50 %.1f  p90 %.1f  p99 %.1f  max %.1f", r.ConnectTime.P50, r.ConnectTime.P90, r.ConnectTime.P99, r.ConnectTime.Max)},
		{"reliable events", fmt.Sprintf("%d acked of %d sent", r.EventsAcked, r.EventsSent)},
		{"ping RTT (ms)", fmt.Sprintf("p50 %.2f  p90 %.2f  p99 %.2f  max %.2f", r.RTT.P50, r.RTT.P90, r.RTT.P99, r.RTT.Max)},
		{"snapshots", fmt.Sprintf("%d of %d expected (%s)", r.SnapshotsReceived, r.SnapshotsExpected, pct(float64(r.SnapshotsReceived), float64(r.SnapshotsExpected)))},
		{"snapshot gap (ms)", fmt.Sprintf("p50 %.2f  p99 %.2f; each bot's longest: p50 %.0f  max %.0f", r.SnapshotGap.P50, r.SnapshotGap.P99, r.LongestGap.P50, r.LongestGap.Max)},
		{"interpolation", fmt.Sprintf("%d frames, %d underruns (%.2f %%), delay mean %.1f ms", r.InterpFrames, r.InterpUnderruns, r.InterpUnderrunPercent, r.InterpDelayMean)},
		{"bandwidth per bot", fmt.Sprintf("%.1f kbit/s down, %.1f kbit/s up", r.KbpsDown, r.KbpsUp)},
		{"tick rate", fmt.Sprintf("%d Hz", r.TickRate)},
	}
	if r.MachineStealPercent >= StealNoted {
		f = append(f, [2]string{"cpu steal", fmt.Sprintf("%.1f %% of the machine's CPU time went to other guests of its host", r.MachineStealPercent)})
	}
	if r.FramesSkipped > 0 {
		f = append(f, [2]string{"frames skipped", fmt.Sprintf("%d: the bot process ran late for its bots (too busy, or its CPU stolen)", r.FramesSkipped)})
	}
	if r.Away > 0 || r.Resumed > 0 || r.Expired > 0 {
		f = append(f, [2]string{"sessions", fmt.Sprintf("%d away, %d resumed, %d expired", r.Away, r.Resumed, r.Expired)})
	}
	if r.HistoryChecked > 0 {
		f = append(f, [2]string{"history", fmt.Sprintf("%d echoes checked, %d violations", r.HistoryChecked, r.HistoryViolations)})
	}
	return f
}

// charts draws the report's charts, in the order of PlotNames.
func charts(r Report) []template.HTML {
	var (
		t, rttT, p50, p99, snaps, expected []float64
		down, up, underruns, loss          []float64
	)
	for _, s := range r.Series {
		t = append(t, s.T)
		if s.Pings > 0 {
			rttT, p50, p99 = append(rttT, s.T), append(p50, s.RTTP50), append(p99, s.RTTP99)
		}
		snaps = append(snaps, s.SnapshotsPerSec)
		expected = append(expected, s.ExpectedPerSec)
		down = append(down, s.BytesDownPerSec*8/1000)
		up = append(up, s.BytesUpPerSec*8/1000)
		underruns = append(underruns, s.UnderrunsPerSec)
		loss = append(loss, s.LossPercent)
	}
	var rooms []bar
	prefix := commonPrefix(r.Rooms)
	for _, d := range r.Rooms {
		rooms = append(rooms, bar{
			label: strings.TrimPrefix(d.Room, prefix), value: d.DeliveryPercent,
			title: fmt.Sprintf("%s: %.1f %% (%d of %d snapshots, %d bots)", d.Room, d.DeliveryPercent, d.SnapshotsReceived, d.SnapshotsExpected, d.Bots),
		})
	}
	roomTitle := "Snapshot delivery per room"
	if prefix != "" {
		roomTitle += " (" + prefix + "…)"
	}
	return []template.HTML{
		barChart("rtt-histogram", "Ping round trips", "RTT (ms)", "pings", histBars(r.RTTHistogram), 0),
		lineChart("rtt-over-time", "Ping RTT percentiles over time", "time (s)", "RTT (ms)",
			[]line{{label: "p50", x: rttT, y: p50}, {label: "p99", x: rttT, y: p99}}),
		lineChart("snapshots-per-second", "Snapshots received per second (all bots)", "time (s)", "snapshots/s",
			[]line{{label: "received", x: t, y: snaps}, {label: "expected", x: t, y: expected, dashed: true}}),
		lineChart("bandwidth", "Bandwidth (all bots, payload)", "time (s)", "kbit/s",
			[]line{{label: "down", x: t, y: down}, {label: "up", x: t, y: up}}),
		barChart("snapshot-gap", "Gaps between a bot's snapshots", "gap (ms)", "gaps", histBars(r.SnapshotGapHistogram), 0),
		lineChart("underruns", "Interpolation underruns per second (all bots)", "time (s)", "underruns/s",
			[]line{{label: "underruns", x: t, y: underruns}}),
		lineChart("loss", "Datagram loss measured by the bots (bot → server)", "time (s)", "loss (%)",
			[]line{{label: "loss", x: t, y: loss}}),
		barChart("connect-time", "Connect time (dial to joined)", "time (ms)", "bots", histBars(r.ConnectHistogram), 0),
		barChart("room-delivery", roomTitle, "room", "delivered (%)", rooms, 100),
	}
}

// histBars turns histogram buckets into bars labelled by their lower edges.
func histBars(bs []Bucket) []bar {
	out := make([]bar, 0, len(bs))
	for _, b := range bs {
		out = append(out, bar{
			label: num(b.LowMs), value: float64(b.Count),
			title: fmt.Sprintf("%s–%s ms: %d", num(b.LowMs), num(b.HighMs), b.Count),
		})
	}
	return out
}

// commonPrefix is the rooms' names' longest common prefix ending in "-",
// left off their labels.
func commonPrefix(rooms []RoomDelivery) string {
	if len(rooms) < 2 {
		return ""
	}
	p := rooms[0].Room
	for _, d := range rooms[1:] {
		for !strings.HasPrefix(d.Room, p) {
			p = p[:len(p)-1]
		}
	}
	if i := strings.LastIndex(p, "-"); i >= 0 {
		return p[:i+1]
	}
	return ""
}

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.sub { color: #666; margin-bottom: 16px; }
.cols { display: flex; flex-wrap: wrap; gap: 24px; }
table { border-collapse: collapse; background: #fff; }
td, th { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(640px, 1fr)); gap: 16px; }
.plots svg { background: #fff; border: 1px solid #ddd; max-width: 100%; height: auto; }
svg .title { font-size: 13px; font-weight: 600; fill: #222; }
svg .tick, svg .legend { font-size: 11px; fill: #555; }
svg .axis { font-size: 11px; fill: #333; }
svg .grid { stroke: #eee; }
svg .frame { fill: none; stroke: #999; }
svg .nodata { font-size: 14px; fill: #999; }
pre { background: #fff; border: 1px solid #ddd; padding: 12px; overflow: auto; max-height: 480px; font-size: 12px; }
.err { color: #b00; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<div class="sub">generated {{.Generated}} by botclient (package loadtest)</div>
<div class="cols">
<div><h2>Parameters</h2><table>{{range .Params}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table></div>
<div><h2>Figures</h2><table>{{range .Figures}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table></div>
</div>
{{if .Profiles}}<h2>Network profiles</h2>
<table><tr><th>profile</th><th>spec</th><th>bots</th><th>joined</th><th>RTT p50 (ms)</th><th>RTT p99 (ms)</th><th>loss measured, bot → server</th><th>snapshot delivery</th><th>underruns</th></tr>
{{range .Profiles}}<tr><td>{{.Name}}</td><td>{{.Spec}}</td><td class="num">{{.Bots}}</td><td class="num">{{.Connected}}</td><td class="num">{{printf "%.1f" .RTT.P50}}</td><td class="num">{{printf "%.1f" .RTT.P99}}</td><td class="num">{{printf "%.1f" .LossPercent}} % ({{.DatagramsLost}} of {{.DatagramsSent}})</td><td class="num">{{printf "%.1f" .DeliveryPercent}} %</td><td class="num">{{printf "%.2f" .InterpUnderrunPercent}} %</td></tr>
{{end}}</table>{{end}}
<h2>Charts</h2>
<div class="plots">{{range .Plots}}{{.}}
{{end}}</div>
{{if .Errors}}<h2>Errors</h2><ul>{{range .Errors}}<li class="err">{{.}}</li>{{end}}</ul>{{end}}
<h2>Report (JSON)</h2>
<pre id="report-json">{{.JSON}}</pre>
</body>
</html>
`))
