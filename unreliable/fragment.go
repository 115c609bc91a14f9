package unreliable

import (
	"encoding/binary"
	"fmt"
	"time"
)

// SnapshotHeader precedes every fragment of a snapshot.
type SnapshotHeader struct {
	Tick uint32 // the server tick that produced the snapshot
	// Epoch numbers the server's snapshot streams to this client, wrapping:
	// it moves on when the client's snapshots change source (another room,
	// whose ticks count from its own start). Ticks are compared within an
	// epoch; a newer epoch starts a new sequence, an older one is stale.
	Epoch uint8
	Index uint8 // this fragment's position, 0-based
	Count uint8 // how many fragments the snapshot has, 1..MaxFragments
}

// EpochNewer reports whether epoch a is newer than b, allowing for
// wraparound.
func EpochNewer(a, b uint8) bool { return a != b && a-b < 1<<7 }

// AppendSnapshotHeader appends a SNAPSHOT body header.
func AppendSnapshotHeader(b []byte, h SnapshotHeader) []byte {
	b = binary.BigEndian.AppendUint32(b, h.Tick)
	return append(b, h.Epoch, h.Index, h.Count)
}

// ParseSnapshotHeader decodes a SNAPSHOT body header and returns the fragment
// bytes after it.
func ParseSnapshotHeader(body []byte) (SnapshotHeader, []byte, error) {
	if len(body) < SnapshotHeaderLen {
		return SnapshotHeader{}, nil, fmt.Errorf("%w: snapshot body of %d bytes", ErrShort, len(body))
	}
	h := SnapshotHeader{Tick: binary.BigEndian.Uint32(body), Epoch: body[4], Index: body[5], Count: body[6]}
	if h.Count == 0 || h.Count > MaxFragments || h.Index >= h.Count {
		return h, nil, fmt.Errorf("%w: fragment %d of %d", ErrBadFragment, h.Index, h.Count)
	}
	return h, body[SnapshotHeaderLen:], nil
}

// FragmentPayload is the most snapshot bytes one datagram of maxDatagram
// bytes carries.
func FragmentPayload(maxDatagram int) int {
	return maxDatagram - HeaderLen - SnapshotHeaderLen
}

// FragmentCount is how many fragments a snapshot of n bytes needs in
// datagrams of maxDatagram bytes; an empty snapshot still takes one.
func FragmentCount(n, maxDatagram int) (int, error) {
	p := FragmentPayload(maxDatagram)
	if p <= 0 {
		return 0, fmt.Errorf("%w: datagrams of %d bytes hold no snapshot bytes", ErrSnapshotBig, maxDatagram)
	}
	c := max(1, (n+p-1)/p)
	if c > MaxFragments {
		return 0, fmt.Errorf("%w: %d bytes in %d-byte datagrams need %d > %d", ErrSnapshotBig, n, maxDatagram, c, MaxFragments)
	}
	return c, nil
}

// AppendFragment appends the whole datagram for fragment i of snapshot data
// in epoch 0: header, snapshot header and the fragment's bytes. count must
// come from FragmentCount with the same maxDatagram.
func AppendFragment(b []byte, seq uint16, tick uint32, data []byte, i, count, maxDatagram int) []byte {
	return AppendEpochFragment(b, seq, SnapshotHeader{Tick: tick, Index: uint8(i), Count: uint8(count)}, data, maxDatagram)
}

// AppendEpochFragment appends the whole datagram for the fragment h names
// (tick, epoch, index and count) of snapshot data.
func AppendEpochFragment(b []byte, seq uint16, h SnapshotHeader, data []byte, maxDatagram int) []byte {
	p := FragmentPayload(maxDatagram)
	lo := min(int(h.Index)*p, len(data))
	hi := min(lo+p, len(data))
	b = AppendHeader(b, Header{Kind: KindSnapshot, Seq: seq})
	b = AppendSnapshotHeader(b, h)
	return append(b, data[lo:hi]...)
}

// reassemblySlots is how many snapshots may be in reassembly at once.
const reassemblySlots = 4

type slot struct {
	used     bool
	tick     uint32
	epoch    uint8
	count    uint8
	have     uint64 // bit i set: fragment i received
	got      int
	started  time.Time
	frags    [MaxFragments][]byte
	complete []byte
}

