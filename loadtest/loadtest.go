// Package loadtest runs headless bots against a Roomwire server and measures
// what players would feel: connects, reliable round trips, snapshot delivery
// and bandwidth. Bots use only the library's public client API, like any game
// client. cmd/botclient is its command-line front end.
package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport/impair"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

// Config describes a load run. Zero fields take the documented defaults.
type Config struct {
	// Addr is the server URL, such as "quic://127.0.0.1:7777" (kcp://host:port
	// and ws://host:port/ws, wss://host/ws too). Several URLs separated by
	// commas spread the bots over them in turn, bot i on the (i mod n)-th,
	// so that consecutive bots, who share a room, come over different
	// transports (a mixed run:
	// "quic://127.0.0.1:7777,kcp://127.0.0.1:7778,ws://127.0.0.1:8080/ws").
	Addr string
	// TokenKey, if set, makes each bot mint its own connect token with it,
	// as a matchmaker would; KCP needs one.
	TokenKey *token.Key
	// ProtocolID is the tokens' protocol id. Zero means
	// token.DefaultProtocolID.
	ProtocolID uint64
	// Insecure skips server certificate verification (development servers).
	Insecure bool
	// Bots is how many bots connect. Zero means 1.
	Bots int
	// PerRoom is how many bots share a room. Zero means 10.
	PerRoom int
	// RoomPrefix names the bots' rooms: bot i joins RoomPrefix-<i/PerRoom>,
	// so that bots of several runs (against several nodes of a cluster)
	// meet in the same rooms; a bot whose room is on another node follows
	// the redirect there. Empty means a prefix of this run's own.
	RoomPrefix string
	// Kind is the room kind to join. Empty means "arena".
	Kind string
	// Duration is how long each bot plays after joining. Zero means 10 s.
	Duration time.Duration
	// PingInterval is the time between a bot's reliable ping requests. Zero
	// means 1 s.
	PingInterval time.Duration
	// ConnectTimeout bounds each bot's connect and join. Zero means 10 s.
	ConnectTimeout time.Duration
	// Drain is how long each bot stays connected after Duration, rendering
	// and acknowledging snapshots but sending no more inputs or pings, so
	// that inputs still on their way reach the server before the bot's
	// close does (through a delaying network, a close can overtake them).
	// The bots' inputs can then be compared with the server's count. Zero
	// means no drain.
	Drain time.Duration
	// Churn, if set, makes each bot close its connection and connect
	// again, to the next room, every Churn (the first time after a share
	// of it, so that the bots churn at a steady rate), for Duration in
	// all: a soak of connections and rooms coming and going. Connected
	// then counts connections, not bots.
	Churn time.Duration
	// Idle makes each bot connect and then do nothing for Duration: no
	// room, no inputs, no pings of its own; only the transport's and the
	// client's keep-alive traffic flows. It measures what an idle
	// connection costs the server (memory, CPU).
	Idle bool
	// Blackout, if it darkens anything (a positive Length), makes each
	// bot's network go dark on its schedule, counted from the moment the
	// bot connected: every packet either way is lost on quic:// and
	// kcp://, and ws:// and wss:// connections stall. The bots then dial
	// their transports themselves, as the client would, over impaired
	// sockets on that network (ClientConfig.Dial, which Client must leave
	// unset), so the sockets a client opens to reconnect are dark too. It
	// turns History on. Resumes and expired sessions are in the Report.
	Blackout impair.Blackout
	// Rejoin makes a bot whose connection ends before its time (its node
	// died, its session expired) connect again and join its room again,
	// through the next of Addr's URLs, until Duration is over, as a game
	// client would: bots over a cluster's nodes get back into play when
	// one of them dies. Connected then counts connections.
	Rejoin bool
	// History makes each bot emit the reliable event arena.HistoryEvent
	// every 100 ms with a counter, 1, 2, 3 …, and check the server's echoes
	// (arena.EchoHistory): each must come back exactly once, in order.
	// After playing, a bot waits up to 2 s (after Drain) for the last
	// echoes; those still missing are lost. A bot whose connection ends
	// early ends its check there. Report.HistoryChecked and
	// HistoryViolations hold the result.
	History bool
	// LoopbackSpread is how many loopback addresses the bots of a server on
	// 127.0.0.0/8 dial from, 127.0.0.1 upward, bot i from the (i mod n)-th:
	// the server's limits per address (64 connections by default) then see
	// them as the many players they stand for. Zero means 64; 1 dials every
	// bot from 127.0.0.1.
	LoopbackSpread int
	// Client is the base client configuration for every bot.
	Client netcode.ClientConfig
	// Progress, if set, is called about once a second while the run lasts.
	Progress func(Progress)
}

