package netcode

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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

type frameSlot struct {
	tick  uint32
	time  int64
	data  []byte
	valid bool
}

// snapshotReceiver is the client side of the snapshot stream: the recent
// decoded snapshots (baselines for deltas, frames for interpolation) and the
// render clock timed by their arrivals. The datagram goroutine adds;
// Interpolate reads.
type snapshotReceiver struct {
	codec unreliable.Codec

	mu      sync.Mutex
	ring    [baselineRing]frameSlot
	epoch   uint8
	newest  *frameSlot
	scratch []byte
	play    playout

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
	r.play.arrive(tick, e.Time, now, r.newest == nil)
	slot.tick, slot.time, slot.valid = tick, e.Time, true
	r.newest = slot
	r.acked.Store(uint64(epoch)<<32 | uint64(tick))
	return slot.data, false, nil
}

// ack is the newest snapshot held, for the server's baseline.
func (r *snapshotReceiver) ack() unreliable.SnapshotAck {
	a := r.acked.Load()
	return unreliable.SnapshotAck{Epoch: uint8(a >> 32), Tick: uint32(a)}
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
	// ackedAt is when an INPUT or ACK datagram last went out (monotonic
	// nanoseconds): a snapshot right behind another one, in a burst that a
	// busy client reads at once, is acknowledged by the next.
	ackedAt atomic.Int64
}

// ackQuiet is how soon after an INPUT or ACK datagram a reassembled
// snapshot gets no acknowledgement of its own (PROTOCOL.md 5.11): well
// under a tick at 60 Hz, so a client reading promptly acknowledges every
// snapshot, but the snapshots of a burst share one.
const ackQuiet = 5 * time.Millisecond

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
	defer h.mu.Unlock()
	h.seq++
	slot := h.seq % unreliable.Redundancy
	h.lens[slot] = copy(h.bufs[slot][:], data)
	return c.putInputs()
}

// putInputs queues an INPUT datagram with the newest input and every earlier
// one not known to have arrived, at most unreliable.Redundancy in all
// (c.inputs.mu held).
func (c *Client) putInputs() error {
	h := &c.inputs
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
		c.dq.putNow(unreliable.KindInput, body, uint64(h.seq))
		h.sent.Store(true)
		h.ackedAt.Store(monoNow())
	}
	return err
}

// acknowledge sends the newest snapshot held in an ACK datagram, unless an
// input since the last snapshot carried it already. While inputs are not
// known to have arrived, it sends them again instead, in an INPUT datagram
// (which acknowledges the snapshot too): so the last inputs before the game
// stops sending any are not lost with their datagram. Nothing is sent
// within ackQuiet of the last INPUT or ACK: that one, or the next, does.
func (c *Client) acknowledge(now time.Time) {
	h := &c.inputs
	if h.sent.Swap(false) {
		return
	}
	mono := monoAt(now)
	if at := h.ackedAt.Load(); at != 0 && mono-at < int64(ackQuiet) {
		return
	}
	h.mu.Lock()
	if h.seq != 0 && h.acked.Load() != h.seq {
		_ = c.putInputs()
		h.sent.Store(false)
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	var b [unreliable.AckLen]byte
	c.dq.putNow(unreliable.KindAck, unreliable.AppendAck(b[:0], c.snaps.ack()), 0)
	h.ackedAt.Store(mono)
}
