package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// IdleResult is one subject's row of -idle: one JSON line with -json.
type IdleResult struct {
	// Subject is the transport (quic, kcp, ws), bare-quic or bare-udp.
	Subject string `json:"subject"`
	// Sessions is the server's active connections after the window, which
	// the per-session figures divide by.
	Sessions  int64   `json:"sessions"`
	Connected int     `json:"connected"` // by the clients' report
	Failed    int     `json:"failed"`
	WindowS   float64 `json:"window_s"`
	Pinned    bool    `json:"pinned"`
	// ServerCPUS is the server's user+system CPU over the window,
	// ServerCPUPct the same in % of one core.
	ServerCPUS   float64 `json:"server_cpu_s"`
	ServerCPUPct float64 `json:"server_cpu_pct"`
	// BytesPerSession is live heap plus goroutine stacks, after a forced
	// collection, less the same before any connection, per session.
	BytesPerSession int64 `json:"bytes_per_session"`
	// HeapPerSession and StackPerSession are its two parts.
	HeapPerSession  int64 `json:"heap_bytes_per_session"`
	StackPerSession int64 `json:"stack_bytes_per_session"`
	// GoroutinesPerSession is the goroutines more than before any
	// connection, per session.
	GoroutinesPerSession float64 `json:"goroutines_per_session"`
	// RSSPerSession is the growth of the server's resident set, per
	// session: an upper bound, since the runtime returns the handshakes'
	// garbage to the system only slowly.
	RSSPerSession int64 `json:"rss_bytes_per_session"`
	// VsBareQUIC, on the quic row, is its BytesPerSession over bare-quic's
	// in the same run; 0 elsewhere or without a bare-quic row.
	VsBareQUIC float64 `json:"vs_bare_quic,omitempty"`
	// VsBareQUICStream is the same over bare-quic-stream's.
	VsBareQUICStream float64 `json:"vs_bare_quic_stream,omitempty"`
	// CPUVsBareUDP, on the kcp row, is its ServerCPUPct over bare-udp's in
	// the same run; 0 elsewhere or without a bare-udp row.
	CPUVsBareUDP float64 `json:"cpu_vs_bare_udp,omitempty"`
	// Before and After are the raw figures: before any connection and
	// after the window.
	Before idleFigures `json:"before"`
	After  idleFigures `json:"after"`
	Note   string      `json:"note,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// idleFigures are a sample as IdleResult reports it.
type idleFigures struct {
	Sessions   int64  `json:"sessions"`
	Goroutines int64  `json:"goroutines"`
	HeapLive   int64  `json:"heap_live_bytes"`
	Stacks     int64  `json:"stack_bytes"`
	RSSKiB     uint64 `json:"rss_kib"`
}

func figuresOf(s sample) idleFigures {
	return idleFigures{Sessions: s.Active, Goroutines: s.Runtime.Goroutines, HeapLive: s.Runtime.HeapLive, Stacks: s.Runtime.Stacks, RSSKiB: s.RSSKiB}
}

// idleResult computes a row from the samples before the clients and after
// the window, and the window's CPU.
func idleResult(before, after sample, w window) IdleResult {
	r := IdleResult{
		Sessions:   after.Active,
		WindowS:    round(w.Seconds, 3),
		ServerCPUS: round(w.CPUSeconds, 3),
		Before:     figuresOf(before),
		After:      figuresOf(after),
	}
	if w.Seconds > 0 {
		r.ServerCPUPct = round(100*w.CPUSeconds/w.Seconds, 2)
	}
	if n := float64(after.Active); n > 0 {
		per := func(d int64) int64 { return int64(math.Round(float64(d) / n)) }
		r.HeapPerSession = per(after.Runtime.HeapLive - before.Runtime.HeapLive)
		r.StackPerSession = per(after.Runtime.Stacks - before.Runtime.Stacks)
		r.BytesPerSession = per(after.Runtime.HeapLive + after.Runtime.Stacks - before.Runtime.HeapLive - before.Runtime.Stacks)
		r.GoroutinesPerSession = round(float64(after.Runtime.Goroutines-before.Runtime.Goroutines)/n, 2)
		r.RSSPerSession = per(1024 * (int64(after.RSSKiB) - int64(before.RSSKiB)))
	}
	return r
}

// vsBare sets the quic row's ratios to the bare-quic and bare-quic-stream
// rows' memory per session, and the kcp row's to the bare-udp row's CPU,
// when both measured.
func vsBare(rows []IdleResult) {
	var bareQ, bareQS, bareU, q, k *IdleResult
	for i := range rows {
		switch r := &rows[i]; {
		case r.Error != "":
		case r.Subject == bareQUIC:
			bareQ = r
		case r.Subject == bareQUICStream:
			bareQS = r
		case r.Subject == bareUDP:
			bareU = r
		case r.Subject == "quic":
			q = r
		case r.Subject == "kcp":
			k = r
		}
	}
	if bareQ != nil && q != nil && bareQ.BytesPerSession > 0 {
		q.VsBareQUIC = round(float64(q.BytesPerSession)/float64(bareQ.BytesPerSession), 2)
	}
	if bareQS != nil && q != nil && bareQS.BytesPerSession > 0 {
		q.VsBareQUICStream = round(float64(q.BytesPerSession)/float64(bareQS.BytesPerSession), 2)
	}
	if bareU != nil && k != nil && bareU.ServerCPUPct > 0 {
		k.CPUVsBareUDP = round(k.ServerCPUPct/bareU.ServerCPUPct, 2)
	}
}

// writeIdleMarkdown prints the rows as a Markdown table.
func writeIdleMarkdown(w io.Writer, rows []IdleResult) error {
	var b strings.Builder
	b.WriteString("| subject | sessions | server CPU % | CPU vs bare UDP | bytes/session (heap + stacks) | goroutines/session | RSS bytes/session | vs bare quic-go | vs bare quic-go with a stream |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(&b, "| %s | error: %s | | | | | | | |\n", r.Subject, strings.ReplaceAll(r.Error, "|", "\\|"))
			continue
		}
		ratio, streamRatio := "", ""
		if r.VsBareQUIC > 0 {
			ratio = fmt.Sprintf("%.2f×", r.VsBareQUIC)
		}
		if r.VsBareQUICStream > 0 {
			streamRatio = fmt.Sprintf("%.2f×", r.VsBareQUICStream)
		}
		cpuRatio := ""
		if r.CPUVsBareUDP > 0 {
			cpuRatio = fmt.Sprintf("%.2f×", r.CPUVsBareUDP)
		}
		fmt.Fprintf(&b, "| %s | %d | %.2f | %s | %d (%d + %d) | %.2f | %d | %s | %s |\n",
			r.Subject, r.Sessions, r.ServerCPUPct, cpuRatio, r.BytesPerSession, r.HeapPerSession, r.StackPerSession,
			r.GoroutinesPerSession, r.RSSPerSession, ratio, streamRatio)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