// TokenKey is the key bots mint their connect tokens with, from the
// command-line flags the bot tools share: a key file, else the public
// development key when dev is set, else none.
func TokenKey(file string, dev bool) (*token.Key, error) {
	switch {
	case file != "":
		k, err := token.LoadKeyFile(file)
		if err != nil {
			return nil, err
		}
		return &k, nil
	case dev:
		k := token.DevKey
		return &k, nil
	}
	return nil, nil
}

// Progress is a running tally.
type Progress struct {
	Elapsed           time.Duration
	Connected         int64
	Failed            int64
	EventsSent        int64
	EventsAcked       int64
	SnapshotsReceived int64
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90,omitempty"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max,omitempty"`
}

// Report is a run's result; its JSON form is the bot client's -json output.
type Report struct {
	Transport string `json:"transport"`
	Bots      int    `json:"bots"`
	Connected int    `json:"connected"`
	Failed    int    `json:"failed"`
	// ConnectRetries counts connects tried again after the server refused
	// for being busy (netcode.IsBusy), after a short random wait.
	ConnectRetries    int64       `json:"connect_retries"`
	DurationSeconds   float64     `json:"duration_s"`
	EventsSent        int64       `json:"events_sent"`
	EventsAcked       int64       `json:"events_acked"`
	RTT               Percentiles `json:"rtt_ms"`
	SnapshotsReceived int64       `json:"snapshots_received"`
	SnapshotsExpected int64       `json:"snapshots_expected"`
	SnapshotGap       Percentiles `json:"snapshot_gap_ms"`
	// LongestGap is, over the bots, each one's longest wait between two
	// snapshots while in its room: a room's handoff to another node, or a
	// blackout, as the player sees it.
	LongestGap Percentiles `json:"longest_gap_ms"`
	// Rejoined counts the times a bot connected and joined again after
	// losing its connection (Config.Rejoin); RejoinAfter is the time from
	// a loss to the bot's first snapshot after it, RejoinCount how many
	// losses ended in one.
	Rejoined      int64       `json:"rejoined,omitempty"`
	RejoinAfter   Percentiles `json:"rejoin_ms"`
	RejoinCount   int64       `json:"rejoin_count,omitempty"`
	BytesSent     uint64      `json:"bytes_sent"`
	BytesReceived uint64      `json:"bytes_received"`
	// InterpFrames counts frames the bots rendered at 60 per second with
	// Client.Interpolate; InterpUnderruns those with no snapshot after the
	// render time, InterpUnderrunPercent the same as a percentage of
	// InterpFrames.
	InterpFrames          uint64  `json:"interp_frames"`
	InterpUnderruns       uint64  `json:"interp_underruns"`
	InterpUnderrunPercent float64 `json:"interp_underrun_pct"`
	// InterpDelayMean is the mean, in milliseconds, of the Delay of every
	// Interpolation the bots' Client.Interpolate returned, negative values
	// (an underrun's) included. InterpDelay are its percentiles, with
	// negative values counted as 0.
	InterpDelayMean float64     `json:"interp_delay_mean_ms"`
	InterpDelay     Percentiles `json:"interp_delay_ms"`
	// TickRate is the rooms' tick (snapshot) rate in Hz from the join
	// replies, the highest if they differ; zero if no bot joined.
	TickRate int `json:"tick_rate"`
	// InputsSent counts the inputs the bots' Client.SendInput accepted, to
	// compare with what the server handed to the game (its
	// Metrics.InputsReceived).
	InputsSent int64 `json:"inputs_sent"`
	// KbpsDown and KbpsUp are the payload bandwidth per bot, in kbit/s:
	// BytesReceived and BytesSent over the seconds the bots were
	// connected, summed.
	KbpsDown float64 `json:"kbps_down_per_bot"`
	KbpsUp   float64 `json:"kbps_up_per_bot"`
	// BotSeconds is the seconds the bots were connected, summed: the
	// denominator of KbpsDown and KbpsUp.
	BotSeconds float64 `json:"bot_seconds"`
	// SnapshotsUndecodable counts deltas whose baseline a bot lacked.
	SnapshotsUndecodable uint64 `json:"snapshots_undecodable"`
	// Resumed counts the times a bot's client resumed its session on a new
	// transport after losing one (netcode's Client.OnBack), over all bots.
	Resumed int64 `json:"resumed"`
	// Away counts the times a bot's client lost its transport and began to
	// resume (Client.OnAway), over all bots: each is followed by a resume
	// (Resumed) or the end of the connection.
	Away int64 `json:"away"`
	// Expired counts the bots whose connection ended because the server
	// let their session expire while they were away (netcode.IsExpired).
	Expired int64 `json:"expired"`
	// Blackouts counts the bots' dark windows (Config.Blackout) that ended
	// while the bot was in its room, over all bots.
	Blackouts int64 `json:"blackouts"`
	// SnapshotResume is, over those blackouts, the time from the end of
	// the dark window (the bot's network lit again) to the first snapshot
	// the bot received after it; SnapshotResumeCount how many blackouts
	// were followed by one before the next ended or the bot stopped.
	// ResumeAfter is the time from the end of the dark window to the
	// client's resume (OnBack), ResumeCount how many blackouts ended in
	// one: a transport that lived through a short blackout needs none.
	SnapshotResume      Percentiles `json:"snapshot_resume_ms"`
	SnapshotResumeCount int64       `json:"snapshot_resume_count"`
	ResumeAfter         Percentiles `json:"resume_ms"`
	ResumeCount         int64       `json:"resume_count"`
	// HistoryChecked counts the history echoes the bots checked
	// (Config.History); HistoryViolations those that broke exactly-once,
	// in-order delivery, plus the counters never echoed: the sum of
	// HistoryLost, HistoryDuplicated and HistoryReordered. Zero violations
	// mean something only with HistoryChecked well above zero.
	HistoryChecked    uint64 `json:"history_checked"`
	HistoryViolations uint64 `json:"history_violations"`
	// HistoryLost counts counters emitted and never echoed,
	// HistoryDuplicated echoes of a counter echoed before (or never
	// emitted), HistoryReordered echoes that came after a higher counter's.
	HistoryLost       uint64   `json:"history_lost"`
	HistoryDuplicated uint64   `json:"history_duplicated"`
	HistoryReordered  uint64   `json:"history_reordered"`
	Errors            []string `json:"errors"`
	// Soak is the server's runtime over the run, when it was sampled.
	Soak *Soak `json:"soak,omitempty"`
}

func (c *Config) populate() error {
	if c.Addr == "" {
		return errors.New("loadtest: no server address")
	}
	if c.ProtocolID == 0 {
		c.ProtocolID = token.DefaultProtocolID
	}
	if c.Bots <= 0 {
		c.Bots = 1
	}
	if c.PerRoom <= 0 {
		c.PerRoom = 10
	}
	if c.Kind == "" {
		c.Kind = arena.Kind
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = time.Second
	}
	if c.LoopbackSpread <= 0 {
		c.LoopbackSpread = 64
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.Blackout.Length > 0 {
		if c.Client.Dial != nil {
			return errors.New("loadtest: a blackout dials the bots' transports itself; leave Client.Dial unset")
		}
		if c.Idle {
			return errors.New("loadtest: a blackout needs bots that play, not idle ones")
		}
		c.History = true
	}
	return nil
}

// run is the shared state of one load run.
type run struct {
	cfg   Config
	addrs []string
	runID string

	connected, failed      atomic.Int64
	connectRetries         atomic.Int64
	eventsSent, eventsAckd atomic.Int64
	snapshots              atomic.Int64
	inputsSent             atomic.Int64
	resumed, expired, away atomic.Int64

	mu      sync.Mutex
	rtt     *hdrhistogram.Histogram // microseconds
	gap     *hdrhistogram.Histogram // microseconds
	longest *hdrhistogram.Histogram // each bot's longest gap, microseconds
	// Config.Rejoin: rejoins counts them; lostAt is, per bot, when its
	// connection was lost (unix nanoseconds, 0 once back), and rejoinBack
	// the time from there to the first snapshot after (microseconds,
	// under mu).
	rejoins    atomic.Int64
	lostAt     []atomic.Int64
	rejoinBack *hdrhistogram.Histogram
	delay      *hdrhistogram.Histogram // interpolation delay, microseconds, ≥ 0
	delaySum   float64                 // nanoseconds, negative ones included
	delayN     int64
	tickRate   int
	botSecs    float64 // seconds connected, summed over the bots
	expected   float64
	bytesSent  uint64
	bytesRecv  uint64
	frames     uint64
	underruns  uint64
	undecod    uint64
	hist       historyResult
	blackouts  int64
	snapBack   *hdrhistogram.Histogram // blackout end to first snapshot, microseconds
	resBack    *hdrhistogram.Histogram // blackout end to OnBack, microseconds
	errs       map[string]int
}

// Run connects the bots, lets them play for cfg.Duration and reports. It
// returns early, with what was measured, when ctx is cancelled.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.populate(); err != nil {
		return Report{}, err
	}
	var idb [4]byte
	_, _ = rand.Read(idb[:])
	r := &run{
		cfg:        cfg,
		addrs:      strings.Split(cfg.Addr, ","),
		runID:      hex.EncodeToString(idb[:]),
		rtt:        hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3),
		gap:        hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3),
		longest:    hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3),
		delay:      newDelayHistogram(),
		snapBack:   newDelayHistogram(),
		resBack:    newDelayHistogram(),
		errs:       make(map[string]int),
		lostAt:     make([]atomic.Int64, cfg.Bots),
		rejoinBack: newDelayHistogram(),
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < cfg.Bots; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.Rejoin {
				for try := 0; ctx.Err() == nil; try++ {
					left := cfg.Duration - time.Since(start)
					if left <= 0 || !r.bot(ctx, i, 0, try, left) {
						return
					}
					r.lostAt[i].CompareAndSwap(0, time.Now().UnixNano())
					r.rejoins.Add(1)
					sleepCtx(ctx, 100*time.Millisecond+time.Duration(mrand.Int64N(int64(200*time.Millisecond))))
				}
				return
			}
			if cfg.Churn <= 0 {
				r.bot(ctx, i, 0, 0, cfg.Duration)
				return
			}
			play := cfg.Churn * time.Duration(i%10+1) / 10
			for session := 0; ctx.Err() == nil; session++ {
				left := cfg.Duration - time.Since(start)
				if left <= 0 {
					return
				}
				r.bot(ctx, i, session, 0, min(play, left))
				play = cfg.Churn
			}
		}()
	}
	progressDone := make(chan struct{})
	var pwg sync.WaitGroup
	if cfg.Progress != nil {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
					cfg.Progress(r.progress(time.Since(start)))
				}
			}
		}()
	}
	wg.Wait()
	close(progressDone)
	pwg.Wait()
	return r.report(time.Since(start)), nil
}

func (r *run) progress(elapsed time.Duration) Progress {
	return Progress{
		Elapsed:           elapsed,
		Connected:         r.connected.Load(),
		Failed:            r.failed.Load(),
		EventsSent:        r.eventsSent.Load(),
		EventsAcked:       r.eventsAckd.Load(),
		SnapshotsReceived: r.snapshots.Load(),
	}
}

func (r *run) addError(what string, err error) {
	r.mu.Lock()
	r.errs[what+": "+err.Error()]++
	r.mu.Unlock()
}

// disconnected records a bot's connection that ended under it, and counts
// it as expired when the server let its session expire.
func (r *run) disconnected(ce *netcode.CloseError) {
	if netcode.IsExpired(ce) {
		r.expired.Add(1)
	}
	r.addError("disconnected", ce)
}

func (r *run) report(elapsed time.Duration) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{
		Transport:         r.transports(),
		Bots:              r.cfg.Bots,
		Connected:         int(r.connected.Load()),
		Failed:            int(r.failed.Load()),
		ConnectRetries:    r.connectRetries.Load(),
		DurationSeconds:   math.Round(elapsed.Seconds()*100) / 100,
		EventsSent:        r.eventsSent.Load(),
		EventsAcked:       r.eventsAckd.Load(),
		RTT:               percentiles(r.rtt, true),
		SnapshotsReceived: r.snapshots.Load(),
		SnapshotsExpected: int64(math.Round(r.expected)),
		SnapshotGap:       percentiles(r.gap, false),
		LongestGap:        percentiles(r.longest, true),
		Rejoined:          r.rejoins.Load(),
		RejoinAfter:       percentiles(r.rejoinBack, true),
		RejoinCount:       r.rejoinBack.TotalCount(),
		BytesSent:         r.bytesSent,
		BytesReceived:     r.bytesRecv,
		InterpFrames:      r.frames,
		InterpUnderruns:   r.underruns,
		InterpDelay:       percentiles(r.delay, true),
		TickRate:          r.tickRate,
		InputsSent:        r.inputsSent.Load(),

		SnapshotsUndecodable: r.undecod,
		Resumed:              r.resumed.Load(),
		Away:                 r.away.Load(),
		Expired:              r.expired.Load(),
		Blackouts:            r.blackouts,
		SnapshotResume:       percentiles(r.snapBack, true),
		SnapshotResumeCount:  r.snapBack.TotalCount(),
		ResumeAfter:          percentiles(r.resBack, true),
		ResumeCount:          r.resBack.TotalCount(),
		HistoryChecked:       r.hist.Checked,
		HistoryViolations:    r.hist.violations(),
		HistoryLost:          r.hist.Lost,
		HistoryDuplicated:    r.hist.Duplicated,
		HistoryReordered:     r.hist.Reordered,
		Errors:               []string{},
	}
	if r.frames > 0 {
		rep.InterpUnderrunPercent = round2(100 * float64(r.underruns) / float64(r.frames))
	}
	if r.delayN > 0 {
		rep.InterpDelayMean = round2(r.delaySum / float64(r.delayN) / float64(time.Millisecond))
	}
	rep.BotSeconds = round2(r.botSecs)
	if r.botSecs > 0 {
		rep.KbpsDown = round2(float64(r.bytesRecv) * 8 / 1000 / r.botSecs)
		rep.KbpsUp = round2(float64(r.bytesSent) * 8 / 1000 / r.botSecs)
	}
	for msg, n := range r.errs {
		if n > 1 {
			msg = fmt.Sprintf("%s (×%d)", msg, n)
		}
		rep.Errors = append(rep.Errors, msg)
	}
	sort.Strings(rep.Errors)
	return rep
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// delayMax bounds the interpolation delays recorded, in microseconds.
const delayMax = int64(time.Minute / time.Microsecond)

func newDelayHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, delayMax, 3) }

// tally is what one bot measures while it plays, merged into the run's
// figures when it stops. Only the bot's goroutine touches it.
type tally struct {
	delay    *hdrhistogram.Histogram // interpolation delay, microseconds, ≥ 0
	delaySum float64                 // nanoseconds, negative ones included
	delayN   int64

	hist     *historyCheck // nil without Config.History
	histTail bool          // the bot played to the end and waited for the last echoes
}

// frame renders one frame: Client.Interpolate, as a render loop would call
// it, and the delay it reports.
func (t *tally) frame(cl *netcode.Client, now time.Time) {
	in, ok := cl.Interpolate(now) // a renderer would draw the blend here
	if !ok {
		return
	}
	t.delaySum += float64(in.Delay)
	t.delayN++
	_ = t.delay.RecordValue(min(max(int64(in.Delay/time.Microsecond), 0), delayMax))
}

func percentiles(h *hdrhistogram.Histogram, full bool) Percentiles {
	ms := func(us int64) float64 { return math.Round(float64(us)/10) / 100 }
	p := Percentiles{P50: ms(h.ValueAtQuantile(50)), P99: ms(h.ValueAtQuantile(99))}
	if full {
		p.P90 = ms(h.ValueAtQuantile(90))
		p.Max = ms(h.Max())
	}
	return p
}

// transports names the run's transports by their URL schemes, in the order
// of Addr: "quic", "ws", "quic+kcp+ws".
func (r *run) transports() string {
	var names []string
	for _, a := range r.addrs {
		name, _, ok := strings.Cut(a, "://")
		if !ok {
			name = "quic"
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return strings.Join(names, "+")
}

// localAddr is the address bot i dials addr from: one of LoopbackSpread
// loopback addresses when addr is on loopback, else the system's choice.
func (r *run) localAddr(addr string, i int) string {
	u, err := url.Parse(addr)
	if err != nil || r.cfg.LoopbackSpread <= 1 {
		return ""
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil || !ip.Is4() || !ip.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("127.0.0.%d:0", 1+i%min(r.cfg.LoopbackSpread, 254))
}

// bot plays one client: connect, join, then send inputs every tick and a ping
// every PingInterval until the duration is over. try counts its rejoins
// (Config.Rejoin), each through the next of Addr's URLs; lost reports that
// the connection dropped early, or, on a rejoin, failed.
func (r *run) bot(ctx context.Context, i, session, try int, playFor time.Duration) (lost bool) {
	cfg := r.cfg
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()

	addr := r.addrs[(i+try)%len(r.addrs)]
	ccfg := cfg.Client
	ccfg.InsecureSkipVerify = ccfg.InsecureSkipVerify || cfg.Insecure
	if local := r.localAddr(addr, i); local != "" && ccfg.Dial == nil {
		ccfg.QUIC.LocalAddr, ccfg.KCP.LocalAddr, ccfg.WebSocket.LocalAddr = local, local, local
	}
	mint := cfg.TokenKey != nil && ccfg.Token == nil
	var network *impair.Network // the bot's, with its blackouts
	if cfg.Blackout.Length > 0 {
		network = impair.NewNetwork(cfg.Blackout)
	}
	var rec *recovery // nil without a blackout
	if network != nil {
		rec = newRecovery()
	}
	var hist *historyCheck
	if cfg.History && !cfg.Idle {
		hist = newHistoryCheck()
	}
	var (
		joined   atomic.Bool
		lastSnap atomic.Int64 // unix nanoseconds of the previous snapshot
		local    = hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
		localMu  sync.Mutex
		longest  int64 // the longest gap, microseconds (under localMu)
	)
	onSnapshot := func(uint32, []byte) {
		if !joined.Load() {
			return
		}
		r.snapshots.Add(1)
		at := time.Now()
		rec.snapshot(at)
		if lost := r.lostAt[i].Swap(0); lost != 0 {
			r.mu.Lock()
			_ = r.rejoinBack.RecordValue((at.UnixNano() - lost) / int64(time.Microsecond))
			r.mu.Unlock()
		}
		now := at.UnixNano()
		if prev := lastSnap.Swap(now); prev != 0 {
			gap := (now - prev) / int64(time.Microsecond)
			localMu.Lock()
			_ = local.RecordValue(gap)
			longest = max(longest, gap)
			localMu.Unlock()
		}
	}
	disconnected := make(chan *netcode.CloseError, 1)
	var current atomic.Pointer[netcode.Client] // the bot's client: a redirect replaces it
	setup := func(c *netcode.Client) {
		c.OnSnapshot(onSnapshot)
		c.OnDisconnect(func(ce *netcode.CloseError) {
			if current.Load() == c { // not the client a redirect left
				disconnected <- ce
			}
		})
		c.OnAway(func(error) { r.away.Add(1) })
		c.OnBack(func() {
			r.resumed.Add(1)
			rec.backAt(time.Now())
		})
		if hist != nil {
			c.On(arena.HistoryEvent, hist.echo)
		}
	}
	// A server refusing for being busy (many bots connecting at once) is
	// asked again after a short random wait, as a game client would.
	var cl *netcode.Client
	backoff := 50 * time.Millisecond
	for {
		if mint { // a fresh token each time: the server remembers a token it admitted
			tok, err := token.Issue(*cfg.TokenKey, token.Params{
				ProtocolID: cfg.ProtocolID, ClientID: uint64(i), Servers: []string{addr},
			}, time.Now())
			if err != nil {
				r.failed.Add(1)
				r.addError("token", err)
				return
			}
			ccfg.Token = tok
		}
		if network != nil {
			base := ccfg
			base.Dial = nil
			dial, err := impairedDial(addr, base, network)
			if err != nil {
				r.failed.Add(1)
				r.addError("blackout", err)
				return
			}
			ccfg.Dial = dial
		}
		cl = netcode.NewClient(ccfg)
		current.Store(cl)
		setup(cl)
		err := cl.Connect(cctx, addr)
		if err == nil {
			break
		}
		if !netcode.IsBusy(err) || !sleepCtx(cctx, backoff/2+time.Duration(mrand.Int64N(int64(backoff)))) {
			r.failed.Add(1)
			r.addError("connect", err)
			return try > 0
		}
		r.connectRetries.Add(1)
		backoff = min(2*backoff, time.Second)
	}
	connectedAt := time.Now()
	if network != nil {
		network.Start(connectedAt)
	}
	defer func() { _ = current.Load().Close() }()
	if cfg.Idle {
		r.connected.Add(1)
		idle := time.NewTimer(playFor)
		defer idle.Stop()
		select {
		case <-ctx.Done():
		case <-idle.C:
		case ce := <-disconnected:
			r.disconnected(ce)
		}
		r.mu.Lock()
		r.botSecs += time.Since(connectedAt).Seconds()
		r.mu.Unlock()
		return
	}
	r.eventsSent.Add(1)
	nrooms := (cfg.Bots + cfg.PerRoom - 1) / cfg.PerRoom
	prefix := "bots-" + r.runID
	if cfg.RoomPrefix != "" {
		prefix = cfg.RoomPrefix
	}
	room := fmt.Sprintf("%s-%d", prefix, (i/cfg.PerRoom+session)%nrooms)
	// A room on another node of a cluster: follow the redirect there, on a
	// new client (dialling the node's own URLs, so without the blackout's
	// impaired sockets, which are bound to Addr).
	fcfg := ccfg
	fcfg.Dial, fcfg.Token = nil, nil
	fcfg.QUIC.LocalAddr, fcfg.KCP.LocalAddr, fcfg.WebSocket.LocalAddr = "", "", ""
	follow := func(c *netcode.Client) {
		current.Store(c)
		setup(c)
	}
	cl, jr, err := rooms.JoinFollow(cctx, cl, fcfg, follow, cfg.Kind, room)
	if cl != current.Load() {
		current.Store(cl) // the redirect failed after its new client was made
	}
	if err != nil {
		r.failed.Add(1)
		r.addError("join", err)
		return try > 0
	}
	r.eventsAckd.Add(1)
	r.connected.Add(1)
	joinedAt := time.Now()
	// The blackouts that can end while the bot plays, drains and waits for
	// its last echoes.
	rec.arm(cfg.Blackout, connectedAt, joinedAt, joinedAt.Sub(connectedAt)+playFor+cfg.Drain+historyTail+time.Second)
	joined.Store(true)

	t := &tally{delay: newDelayHistogram(), hist: hist}
	lost = r.play(ctx, cl, jr.TickRate, playFor, disconnected, t)
	blackouts := rec.finish(time.Now())

	inRoom := time.Since(joinedAt).Seconds()
	st := cl.Stats()
	r.mu.Lock()
	r.expected += inRoom * float64(jr.TickRate)
	r.tickRate = max(r.tickRate, jr.TickRate)
	r.botSecs += time.Since(connectedAt).Seconds()
	r.delay.Merge(t.delay)
	r.delaySum += t.delaySum
	r.delayN += t.delayN
	r.bytesSent += st.BytesSent
	r.bytesRecv += st.BytesReceived
	r.frames += st.InterpFrames
	r.underruns += st.InterpUnderruns
	r.undecod += st.SnapshotsUndecodable
	if hist != nil {
		r.hist.add(hist.finish(t.histTail))
	}
	if rec != nil {
		r.blackouts += blackouts
		r.snapBack.Merge(rec.snap)
		r.resBack.Merge(rec.back)
	}
	localMu.Lock()
	r.gap.Merge(local)
	if longest > 0 {
		_ = r.longest.RecordValue(longest)
	}
	localMu.Unlock()
	r.mu.Unlock()
	return lost
}

// play sends inputs at the tick rate, pings every PingInterval, history
// events every 100 ms (with Config.History) and renders 60 frames a second
// until the run's duration is over, the context ends or the connection
// drops; then it drains (see Config.Drain) and waits for the last history
// echoes.
func (r *run) play(ctx context.Context, cl *netcode.Client, tickRate int, playFor time.Duration, disconnected <-chan *netcode.CloseError, t *tally) (dropped bool) {
	end := time.NewTimer(playFor)
	defer end.Stop()
	inputs := time.NewTicker(time.Second / time.Duration(max(tickRate, 1)))
	defer inputs.Stop()
	pings := time.NewTicker(r.cfg.PingInterval)
	defer pings.Stop()
	frames := time.NewTicker(time.Second / 60)
	defer frames.Stop()
	var histC <-chan time.Time // nil, never ready, without a history check
	if t.hist != nil {
		h := time.NewTicker(historyInterval)
		defer h.Stop()
		histC = h.C
	}

	var seed [8]byte
	_, _ = rand.Read(seed[:])
	dir := binary.BigEndian.Uint64(seed[:])
	input := make([]byte, 0, 2)
	var pingWG sync.WaitGroup
	defer pingWG.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			r.drain(ctx, cl, frames, disconnected, t)
			return
		case ce := <-disconnected:
			r.disconnected(ce)
			return true
		case <-histC:
			n, payload := t.hist.emit()
			if err := cl.Emit(arena.HistoryEvent, payload); err != nil {
				t.hist.unemit(n) // not sent: the next event takes its counter
				r.addError("history", err)
			}
		case <-inputs.C:
			dir = dir*6364136223846793005 + 1442695040888963407
			input = arena.EncodeInput(input[:0], int8(dir>>56), int8(dir>>48))
			if err := cl.SendInput(input); err != nil {
				r.addError("input", err)
			} else {
				r.inputsSent.Add(1)
			}
		case now := <-frames.C:
			t.frame(cl, now)
		case <-pings.C:
			pingWG.Add(1)
			r.eventsSent.Add(1)
			go func() {
				defer pingWG.Done()
				r.ping(ctx, cl)
			}()
		}
	}
}

// drain goes on rendering, and so acknowledging snapshots, for
// Config.Drain, sending nothing else; then, with a history check, until
// every history event has come back or 2 s have passed (t.histTail).
func (r *run) drain(ctx context.Context, cl *netcode.Client, frames *time.Ticker, disconnected <-chan *netcode.CloseError, t *tally) {
	if r.cfg.Drain > 0 && !r.render(ctx, cl, frames, disconnected, t, r.cfg.Drain, nil) {
		return
	}
	if t.hist != nil {
		t.histTail = r.render(ctx, cl, frames, disconnected, t, historyTail, t.hist.caughtUp)
	}
}

// render renders frames for d, or until done (if set) reports true, which
// it asks every frame. It reports false if the context ended or the
// connection dropped first.
func (r *run) render(ctx context.Context, cl *netcode.Client, frames *time.Ticker, disconnected <-chan *netcode.CloseError, t *tally, d time.Duration, done func() bool) bool {
	end := time.NewTimer(d)
	defer end.Stop()
	for {
		if done != nil && done() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-end.C:
			return true
		case ce := <-disconnected:
			r.disconnected(ce)
			return false
		case now := <-frames.C:
			t.frame(cl, now)
		}
	}
}

func (r *run) ping(ctx context.Context, cl *netcode.Client) {
	var b [8]byte
	start := time.Now()
	binary.BigEndian.PutUint64(b[:], uint64(start.UnixNano()))
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rep, err := cl.Request(pctx, "ping", b[:])
	if err != nil {
		r.addError("ping", err)
		return
	}
	rtt := time.Since(start)
	if len(rep) != 8 || binary.BigEndian.Uint64(rep) != uint64(start.UnixNano()) {
		r.addError("ping", errors.New("reply does not echo the request"))
		return
	}
	r.eventsAckd.Add(1)
	r.mu.Lock()
	_ = r.rtt.RecordValue(max(int64(rtt/time.Microsecond), 1))
	r.mu.Unlock()
}

// sleepCtx waits d unless ctx ends first; it reports whether it waited.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
