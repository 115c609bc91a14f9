package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// metricsJSON is a gameserver's /metrics.json, cut short, with 1000 idle
// connections.
const metricsJSON = `{
  "kcp": {"received": 41210, "sessions": 1000},
  "kinds": [{"kind": "arena", "rooms": 0, "members": 0, "tick_buckets": [{"le_ns": 50000, "count": 0}]}],
  "runtime": {"goroutines": 1022, "heap_live_bytes": 9437184, "stack_bytes": 4456448},
  "server": {"conns_accepted": 1000, "conns_active": 1000, "drops": {}, "closes": {}},
  "transports": [{"transport": "kcp", "handshaking": 0, "open": 1000}]
}`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics([]byte(metricsJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := sideMetrics{Runtime: runtimeFigures{Goroutines: 1022, HeapLive: 9437184, Stacks: 4456448}}
	want.Server.ConnsActive = 1000
	if m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
	for _, bad := range []string{"", "{", `{"server": {"conns_active": 3}}`, `{"runtime": {"goroutines": "many"}}`} {
		if _, err := parseMetrics([]byte(bad)); err == nil {
			t.Errorf("parseMetrics(%q): no error", bad)
		}
	}
}

func TestIdleResult(t *testing.T) {
	before := sample{Runtime: runtimeFigures{Goroutines: 20, HeapLive: 1_000_000, Stacks: 400_000}, RSSKiB: 20_000}
	after := sample{Active: 1000, Runtime: runtimeFigures{Goroutines: 1022, HeapLive: 5_500_000, Stacks: 2_500_000}, RSSKiB: 31_000}
	r := idleResult(before, after, window{Seconds: 10, CPUSeconds: 0.13})
	want := IdleResult{
		Sessions: 1000, WindowS: 10, ServerCPUS: 0.13, ServerCPUPct: 1.3,
		// (5.5 MB + 2.5 MB) − (1 MB + 0.4 MB), over 1000.
		BytesPerSession: 6600, HeapPerSession: 4500, StackPerSession: 2100,
		GoroutinesPerSession: 1, RSSPerSession: 11264, // 11 000 KiB over 1000
		Before: idleFigures{Goroutines: 20, HeapLive: 1_000_000, Stacks: 400_000, RSSKiB: 20_000},
		After:  idleFigures{Sessions: 1000, Goroutines: 1022, HeapLive: 5_500_000, Stacks: 2_500_000, RSSKiB: 31_000},
	}
	if r != want {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	if r := idleResult(before, sample{}, window{}); r.BytesPerSession != 0 || r.ServerCPUPct != 0 {
		t.Errorf("no sessions, no window: got %+v", r)
	}
}

func TestVsBare(t *testing.T) {
	rows := []IdleResult{
		{Subject: bareQUIC, BytesPerSession: 20000},
		{Subject: bareQUICStream, BytesPerSession: 17500},
		{Subject: "quic", BytesPerSession: 21000},
		{Subject: "kcp", BytesPerSession: 6000, ServerCPUPct: 3},
		{Subject: bareUDP, ServerCPUPct: 2},
	}
	vsBare(rows)
	if rows[2].VsBareQUIC != 1.05 || rows[0].VsBareQUIC != 0 || rows[3].VsBareQUIC != 0 {
		t.Errorf("got %v, %v, %v; want only quic's, 1.05", rows[0].VsBareQUIC, rows[2].VsBareQUIC, rows[3].VsBareQUIC)
	}
	if rows[2].VsBareQUICStream != 1.2 || rows[1].VsBareQUICStream != 0 || rows[3].VsBareQUICStream != 0 {
		t.Errorf("vs bare-quic-stream: got %v, %v, %v; want only quic's, 1.2", rows[1].VsBareQUICStream, rows[2].VsBareQUICStream, rows[3].VsBareQUICStream)
	}
	if rows[3].CPUVsBareUDP != 1.5 || rows[2].CPUVsBareUDP != 0 {
		t.Errorf("CPU vs bare UDP: kcp %v, quic %v; want 1.5 and none", rows[3].CPUVsBareUDP, rows[2].CPUVsBareUDP)
	}
	failed := []IdleResult{{Subject: bareQUIC, Error: "x"}, {Subject: "quic", BytesPerSession: 21000}}
	vsBare(failed)
	if failed[1].VsBareQUIC != 0 {
		t.Errorf("bare-quic failed: got ratio %v, want none", failed[1].VsBareQUIC)
	}
}

func TestWriteIdleMarkdown(t *testing.T) {
	var b strings.Builder
	rows := []IdleResult{
		{Subject: bareQUIC, Sessions: 500, ServerCPUPct: 0.8, BytesPerSession: 20000, HeapPerSession: 17000, StackPerSession: 3000, GoroutinesPerSession: 1.01, RSSPerSession: 30000},
		{Subject: "quic", Sessions: 500, ServerCPUPct: 1.25, BytesPerSession: 24000, HeapPerSession: 19000, StackPerSession: 5000, GoroutinesPerSession: 2, RSSPerSession: 41000, VsBareQUIC: 1.2, VsBareQUICStream: 1.1},
		{Subject: "ws", Error: "sessions never connected | x"},
		{Subject: "kcp", Sessions: 500, ServerCPUPct: 2.4, CPUVsBareUDP: 1.5, BytesPerSession: 8000, HeapPerSession: 7900, StackPerSession: 100, RSSPerSession: 9000},
	}
	if err := writeIdleMarkdown(&b, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6:\n%s", len(lines), b.String())
	}
	for i, want := range []string{
		"| bare-quic | 500 | 0.80 |  | 20000 (17000 + 3000) | 1.01 | 30000 |  |  |",
		"| quic | 500 | 1.25 |  | 24000 (19000 + 5000) | 2.00 | 41000 | 1.20× | 1.10× |",
		`| ws | error: sessions never connected \| x | | | | | | | |`,
		"| kcp | 500 | 2.40 | 1.50× | 8000 (7900 + 100) | 0.00 | 9000 |  |  |",
	} {
		if lines[2+i] != want {
			t.Errorf("row\n%s\nwant\n%s", lines[2+i], want)
		}
	}
}

func TestIdleCommands(t *testing.T) {
	c := config{Idle: 2000, JoinTimeout: time.Minute, Settle: 5 * time.Second, IdleWindow: 10 * time.Second,
		Gameserver: "bin/gameserver", Botclient: "bin/botclient", Self: "/tmp/perf"}
	p := ports{QUIC: 1, KCP: 2, HTTP: 3}
	srv, cl, err := c.idleCommands("kcp", p, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{{"-pprof"}, {"-max-conns", "2000"}, {"-max-conns-per-ip", "2000"}, {"-max-pending-handshakes", "2000"}, {"-http", "127.0.0.1:3"}} {
		if !hasArgs(srv, want) {
			t.Errorf("server %q: no %q", srv, want)
		}
	}
	for _, want := range [][]string{{"-idle"}, {"-addr", "kcp://127.0.0.1:2"}, {"-n", "100"}, {"-duration", "2m15s"}, {"-json"}} {
		if !hasArgs(cl, want) {
			t.Errorf("clients %q: no %q", cl, want)
		}
	}
	c.Idle = 10 // the defaults stay when they are higher
	srv, _, _ = c.idleCommands("quic", p, 10)
	if !hasArgs(srv, []string{"-max-conns", "1024"}) || !hasArgs(srv, []string{"-max-conns-per-ip", "64"}) {
		t.Errorf("server %q: limits lowered", srv)
	}
	srv, cl, err = c.idleCommands(bareQUIC, p, 100)
	if err != nil || srv[0] != "/tmp/perf" || srv[1] != "bare-quic-server" || cl[1] != "bare-quic-clients" ||
		!hasArgs(srv, []string{"-quic", "127.0.0.1:1"}) || !hasArgs(cl, []string{"-addr", "127.0.0.1:1"}) {
		t.Errorf("bare-quic: %q, %q, %v", srv, cl, err)
	}
	if hasArgs(srv, []string{"-stream"}) || hasArgs(cl, []string{"-stream"}) {
		t.Errorf("bare-quic: %q, %q: a stream", srv, cl)
	}
	srv, cl, err = c.idleCommands(bareQUICStream, p, 100)
	if err != nil || srv[1] != "bare-quic-server" || cl[1] != "bare-quic-clients" ||
		!hasArgs(srv, []string{"-stream"}) || !hasArgs(cl, []string{"-stream"}) {
		t.Errorf("bare-quic-stream: %q, %q, %v", srv, cl, err)
	}
	srv, cl, err = c.idleCommands(bareUDP, p, 100)
	if err != nil || srv[0] != "/tmp/perf" || srv[1] != "bare-udp-server" || cl[1] != "bare-udp-clients" ||
		!hasArgs(srv, []string{"-udp", "127.0.0.1:2"}) || !hasArgs(cl, []string{"-addr", "127.0.0.1:2"}) || !hasArgs(cl, []string{"-n", "100"}) {
		t.Errorf("bare-udp: %q, %q, %v", srv, cl, err)
	}
}

func hasArgs(args, want []string) bool {
	for i := range args {
		if slices.Equal(args[i:min(i+len(want), len(args))], want) {
			return true
		}
	}
	return false
}

// The bare server's figures read as a gameserver's, and it forces a
// collection as one with -pprof does.
func TestBareHandler(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	var active atomic.Int64
	active.Store(7)
	ts := httptest.NewServer(bareHandler(&active))
	defer ts.Close()
	s, err := sampleServer(context.Background(), ts.URL, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.Active != 7 || s.Runtime.Goroutines < 1 || s.Runtime.HeapLive <= 0 || s.Runtime.Stacks <= 0 {
		t.Errorf("got %+v", s)
	}
	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %s", resp.Status)
	}
}

func TestErrorTally(t *testing.T) {
	var e errorTally
	for _, msg := range []string{"b", "a", "timeout", "timeout", "a", "timeout"} {
		e.add(errors.New(msg))
	}
	if got, want := strings.Join(e.list(), "; "), "timeout (×3); a (×2); b (×1)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := (&errorTally{}).list(); len(got) != 0 {
		t.Errorf("no errors: got %q", got)
	}
}
