// Package matrix measures a Roomwire server the way players on real
// networks see it: for each cell of a transport × loss × round-trip matrix
// it puts an impair.Proxy with that path's delay, jitter and loss in front
// of the server, runs a loadtest through it and derives one Row of
// figures (snapshots delivered, interpolation underruns and delay, event
// round trips against the path's, inputs delivered, bandwidth).
//
// Cells run one after another, each with a fresh proxy; the server's
// counters are read before and after each (Config.Metrics), so the server
// should serve nobody else meanwhile. cmd/netmatrix is the command-line
// front end; the package is separate from loadtest so that loadtest, which
// botclient links, does not link the impairment package.
package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/roomwire/roomwire/loadtest"
	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/transport/impair"
)

// The full matrix's axes.
var (
	Transports = []string{"quic", "kcp"}
	Losses     = []float64{0, 0.05, 0.20}
	RTTs       = []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond}
)

// DefaultJitter is each direction's jitter in every cell unless told
// otherwise: ±10 ms.
const DefaultJitter = 10 * time.Millisecond

// Cell is one network condition on one transport.
type Cell struct {
	// Transport is "quic" or "kcp".
	Transport string
	// RTT is the path's round-trip delay: RTT/2 each way.
	RTT time.Duration
	// Loss is each direction's packet loss, from 0 to 1.
	Loss float64
	// Jitter is each direction's jitter: every packet waits its delay ±
	// up to Jitter, never less than zero.
	Jitter time.Duration
}

// String names the cell as ParseCells reads it: "kcp/150ms/20%".
func (c Cell) String() string {
	return fmt.Sprintf("%s/%v/%s", c.Transport, c.RTT, pct(c.Loss))
}

func pct(p float64) string { return fmt.Sprintf("%g%%", math.Round(p*1000)/10) }

// Profile is the cell's impairment, in impair.ParseProfile's terms.
func (c Cell) Profile() impair.Profile {
	cfg := impair.Config{Delay: c.RTT / 2, Jitter: c.Jitter, Loss: c.Loss}
	return impair.Profile{ToServer: cfg, ToClient: cfg}
}

// MarshalJSON writes the cell as {"transport", "rtt_ms", "loss_pct",
// "jitter_ms"}.
func (c Cell) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Transport string  `json:"transport"`
		RTT       float64 `json:"rtt_ms"`
		Loss      float64 `json:"loss_pct"`
		Jitter    float64 `json:"jitter_ms"`
	}{c.Transport, ms(c.RTT), round2(100 * c.Loss), ms(c.Jitter)})
}

// Cells is the full matrix with the given jitter, ordered by transport,
// then loss, then round trip.
func Cells(jitter time.Duration) []Cell {
	var cells []Cell
	for _, tr := range Transports {
		for _, loss := range Losses {
			for _, rtt := range RTTs {
				cells = append(cells, Cell{Transport: tr, RTT: rtt, Loss: loss, Jitter: jitter})
			}
		}
	}
	return cells
}

// ParseCells reads a comma-separated list of TRANSPORT/RTT/LOSS cells,
// such as "quic/150ms/20%,kcp/0s/0%", in which any part may be "*" for
// every value of that axis of the full matrix ("*/150ms/*"). RTT is a
// duration ("150ms", "0"); LOSS a percentage ("5%") or a fraction
// ("0.05"). Empty or "all" is the full matrix. Every cell gets the given
// jitter; duplicates are dropped.
func ParseCells(s string, jitter time.Duration) ([]Cell, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return Cells(jitter), nil
	}
	var cells []Cell
	seen := map[Cell]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		parts := strings.Split(item, "/")
		if len(parts) != 3 {
			return nil, fmt.Errorf("matrix: cell %q: want TRANSPORT/RTT/LOSS", item)
		}
		trs := Transports
		if parts[0] != "*" {
			if parts[0] != "quic" && parts[0] != "kcp" {
				return nil, fmt.Errorf("matrix: cell %q: transport %q is not quic or kcp", item, parts[0])
			}
			trs = []string{parts[0]}
		}
		rtts := RTTs
		if parts[1] != "*" {
			d, err := time.ParseDuration(parts[1])
			if err != nil || d < 0 {
				return nil, fmt.Errorf("matrix: cell %q: bad round trip %q", item, parts[1])
			}
			rtts = []time.Duration{d}
		}
		losses := Losses
		if parts[2] != "*" {
			p, err := impair.ParseProfile("loss=" + parts[2])
			if err != nil {
				return nil, fmt.Errorf("matrix: cell %q: %w", item, err)
			}
			losses = []float64{p.ToServer.Loss}
		}
		for _, tr := range trs {
			for _, loss := range losses {
				for _, rtt := range rtts {
					c := Cell{Transport: tr, RTT: rtt, Loss: loss, Jitter: jitter}
					if !seen[c] {
						seen[c] = true
						cells = append(cells, c)
					}
				}
			}
		}
	}
	return cells, nil
}

