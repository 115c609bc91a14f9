package unreliable

import (
	mathbits "math/bits"
	"time"
)

// Received tracks which of the peer's datagrams arrived, for the ack and
// ack bits of the datagrams sent back. The zero value is ready. Senders
// never use sequence number 0, so an ack of 0 means nothing arrived yet.
type Received struct {
	newest uint16
	bits   uint32
	any    bool
}

// Add records that datagram seq arrived.
func (r *Received) Add(seq uint16) {
	switch {
	case !r.any:
		r.newest, r.bits, r.any = seq, 0, true
	case SeqNewer(seq, r.newest):
		shift := seq - r.newest
		if shift > 32 {
			r.bits = 0
		} else {
			r.bits = r.bits<<shift | 1<<(shift-1) // the old newest moves into the bits
		}
		r.newest = seq
	case seq != r.newest:
		if back := r.newest - seq; back <= 32 {
			r.bits |= 1 << (back - 1)
		}
	}
}

// Ack returns the header fields that acknowledge what arrived.
func (r *Received) Ack() (ack uint16, bits uint32) { return r.newest, r.bits }

// sentWindow is how many sent datagrams are remembered for their acks.
const sentWindow = 256

type sentEntry struct {
	at     time.Duration // when sent, after Sent.base (monotonic)
	tag    uint64        // what the datagram carried, for the caller
	seq    uint16
	valid  bool
	acked  bool
	hasTag bool
}

// Sent remembers the datagrams sent and turns the peer's acks into a
// round-trip time and a loss estimate. The zero value is ready. A datagram
// counts as lost when it leaves the window, or is older than LossAfter,
// unacknowledged. Trim lets the window's memory go once sending stopped.
type Sent struct {
	// ring is allocated at the first send, and again at the first after a
	// Trim: a connection that sends none holds none.
	ring *[sentWindow]sentEntry
	base time.Time // the first send's time, which entries count from
	next uint16
	any  bool
	// prevAck and prevBits are the newest ack seen and what it covered.
	prevAck  uint16
	prevBits uint32
	haveAck  bool
	// tail is the oldest sequence number that may still wait for its
	// ack: entries are sent in order, so the ones to age out are always
	// the oldest, and Ack looks at no more of them than it must.
	tail uint16

	// LossAfter is how long a datagram may go unacknowledged before it is
	// counted as lost. Zero means 1 second.
	LossAfter time.Duration

	rtt     time.Duration // smoothed
	haveRTT bool
	sent    uint64
	acked   uint64
	lost    uint64
	forgot  uint64    // dropped by Trim, neither acknowledged nor lost
	lossAvg float64   // smoothed fraction lost
	lostAt  time.Time // when the newest loss was counted
}

// Next returns the sequence number for the next datagram and records it as
// sent at now. tag, when hasTag, is remembered and returned by Ack when
// the datagram is acknowledged.
func (s *Sent) Next(now time.Time, tag uint64, hasTag bool) uint16 {
	if s.next == 0 {
		s.next = 1 // 0 is never sent: an ack of 0 means nothing arrived yet
	}
	seq := s.next
	s.next++
	s.sent++
	if s.ring == nil {
		s.ring, s.base = new([sentWindow]sentEntry), now
	}
	e := &s.ring[seq%sentWindow]
	if e.valid && !e.acked {
		s.lose(now)
	}
	*e = sentEntry{seq: seq, at: now.Sub(s.base), valid: true, tag: tag, hasTag: hasTag}
	s.any = true
	return seq
}

func (s *Sent) lose(now time.Time) {
	s.lost++
	s.lossAvg += (1 - s.lossAvg) * 0.01
	s.lostAt = now
}

// Ack applies the peer's ack and ack bits received at now and calls
// onTag for each newly acknowledged datagram that carried a tag.
func (s *Sent) Ack(ack uint16, bits uint32, now time.Time, onTag func(tag uint64)) {
	if !s.any || ack == 0 {
		return // the peer has received nothing yet
	}
	// Each datagram repeats the last 33 acks: skip those the previous one
	// carried (ackOne would ignore them anyway), so a steady stream costs
	// one ackOne per datagram, not 33.
	var known uint32
	head, newer := true, true
	if s.haveAck {
		switch d := ack - s.prevAck; {
		case d == 0:
			known, head, newer = s.prevBits, false, false
		case d <= 32:
			known = s.prevBits<<d | 1<<(d-1)
		case d >= 1<<15:
			newer = false // an older datagram's acks, reordered: check them all
		}
	}
	if head {
		s.ackOne(ack, now, onTag)
	}
	for b := bits &^ known; b != 0; b &= b - 1 {
		s.ackOne(ack-1-uint16(mathbits.TrailingZeros32(b)), now, onTag)
	}
	if newer || !s.haveAck {
		s.prevAck, s.prevBits, s.haveAck = ack, bits|known, true
	} else if ack == s.prevAck {
		s.prevBits |= bits
	}
	s.age(now)
}

