package netcode

import (
	"sync"
	"sync/atomic"
	"time"
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