// Config describes a matrix run against one server.
type Config struct {
	// QUIC and KCP are the server's URLs, "quic://127.0.0.1:7777" and
	// "kcp://127.0.0.1:7778". A cell whose transport has none fails.
	QUIC, KCP string
	// Load is every cell's load: bots, duration, token key and so on. Its
	// Addr is replaced by the cell's proxy; a zero Drain becomes twice
	// the cell's round trip plus four jitters plus 300 ms, long enough for
	// every input in flight, and its resends, to land before a bot closes.
	Load loadtest.Config
	// Metrics, if set, reads the server's counters; it is called before
	// and after each cell, for the inputs the server received. HTTPMetrics
	// makes one for a gameserver's side port.
	Metrics func(context.Context) (netcode.Metrics, error)
	// Settle bounds the wait after the bots closed for the server to see
	// their connections end (with Metrics), before the proxy closes. Zero
	// means 5 s.
	Settle time.Duration
	// Seed is mixed into every proxy's seeds, so that a run repeats its
	// cells' loss patterns.
	Seed uint64
	// Progress, if set, is called with each row as its cell finishes.
	Progress func(Row)
}

// Row is one cell's result.
type Row struct {
	Cell   Cell              `json:"cell"`
	Report loadtest.Report   `json:"report"`
	Proxy  impair.ProxyStats `json:"proxy"`
	// InputsReceived and InputsRedundant are the server's Metrics counters'
	// growth during the cell; HaveServer says whether Config.Metrics read
	// them.
	InputsReceived  uint64 `json:"inputs_received"`
	InputsRedundant uint64 `json:"inputs_redundant"`
	HaveServer      bool   `json:"have_server"`
	// ServerConnsLeft is how many more connections the server still held
	// when Config.Settle ran out than before the cell: bots' closes that
	// the path lost, left to the server's idle timeout.
	ServerConnsLeft int64 `json:"server_conns_left"`

	// SnapshotsPercent is snapshots received as a percentage of expected.
	SnapshotsPercent float64 `json:"snapshots_pct"`
	// UnderrunPercent is the interpolation frames that underran, in
	// percent.
	UnderrunPercent float64 `json:"underrun_pct"`
	// IntervalMs is the snapshot interval, 1000 / the tick rate.
	IntervalMs float64 `json:"interval_ms"`
	// InterpMeanMs and InterpP99Ms are the interpolation delay's mean and
	// 99th percentile; the Intervals fields the same in snapshot
	// intervals.
	InterpMeanMs        float64 `json:"interp_mean_ms"`
	InterpMeanIntervals float64 `json:"interp_mean_intervals"`
	InterpP99Ms         float64 `json:"interp_p99_ms"`
	InterpP99Intervals  float64 `json:"interp_p99_intervals"`
	// EventP50Ms and EventP99Ms are the reliable ping's round trip;
	// EventP99PerRTT is the p99 over the path's round trip (zero for a
	// zero-RTT cell).
	EventP50Ms     float64 `json:"event_p50_ms"`
	EventP99Ms     float64 `json:"event_p99_ms"`
	EventP99PerRTT float64 `json:"event_p99_per_rtt"`
	// InputsDeliveredPercent is InputsReceived over the bots' InputsSent,
	// in percent: 100 when every input reached the game once. Zero without
	// HaveServer.
	InputsDeliveredPercent float64 `json:"inputs_delivered_pct"`
	// KbpsDown and KbpsUp are the payload bandwidth per bot (Roomwire's
	// bytes); WireKbpsDown and WireKbpsUp the datagrams the proxy relayed
	// (transport headers, acks and retransmissions included, UDP/IP
	// headers not), per bot, before loss.
	KbpsDown     float64 `json:"kbps_down"`
	KbpsUp       float64 `json:"kbps_up"`
	WireKbpsDown float64 `json:"wire_kbps_down"`
	WireKbpsUp   float64 `json:"wire_kbps_up"`
}

