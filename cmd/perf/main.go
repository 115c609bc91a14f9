// Command perf measures a Roomwire game server's CPU per delivered snapshot
// on each transport, for those who tune a deployment. For each transport in
// turn it starts bin/gameserver on free loopback ports, pinned to CPU 0,
// and bin/botclient with rooms × players bots on that transport, pinned to
// CPU 1 (taskset, when there are two CPUs); waits until every bot is in a
// room, then a warm-up; reads the server's user+system CPU time (all
// threads, /proc/<pid>/stat) over a window; and stops both (SIGINT, then
// SIGKILL after a grace). The figure is state messages delivered to the
// bots per second of server CPU: the bots' delivery rate over their run
// (snapshots received over seconds played, from their -json report) times
// the window, over the server's CPU seconds in it. It also reports the
// server's CPU as a percentage of one core, the bots' delivery ratio and
// round trips, and the server's RSS (and peak) and goroutines at the
// window's end.
//
// It prints a Markdown table, or with -json one JSON object per transport.
// The figures are computed as in the Roomwire rows of compare.sh, the
// project's comparison with other servers (socket.io, Colyseus). The
// machine should run nothing else meanwhile: `make perf` builds the
// binaries and runs it.
//
// With -idle N it measures instead what idle sessions cost the server
// (`make perf-idle`): for each transport it starts the gameserver (with
// -pprof, pinned to CPU 0), forces a collection and reads its live heap,
// goroutine stacks, goroutines (/metrics.json) and RSS; starts N botclient
// -idle bots (pinned to CPU 1), which connect and do nothing, in waves of
// -idle-wave (a botclient each) that the server's accept queues can hold;
// once the server has the N connections and -idle-settle has passed, reads its
// CPU over -idle-window, then forces a collection and reads the same
// figures again. A row gives the CPU as a share of one core and the growth
// of each figure per session. A bare-quic row, measured before the quic
// one, is the same for a server that is quic-go alone with Roomwire's QUIC
// settings, and idle quic-go clients: perf runs itself for both sides
// (perf bare-quic-server, perf bare-quic-clients), and the quic row's
// memory per session is also given as a ratio to it. A bare-quic-stream
// row is the same with one stream per connection, which the server keeps
// a goroutine reading, as Roomwire's reliable stream needs: the quic row's
// ratio to it is what Roomwire adds to quic-go. A bare-udp row,
// measured before the kcp one, is a server that only keeps its idle UDP
// clients alive, one packet each way a second as the KCP listener does
// (bareudp.go), and the kcp row's CPU is also given as a ratio to it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "perf:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 { // perf's own children, for -idle's bare subjects
		switch args[0] {
		case "bare-quic-server":
			return serveBareQUIC(args[1:], stderr)
		case "bare-quic-clients":
			return bareQUICClients(args[1:], stdout, stderr)
		case "bare-udp-server":
			return serveBareUDP(args[1:], stderr)
		case "bare-udp-clients":
			return bareUDPClients(args[1:], stdout, stderr)
		}
	}
	_, tasksetErr := exec.LookPath("taskset")
	canPin := tasksetErr == nil && runtime.NumCPU() >= 2

	fs := flag.NewFlagSet("perf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	transports := fs.String("transports", "quic,kcp,ws", "transports to measure, comma-separated, one after another: quic, kcp, ws; with -idle also bare-quic, bare-quic-stream and bare-udp, which come with quic and kcp unless given")
	var c config
	fs.IntVar(&c.Rooms, "rooms", 10, "arena rooms")
	fs.IntVar(&c.Players, "players", 10, "bots per room (the server's -max-members)")
	fs.IntVar(&c.Hz, "hz", 30, "the rooms' tick `rate` in Hz: snapshots a second to each bot")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "the measuring window, after every bot joined and the warm-up")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "wait between the last bot's join and the window")
	fs.DurationVar(&c.JoinTimeout, "join-timeout", 60*time.Second, "fail a transport's run unless every bot is in a room (with -idle: every wave of sessions begun to connect) within this `time`")
	fs.StringVar(&c.Gameserver, "gameserver", "bin/gameserver", "the gameserver `binary`")
	fs.StringVar(&c.Botclient, "botclient", "bin/botclient", "the botclient `binary`")
	fs.BoolVar(&c.Pin, "pin", canPin, "pin the server to CPU 0 and the bots to CPU 1 with taskset (default true when taskset exists and there are 2 CPUs or more)")
	fs.IntVar(&c.Idle, "idle", 0, "measure this many idle sessions on each transport instead of snapshots: the server's CPU and memory per session (0: snapshots)")
	fs.IntVar(&c.Wave, "idle-wave", 32, "with -idle, the sessions that connect at once (a client process each wave), the next wave once the server has them: at most the server's accept queue, 32 on QUIC")
	fs.DurationVar(&c.IdleWindow, "idle-window", 10*time.Second, "with -idle, the window the server's CPU is measured over")
	fs.DurationVar(&c.Settle, "idle-settle", 5*time.Second, "with -idle, wait between the last session's connect and the window")
	fs.StringVar(&c.DumpDir, "idle-goroutines", "", "with -idle, write each subject's goroutine dump (pprof debug=1) after the window into this `directory`")
	asJSON := fs.Bool("json", false, "print one JSON object per transport instead of a Markdown table")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: perf [flags]\n\nMeasures the gameserver's CPU per delivered snapshot on each transport,\nor with -idle what idle sessions cost it.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	list, err := parseTransports(*transports, c.Idle > 0)
	if err != nil {
		return err
	}
	if c.Idle < 0 {
		return errors.New("-idle must not be negative")
	}
	if c.Idle > 0 && (c.IdleWindow <= 0 || c.Settle < 0 || c.Wave < 1) {
		return errors.New("-idle-window and -idle-wave must be positive, -idle-settle not negative")
	}
	if c.Rooms < 1 || c.Players < 1 || c.Hz < 1 || c.Hz > 128 {
		return errors.New("-rooms and -players must be at least 1, -hz 1 to 128")
	}
	if c.Duration <= 0 || c.Warmup < 0 || c.JoinTimeout <= 0 {
		return errors.New("-duration and -join-timeout must be positive, -warmup not negative")
	}
	if c.Pin && !canPin {
		return errors.New("-pin needs taskset and at least 2 CPUs")
	}
	for _, bin := range []string{c.Gameserver, c.Botclient} {
		if !slices.ContainsFunc(list, func(t string) bool { return !isBare(t) }) {
			break // perf alone
		}
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%w (make perf builds bin/gameserver and bin/botclient)", err)
		}
	}
	c.Ticks = clockTicks()
	c.Log = stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.Idle > 0 {
		if c.Self, err = os.Executable(); err != nil {
			return err
		}
		return c.runIdle(ctx, list, *asJSON, stdout)
	}
	var rows []Result
	failed := 0
	for i, t := range list {
		if i > 0 { // let the last run's sockets and CPU settle
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(stderr, "perf: %s: %d rooms × %d players, %d Hz, window %v\n", t, c.Rooms, c.Players, c.Hz, c.Duration)
		r, err := c.measure(ctx, t)
		if err != nil {
			r.Error = err.Error()
			failed++
			fmt.Fprintf(stderr, "perf: %s: %v\n", t, err)
		}
		r.Transport, r.Rooms, r.Players, r.Hz, r.Pinned = t, c.Rooms, c.Players, c.Hz, c.Pin
		rows = append(rows, r)
		if *asJSON {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(b))
		}
	}
	if !*asJSON {
		pinned := "server on CPU 0, bots on CPU 1"
		if !c.Pin {
			pinned = "not pinned"
		}
		fmt.Fprintf(stdout, "%d rooms × %d players, %d Hz; server CPU over %v after all joined and %v warm-up; %s.\n\n",
			c.Rooms, c.Players, c.Hz, c.Duration, c.Warmup, pinned)
		if err := writeMarkdown(stdout, rows); err != nil {
			return err
		}
		for _, r := range rows {
			if r.Note != "" {
				fmt.Fprintf(stdout, "\n%s: %s\n", r.Transport, r.Note)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d transports failed", failed, len(list))
	}
	return nil
}

// parseTransports splits the -transports list, refusing unknown and
// repeated names. With idle, bare-quic, bare-quic-stream and bare-udp are
// subjects too, and come just before quic and kcp unless the list names
// one of theirs.
func parseTransports(s string, idle bool) ([]string, error) {
	var list []string
	seen := map[string]bool{}
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !idle || !isBare(t) {
			if _, err := transportURL(t, ports{}); err != nil {
				if idle {
					err = fmt.Errorf("%w, or with -idle %s, %s or %s", err, bareQUIC, bareQUICStream, bareUDP)
				}
				return nil, err
			}
		}
		if seen[t] {
			return nil, fmt.Errorf("transport %q given twice", t)
		}
		seen[t] = true
		list = append(list, t)
	}
	if len(list) == 0 {
		return nil, errors.New("no transports: -transports is empty")
	}
	for _, b := range [...]struct {
		of   string
		bare []string
	}{{"quic", []string{bareQUIC, bareQUICStream}}, {"kcp", []string{bareUDP}}} {
		named := slices.ContainsFunc(b.bare, func(t string) bool { return seen[t] })
		if i := slices.Index(list, b.of); idle && i >= 0 && !named {
			list = slices.Insert(list, i, b.bare...)
		}
	}
	return list, nil
}

