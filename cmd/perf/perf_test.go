package main

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/roomwire/roomwire/loadtest"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       uint64
	}{
		{"gameserver", "81234 (gameserver) S 81230 81230 2340 0 -1 4194560 5519 0 0 0 1234 567 0 0 20 0 9 0 1641108 1300000000 8000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n", 1801},
		// The command name may hold spaces and parentheses.
		{"odd name", "7 (a) b (c d)) R 1 7 7 0 -1 4194304 99 0 0 0 12 3 4 5 20 0 1 0 100 3133440 383", 15},
		{"fresh", "4741 (cat) R 4737 4737 2340 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 1641108 3133440 383", 0},
	} {
		got, err := parseStat([]byte(tc.line))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %d ticks, want %d", tc.name, got, tc.want)
		}
	}
	for _, bad := range []string{"", "81234 gameserver S 1 2 3", "81234 (gameserver) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 twelve 3 0 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tgameserver\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 1904028 kB\nVmSize:\t 1904028 kB\nVmLck:\t       0 kB\nVmHWM:\t   48212 kB\nVmRSS:\t   41876 kB\nRssAnon:\t   30000 kB\nThreads:\t9\n"
	m, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 41876 || m.PeakRSS != 48212 {
		t.Errorf("got %+v, want RSS 41876 and peak 48212 KiB", m)
	}
	if _, err := parseStatus([]byte("Name:\tkthreadd\nState:\tS (sleeping)\n")); err == nil {
		t.Error("a kernel thread's status (no VmRSS): no error")
	}
	if _, err := parseStatus([]byte("VmHWM:\t 12 MB\nVmRSS:\t 10 kB\n")); err == nil {
		t.Error("a unit other than kB: no error")
	}
}

func TestProcSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Error(err)
	}
	m, err := procMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS == 0 || m.PeakRSS < m.RSS {
		t.Errorf("own memory %+v: want RSS > 0 and peak ≥ RSS", m)
	}
}

// report is a botclient -json run's output: 4 bots on KCP for 2 s.
const report = `{"transport":"kcp","bots":4,"connected":4,"failed":0,"duration_s":2,"events_sent":8,"events_acked":8,"rtt_ms":{"p50":0.28,"p90":0.42,"p99":0.42,"max":0.42},"snapshots_received":236,"snapshots_expected":240,"snapshot_gap_ms":{"p50":33.38,"p99":34.11},"bytes_sent":7888,"bytes_received":12204,"interp_frames":470,"interp_underruns":0,"interp_underrun_pct":0,"interp_delay_mean_ms":56.04,"interp_delay_ms":{"p50":49.22,"p90":101.38,"p99":124.48,"max":133.76},"tick_rate":30,"inputs_sent":236,"kbps_down_per_bot":12.2,"kbps_up_per_bot":7.89,"bot_seconds":8,"snapshots_undecodable":0,"errors":[]}`