// Run runs the cells in turn and returns their rows. It stops at the first
// cell that cannot run (a missing URL, a proxy that cannot listen) or when
// ctx ends, returning the rows so far.
func Run(ctx context.Context, cfg Config, cells []Cell) ([]Row, error) {
	var rows []Row
	for i, c := range cells {
		if err := ctx.Err(); err != nil {
			return rows, err
		}
		ccfg := cfg
		ccfg.Seed = cfg.Seed + uint64(i)*0x9e3779b97f4a7c15
		row, err := RunCell(ctx, ccfg, c)
		if err != nil {
			return rows, err
		}
		rows = append(rows, row)
		if cfg.Progress != nil {
			cfg.Progress(row)
		}
	}
	return rows, nil
}

// RunCell runs one cell: a proxy with the cell's profile in front of the
// server, a loadtest through it, and the row.
func RunCell(ctx context.Context, cfg Config, c Cell) (Row, error) {
	url := cfg.QUIC
	if c.Transport == "kcp" {
		url = cfg.KCP
	}
	scheme, upstream, ok := strings.Cut(url, "://")
	if url == "" || !ok || scheme != c.Transport {
		return Row{}, fmt.Errorf("matrix: cell %s: no %s:// server URL (have %q)", c, c.Transport, url)
	}
	prof := c.Profile()
	prof.ToServer.Seed, prof.ToClient.Seed = cfg.Seed, cfg.Seed+1
	proxy, err := impair.NewProxy(impair.ProxyConfig{Upstream: upstream, ToServer: prof.ToServer, ToClient: prof.ToClient})
	if err != nil {
		return Row{}, fmt.Errorf("matrix: cell %s: %w", c, err)
	}
	defer func() { _ = proxy.Close() }()

	var before netcode.Metrics
	if cfg.Metrics != nil {
		if before, err = cfg.Metrics(ctx); err != nil {
			return Row{}, fmt.Errorf("matrix: cell %s: server metrics: %w", c, err)
		}
	}
	load := cfg.Load
	load.Addr = c.Transport + "://" + proxy.Addr().String()
	if load.Drain <= 0 {
		load.Drain = 2*c.RTT + 4*c.Jitter + 300*time.Millisecond
	}
	rep, err := loadtest.Run(ctx, load)
	if err != nil {
		return Row{}, fmt.Errorf("matrix: cell %s: %w", c, err)
	}
	row := Row{Cell: c, Report: rep}
	if cfg.Metrics != nil {
		after, err := settle(ctx, cfg, before)
		if err != nil {
			return Row{}, fmt.Errorf("matrix: cell %s: server metrics: %w", c, err)
		}
		row.HaveServer = true
		row.InputsReceived = after.InputsReceived - before.InputsReceived
		row.InputsRedundant = after.InputsRedundant - before.InputsRedundant
		row.ServerConnsLeft = max(after.ConnsActive-before.ConnsActive, 0)
	}
	row.Proxy = proxy.Stats()
	row.derive()
	return row, nil
}

