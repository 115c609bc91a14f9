package netcode

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/unreliable"
)

// Snapshot is one tick's state, encoded once and shared by every connection it
// is sent to. Acquire one with NewSnapshot, fill Data, hand it to
// Conn.SendSnapshot for each member and Release it; each connection holds its
// own reference until the datagrams left. Snapshots are pooled, so a steady
// tick loop allocates none.
type Snapshot struct {
	// Tick is the server tick that produced the snapshot.
	Tick uint32
	// Time is the server's clock at the tick, in Unix nanoseconds; clients
	// interpolate on it. NewSnapshot sets it to now.
	Time int64
	// Stream names the snapshots' source, such as a room: ticks of one
	// stream count up together, and deltas are only ever taken within a
	// stream. Snapshots with different Stream values never serve as each
	// other's baselines.
	Stream uint64
	// Data is the game's encoded state.
	Data []byte

	refs atomic.Int32

	// deltas caches this snapshot's deltas against the baselines members
	// acknowledged: most members of a room acknowledged the same recent
	// tick, so each delta is encoded once per tick, not once per member.
	deltaMu sync.Mutex
	deltas  [deltaCache]cachedDelta
}

// deltaCache is how many distinct baselines a snapshot keeps deltas for.
const deltaCache = 4

type cachedDelta struct {
	base  *Snapshot
	tick  uint32
	valid bool
	data  []byte
}

// deltaAgainst returns the delta from base to s, encoding it only if no
// member asked for the same baseline before. The bytes are valid while s
// is.
func (s *Snapshot) deltaAgainst(base *Snapshot, codec unreliable.Codec) []byte {
	s.deltaMu.Lock()
	defer s.deltaMu.Unlock()
	free := -1
	for i := range s.deltas {
		d := &s.deltas[i]
		if d.valid && d.base == base && d.tick == base.Tick {
			return d.data
		}
		if !d.valid && free < 0 {
			free = i
		}
	}
	evict := free < 0
	if evict {
		free = int(base.Tick % deltaCache) // all taken: replace one
	}
	d := &s.deltas[free]
	if evict {
		// A member may still be copying the delta it was given: the
		// replacement gets a buffer of its own (rare: more distinct
		// baselines than the cache holds, as after resumes).
		d.data = nil
	}
	d.base, d.tick, d.valid = base, base.Tick, true
	d.data = codec.Encode(d.data[:0], base.Data, s.Data)
	return d.data
}

var snapshotPool = sync.Pool{New: func() any { return new(Snapshot) }}

// NewSnapshot returns an empty snapshot for tick holding one reference, the
// caller's.
func NewSnapshot(tick uint32) *Snapshot {
	s := snapshotPool.Get().(*Snapshot)
	s.Tick = tick
	s.Time = time.Now().UnixNano()
	s.Stream = 0
	s.Data = s.Data[:0]
	for i := range s.deltas {
		s.deltas[i].valid, s.deltas[i].base = false, nil
	}
	s.refs.Store(1)
	return s
}

func (s *Snapshot) retain() { s.refs.Add(1) }

// Release drops one reference; the last returns the snapshot to the pool.
// The snapshot must not be used after its holder released it.
func (s *Snapshot) Release() {
	if n := s.refs.Add(-1); n == 0 {
		if cap(s.Data) <= 64<<10 {
			snapshotPool.Put(s)
		}
	} else if n < 0 {
		panic("netcode: Snapshot released more often than retained")
	}
}