func TestParseReport(t *testing.T) {
	rep, err := parseReport([]byte("a line before\n" + report + "\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Transport != "kcp" || rep.Connected != 4 || rep.DurationSeconds != 2 ||
		rep.SnapshotsReceived != 236 || rep.SnapshotsExpected != 240 || rep.RTT.P50 != 0.28 || rep.RTT.P99 != 0.42 {
		t.Errorf("got %+v", rep)
	}
	for _, bad := range []string{"", "\n\n", report[:40], `{"transport":"kcp"}`} {
		if _, err := parseReport([]byte(bad)); err == nil {
			t.Errorf("parseReport(%q): no error", bad)
		}
	}
}

func TestResult(t *testing.T) {
	rep, err := parseReport([]byte(report))
	if err != nil {
		t.Fatal(err)
	}
	// 236 snapshots in 2 s is 118 a second; over a 1.5 s window, 177,
	// delivered for 0.25 s of server CPU: 708 a CPU-second, 16.7 % of a core.
	r := result(rep, window{Seconds: 1.5, CPUSeconds: 0.25, Memory: memory{RSS: 41876, PeakRSS: 48212}, Goroutines: 57})
	want := Result{WindowS: 1.5, Msgs: 177, ServerCPUS: 0.25, MsgsPerServerCPUS: 708, ServerCPUPct: 16.7,
		Delivery: 0.9833, Connected: 4, RTTP50Ms: 0.28, RTTP99Ms: 0.42, RSSMB: 40.9, PeakRSSMB: 47.1, Goroutines: 57}
	if r != want {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	if r := result(rep, window{Seconds: 1.5}); r.MsgsPerServerCPUS != 0 || r.ServerCPUPct != 0 {
		t.Errorf("no CPU used: got %v msgs/CPU-s at %v %%, want 0", r.MsgsPerServerCPUS, r.ServerCPUPct)
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b strings.Builder
	rows := []Result{
		{Transport: "quic", MsgsPerServerCPUS: 708, ServerCPUPct: 16.7, Delivery: 0.9833, Connected: 4, RTTP50Ms: 0.28, RTTP99Ms: 0.42, RSSMB: 40.9, PeakRSSMB: 47.1, Goroutines: 57},
		{Transport: "ws", Error: "bots never joined: 0 of 4 | x"},
	}
	if err := writeMarkdown(&b, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), b.String())
	}
	if want := "| quic | 708 | 16.7 | 0.9833 | 4/0 | 0.28/0.42 | 40.9 (47.1) | 57 |"; lines[2] != want {
		t.Errorf("row\n%s\nwant\n%s", lines[2], want)
	}
	if want := `| ws | error: bots never joined: 0 of 4 \| x | | | | | | |`; lines[3] != want {
		t.Errorf("row\n%s\nwant\n%s", lines[3], want)
	}
}

func TestParseTransports(t *testing.T) {
	for _, tc := range []struct {
		list string
		idle bool
		want string
	}{
		{" quic, kcp,ws,", false, "quic kcp ws"},
		// With -idle, bare-quic, bare-quic-stream and bare-udp come just
		// before quic and kcp unless one of theirs is named.
		{" quic, kcp,ws,", true, "bare-quic bare-quic-stream quic bare-udp kcp ws"},
		{"kcp,quic", true, "bare-udp kcp bare-quic bare-quic-stream quic"},
		{"kcp", true, "bare-udp kcp"},
		{"kcp,bare-udp", true, "kcp bare-udp"},
		{"quic,bare-quic", true, "quic bare-quic"},
		{"bare-quic", true, "bare-quic"},
		{"bare-quic-stream,quic", true, "bare-quic-stream quic"},
		{"ws", true, "ws"},
	} {
		got, err := parseTransports(tc.list, tc.idle)
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("parseTransports(%q, %v): got %q, %v; want %q", tc.list, tc.idle, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "quic,tcp", "kcp,kcp", "bare-quic", "bare-quic-stream"} {
		if _, err := parseTransports(bad, false); err == nil {
			t.Errorf("parseTransports(%q, false): no error", bad)
		}
	}
	for _, bad := range []string{"", "tcp", "bare-quic,quic,bare-quic"} {
		if _, err := parseTransports(bad, true); err == nil {
			t.Errorf("parseTransports(%q, true): no error", bad)
		}
	}
}

// A run on a machine whose host stole much of its CPU, or whose bots ran
// late for their frames, says so beside its figure.
func TestLateNotes(t *testing.T) {
	if n := lateNotes(loadtest.Report{InterpFrames: 1000, FramesSkipped: 5, MachineStealPercent: 1}); len(n) != 0 {
		t.Errorf("a quiet run: notes %q", n)
	}
	n := lateNotes(loadtest.Report{InterpFrames: 600, FramesSkipped: 400, MachineStealPercent: 41.5})
	want := []string{"the host stole 41.5 % of the machine's CPU time", "the bots ran late for 40.0 % of their frames"}
	if len(n) != 2 || n[0] != want[0] || n[1] != want[1] {
		t.Errorf("notes %q, want %q", n, want)
	}
}
