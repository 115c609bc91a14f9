package netcode

import (
	"math"
	"time"
)

// Interpolation is what Client.Interpolate returns: the two snapshots around
// the render time and how far between them it lies.
type Interpolation struct {
	From, To Frame
	// Alpha is 0 at From and 1 at To.
	Alpha float64
	// RenderTime is the server time being rendered. It never decreases
	// from one call to the next, and advances at 0.9 to 1.1 times the rate
	// of the local clock, except at the first snapshot and when the client
	// finds itself rendering far too late (then it jumps forward).
	RenderTime time.Time
	// Delay is the newest held snapshot's server time less RenderTime: how
	// much buffered stream the render time has ahead of it. It is negative
	// on an underrun.
	Delay time.Duration
	// Target is the delay the client chose: how far the render time aims to
	// trail the stream clock (the server time of the snapshots arriving
	// now, when they are not late). It covers the measured lateness of
	// arrivals and enough snapshot intervals that lost snapshots rarely
	// leave nothing to blend towards. RenderTime moves smoothly towards
	// the stream clock less Target.
	Target time.Duration
	// Underrun is true when no snapshot newer than the render time had
	// arrived: From and To are both the newest, and the game should
	// extrapolate or hold.
	Underrun bool
}

const (
	// playoutWindow is how many recent arrivals size the delay: about four
	// seconds of a 30 Hz stream, enough to see a 1 % lateness tail and to
	// measure a few percent of loss.
	playoutWindow = 128
	// playoutLow is how many of the window's smallest offsets the 1st
	// percentile needs at most.
	playoutLow = (playoutWindow + 99) / 100
	// underrunTarget is the share of render frames the delay aims to leave
	// with no snapshot to blend towards.
	underrunTarget = 0.004
	// lossPrior is the pseudo-count of lost snapshots (out of one) that the
	// loss estimate starts from, so that a young stream is buffered
	// generously and the delay shrinks as arrivals prove the stream sound.
	lossPrior = 0.25
	// maxGapLoss caps the snapshots one gap counts as lost: a longer stall
	// (a server pause, a blackout) is no random loss that a delay could
	// cover, and must not inflate the delay for the whole window.
	maxGapLoss = 4
	// maxCover caps the intervals of loss the delay covers.
	maxCover = 8
	// slewRate bounds how fast the render clock's rate departs from the
	// local clock's: 0.1 lets it run at 0.9 to 1.1 times real time.
	slewRate = 0.1
	// slewTau is the time constant of the approach to the target: a gap
	// of g closes at g/slewTau (within slewRate) per unit of time.
	slewTau = 500 * time.Millisecond
	// jumpLag is how far behind its target the render time may fall before
	// it jumps forward instead of slewing (at slewRate a lag closes at
	// 100 ms a second).
	jumpLag = 250 * time.Millisecond
	// defaultInterval is the snapshot interval assumed before one is
	// measured.
	defaultInterval = time.Second / 30
)

// arrival is one decoded snapshot's timing.
type arrival struct {
	// s is the snapshot's server time less its local arrival time.
	s int64
	// ticks since the previous snapshot of the stream; 0 for a stream's
	// first.
	ticks uint32
}

// playout is the render clock of a snapshot stream. It does no I/O: arrive
// takes each decoded snapshot's tick, server time and local arrival time,
// and render the local time of a frame. It needs no estimate of the
// server's clock: it renders relative to the stream itself, so latency,
// however large, never adds to the buffer. Local times are counted from the
// first arrival, on the monotonic clock when the times carry one.
//
// Per arrival, s = server time − local arrival time. The stream clock is
// local time + S, S the largest s of the window: the server time of the
// least delayed arrivals. An arrival's lateness is S − s. The delay is
//
//	D = I × (1 + x) + L
//
// with I the snapshot interval, L the lateness that 99 % of the window's
// arrivals stay within, and x (see lossCover) the intervals needed so
// that, with a loss rate p, an underrun has probability underrunTarget.
type playout struct {
	base     time.Time
	win      [playoutWindow]arrival
	n, next  int
	prevTime int64
	prevTick uint32
	tickNs   float64 // smoothed server time per tick

	// Derived at each arrival, in nanoseconds.
	stream   int64 // S
	interval int64 // I
	late     int64 // L
	loss     float64
	delay    int64 // D

	// The render clock: render time = local time + renderOff, clamped to
	// never decrease.
	started    bool
	renderOff  int64
	lastLocal  int64
	lastRender int64
}

// arrive records a snapshot of tick with server time t (Unix nanoseconds)
// that arrived at local time now. first says it starts a stream (a new
// epoch): no earlier snapshot to measure a gap from.
func (p *playout) arrive(tick uint32, t int64, now time.Time, first bool) {
	if p.n == 0 {
		p.base = now
	}
	local := int64(now.Sub(p.base))
	var ticks uint32
	if d := tick - p.prevTick; !first && t > p.prevTime && d > 0 && d < 1<<31 {
		ticks = d
		per := float64(t-p.prevTime) / float64(d)
		if p.tickNs == 0 {
			p.tickNs = per
		} else {
			p.tickNs += (per - p.tickNs) / 16
		}
	}
	p.prevTime, p.prevTick = t, tick
	p.win[p.next] = arrival{s: t - local, ticks: ticks}
	p.next = (p.next + 1) % playoutWindow
	p.n = min(p.n+1, playoutWindow)
	p.update()
}

