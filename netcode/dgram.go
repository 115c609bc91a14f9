package netcode

import (
	"sync"

	"github.com/roomwire/roomwire/unreliable"
)

// dgramQueueLen is how many small datagrams (inputs) wait per connection
// before the oldest is dropped.
const dgramQueueLen = 16

// dgramQueue is a connection's outgoing unreliable traffic: at most one
// snapshot (a newer one replaces an unsent older one, which is counted as
// dropped) and a short ring of small datagrams. The tick loop only swaps
// pointers here; one sender goroutine does the blocking SendDatagram calls,
// so a slow or stuck peer never holds up the tick.
type dgramQueue struct {
	mu   sync.Mutex
	snap *Snapshot
	ring [dgramQueueLen][]byte // each a whole datagram; the sender fills in seq
	head int
	n    int
	shut bool
	wake chan struct{}

	stats *connStats
}

func newDgramQueue(stats *connStats) *dgramQueue {
	return &dgramQueue{wake: make(chan struct{}, 1), stats: stats}
}

func (q *dgramQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// putSnapshot queues s, replacing an unsent older snapshot.
func (q *dgramQueue) putSnapshot(s *Snapshot) {
	s.retain()
	q.mu.Lock()
	if q.shut {
		q.mu.Unlock()
		s.Release()
		return
	}
	old := q.snap
	q.snap = s
	q.mu.Unlock()
	if old != nil {
		q.stats.snapshotsReplaced.Add(1)
		old.Release()
	}
	q.signal()
}

// put queues a datagram of kind with body, dropping the oldest queued one
// when the ring is full.
func (q *dgramQueue) put(kind unreliable.Kind, body []byte) {
	q.mu.Lock()
	if q.shut {
		q.mu.Unlock()
		return
	}
	if q.n == dgramQueueLen {
		q.head = (q.head + 1) % dgramQueueLen
		q.n--
		q.stats.datagramsDropped.Add(1)
	}
	i := (q.head + q.n) % dgramQueueLen
	q.ring[i] = append(unreliable.AppendHeader(q.ring[i][:0], unreliable.Header{Kind: kind}), body...)
	q.n++
	q.mu.Unlock()
	q.signal()
}

// close drops whatever is queued and refuses more.
func (q *dgramQueue) close() {
	q.mu.Lock()
	q.shut = true
	s := q.snap
	q.snap = nil
	q.n = 0
	q.mu.Unlock()
	if s != nil {
		s.Release()
	}
}

// sendLoop sends queued datagrams until done closes or send fails for good.
// It owns the outgoing sequence number.
func (q *dgramQueue) sendLoop(done <-chan struct{}, maxDatagram int, send func([]byte) error) {
	defer q.close()
	var seq uint16
	scratch := make([]byte, 0, unreliable.MaxDatagram)
	var small [dgramQueueLen][]byte
	for i := range small {
		small[i] = make([]byte, 0, unreliable.MaxDatagram)
	}
	for {
		select {
		case <-q.wake:
		case <-done:
			return
		}
		q.mu.Lock()
		n := q.n
		for i := 0; i < n; i++ {
			j := (q.head + i) % dgramQueueLen
			small[i] = append(small[i][:0], q.ring[j]...)
		}
		q.head, q.n = 0, 0
		snap := q.snap
		q.snap = nil
		q.mu.Unlock()

		for i := 0; i < n; i++ {
			d := small[i]
			d[1], d[2] = byte(seq>>8), byte(seq)
			seq++
			if !q.sendOne(send, d) {
				if snap != nil {
					snap.Release()
				}
				return
			}
		}
		if snap == nil {
			continue
		}
		count, err := unreliable.FragmentCount(len(snap.Data), maxDatagram)
		if err != nil {
			q.stats.snapshotsTooLarge.Add(1)
			snap.Release()
			continue
		}
		ok := true
		for i := 0; i < count && ok; i++ {
			scratch = unreliable.AppendFragment(scratch[:0], seq, snap.Tick, snap.Data, i, count, maxDatagram)
			seq++
			ok = q.sendOne(send, scratch)
		}
		snap.Release()
		if !ok {
			return
		}
	}
}

// sendOne sends d, counting it; it reports false when the session is gone.
func (q *dgramQueue) sendOne(send func([]byte) error, d []byte) bool {
	if err := send(d); err != nil {
		q.stats.datagramsDropped.Add(1)
		return !isClosed(err)
	}
	q.stats.datagramsSent.Add(1)
	q.stats.bytesSent.Add(uint64(len(d)))
	return true
}
