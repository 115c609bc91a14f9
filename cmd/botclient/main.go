// Command botclient runs headless bots against a Roomwire game server for
// load tests: each bot connects, joins an arena room, sends an input every
// tick and a reliable ping every second, and counts snapshots. It prints a
// live progress line and a table, or with -json one JSON object as its last
// line of output; -html writes the report as one HTML page with charts,
// -csv its time series as CSV files. -net and -net-mix put the bots behind
// impaired network paths (loss, delay, jitter, duplication, reordering).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/roomwire/roomwire/loadtest"
	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport/impair"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "botclient:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("botclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "quic://127.0.0.1:7777", "server `URL`s (quic://host:port, kcp://host:port, ws://host:port/ws or wss://host:port/ws), comma-separated to spread bots over them in turn")
	dev := fs.Bool("dev", true, "mint connect tokens with the built-in development key")
	keyFile := fs.String("token-key", "", "`file` with the connect token key to mint tokens with, as a matchmaker would; turns -dev off")
	protocolID := fs.Uint64("protocol-id", token.DefaultProtocolID, "connect tokens' protocol `id`")
	insecure := fs.Bool("insecure", false, "skip server certificate verification (development servers)")
	n := fs.Int("n", 50, "number of bots")
	perRoom := fs.Int("per-room", 10, "bots per room")
	roomPrefix := fs.String("room-prefix", "", "bot i joins room `NAME`-<i / per-room>, so that bots of several runs (against several nodes of a cluster) meet in the same rooms; a room on another node is followed there. Empty: rooms of this run's own")
	kind := fs.String("kind", "arena", "room `kind` to join")
	duration := fs.Duration("duration", 20*time.Second, "how long each bot plays after joining")
	ping := fs.Duration("ping", time.Second, "interval between a bot's reliable ping requests")
	connectTimeout := fs.Duration("connect-timeout", 10*time.Second, "bound on each bot's connect and join")
	churn := fs.Duration("churn", 0, "if set, each bot reconnects, to the next room, every `interval`, for -duration in all (a soak)")
	sample := fs.String("sample", "", "`URL` of the server's /metrics.json to sample goroutines and live heap from during the run (a soak)")
	sampleEvery := fs.Duration("sample-every", 10*time.Second, "interval between -sample readings")
	warmup := fs.Duration("warmup", 0, "samples before this are left out of the flatness check (default: a fifth of -duration)")
	flat := fs.Float64("flat", 0.10, "with -sample, fail unless goroutines and live heap stay within this `fraction` of their mean after warm-up")
	var copies netcode.CopyMode
	fs.Var(&copies, "copies", "copy small reliable frames into datagrams to beat retransmission timeouts: `auto` (while the path is slow or lossy), always or off")
	var blackout impair.Blackout
	fs.Var(&blackout, "blackout", "make each bot's network go dark: `LENGTH@START` (3s@10s: dark for 3 s from 10 s after the bot connected) or LENGTH@START/EVERY (2s@5s/5s: dark 2 s at 5 s, then again every 5 s); UDP packets are lost both ways, WebSocket's TCP stalls. The bots dial over impaired sockets and turn -history on; the report counts resumes and expired sessions")
	rejoin := fs.Bool("rejoin", false, "a bot whose connection ends early (its node died, its session expired) connects again, to the next of -addr's URLs, and joins its room again, until -duration is over")
	history := fs.Bool("history", false, "check reliable delivery end to end: each bot emits a counter every 100 ms as the event hist, which the server echoes back; the report counts echoes lost, duplicated or reordered")
	idle := fs.Bool("idle", false, "connect and stay idle for -duration: no room, no inputs, no pings (what an idle connection costs the server)")
	netSpec := fs.String("net", "", "put every bot behind this network `profile`, each way: a preset's name or key=value settings such as \"loss=5%,delay=40ms,jitter=10ms,dup=1%,reorder=2%\" (delay is one way; rtt=D for a round trip). QUIC and KCP only. The report shows the profile's figures")
	netMix := fs.String("net-mix", "", "deal the bots out to presets by weight, such as \"wifi:70,mobile:20,bad:10\"; the report shows each profile's figures")
	htmlOut := fs.String("html", "", "write the report as one self-contained HTML `file` with charts (SVG, no scripts), and print its path")
	csvDir := fs.String("csv", "", "write the report's time series, rooms, histograms and profiles as CSV files into `dir`")
	asJSON := fs.Bool("json", false, "print the report as one JSON object on the last line")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the bots' process (runtime/pprof) to `file`, to see where a client machine's CPU goes")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: botclient [flags]\n\nRuns headless bots against a Roomwire server and reports what they measured.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nNetwork presets for -net and -net-mix (each direction's delay; a round trip takes twice it):\n")
		for _, p := range loadtest.Presets() {
			fmt.Fprintf(stderr, "  %-8s %s\n", p.Name, p.Spec)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	key, err := loadtest.TokenKey(*keyFile, *dev)
	if err != nil {
		return err
	}
	if *netSpec != "" && *netMix != "" {
		return errors.New("-net and -net-mix: give one of them")
	}
	networks, err := loadtest.ParseNet(*netSpec)
	if err != nil {
		return err
	}
	if *netMix != "" {
		if networks, err = loadtest.ParseNetMix(*netMix); err != nil {
			return err
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := loadtest.Config{
		Addr:           *addr,
		TokenKey:       key,
		ProtocolID:     *protocolID,
		Insecure:       *insecure,
		Bots:           *n,
		PerRoom:        *perRoom,
		RoomPrefix:     *roomPrefix,
		Kind:           *kind,
		Duration:       *duration,
		PingInterval:   *ping,
		ConnectTimeout: *connectTimeout,
		Client:         netcode.ClientConfig{ReliableCopies: copies},
		Churn:          *churn,
		Idle:           *idle,
		Blackout:       blackout,
		History:        *history,
		Rejoin:         *rejoin,
		Networks:       networks,
	}
	var sampler *loadtest.Sampler
	if *sample != "" {
		sampler = &loadtest.Sampler{URL: *sample, Every: *sampleEvery}
		sampler.Start()
	}
	if !*asJSON {
		cfg.Progress = func(p loadtest.Progress) {
			fmt.Fprintf(stderr, "\r%5.0fs  connected %d/%d  failed %d  acked %d/%d  snapshots %d   ",
				p.Elapsed.Seconds(), p.Connected, *n, p.Failed, p.EventsAcked, p.EventsSent, p.SnapshotsReceived)
		}
	}
	rep, err := loadtest.Run(ctx, cfg)
	if sampler != nil {
		samples, failed := sampler.Stop()
		w := *warmup
		if w == 0 {
			w = *duration / 5
		}
		rep.Soak = &loadtest.Soak{WarmupSeconds: w.Seconds(), Flatness: loadtest.Flat(samples, w), Samples: samples, Failed: failed}
	}
	if err != nil {
		return err
	}
	defer func() {
		if s := rep.Soak; s != nil && err == nil && (s.Flatness.Samples < 2 || s.Flatness.GoroutinesDev > *flat || s.Flatness.HeapDev > *flat) {
			err = fmt.Errorf("soak: not flat within %.0f %% after %v warm-up: goroutines ±%.1f %%, live heap ±%.1f %% over %d samples",
				100**flat, time.Duration(s.WarmupSeconds*float64(time.Second)), 100*s.Flatness.GoroutinesDev, 100*s.Flatness.HeapDev, s.Flatness.Samples)
		}
	}()
	if *asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(stdout, string(b)); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stderr)
		printTable(stdout, rep)
	}
	return writeReports(stderr, cfg, rep, *htmlOut, *csvDir)
}

