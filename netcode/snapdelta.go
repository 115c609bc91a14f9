package netcode

import (
	"sync/atomic"

	"github.com/roomwire/roomwire/unreliable"
)

// baselineRing is how many recent snapshots each side keeps as possible
// delta baselines.
const baselineRing = 32

// snapshotSender is the server side of one connection's snapshot stream: the
// snapshots recently sent (shared, reference-counted) and the newest one the
// client acknowledged. Its methods run on the connection's datagram sender
// goroutine, except ack, which the reader calls.
type snapshotSender struct {
	codec   unreliable.Codec // nil: whole snapshots only
	stream  uint64           // the source of the current epoch's snapshots
	epoch   uint8
	current atomic.Uint32 // epoch, for the reader goroutine's ack
	started bool
	ring    [baselineRing]*Snapshot
	acked   atomic.Uint64 // epoch << 32 | tick of the newest acknowledged snapshot
	env     []byte
}

// ack records the newest snapshot the client holds (reader goroutine).
func (s *snapshotSender) ack(a unreliable.SnapshotAck) {
	if a.Epoch == 0 || uint32(a.Epoch) != s.current.Load() {
		return // none, or of another stream than the one being sent
	}
	for {
		old := s.acked.Load()
		if uint8(old>>32) == a.Epoch && !unreliable.TickNewer(a.Tick, uint32(old)) {
			return // not newer than what we know
		}
		if s.acked.CompareAndSwap(old, uint64(a.Epoch)<<32|uint64(a.Tick)) {
			return
		}
	}
}

// encode returns snap's envelope for this client: a delta against the
// newest snapshot it acknowledged when that is still in the ring, the whole
// snapshot otherwise. The result is valid until the next call; nil means the
// snapshot is larger than any client may accept.
func (s *snapshotSender) encode(snap *Snapshot) []byte {
	if len(snap.Data) > unreliable.MaxSnapshot {
		return nil // no client could take it, whole or as a delta
	}
	if !s.started || snap.Stream != s.stream {
		// A new source, such as another room: its ticks start over, so
		// nothing sent before can be a baseline.
		s.release()
		s.stream, s.started = snap.Stream, true
		s.epoch++
		if s.epoch == 0 {
			s.epoch = 1
		}
		s.current.Store(uint32(s.epoch))
	}
	env := unreliable.Envelope{Time: snap.Time}
	payload := snap.Data
	if s.codec != nil {
		a := s.acked.Load()
		tick := uint32(a)
		if uint8(a>>32) == s.epoch && snap.Tick != tick && snap.Tick-tick <= 255 {
			if base := s.ring[tick%baselineRing]; base != nil && base.Tick == tick {
				if delta := snap.deltaAgainst(base, s.codec); len(delta) < len(snap.Data) {
					payload = delta
					env.Base = uint8(snap.Tick - tick)
				}
			}
		}
	}
	s.env = append(unreliable.AppendEnvelope(s.env[:0], env), payload...)

	slot := &s.ring[snap.Tick%baselineRing]
	if *slot != nil {
		(*slot).Release()
	}
	snap.retain()
	*slot = snap
	return s.env
}

// release drops the ring's references.
func (s *snapshotSender) release() {
	for i, r := range s.ring {
		if r != nil {
			r.Release()
			s.ring[i] = nil
		}
	}
}
