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
	mrand "math/rand/v2"
	"net/netip"
	"net/url"
	"slices"
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
	// Networks, if any, puts every bot behind one of these network
	// profiles (NetProfile: loss, delay, jitter, duplication and reordering
	// each way), dealt out by Weight in an interleaved order (bot i gets
	// the i-th profile of a smooth weighted round robin), so that the
	// bots of a room come from several. As with Blackout, the bots dial
	// their transports themselves over impaired sockets (Client.Dial must
	// be unset), and the two combine. Report.Profiles holds each
	// profile's figures. ParseNet and ParseNetMix make it from the bot
	// client's -net and -net-mix.
	Networks []NetProfile
	// Rejoin makes a bot whose connection ends before its time (its node
	// died, its session expired) connect again and join its room again,
	// through the next of Addr's URLs, until Duration is over, as a game
	// client would: bots over a cluster's nodes get back into play when
	// one of them dies. A bot whose first connect or join fails tries
	// again the same way (not counted as a rejoin). Connected then counts
	// connections.
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
	// Joined counts the bots that have joined their room, each once
	// however often it joined again.
	Joined int64
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
	if len(c.Networks) > 0 && c.Client.Dial != nil {
		return errors.New("loadtest: network profiles dial the bots' transports themselves; leave Client.Dial unset")
	}
	return nil
}

// run is the shared state of one load run.
type run struct {
	cfg   Config
	addrs []string
	runID string
	clock *frameClocks // the bots' frames
	// cpuStart are the machine's CPU times at the start (steal.go).
	cpuStart cpuTimes

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
	joined     []atomic.Bool // per bot: it joined its room once (Config.Rejoin)
	joinedOnce atomic.Int64  // bots that joined their room once
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

	// The report's distributions, series and breakdowns (under mu):
	// connect is dial start to joined, microseconds; secRTT the ping round
	// trips of the current second, lastRTT those of the last sample's
	// interval; live the bots in their rooms, by bot; finished the
	// counters of the bots that left theirs; prevTotals and prevT the
	// totals at the last sample, lastFrom and lastFromT at the one
	// before; rooms and profs the rooms' and the profiles' tallies, by
	// room name and by index in Config.Networks (botProf: each bot's).
	connect    *hdrhistogram.Histogram
	secRTT     *hdrhistogram.Histogram
	lastRTT    *hdrhistogram.Histogram
	live       []liveBot
	finished   totals
	prevTotals totals
	prevT      time.Duration
	lastFrom   totals
	lastFromT  time.Duration
	series     []Second
	rooms      map[string]*roomTally
	botProf    []int
	profs      []profTally
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
		joined:     make([]atomic.Bool, cfg.Bots),
		rejoinBack: newDelayHistogram(),
		connect:    newDelayHistogram(),
		secRTT:     newDelayHistogram(),
		lastRTT:    newDelayHistogram(),
		live:       make([]liveBot, cfg.Bots),
		rooms:      make(map[string]*roomTally),
		botProf:    dealProfiles(cfg.Networks, cfg.Bots),
		profs:      make([]profTally, len(cfg.Networks)),
		clock:      newFrameClocks(renderRate),
	}
	for i := range r.profs {
		r.profs[i].rtt = newDelayHistogram()
	}
	for _, j := range r.botProf {
		r.profs[j].bots++
	}
	start := time.Now()
	r.cpuStart = readCPUTimes()
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
					if r.joined[i].Load() { // lost, not a first attempt that failed
						r.lostAt[i].CompareAndSwap(0, time.Now().UnixNano())
						r.rejoins.Add(1)
					}
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
	// The sampler, Run's own, takes the series' sample and calls Progress
	// once a second until the bots are done; a last sample covers the
	// rest of the run.
	samplerDone := make(chan struct{})
	var swg sync.WaitGroup
	swg.Add(1)
	go func() {
		defer swg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-samplerDone:
				return
			case <-t.C:
				r.sample(time.Since(start), false)
				if cfg.Progress != nil {
					cfg.Progress(r.progress(time.Since(start)))
				}
			}
		}
	}()
	wg.Wait()
	r.clock.close()
	close(samplerDone)
	swg.Wait()
	elapsed := time.Since(start)
	r.sample(elapsed, true)
	return r.report(elapsed), nil
}