// isBare reports whether an -idle subject is one of perf's own servers.
func isBare(t string) bool { return t == bareQUIC || t == bareQUICStream || t == bareUDP }

// runIdle measures each subject of list with -idle's idle sessions.
func (c config) runIdle(ctx context.Context, list []string, asJSON bool, stdout io.Writer) error {
	var rows []IdleResult
	failed := 0
	for i, s := range list {
		if i > 0 { // let the last run's sockets and CPU settle
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(c.Log, "perf: %s: %d idle sessions, window %v\n", s, c.Idle, c.IdleWindow)
		r, err := c.measureIdle(ctx, s)
		if err != nil {
			r.Error = err.Error()
			failed++
			fmt.Fprintf(c.Log, "perf: %s: %v\n", s, err)
		}
		r.Subject, r.Pinned = s, c.Pin
		rows = append(rows, r)
		vsBare(rows) // bare-quic comes before quic, bare-udp before kcp
		if asJSON {
			b, err := json.Marshal(rows[len(rows)-1])
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(b))
		}
	}
	if !asJSON {
		pinned := "server on CPU 0, clients on CPU 1"
		if !c.Pin {
			pinned = "not pinned"
		}
		fmt.Fprintf(stdout, "%d idle sessions; server CPU over %v after all connected and %v settle; memory after a forced GC, less the same before any connection; %s.\n\n",
			c.Idle, c.IdleWindow, c.Settle, pinned)
		if err := writeIdleMarkdown(stdout, rows); err != nil {
			return err
		}
		for _, r := range rows {
			if r.Note != "" {
				fmt.Fprintf(stdout, "\n%s: %s\n", r.Subject, r.Note)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d subjects failed", failed, len(list))
	}
	return nil
}