// Reassembler rebuilds snapshots from their fragments with bounded memory:
// at most a few snapshots in flight, each at most MaxFragments fragments of at
// most MaxDatagram bytes. It drops fragments of snapshots no newer than the
// newest one completed, and forgets an incomplete snapshot after a deadline
// or when a newer one needs its slot. Buffers are reused, so steady-state
// reassembly does not allocate.
type Reassembler struct {
	// Timeout is how long an incomplete snapshot is kept; zero means 1 s.
	Timeout time.Duration
	// Restart is how many ticks behind the newest completed snapshot a
	// fragment may be before it is taken as the start of a new tick
	// sequence (the client moved to another room, or the server
	// restarted) rather than as stale. Zero means never.
	Restart uint32

	slots       [reassemblySlots]slot
	newest      uint32
	newestEpoch uint8
	haveAny     bool // newest is set: a snapshot of newestEpoch completed
	haveEpoch   bool // newestEpoch is set, from a fragment at least

	// Dropped counts snapshots given up incomplete; Stale counts fragments
	// dropped because a newer snapshot was already complete.
	Dropped, Stale uint64
}

// Add takes one fragment received at now. When it completes a snapshot, Add
// returns the snapshot's tick and bytes, valid until the next call to Add and
// as long as frag is (a single-fragment snapshot is returned in place).
func (r *Reassembler) Add(h SnapshotHeader, frag []byte, now time.Time) (uint32, []byte, bool) {
	if h.Count == 0 || h.Count > MaxFragments || h.Index >= h.Count {
		return 0, nil, false // not from ParseSnapshotHeader: refuse rather than index out of range
	}
	if r.haveEpoch && h.Epoch != r.newestEpoch {
		if !EpochNewer(h.Epoch, r.newestEpoch) {
			r.Stale++ // a late fragment of an earlier stream
			return 0, nil, false
		}
		r.Reset() // a new stream: its ticks start over
	}
	r.newestEpoch, r.haveEpoch = h.Epoch, true
	if r.haveAny && !TickNewer(h.Tick, r.newest) {
		if r.Restart == 0 || r.newest-h.Tick <= r.Restart {
			r.Stale++
			return 0, nil, false
		}
		r.Reset()
	}
	if h.Count == 1 {
		r.newest, r.haveAny = h.Tick, true
		r.dropOlder(h.Tick)
		return h.Tick, frag, true
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	var s *slot
	for i := range r.slots {
		c := &r.slots[i]
		if c.used && now.Sub(c.started) > timeout {
			c.used = false
			r.Dropped++
		}
		if c.used && c.tick == h.Tick && c.epoch == h.Epoch {
			s = c
		}
	}
	if s == nil {
		if s = r.claim(h.Tick); s == nil {
			r.Stale++ // older than every snapshot in progress, and no room
			return 0, nil, false
		}
		s.used, s.tick, s.epoch, s.count, s.have, s.got, s.started = true, h.Tick, h.Epoch, h.Count, 0, 0, now
	}
	if s.count != h.Count {
		return 0, nil, false // inconsistent sender; the slot times out
	}
	bit := uint64(1) << h.Index
	if s.have&bit != 0 {
		return 0, nil, false // duplicate
	}
	s.have |= bit
	s.got++
	s.frags[h.Index] = append(s.frags[h.Index][:0], frag...)
	if s.got < int(s.count) {
		return 0, nil, false
	}
	s.complete = s.complete[:0]
	for i := 0; i < int(s.count); i++ {
		s.complete = append(s.complete, s.frags[i]...)
	}
	s.used = false
	r.newest, r.haveAny = h.Tick, true
	r.dropOlder(h.Tick)
	return h.Tick, s.complete, true
}

// dropOlder forgets snapshots in progress that can never be delivered now
// that tick is complete.
func (r *Reassembler) dropOlder(tick uint32) {
	for i := range r.slots {
		c := &r.slots[i]
		if c.used && !TickNewer(c.tick, tick) {
			c.used = false
			r.Dropped++
		}
	}
}

// claim returns a free slot, or evicts the oldest snapshot in progress when
// tick is newer than it; otherwise nil.
func (r *Reassembler) claim(tick uint32) *slot {
	var oldest *slot
	for i := range r.slots {
		c := &r.slots[i]
		if !c.used {
			return c
		}
		if oldest == nil || TickNewer(oldest.tick, c.tick) {
			oldest = c
		}
	}
	if !TickNewer(tick, oldest.tick) {
		return nil
	}
	r.Dropped++
	return oldest
}

// Reset forgets every snapshot in progress and the newest tick, so that the
// next snapshot of the current epoch (or a newer one) is accepted whatever
// its tick.
func (r *Reassembler) Reset() {
	for i := range r.slots {
		r.slots[i].used = false
	}
	r.haveAny = false
}
