package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// bareQUIC and bareQUICStream are the -idle subjects that are quic-go
// alone, with datagrams and with a stream too (barequic.go).
const (
	bareQUIC       = "bare-quic"
	bareQUICStream = "bare-quic-stream"
)

// idleSlack is how much longer than the wait for the connections (the
// last wave may start at the join timeout and take the connect timeout),
// the settling and the window the idle clients stay; perf stops them once
// it has measured.
const idleSlack = 30 * time.Second

// idleConnectTimeout bounds each idle client's handshake: they all dial at
// once.
const idleConnectTimeout = 30 * time.Second

// idleStay is the idle clients' -duration.
func (c config) idleStay() time.Duration {
	return c.JoinTimeout + idleConnectTimeout + c.Settle + c.IdleWindow + idleSlack
}

// idleDeadline bounds one subject's idle run from start to finish.
func (c config) idleDeadline() time.Duration {
	return startTimeout + c.idleStay() + reportTimeout + 2*stopGrace
}

// sideMetrics is what perf reads from a server's /metrics.json: the
// gameserver's, or the bare quic-go server's of the same shape.
type sideMetrics struct {
	Server struct {
		ConnsActive int64 `json:"conns_active"`
	} `json:"server"`
	Runtime runtimeFigures `json:"runtime"`
}

// runtimeFigures are a server's runtime figures in its /metrics.json.
type runtimeFigures struct {
	Goroutines int64 `json:"goroutines"`
	HeapLive   int64 `json:"heap_live_bytes"` // as of the last collection
	Stacks     int64 `json:"stack_bytes"`
}

// parseMetrics reads a /metrics.json, refusing one without the runtime
// figures (a server older than them).
func parseMetrics(b []byte) (sideMetrics, error) {
	var m sideMetrics
	if err := json.Unmarshal(b, &m); err != nil {
		return sideMetrics{}, fmt.Errorf("/metrics.json: %w", err)
	}
	if m.Runtime.Goroutines <= 0 {
		return sideMetrics{}, errors.New("/metrics.json: no runtime figures")
	}
	return m, nil
}

func readMetrics(ctx context.Context, side string) (sideMetrics, error) {
	b, err := fetch(ctx, side+"/metrics.json")
	if err != nil {
		return sideMetrics{}, err
	}
	return parseMetrics(b)
}

// sample is a server's memory at one moment, right after a forced
// collection, so that the live heap is exact.
type sample struct {
	Active  int64 // connections active
	Runtime runtimeFigures
	RSSKiB  uint64
}

// sampleServer forces two collections in the server at side (its heap
// profile with gc=1, which -pprof serves) and then reads its figures and
// the RSS of process pid. It takes two because what a sync.Pool holds
// survives one collection, as its victim cache, and is freed at the next:
// the pools of buffers that the server and its libraries reuse (kcp-go's
// segment buffers, for one) hold what a burst, such as the connections'
// own handshakes, put back, which is no idle session's.
func sampleServer(ctx context.Context, side string, pid int) (sample, error) {
	for range 2 {
		if _, err := fetch(ctx, side+"/debug/pprof/heap?gc=1"); err != nil {
			return sample{}, fmt.Errorf("force a collection (is -pprof on?): %w", err)
		}
	}
	m, err := readMetrics(ctx, side)
	if err != nil {
		return sample{}, err
	}
	mem, err := procMemory(pid)
	if err != nil {
		return sample{}, err
	}
	return sample{Active: m.Server.ConnsActive, Runtime: m.Runtime, RSSKiB: mem.RSS}, nil
}

