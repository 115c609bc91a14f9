package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// startTimeout bounds the wait for the server's /healthz.
	startTimeout = 10 * time.Second
	// joinSlack is how much longer than warm-up plus window the bots
	// play, so that the first to join still play when the window ends
	// although the last joined later (compare.sh's 9 s).
	joinSlack = 9 * time.Second
	// stopGrace is how long a process has after SIGINT before it is
	// killed; the gameserver exits within 5 s.
	stopGrace = 6 * time.Second
	// reportTimeout bounds the wait for the bots' report after they stop
	// playing: their disconnects and the report itself.
	reportTimeout = 30 * time.Second
)

// config is the settings of every transport's run.
type config struct {
	Rooms, Players, Hz    int
	Duration, Warmup      time.Duration
	JoinTimeout           time.Duration
	Gameserver, Botclient string
	Pin                   bool
	Ticks                 float64   // clock ticks per second of /proc's CPU times
	Log                   io.Writer // a line per step

	// Idle, when above 0, measures that many idle sessions (-idle)
	// instead of snapshots: each subject's server CPU over IdleWindow after
	// they all connected and Settle, and its memory after.
	Idle               int
	Wave               int // sessions that connect at once
	IdleWindow, Settle time.Duration
	Self               string // the perf binary, for the bare-quic subject
	DumpDir            string // if set, where each subject's goroutine dump goes
}

func (c config) clients() int { return c.Rooms * c.Players }

// play is the bots' -duration: warm-up, window and the joining slack.
func (c config) play() time.Duration { return c.Warmup + c.Duration + joinSlack }

// deadline bounds one transport's run from start to finish.
func (c config) deadline() time.Duration {
	return startTimeout + c.JoinTimeout + c.play() + reportTimeout + 2*stopGrace
}

// ports are the loopback ports of one server.
type ports struct{ QUIC, KCP, HTTP int }

// freePorts picks three free loopback ports, the two UDP ones held open
// together so that they differ.
func freePorts() (ports, error) {
	q, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return ports{}, err
	}
	defer q.Close()
	k, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return ports{}, err
	}
	defer k.Close()
	h, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ports{}, err
	}
	defer h.Close()
	return ports{
		QUIC: q.LocalAddr().(*net.UDPAddr).Port,
		KCP:  k.LocalAddr().(*net.UDPAddr).Port,
		HTTP: h.Addr().(*net.TCPAddr).Port,
	}, nil
}

// transportURL is the address the bots dial for transport.
func transportURL(transport string, p ports) (string, error) {
	switch transport {
	case "quic":
		return fmt.Sprintf("quic://127.0.0.1:%d", p.QUIC), nil
	case "kcp":
		return fmt.Sprintf("kcp://127.0.0.1:%d", p.KCP), nil
	case "ws":
		return fmt.Sprintf("ws://127.0.0.1:%d/ws", p.HTTP), nil
	}
	return "", fmt.Errorf("unknown transport %q (quic, kcp or ws)", transport)
}

// process is a started child and its end.
type process struct {
	cmd    *exec.Cmd
	stop   context.CancelFunc // SIGINT, then SIGKILL after stopGrace
	done   chan struct{}      // closed when it has exited
	err    error              // its Wait's, once done is closed
	stderr *tail
}