// settle waits, at most cfg.Settle, until the server has no more
// connections than before the cell, and returns its counters then.
func settle(ctx context.Context, cfg Config, before netcode.Metrics) (netcode.Metrics, error) {
	limit := cfg.Settle
	if limit <= 0 {
		limit = 5 * time.Second
	}
	deadline := time.Now().Add(limit)
	for {
		m, err := cfg.Metrics(ctx)
		if err != nil || m.ConnsActive <= before.ConnsActive || !time.Now().Before(deadline) {
			return m, err
		}
		select {
		case <-ctx.Done():
			return m, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *Row) derive() {
	rep := &r.Report
	if rep.SnapshotsExpected > 0 {
		r.SnapshotsPercent = round2(100 * float64(rep.SnapshotsReceived) / float64(rep.SnapshotsExpected))
	}
	r.UnderrunPercent = rep.InterpUnderrunPercent
	if rep.TickRate > 0 {
		r.IntervalMs = round2(1000 / float64(rep.TickRate))
		r.InterpMeanIntervals = round2(rep.InterpDelayMean / (1000 / float64(rep.TickRate)))
		r.InterpP99Intervals = round2(rep.InterpDelay.P99 / (1000 / float64(rep.TickRate)))
	}
	r.InterpMeanMs = rep.InterpDelayMean
	r.InterpP99Ms = rep.InterpDelay.P99
	r.EventP50Ms, r.EventP99Ms = rep.RTT.P50, rep.RTT.P99
	if r.Cell.RTT > 0 {
		r.EventP99PerRTT = round2(rep.RTT.P99 / ms(r.Cell.RTT))
	}
	if r.HaveServer && rep.InputsSent > 0 {
		r.InputsDeliveredPercent = round2(100 * float64(r.InputsReceived) / float64(rep.InputsSent))
	}
	r.KbpsDown, r.KbpsUp = rep.KbpsDown, rep.KbpsUp
	if rep.BotSeconds > 0 {
		r.WireKbpsDown = round2(float64(r.Proxy.ToClient.Bytes) * 8 / 1000 / rep.BotSeconds)
		r.WireKbpsUp = round2(float64(r.Proxy.ToServer.Bytes) * 8 / 1000 / rep.BotSeconds)
	}
}

// WriteMarkdown writes the rows as a Markdown table, then a line for each
// row whose bots failed or saw errors.
func WriteMarkdown(w io.Writer, rows []Row) error {
	var b strings.Builder
	b.WriteString("| transport | RTT ms | loss | snapshots recv/exp | underruns | interp delay mean ms (intervals) | interp delay p99 ms (intervals) | event RTT p50 ms | event RTT p99 ms (× path RTT) | inputs delivered | kbit/s per bot ↓ / ↑ | wire kbit/s per bot ↓ / ↑ |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		perRTT := "–"
		if r.Cell.RTT > 0 {
			perRTT = fmt.Sprintf("%.2f×", r.EventP99PerRTT)
		}
		inputs := "–"
		if r.HaveServer {
			inputs = fmt.Sprintf("%.2f %% (%d / %d)", r.InputsDeliveredPercent, r.InputsReceived, r.Report.InputsSent)
		}
		fmt.Fprintf(&b, "| %s | %g | %s | %.1f %% | %.2f %% | %.1f (%.2f) | %.1f (%.2f) | %.1f | %.1f (%s) | %s | %.1f / %.1f | %.1f / %.1f |\n",
			r.Cell.Transport, ms(r.Cell.RTT), pct(r.Cell.Loss),
			r.SnapshotsPercent, r.UnderrunPercent,
			r.InterpMeanMs, r.InterpMeanIntervals, r.InterpP99Ms, r.InterpP99Intervals,
			r.EventP50Ms, r.EventP99Ms, perRTT, inputs,
			r.KbpsDown, r.KbpsUp, r.WireKbpsDown, r.WireKbpsUp)
	}
	for _, r := range rows {
		rep := r.Report
		if rep.Failed > 0 || len(rep.Errors) > 0 || rep.Connected < rep.Bots {
			fmt.Fprintf(&b, "\n%s: %d of %d bots connected, %d failed; errors: %s\n",
				r.Cell, rep.Connected, rep.Bots, rep.Failed, strings.Join(rep.Errors, "; "))
		}
		if r.ServerConnsLeft > 0 {
			fmt.Fprintf(&b, "\n%s: the server still held %d of the bots' connections after they closed (closes lost on the path)\n",
				r.Cell, r.ServerConnsLeft)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// HTTPMetrics returns a Config.Metrics that reads a gameserver's side
// port: GET base + "/metrics" with Accept: application/json, whose JSON
// holds netcode.Metrics under "server".
func HTTPMetrics(base string) func(context.Context) (netcode.Metrics, error) {
	url := strings.TrimSuffix(base, "/") + "/metrics"
	client := &http.Client{Timeout: 5 * time.Second}
	return func(ctx context.Context) (netcode.Metrics, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return netcode.Metrics{}, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return netcode.Metrics{}, err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			return netcode.Metrics{}, fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		var body struct {
			Server *netcode.Metrics `json:"server"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
			return netcode.Metrics{}, fmt.Errorf("GET %s: %w", url, err)
		}
		if body.Server == nil {
			return netcode.Metrics{}, errors.New("GET " + url + ": no \"server\" metrics")
		}
		return *body.Server, nil
	}
}

func ms(d time.Duration) float64 { return round2(float64(d) / float64(time.Millisecond)) }

func round2(x float64) float64 { return math.Round(x*100) / 100 }