// idleCommands are the server and one wave of n clients of an idle
// subject: the gameserver and the botclient on a transport, or perf itself
// for bare quic-go and bare UDP.
func (c config) idleCommands(subject string, p ports, wave int) (server, clients []string, err error) {
	quicAddr := fmt.Sprintf("127.0.0.1:%d", p.QUIC)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", p.HTTP)
	stay, n := c.idleStay().String(), strconv.Itoa(wave)
	if subject == bareUDP {
		udpAddr := fmt.Sprintf("127.0.0.1:%d", p.KCP)
		server = []string{c.Self, "bare-udp-server", "-udp", udpAddr, "-http", httpAddr}
		clients = []string{c.Self, "bare-udp-clients", "-addr", udpAddr, "-n", n, "-duration", stay}
		return server, clients, nil
	}
	if subject == bareQUIC || subject == bareQUICStream {
		server = []string{c.Self, "bare-quic-server", "-quic", quicAddr, "-http", httpAddr}
		clients = []string{c.Self, "bare-quic-clients", "-addr", quicAddr, "-n", n,
			"-duration", stay, "-connect-timeout", idleConnectTimeout.String()}
		if subject == bareQUICStream {
			server, clients = append(server, "-stream"), append(clients, "-stream")
		}
		return server, clients, nil
	}
	url, err := transportURL(subject, p)
	if err != nil {
		return nil, nil, err
	}
	// The limits, raised so that none refuses the idle connections; the
	// botclient spreads them over 64 loopback addresses.
	server = []string{c.Gameserver,
		"-quic", quicAddr, "-kcp", fmt.Sprintf("127.0.0.1:%d", p.KCP), "-http", httpAddr,
		"-pprof", "-log", "warn",
		"-max-conns", strconv.Itoa(max(c.Idle, 1024)), "-max-conns-per-ip", strconv.Itoa(max(c.Idle, 64)),
		"-max-pending-handshakes", strconv.Itoa(max(c.Idle, 512))}
	clients = []string{c.Botclient, "-idle", "-addr", url, "-insecure", "-n", n,
		"-duration", stay, "-connect-timeout", idleConnectTimeout.String(), "-json"}
	return server, clients, nil
}