// update derives S, I, L, the loss rate and D from the window.
func (p *playout) update() {
	stride := uint32(0) // ticks between snapshots: the fewest seen
	for _, a := range p.win[:p.n] {
		if a.ticks > 0 && (stride == 0 || a.ticks < stride) {
			stride = a.ticks
		}
	}
	// S is the largest offset, and the lateness margin reaches down to the
	// 1st percentile: the k-th smallest, k = ⌈n/100⌉, kept in low (sorted,
	// low[:k]) in one pass instead of sorting the window at every arrival.
	k := (p.n + 99) / 100
	var low [playoutLow]int64
	got, lost, held := 0, 0, 0
	p.stream = p.win[0].s
	for _, a := range p.win[:p.n] {
		if a.ticks > 0 {
			got++
			lost += min(int((a.ticks+stride/2)/stride)-1, maxGapLoss)
		}
		p.stream = max(p.stream, a.s)
		if held < k {
			held++
		} else if a.s >= low[k-1] {
			continue
		}
		i := held - 1
		for ; i > 0 && low[i-1] > a.s; i-- {
			low[i] = low[i-1]
		}
		low[i] = a.s
	}
	p.late = p.stream - low[k-1]
	p.loss = (float64(lost) + lossPrior) / float64(lost+got+1)
	p.interval = int64(defaultInterval)
	if stride > 0 && p.tickNs > 0 {
		p.interval = int64(p.tickNs * float64(stride))
	}
	p.delay = int64(float64(p.interval)*(1+lossCover(p.loss))) + p.late
}

// lossCover is the smallest x ≥ 0 for which a delay of I × (1 + x) beyond
// the lateness margin leaves an underrun with probability at most
// underrunTarget when snapshots are lost independently with probability p.
// The render phase is uniform within an interval, so a window of
// I × (1 + x), x = m + f, spans m + 1 snapshots with probability 1 − f and
// m + 2 with probability f; all of them are lost with probability
// (1 − f) × p^(m+1) + f × p^(m+2).
func lossCover(p float64) float64 {
	if p <= underrunTarget {
		return 0
	}
	a := p // p^(m+1)
	for m := 0; m < maxCover; m++ {
		b := a * p
		if b <= underrunTarget {
			return float64(m) + (a-underrunTarget)/(a-b)
		}
		a = b
	}
	return maxCover
}

// render advances the render clock to local time now and returns the
// render time (Unix nanoseconds). At least one arrival must precede it.
func (p *playout) render(now time.Time) int64 {
	local := int64(now.Sub(p.base))
	target := p.stream - p.delay
	switch {
	case !p.started:
		p.started, p.renderOff = true, target
	case target-p.renderOff > int64(jumpLag):
		p.renderOff = target
	case local > p.lastLocal:
		dt := float64(local - p.lastLocal)
		gap := float64(target - p.renderOff)
		step := gap * min(dt/float64(slewTau), 1)
		step = math.Max(-slewRate*dt, math.Min(slewRate*dt, step))
		p.renderOff += int64(step)
	}
	p.lastLocal = max(p.lastLocal, local)
	r := max(local+p.renderOff, p.lastRender)
	p.lastRender = r
	return r
}

// streamTime is the stream clock at local time now: the server time of the
// snapshots arriving now, when they are not late.
func (p *playout) streamTime(now time.Time) int64 {
	return int64(now.Sub(p.base)) + p.stream
}

// Interpolate returns the two snapshots around the render time for local
// time now, and the blend factor between them. The render time follows the
// snapshot stream, not the server's clock: it trails the server time of the
// least delayed arriving snapshots by Target, which is sized from the
// arrivals' measured lateness and loss so that a snapshot is nearly always
// there to blend towards, at any latency. It adapts smoothly, never moving
// backwards (see Interpolation.RenderTime). The frames' Data are copies
// valid until the next call; call it from one goroutine (the render loop),
// with now from the same clock as the arrivals (time.Now). ok is false
// before the first snapshot.
func (c *Client) Interpolate(now time.Time) (Interpolation, bool) {
	r := &c.snaps
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.newest == nil {
		return Interpolation{}, false
	}
	render := r.play.render(now)

	var from, to *frameSlot
	for i := range r.ring {
		s := &r.ring[i]
		if !s.valid {
			continue
		}
		if s.time <= render && (from == nil || s.time > from.time) {
			from = s
		}
		if s.time > render && (to == nil || s.time < to.time) {
			to = s
		}
	}
	in := Interpolation{
		RenderTime: time.Unix(0, render),
		Delay:      time.Duration(r.newest.time - render),
		Target:     time.Duration(r.play.delay),
	}
	switch {
	case to == nil: // nothing newer than the render time: underrun
		from, to = r.newest, r.newest
		in.Alpha, in.Underrun = 1, true
		c.cstats.interpUnderruns.Add(1)
	case from == nil: // render time before everything held
		from = to
	default:
		in.Alpha = float64(render-from.time) / float64(to.time-from.time)
	}
	c.cstats.interpFrames.Add(1)
	c.cstats.interpDelayTotal.Add(int64(in.Delay))
	c.cstats.interpTargetTotal.Add(int64(in.Target))
	c.interpA = append(c.interpA[:0], from.data...)
	c.interpB = append(c.interpB[:0], to.data...)
	in.From = Frame{Tick: from.tick, Time: time.Unix(0, from.time), Data: c.interpA}
	in.To = Frame{Tick: to.tick, Time: time.Unix(0, to.time), Data: c.interpB}
	return in, true
}