// start runs name with args, on CPU cpu when pin is set, until ctx ends or
// stop is called.
func start(ctx context.Context, pin bool, cpu int, stdout io.Writer, name string, args ...string) (*process, error) {
	if pin {
		args = append([]string{"-c", strconv.Itoa(cpu), name}, args...)
		name = "taskset"
	}
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = stopGrace
	p := &process{cmd: cmd, stop: cancel, done: make(chan struct{}), stderr: &tail{max: 1500}}
	cmd.Stdout, cmd.Stderr = stdout, p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// end stops p and waits for it.
func (p *process) end() {
	p.stop()
	<-p.done
}

// exited describes how p ended, with the end of what it wrote on stderr.
func (p *process) exited(what string) error {
	msg := fmt.Sprintf("%s exited early", what)
	if p.err != nil {
		msg = fmt.Sprintf("%s exited early: %v", what, p.err)
	}
	if s := p.stderr.String(); s != "" {
		msg += ": " + s
	}
	return errors.New(msg)
}

// measure runs the server and the bots for one transport and measures.
func (c config) measure(ctx context.Context, transport string) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.deadline())
	defer cancel()
	p, err := freePorts()
	if err != nil {
		return Result{}, err
	}
	url, err := transportURL(transport, p)
	if err != nil {
		return Result{}, err
	}
	side := fmt.Sprintf("http://127.0.0.1:%d", p.HTTP)

	srv, err := start(ctx, c.Pin, 0, io.Discard, c.Gameserver,
		"-quic", fmt.Sprintf("127.0.0.1:%d", p.QUIC), "-kcp", fmt.Sprintf("127.0.0.1:%d", p.KCP),
		"-http", fmt.Sprintf("127.0.0.1:%d", p.HTTP), "-tick", strconv.Itoa(c.Hz),
		"-max-members", strconv.Itoa(c.Players), "-log", "warn")
	if err != nil {
		return Result{}, fmt.Errorf("start gameserver: %w", err)
	}
	defer srv.end()
	if err := waitHealthy(ctx, side, srv); err != nil {
		return Result{}, err
	}

	var report bytes.Buffer // read only after the bots have exited
	bots, err := start(ctx, c.Pin, 1, &report, c.Botclient,
		"-addr", url, "-insecure", "-n", strconv.Itoa(c.clients()), "-per-room", strconv.Itoa(c.Players),
		"-duration", c.play().String(), "-json")
	if err != nil {
		return Result{}, fmt.Errorf("start botclient: %w", err)
	}
	defer bots.end()

	began := time.Now()
	if err := waitJoined(ctx, side, c.clients(), c.JoinTimeout, srv, bots); err != nil {
		return Result{}, err
	}
	fmt.Fprintf(c.Log, "perf: %s: %d bots joined in %.1f s; warm-up %v, window %v\n",
		transport, c.clients(), time.Since(began).Seconds(), c.Warmup, c.Duration)
	if err := sleep(ctx, c.Warmup, srv, bots); err != nil {
		return Result{}, err
	}

	pid := srv.cmd.Process.Pid // taskset execs the gameserver: the same pid
	w, err := cpuWindow(pid, c.Ticks, func() error { return sleep(ctx, c.Duration, srv, bots) })
	if err != nil {
		return Result{}, err
	}
	if w.Memory, err = procMemory(pid); err != nil {
		return Result{}, err
	}
	w.Goroutines, _ = goroutines(ctx, side) // 0 if the server does not say
	members, _ := roomMembers(ctx, side)

	select {
	case <-bots.done:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("no bots' report within the deadline: %w", ctx.Err())
	}
	if bots.err != nil {
		return Result{}, bots.exited("botclient")
	}
	rep, err := parseReport(report.Bytes())
	if err != nil {
		return Result{}, err
	}
	r := result(rep, w)
	var notes []string
	if members < c.clients() {
		notes = append(notes, fmt.Sprintf("%d of %d bots in rooms at the window's end", members, c.clients()))
	}
	if len(rep.Errors) > 0 {
		notes = append(notes, fmt.Sprintf("%d kinds of bot error, first %q", len(rep.Errors), rep.Errors[0]))
	}
	notes = append(notes, lateNotes(rep)...)
	r.Note = strings.Join(notes, "; ")
	return r, nil
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// fetch GETs url and returns its body, failing unless it answers 200 OK.
func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func getJSON(ctx context.Context, url string, v any) error {
	b, err := fetch(ctx, url)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// roomMembers is the bots in game rooms, from the side port's /rooms.
func roomMembers(ctx context.Context, side string) (int, error) {
	var list []struct {
		Members int `json:"members"`
	}
	if err := getJSON(ctx, side+"/rooms", &list); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range list {
		n += r.Members
	}
	return n, nil
}

// goroutines is the server's goroutine count, from /metrics.json.
func goroutines(ctx context.Context, side string) (int, error) {
	var m struct {
		Runtime struct {
			Goroutines int `json:"goroutines"`
		} `json:"runtime"`
	}
	err := getJSON(ctx, side+"/metrics.json", &m)
	return m.Runtime.Goroutines, err
}

func waitHealthy(ctx context.Context, side string, srv *process) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, side+"/healthz", nil)
		if resp, err := httpClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-srv.done:
			return srv.exited("gameserver")
		case <-ctx.Done():
			return fmt.Errorf("gameserver: no /healthz within %v", startTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitJoined waits until n bots are in game rooms, at most timeout.
func waitJoined(ctx context.Context, side string, n int, timeout time.Duration, srv, bots *process) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	got := 0
	for {
		if m, err := roomMembers(ctx, side); err == nil {
			got = m
			if got >= n {
				return nil
			}
		}
		select {
		case <-srv.done:
			return srv.exited("gameserver")
		case <-bots.done:
			return bots.exited("botclient")
		case <-ctx.Done():
			msg := fmt.Sprintf("bots never joined: %d of %d in rooms after %v", got, n, timeout)
			if s := bots.stderr.String(); s != "" {
				msg += "; botclient: " + s
			}
			return errors.New(msg)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sleep waits d, failing if ctx ends or a process exits first.
func sleep(ctx context.Context, d time.Duration, srv, bots *process) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-srv.done:
		return srv.exited("gameserver")
	case <-bots.done:
		return bots.exited("botclient")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// String is what was kept, on one line.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(strings.Fields(string(t.b)), " ")
}