// measureIdle runs one subject's server, takes its baseline, connects the
// idle clients in waves, and measures the server's CPU over the window and
// its memory after it.
func (c config) measureIdle(ctx context.Context, subject string) (IdleResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.idleDeadline())
	defer cancel()
	p, err := freePorts()
	if err != nil {
		return IdleResult{}, err
	}
	serverCmd, _, err := c.idleCommands(subject, p, 0)
	if err != nil {
		return IdleResult{}, err
	}
	side := fmt.Sprintf("http://127.0.0.1:%d", p.HTTP)

	srv, err := start(ctx, c.Pin, 0, io.Discard, serverCmd[0], serverCmd[1:]...)
	if err != nil {
		return IdleResult{}, fmt.Errorf("start server: %w", err)
	}
	defer srv.end()
	if err := waitHealthy(ctx, side, srv); err != nil {
		return IdleResult{}, err
	}
	pid := srv.cmd.Process.Pid // taskset execs the server: the same pid
	base, err := sampleServer(ctx, side, pid)
	if err != nil {
		return IdleResult{}, err
	}

	// The clients connect in waves, each a process, the next once the
	// server has the last one's sessions or each of its clients had the
	// time to connect or fail: the servers' accept queues (32 QUIC
	// connections, 128 KCP sessions) refuse a burst larger than they hold,
	// and the bots do not retry.
	var (
		waves   []*process
		reports []*bytes.Buffer // each read only after its wave has exited
	)
	defer func() {
		for _, w := range waves {
			w.end()
		}
	}()
	began := time.Now()
	connectBy := began.Add(c.JoinTimeout)
	for n := 0; n < c.Idle; {
		if !time.Now().Before(connectBy) {
			return IdleResult{}, fmt.Errorf("only %d of %d sessions had begun to connect after -join-timeout %v", n, c.Idle, c.JoinTimeout)
		}
		k := min(c.Wave, c.Idle-n)
		_, cmd, err := c.idleCommands(subject, p, k)
		if err != nil {
			return IdleResult{}, err
		}
		var out bytes.Buffer
		w, err := start(ctx, c.Pin, 1, &out, cmd[0], cmd[1:]...)
		if err != nil {
			return IdleResult{}, fmt.Errorf("start clients: %w", err)
		}
		waves, reports = append(waves, w), append(reports, &out)
		n += k
		by := time.Now().Add(idleConnectTimeout + time.Second) // each has connected or failed
		if _, err := waitActive(ctx, side, int64(n), by, srv, waves); err != nil {
			return IdleResult{}, err
		}
	}
	m, err := readMetrics(ctx, side)
	if err != nil {
		return IdleResult{}, err
	}
	if m.Server.ConnsActive == 0 {
		return IdleResult{}, fmt.Errorf("no session connected; clients: %s", waves[0].stderr.String())
	}
	fmt.Fprintf(c.Log, "perf: %s: %d of %d idle sessions connected in %.1f s (%d waves); settle %v, window %v\n",
		subject, m.Server.ConnsActive, c.Idle, time.Since(began).Seconds(), len(waves), c.Settle, c.IdleWindow)
	if err := idleSleep(ctx, c.Settle, srv, waves); err != nil {
		return IdleResult{}, err
	}

	w, err := cpuWindow(pid, c.Ticks, func() error { return idleSleep(ctx, c.IdleWindow, srv, waves) })
	if err != nil {
		return IdleResult{}, err
	}
	after, err := sampleServer(ctx, side, pid)
	if err != nil {
		return IdleResult{}, err
	}
	if c.DumpDir != "" {
		if err := dumpGoroutines(ctx, side, filepath.Join(c.DumpDir, subject+"-goroutines.txt")); err != nil {
			fmt.Fprintf(c.Log, "perf: %s: goroutine dump: %v\n", subject, err)
		}
	}

	r := idleResult(base, after, w)
	var errs []string
	for _, w := range waves {
		w.stop() // SIGINT: they close their connections and report
	}
	for i, w := range waves {
		select {
		case <-w.done:
		case <-ctx.Done():
			return IdleResult{}, fmt.Errorf("no clients' report within the deadline: %w", ctx.Err())
		}
		if ps := w.cmd.ProcessState; ps == nil || !ps.Success() {
			return IdleResult{}, w.exited("clients")
		}
		rep, err := parseReport(reports[i].Bytes())
		if err != nil {
			return IdleResult{}, err
		}
		r.Connected += rep.Connected
		r.Failed += rep.Failed
		errs = append(errs, rep.Errors...)
	}
	var notes []string
	if after.Active < int64(c.Idle) {
		notes = append(notes, fmt.Sprintf("%d of %d sessions active at the window's end", after.Active, c.Idle))
	}
	if r.Failed > 0 {
		notes = append(notes, fmt.Sprintf("%d clients failed to connect", r.Failed))
	}
	if len(errs) > 0 {
		notes = append(notes, fmt.Sprintf("client errors, first %q", errs[0]))
	}
	r.Note = strings.Join(notes, "; ")
	return r, nil
}

// waitActive waits until the server at side has n connections active, or
// until by, and returns the last count it read.
func waitActive(ctx context.Context, side string, n int64, by time.Time, srv *process, clients []*process) (int64, error) {
	var got int64
	for {
		if m, err := readMetrics(ctx, side); err == nil {
			got = m.Server.ConnsActive
			if got >= n {
				return got, nil
			}
		}
		if err := anyExited(srv, clients); err != nil {
			return got, err
		}
		left := time.Until(by)
		if left <= 0 {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(min(left, 100*time.Millisecond)):
		}
	}
}

// idleSleep waits d, failing if ctx ends or the server or clients exit
// first.
func idleSleep(ctx context.Context, d time.Duration, srv *process, clients []*process) error {
	end := time.Now().Add(d)
	for {
		if err := anyExited(srv, clients); err != nil {
			return err
		}
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, 100*time.Millisecond)):
		}
	}
}

// anyExited is why the server or a wave of clients exited, if one did.
func anyExited(srv *process, clients []*process) error {
	select {
	case <-srv.done:
		return srv.exited("server")
	default:
	}
	for _, c := range clients {
		select {
		case <-c.done:
			return c.exited("clients")
		default:
		}
	}
	return nil
}

// dumpGoroutines writes the server's goroutine profile, stacks grouped
// (debug=1), to the file named.
func dumpGoroutines(ctx context.Context, side, name string) error {
	b, err := fetch(ctx, side+"/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err
	}
	return os.WriteFile(name, b, 0o644)
}
