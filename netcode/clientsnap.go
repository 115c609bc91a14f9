package netcode

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

// Frame is one decoded snapshot as the client holds it.
type Frame struct {
	Tick uint32
	// Time is the server's clock at the tick.
	Time time.Time
	// Data is the whole snapshot.
	Data []byte
}

// Interpolation is what Client.Interpolate returns: the two snapshots around
// the render time and how far between them it lies.
type Interpolation struct {
	From, To Frame
	// Alpha is 0 at From and 1 at To.
	Alpha float64
	// RenderTime is the server time being rendered: the estimated server
	// clock now, less Delay.
	RenderTime time.Time
	// Delay is how far behind the server clock the client renders: about
	// two snapshot intervals, more when arrivals jitter.
	Delay time.Duration
	// Underrun is true when no snapshot newer than the render time had
	// arrived: From and To are both the newest, and the game should
	// extrapolate or hold.
	Underrun bool
}

type frameSlot struct {
	tick    uint32
	time    int64
	data    []byte
	valid   bool
	arrived time.Time
}

// snapshotReceiver is the client side of the snapshot stream: the recent
// decoded snapshots (baselines for deltas, frames for interpolation) and the
// timing estimates. The datagram goroutine adds; Interpolate reads.
type snapshotReceiver struct {
	codec unreliable.Codec

	mu      sync.Mutex
	ring    [baselineRing]frameSlot
	epoch   uint8
	newest  *frameSlot
	scratch []byte

	// Smoothed server-time gap between snapshots and the jitter of their
	// arrival gaps, in nanoseconds.
	interval, jitter float64

	acked atomic.Uint64 // epoch << 32 | tick of the newest snapshot held
}

// add decodes a reassembled envelope. It returns the whole snapshot (valid
// until the next add) or why it could not.
func (r *snapshotReceiver) add(tick uint32, epoch uint8, env []byte, now time.Time) (data []byte, undecodable bool, err error) {
	e, payload, err := unreliable.ParseEnvelope(env)
	if err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if epoch != r.epoch || r.newest == nil {
		// Another stream (a new room): nothing held is a baseline now.
		for i := range r.ring {
			r.ring[i].valid = false
		}
		r.epoch, r.newest = epoch, nil
	}
	whole := payload
	if e.Base != 0 {
		base := &r.ring[(tick-uint32(e.Base))%baselineRing]
		if !base.valid || base.tick != tick-uint32(e.Base) || r.codec == nil {
			return nil, true, nil // never apply a delta to a baseline we lack
		}
		r.scratch, err = r.codec.Decode(r.scratch[:0], base.data, payload)
		if err != nil {
			return nil, false, err
		}
		whole = r.scratch
	}
	slot := &r.ring[tick%baselineRing]
	if e.Base != 0 {
		// Keep the decoded bytes; the slot's old buffer becomes scratch.
		slot.data, r.scratch = r.scratch, slot.data
	} else {
		slot.data = append(slot.data[:0], whole...)
	}
	if prev := r.newest; prev != nil && e.Time > prev.time {
		gap := float64(e.Time - prev.time)
		arrival := float64(now.Sub(prev.arrived))
		if r.interval == 0 {
			r.interval = gap
		} else {
			r.interval += (gap - r.interval) / 16
		}
		dev := arrival - gap
		if dev < 0 {
			dev = -dev
		}
		r.jitter += (dev - r.jitter) / 16
	}
	slot.tick, slot.time, slot.valid, slot.arrived = tick, e.Time, true, now
	r.newest = slot
	r.acked.Store(uint64(epoch)<<32 | uint64(tick))
	return slot.data, false, nil
}

// ack is the newest snapshot held, for the server's baseline.
func (r *snapshotReceiver) ack() unreliable.SnapshotAck {
	a := r.acked.Load()
	return unreliable.SnapshotAck{Epoch: uint8(a >> 32), Tick: uint32(a)}
}

// clockSync estimates the server's clock from PING/PONG round trips: of the
// last few samples, the one with the shortest round trip is the least
// disturbed by queueing, so its offset is used.
type clockSync struct {
	mu      sync.Mutex
	samples [8]struct {
		rtt, offset time.Duration
	}
	n, next int
}

func (c *clockSync) add(sent, server, now time.Time) {
	rtt := now.Sub(sent)
	if rtt < 0 {
		return
	}
	offset := server.Add(rtt / 2).Sub(now)
	c.mu.Lock()
	c.samples[c.next] = struct{ rtt, offset time.Duration }{rtt, offset}
	c.next = (c.next + 1) % len(c.samples)
	c.n = min(c.n+1, len(c.samples))
	c.mu.Unlock()
}

// offset is server clock minus local clock; ok is false before any sample.
func (c *clockSync) offset() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return 0, false
	}
	best := 0
	for i := 1; i < c.n; i++ {
		if c.samples[i].rtt < c.samples[best].rtt {
			best = i
		}
	}
	return c.samples[best].offset, true
}