// writeReports writes the -html page and the -csv files, if asked for,
// and says where on w (stderr, so that -json's last line stays the JSON).
func writeReports(w io.Writer, cfg loadtest.Config, rep loadtest.Report, htmlPath, csvDir string) error {
	if htmlPath != "" {
		abs, err := filepath.Abs(htmlPath)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			return err
		}
		f, err := os.Create(abs)
		if err != nil {
			return err
		}
		err = loadtest.WriteHTML(f, cfg, rep)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("-html: %w", err)
		}
		defer fmt.Fprintln(w, "report:", abs) // the run's last line
	}
	if csvDir != "" {
		abs, err := filepath.Abs(csvDir)
		if err != nil {
			return err
		}
		paths, err := loadtest.WriteCSV(abs, rep)
		if err != nil {
			return fmt.Errorf("-csv: %w", err)
		}
		names := make([]string, len(paths))
		for i, p := range paths {
			names[i] = filepath.Base(p)
		}
		fmt.Fprintf(w, "csv: %s (%s)\n", abs, strings.Join(names, ", "))
	}
	return nil
}

func printTable(w io.Writer, r loadtest.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pct := 0.0
	if r.SnapshotsExpected > 0 {
		pct = 100 * float64(r.SnapshotsReceived) / float64(r.SnapshotsExpected)
	}
	fmt.Fprintf(tw, "transport\t%s\n", r.Transport)
	fmt.Fprintf(tw, "bots\t%d connected, %d failed of %d (%d connects retried: server busy)\n", r.Connected, r.Failed, r.Bots, r.ConnectRetries)
	fmt.Fprintf(tw, "duration\t%.1f s\n", r.DurationSeconds)
	fmt.Fprintf(tw, "reliable events\t%d acked of %d sent\n", r.EventsAcked, r.EventsSent)
	fmt.Fprintf(tw, "ack RTT (ms)\tp50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", r.RTT.P50, r.RTT.P90, r.RTT.P99, r.RTT.Max)
	fmt.Fprintf(tw, "snapshots\t%d of %d expected (%.1f%%)\n", r.SnapshotsReceived, r.SnapshotsExpected, pct)
	fmt.Fprintf(tw, "snapshot gap (ms)\tp50 %.2f  p99 %.2f\n", r.SnapshotGap.P50, r.SnapshotGap.P99)
	fmt.Fprintf(tw, "bytes\t%d sent, %d received\n", r.BytesSent, r.BytesReceived)
	upct := 0.0
	if r.InterpFrames > 0 {
		upct = 100 * float64(r.InterpUnderruns) / float64(r.InterpFrames)
	}
	fmt.Fprintf(tw, "interpolation\t%d frames at 60/s, %d underruns (%.2f%%)\n", r.InterpFrames, r.InterpUnderruns, upct)
	if r.MachineStealPercent >= loadtest.StealNoted {
		fmt.Fprintf(tw, "cpu steal\t%.1f%% of the machine's CPU time went to other guests of its host: the bots (and a server here) ran late for it\n", r.MachineStealPercent)
	}
	if r.FramesSkipped > 0 {
		fmt.Fprintf(tw, "frames skipped\t%d: this process ran late for its bots (too busy: fewer bots a process, or more cores; or its CPU stolen)\n", r.FramesSkipped)
	}
	fmt.Fprintf(tw, "interp delay (ms)\tmean %.2f  p50 %.2f  p99 %.2f\n", r.InterpDelayMean, r.InterpDelay.P50, r.InterpDelay.P99)
	fmt.Fprintf(tw, "inputs\t%d sent\n", r.InputsSent)
	fmt.Fprintf(tw, "kbit/s per bot\t%.1f down, %.1f up\n", r.KbpsDown, r.KbpsUp)
	if r.Resumed > 0 || r.Expired > 0 || r.Away > 0 {
		fmt.Fprintf(tw, "sessions\t%d away, %d resumed, %d expired\n", r.Away, r.Resumed, r.Expired)
	}
	if r.Blackouts > 0 {
		fmt.Fprintf(tw, "blackouts\t%d ended while in a room\n", r.Blackouts)
		fmt.Fprintf(tw, "snapshots back (ms)\tp50 %.2f  p99 %.2f  max %.2f  after %d of them\n",
			r.SnapshotResume.P50, r.SnapshotResume.P99, r.SnapshotResume.Max, r.SnapshotResumeCount)
		fmt.Fprintf(tw, "resumed after (ms)\tp50 %.2f  p99 %.2f  max %.2f  after %d of them\n",
			r.ResumeAfter.P50, r.ResumeAfter.P99, r.ResumeAfter.Max, r.ResumeCount)
	}
	if r.Rejoined > 0 {
		fmt.Fprintf(tw, "rejoins\t%d; back in play after (ms) p50 %.0f  p99 %.0f  max %.0f\n",
			r.Rejoined, r.RejoinAfter.P50, r.RejoinAfter.P99, r.RejoinAfter.Max)
	}
	fmt.Fprintf(tw, "longest snapshot gap (ms)\tp50 %.0f  p99 %.0f  max %.0f  (each bot's longest wait)\n",
		r.LongestGap.P50, r.LongestGap.P99, r.LongestGap.Max)
	if r.HistoryChecked > 0 || r.HistoryViolations > 0 {
		fmt.Fprintf(tw, "history\t%d echoes checked, %d violations (%d lost, %d duplicated, %d reordered)\n",
			r.HistoryChecked, r.HistoryViolations, r.HistoryLost, r.HistoryDuplicated, r.HistoryReordered)
	}
	if s := r.Soak; s != nil {
		f := s.Flatness
		fmt.Fprintf(tw, "soak\t%d samples after %.0f s warm-up: goroutines %.0f ±%.1f %%, live heap %.1f MB ±%.1f %%\n",
			f.Samples, s.WarmupSeconds, f.GoroutinesMean, 100*f.GoroutinesDev, f.HeapMeanMB, 100*f.HeapDev)
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(tw, "network %s\t%d bots (%s): RTT p50 %.1f  p99 %.1f ms, loss measured %.1f %% (bot → server), snapshots %.1f %% delivered\n",
			p.Name, p.Bots, p.Spec, p.RTT.P50, p.RTT.P99, p.LossPercent, p.DeliveryPercent)
	}
	fmt.Fprintf(tw, "connect (ms)\tp50 %.1f  p99 %.1f  max %.1f  (dial to joined)\n", r.ConnectTime.P50, r.ConnectTime.P99, r.ConnectTime.Max)
	for _, e := range r.Errors {
		fmt.Fprintf(tw, "error\t%s\n", e)
	}
	_ = tw.Flush()
}