func (r *run) progress(elapsed time.Duration) Progress {
	return Progress{
		Elapsed:           elapsed,
		Connected:         r.connected.Load(),
		Failed:            r.failed.Load(),
		EventsSent:        r.eventsSent.Load(),
		EventsAcked:       r.eventsAckd.Load(),
		SnapshotsReceived: r.snapshots.Load(),
		Joined:            r.joinedOnce.Load(),
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

// delayMax bounds the interpolation delays recorded, in microseconds.
const delayMax = int64(time.Minute / time.Microsecond)

func newDelayHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, delayMax, 3) }

// tally is what one bot measures while it plays, merged into the run's
// figures when it stops. One goroutine at a time touches it: the frame
// clock's while the bot plays, the bot's once it left the clock.
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
// the connection dropped early, or, with Config.Rejoin, failed.
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
	prof := -1 // the bot's network profile, an index in cfg.Networks
	if r.botProf != nil {
		prof = r.botProf[i]
	}
	var path *netPath // the bot's impaired network; nil for the real one
	if network != nil || prof >= 0 {
		path = &netPath{network: network, seed: splitmix64(uint64(i)<<32 | uint64(session)<<16 | uint64(try))}
		if prof >= 0 {
			path.profile = cfg.Networks[prof].Profile
		}
	}
	var hist *historyCheck
	if cfg.History && !cfg.Idle {
		hist = newHistoryCheck()
	}
	var (
		joined   atomic.Bool
		got      atomic.Int64 // snapshots received in the room
		lastSnap atomic.Int64 // unix nanoseconds of the previous snapshot
		local    = hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
		localMu  sync.Mutex
		longest  int64 // the longest gap, microseconds (under localMu)
		tallied  bool  // the bot's figures are added up: count no more (under localMu)
	)
	onSnapshot := func(uint32, []byte) {
		if !joined.Load() {
			return
		}
		localMu.Lock()
		if tallied { // a snapshot after the bot's figures were added up: in neither count
			localMu.Unlock()
			return
		}
		r.snapshots.Add(1)
		got.Add(1)
		localMu.Unlock()
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
	dialStart := time.Now()
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
		if path != nil {
			base := ccfg
			base.Dial = nil
			dial, err := impairedDial(addr, base, path)
			if err != nil {
				r.failed.Add(1)
				r.addError("dial", err)
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
			return try > 0 || cfg.Rejoin
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
		r.mu.Lock()
		_ = r.connect.RecordValue(max(int64(connectedAt.Sub(dialStart)/time.Microsecond), 1))
		r.mu.Unlock()
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
		return try > 0 || cfg.Rejoin
	}
	r.eventsAckd.Add(1)
	r.connected.Add(1)
	if !r.joined[i].Swap(true) {
		r.joinedOnce.Add(1)
	}
	joinedAt := time.Now()
	// The blackouts that can end while the bot plays, drains and waits for
	// its last echoes.
	rec.arm(cfg.Blackout, connectedAt, joinedAt, joinedAt.Sub(connectedAt)+playFor+cfg.Drain+historyTail+time.Second)
	joined.Store(true)
	r.mu.Lock()
	_ = r.connect.RecordValue(max(int64(joinedAt.Sub(dialStart)/time.Microsecond), 1))
	r.live[i] = liveBot{cl: cl, tick: jr.TickRate, joined: joinedAt}
	r.mu.Unlock()

	t := &tally{delay: newDelayHistogram(), hist: hist}
	lost = r.play(ctx, cl, jr.TickRate, playFor, disconnected, t, prof)
	blackouts := rec.finish(time.Now())

	r.mu.Lock()
	// Under mu, with leaving live, so that the sampler's sums only grow.
	inRoom := time.Since(joinedAt).Seconds()
	st := cl.Stats()
	lb := r.live[i]
	r.live[i] = liveBot{}
	r.finished.add(st)
	rt := r.rooms[room]
	if rt == nil {
		rt = &roomTally{}
		r.rooms[room] = rt
	}
	localMu.Lock()
	tallied = true
	inRoomSnaps := got.Load()
	localMu.Unlock()
	rt.bots++
	rt.received += inRoomSnaps
	rt.expected += inRoom * float64(jr.TickRate)
	if prof >= 0 {
		pt := &r.profs[prof]
		pt.connected++
		pt.sent += lb.decidedSent
		pt.lost += lb.decidedLost
		pt.received += inRoomSnaps
		pt.expected += inRoom * float64(jr.TickRate)
		pt.frames += st.InterpFrames
		pt.underruns += st.InterpUnderruns
	}
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

// renderRate is how many frames a second a bot renders (interpolates),
// as a game's screen would.
const renderRate = 60

// play sends inputs at the tick rate, pings every PingInterval, history
// events every 100 ms (with Config.History) and renders 60 frames a second
// until the run's duration is over, the context ends or the connection
// drops; then it drains (see Config.Drain) and waits for the last history
// echoes. prof is the bot's network profile, -1 for none.
func (r *run) play(ctx context.Context, cl *netcode.Client, tickRate int, playFor time.Duration, disconnected <-chan *netcode.CloseError, t *tally, prof int) (dropped bool) {
	end := time.NewTimer(playFor)
	defer end.Stop()
	// Inputs go out on every perInput-th frame where the tick rate divides
	// the render rate (30 Hz: every second frame), so that they need no
	// wake-up of their own: 500 bots share one core in a load test. Other
	// tick rates get a ticker of their own, on this goroutine.
	tickRate = max(tickRate, 1)
	perInput, frameNum := 0, 0
	var inputC <-chan time.Time
	if renderRate%tickRate == 0 {
		perInput = renderRate / tickRate
	} else {
		inputs := time.NewTicker(time.Second / time.Duration(tickRate))
		defer inputs.Stop()
		inputC = inputs.C
	}

	var seed [8]byte
	_, _ = rand.Read(seed[:])
	dir := binary.BigEndian.Uint64(seed[:])
	input := make([]byte, 0, 2)
	sendInput := func() {
		dir = dir*6364136223846793005 + 1442695040888963407
		input = arena.EncodeInput(input[:0], int8(dir>>56), int8(dir>>48))
		if err := cl.SendInput(input); err != nil {
			r.addError("input", err)
		} else {
			r.inputsSent.Add(1)
		}
	}
	var pingWG sync.WaitGroup
	defer pingWG.Wait()
	// The frames, with the pings and history events due, run on the run's
	// frame clock, until it is left below.
	started := time.Now()
	nextPing, nextHist := started.Add(r.cfg.PingInterval), started.Add(historyInterval)
	frame := func(now time.Time) {
		if frameNum++; perInput > 0 && frameNum%perInput == 0 {
			sendInput()
		}
		t.frame(cl, now)
		if due(&nextPing, now, r.cfg.PingInterval) {
			pingWG.Add(1)
			r.eventsSent.Add(1)
			go func() {
				defer pingWG.Done()
				r.ping(ctx, cl, prof)
			}()
		}
		if t.hist != nil && due(&nextHist, now, historyInterval) {
			n, payload := t.hist.emit()
			if err := cl.Emit(arena.HistoryEvent, payload); err != nil {
				t.hist.unemit(n) // not sent: the next event takes its counter
				r.addError("history", err)
			}
		}
	}
	onClock := r.clock.add(frame)
	defer func() {
		if onClock != nil {
			r.clock.remove(onClock)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			r.clock.remove(onClock)
			onClock = nil
			r.drain(ctx, cl, disconnected, t)
			return
		case ce := <-disconnected:
			r.disconnected(ce)
			return true
		case <-inputC:
			sendInput()
		}
	}
}

// due reports whether *next came by now and, if so, moves it on by every:
// from now, when the clock was late by more than that (no catching up).
func due(next *time.Time, now time.Time, every time.Duration) bool {
	if now.Before(*next) {
		return false
	}
	if *next = next.Add(every); next.Before(now) {
		*next = now.Add(every)
	}
	return true
}

// drain goes on rendering, and so acknowledging snapshots, for
// Config.Drain, sending nothing else; then, with a history check, until
// every history event has come back or 2 s have passed (t.histTail).
// The bot is off the frame clock by then: these frames have a ticker of
// their own.
func (r *run) drain(ctx context.Context, cl *netcode.Client, disconnected <-chan *netcode.CloseError, t *tally) {
	frames := time.NewTicker(time.Second / renderRate)
	defer frames.Stop()
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

// ping times one reliable round trip, recorded in the run's histograms and
// in those of the bot's profile prof (-1: none).
func (r *run) ping(ctx context.Context, cl *netcode.Client, prof int) {
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
	us := max(int64(rtt/time.Microsecond), 1)
	r.mu.Lock()
	_ = r.rtt.RecordValue(us)
	_ = r.secRTT.RecordValue(us)
	if prof >= 0 {
		_ = r.profs[prof].rtt.RecordValue(us)
	}
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