// ServerTime is the client's estimate of the server's clock at local time
// now, from PING/PONG round trips (before the first, from the newest
// snapshot's arrival).
func (c *Client) ServerTime(now time.Time) time.Time {
	if off, ok := c.clock.offset(); ok {
		return now.Add(off)
	}
	c.snaps.mu.Lock()
	defer c.snaps.mu.Unlock()
	if n := c.snaps.newest; n != nil {
		return now.Add(time.Unix(0, n.time).Sub(n.arrived))
	}
	return now
}

// defaultInterval is the snapshot interval assumed before one is measured.
const defaultInterval = time.Second / 30

// Interpolate returns the two snapshots around the render time for local
// time now, and the blend factor between them. The render time trails the
// estimated server clock by about two snapshot intervals, more when
// arrivals jitter, so that a snapshot is normally there to blend towards.
// The frames' Data are copies valid until the next call; call it from one
// goroutine (the render loop). ok is false before the first snapshot.
func (c *Client) Interpolate(now time.Time) (Interpolation, bool) {
	server := c.ServerTime(now)
	r := &c.snaps
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.newest == nil {
		return Interpolation{}, false
	}
	interval := time.Duration(r.interval)
	if interval <= 0 {
		interval = defaultInterval
	}
	delay := max(2*interval, interval+3*time.Duration(r.jitter))
	render := server.Add(-delay).UnixNano()

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
	in := Interpolation{RenderTime: time.Unix(0, render), Delay: delay}
	switch {
	case to == nil: // nothing newer than the render time: underrun
		from, to = r.newest, r.newest
		in.Alpha, in.Underrun = 1, true
		c.stats.interpUnderruns.Add(1)
	case from == nil: // render time before everything held
		from = to
	default:
		in.Alpha = float64(render-from.time) / float64(to.time-from.time)
	}
	c.stats.interpFrames.Add(1)
	c.interpA = append(c.interpA[:0], from.data...)
	c.interpB = append(c.interpB[:0], to.data...)
	in.From = Frame{Tick: from.tick, Time: time.Unix(0, from.time), Data: c.interpA}
	in.To = Frame{Tick: to.tick, Time: time.Unix(0, to.time), Data: c.interpB}
	return in, true
}

// inputHistory keeps the client's newest inputs. Each goes out again in
// every INPUT datagram until the server acknowledges a datagram that carried
// it, so a lost datagram costs nothing.
type inputHistory struct {
	mu    sync.Mutex
	seq   uint32
	acked atomic.Uint32 // the newest input the server surely has
	bufs  [unreliable.Redundancy][unreliable.MaxInput]byte
	lens  [unreliable.Redundancy]int
	body  [unreliable.AckLen + 1 + unreliable.Redundancy*(5+unreliable.MaxInput)]byte
	// sent is set when an input went out since the last snapshot, whose
	// acknowledgement it then carried.
	sent atomic.Bool
}

// SendInput sends one input (at most unreliable.MaxInput bytes) with every
// earlier one the server has not acknowledged yet, up to
// unreliable.Redundancy in all. It never blocks: when the send queue is
// full the oldest queued datagram is dropped. The server hands each input to
// the game once, in order.
func (c *Client) SendInput(data []byte) error {
	if err := c.err(); err != nil {
		return err
	}
	if len(data) > unreliable.MaxInput {
		return fmt.Errorf("%w: input of %d bytes > %d", unreliable.ErrTooLarge, len(data), unreliable.MaxInput)
	}
	h := &c.inputs
	h.mu.Lock()
	h.seq++
	slot := h.seq % unreliable.Redundancy
	h.lens[slot] = copy(h.bufs[slot][:], data)
	var list [unreliable.Redundancy]unreliable.Input
	n := 0
	first := h.seq - min(h.seq, unreliable.Redundancy) + 1
	if a := h.acked.Load(); a >= first && a < h.seq {
		first = a + 1
	}
	for s := first; s <= h.seq; s++ {
		i := s % unreliable.Redundancy
		list[n] = unreliable.Input{Seq: s, Data: h.bufs[i][:h.lens[i]]}
		n++
	}
	body, err := unreliable.AppendInputs(h.body[:0], c.snaps.ack(), list[:n])
	if err == nil {
		c.dq.put(unreliable.KindInput, body, uint64(h.seq))
		h.sent.Store(true)
	}
	h.mu.Unlock()
	return err
}

// acknowledge sends the newest snapshot held in an ACK datagram, unless an
// input since the last snapshot carried it already.
func (c *Client) acknowledge() {
	if c.inputs.sent.Swap(false) {
		return
	}
	var b [unreliable.AckLen]byte
	c.dq.put(unreliable.KindAck, unreliable.AppendAck(b[:0], c.snaps.ack()), 0)
}

// clockLoop sends PINGs for the clock estimate: a few quickly after
// connecting, then one a second, until the connection closes.
func (c *Client) clockLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		if b, ok := c.out.begin(); ok {
			_ = c.enqueued(c.out.end(reliable.AppendPing(b, uint64(time.Now().UnixNano()))))
		}
		if i < 4 {
			t.Reset(100 * time.Millisecond)
		} else {
			t.Reset(time.Second)
		}
	}
}

func (c *Client) onPong(f reliable.Frame) {
	c.clock.add(time.Unix(0, int64(f.Echo)), time.Unix(0, int64(f.Time)), time.Now())
}