// age counts what is clearly lost, oldest first: older than LossAfter and
// sent before the newest datagram the peer acknowledged. One sent after
// that may only wait for the peer's next datagram, which a peer that sends
// few (an idle client) sends seconds later.
func (s *Sent) age(now time.Time) {
	if s.ring == nil {
		return // trimmed (tail is next) or nothing sent
	}
	lossAfter := s.LossAfter
	if lossAfter <= 0 {
		lossAfter = time.Second
	}
	at := now.Sub(s.base)
	for s.tail != s.next {
		if s.next-s.tail > sentWindow {
			s.tail = s.next - sentWindow // older ones were counted by Next
			continue
		}
		e := &s.ring[s.tail%sentWindow]
		if e.valid && !e.acked && e.seq == s.tail {
			if at-e.at <= lossAfter || int16(s.prevAck-e.seq) <= 0 {
				break // and every later one is younger, or newer
			}
			e.valid = false
			s.lose(now)
		}
		s.tail++
	}
}

func (s *Sent) ackOne(seq uint16, now time.Time, onTag func(uint64)) {
	if s.ring == nil {
		return // trimmed: whatever it acknowledges was forgotten
	}
	e := &s.ring[seq%sentWindow]
	if !e.valid || e.acked || e.seq != seq {
		return
	}
	e.acked = true
	s.acked++
	s.lossAvg -= s.lossAvg * 0.01
	sample := now.Sub(s.base) - e.at
	if !s.haveRTT {
		s.rtt, s.haveRTT = sample, true
	} else {
		s.rtt += (sample - s.rtt) / 8
	}
	if e.hasTag && onTag != nil {
		onTag(e.tag)
	}
}

// RTT is the smoothed round-trip time, zero before the first ack.
func (s *Sent) RTT() time.Duration { return s.rtt }

// Loss is the smoothed fraction of datagrams lost, 0..1.
func (s *Sent) Loss() float64 { return s.lossAvg }

// LastLoss is when the newest loss was counted, zero before any. Loss
// moves only as datagrams are sent and acknowledged, so on a connection
// that sends few it can stay where a bad moment left it; LastLoss tells
// how old that evidence is.
func (s *Sent) LastLoss() time.Time { return s.lostAt }

// Counts are the datagrams acknowledged and counted lost so far.
func (s *Sent) Counts() (acked, lost uint64) { return s.acked, s.lost }

// Pending is how many datagrams sent are neither acknowledged nor counted
// lost yet: at most what is in flight or still queued in the transport.
// Those a Trim forgot are not pending.
func (s *Sent) Pending() uint64 { return s.sent - s.acked - s.lost - s.forgot }

// Trim releases the window (about 6 KB) when nothing was sent for at least
// idle before now, and reports whether it is released, by this call or
// an earlier one; the next send allocates it again. A connection that went
// quiet keeps its estimates and counts, and only the memory goes.
//
// What the window still waited for is settled first as an Ack at now
// would: the datagrams clearly lost are counted lost. Those left are
// forgotten, neither acknowledged nor lost, and an ack that comes for one
// later is ignored, as one for a datagram that left the window is: after
// idle without sending, such an ack would be seconds late, a round-trip
// sample to keep out of RTT anyway. Trim should wait well past LossAfter.
func (s *Sent) Trim(now time.Time, idle time.Duration) bool {
	if s.ring == nil {
		return true
	}
	if last := s.base.Add(s.ring[(s.next-1)%sentWindow].at); now.Sub(last) < idle {
		return false
	}
	s.age(now)
	if s.next-s.tail > sentWindow {
		s.tail = s.next - sentWindow // older ones were counted by Next
	}
	for ; s.tail != s.next; s.tail++ {
		if e := &s.ring[s.tail%sentWindow]; e.valid && !e.acked && e.seq == s.tail {
			s.forgot++
		}
	}
	s.ring = nil
	return true
}
