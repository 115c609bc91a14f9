package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/roomwire/roomwire/loadtest"
)

// parseReport reads the bot client's -json report: one JSON object on the
// last non-empty line of its standard output.
func parseReport(stdout []byte) (loadtest.Report, error) {
	lines := bytes.Split(bytes.TrimSpace(stdout), []byte("\n"))
	last := bytes.TrimSpace(lines[len(lines)-1])
	if len(last) == 0 {
		return loadtest.Report{}, errors.New("botclient printed no report")
	}
	var rep loadtest.Report
	if err := json.Unmarshal(last, &rep); err != nil {
		return loadtest.Report{}, fmt.Errorf("botclient report: %w", err)
	}
	if rep.DurationSeconds <= 0 {
		return loadtest.Report{}, errors.New("botclient report: no duration_s")
	}
	return rep, nil
}

// window is what perf measured of the server over the window.
type window struct {
	Seconds    float64 // the window's length
	CPUSeconds float64 // the server's user+system CPU over it
	Memory     memory  // at the window's end
	Goroutines int     // at the window's end; 0 if /metrics.json did not say
}

// Result is one transport's row: one JSON line with -json.
type Result struct {
	Transport string  `json:"transport"`
	Rooms     int     `json:"rooms"`
	Players   int     `json:"players"`
	Hz        int     `json:"hz"`
	WindowS   float64 `json:"window_s"`
	Pinned    bool    `json:"pinned"`
	// Msgs is the state messages (snapshots) delivered to the bots during
	// the window: their delivery rate over the whole run times its length.
	Msgs       int64   `json:"msgs"`
	ServerCPUS float64 `json:"server_cpu_s"`
	// MsgsPerServerCPUS is the figure: Msgs over ServerCPUS.
	MsgsPerServerCPUS float64 `json:"msgs_per_server_cpu_s"`
	// ServerCPUPct is ServerCPUS over the window, in % of one core.
	ServerCPUPct float64 `json:"server_cpu_pct"`
	// Delivery is snapshots received over expected (tick rate × seconds in
	// the room, summed over the bots), for the whole run.
	Delivery   float64 `json:"delivery"`
	Connected  int     `json:"connected"`
	Failed     int     `json:"failed"`
	RTTP50Ms   float64 `json:"rtt_ms_p50"`
	RTTP99Ms   float64 `json:"rtt_ms_p99"`
	RSSMB      float64 `json:"rss_mb"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	Goroutines int     `json:"goroutines,omitempty"`
	BotErrors  int     `json:"bot_errors,omitempty"`
	// Note says what makes the figures doubtful, e.g. bots that left the
	// rooms before the window ended.
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
}

// result computes a row from the bots' report and the server's window, the
// way compare.sh does, so the figures stand beside the other servers' there.
func result(rep loadtest.Report, w window) Result {
	r := Result{
		WindowS:    round(w.Seconds, 3),
		ServerCPUS: round(w.CPUSeconds, 3),
		Connected:  rep.Connected,
		Failed:     rep.Failed,
		RTTP50Ms:   rep.RTT.P50,
		RTTP99Ms:   rep.RTT.P99,
		RSSMB:      round(float64(w.Memory.RSS)/1024, 1),
		PeakRSSMB:  round(float64(w.Memory.PeakRSS)/1024, 1),
		Goroutines: w.Goroutines,
		BotErrors:  len(rep.Errors),
	}
	msgs := float64(rep.SnapshotsReceived) / rep.DurationSeconds * w.Seconds
	r.Msgs = int64(math.Round(msgs))
	if w.CPUSeconds > 0 {
		r.MsgsPerServerCPUS = math.Round(msgs / w.CPUSeconds)
	}
	if w.Seconds > 0 {
		r.ServerCPUPct = round(100*w.CPUSeconds/w.Seconds, 1)
	}
	r.Delivery = round(float64(rep.SnapshotsReceived)/float64(max(rep.SnapshotsExpected, 1)), 4)
	return r
}

// lateNotes say what in the bots' report makes the server's figure
// doubtful: the machine's host stealing its CPU, or bots too late for
// their frames (and so for their inputs), which a server then does not get.
func lateNotes(rep loadtest.Report) []string {
	var notes []string
	if rep.MachineStealPercent >= loadtest.StealNoted {
		notes = append(notes, fmt.Sprintf("the host stole %.1f %% of the machine's CPU time", rep.MachineStealPercent))
	}
	if all := rep.InterpFrames + rep.FramesSkipped; rep.FramesSkipped > 0 && float64(rep.FramesSkipped) >= 0.01*float64(all) {
		notes = append(notes, fmt.Sprintf("the bots ran late for %.1f %% of their frames", 100*float64(rep.FramesSkipped)/float64(all)))
	}
	return notes
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// writeMarkdown prints the rows as a Markdown table.
func writeMarkdown(w io.Writer, rows []Result) error {
	var b strings.Builder
	b.WriteString("| transport | msgs/server-CPU-s | server CPU % | delivery | connected/failed | RTT p50/p99 ms | RSS MB (peak) | goroutines |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(&b, "| %s | error: %s | | | | | | |\n", r.Transport, strings.ReplaceAll(r.Error, "|", "\\|"))
			continue
		}
		g := "-"
		if r.Goroutines > 0 {
			g = fmt.Sprint(r.Goroutines)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.1f | %.4f | %d/%d | %.2f/%.2f | %.1f (%.1f) | %s |\n",
			r.Transport, r.MsgsPerServerCPUS, r.ServerCPUPct, r.Delivery, r.Connected, r.Failed,
			r.RTTP50Ms, r.RTTP99Ms, r.RSSMB, r.PeakRSSMB, g)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
