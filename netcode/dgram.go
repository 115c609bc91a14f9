package netcode

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/unreliable"
)

// dgramQueueLen is how many small datagrams (inputs, acks, unreliable
// events) wait per connection before the oldest is dropped.
const dgramQueueLen = 16

// dgramQueue is a connection's outgoing unreliable traffic: at most one
// snapshot (a newer one replaces an unsent older one, which is counted as
// dropped) and a short ring of small datagrams. The tick loop only swaps
// pointers here; one sender goroutine does the encoding and the blocking
// SendDatagram calls, so a slow or stuck peer never holds up the tick.
type dgramQueue struct {
	mu   sync.Mutex
	snap *Snapshot
	ring [dgramQueueLen][]byte // each a whole datagram; the sender writes the header
	tags [dgramQueueLen]uint64 // what each carried, for the ack callback (0: nothing)
	head int
	n    int
	shut bool
	wake chan struct{}

	stats  *connStats
	acks   *ackState
	snaps  *snapshotSender // nil on the client
	copies *frameCopies
}

func newDgramQueue(stats *connStats, acks *ackState) *dgramQueue {
	return &dgramQueue{wake: make(chan struct{}, 1), stats: stats, acks: acks}
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
// when the ring is full. A non-zero tag comes back to the ack callback when
// the peer acknowledges the datagram.
func (q *dgramQueue) put(kind unreliable.Kind, body []byte, tag uint64) {
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
	q.tags[i] = tag
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

// sendLoop sends queued datagrams until done closes or the session is gone.
// It owns the outgoing sequence numbers and, on the server, the snapshot
// baselines.
func (q *dgramQueue) sendLoop(done <-chan struct{}, maxDatagram int, send func([]byte) error) {
	defer q.close()
	if q.snaps != nil {
		defer q.snaps.release()
	}
	scratch := make([]byte, 0, unreliable.MaxDatagram)
	var small [dgramQueueLen][]byte
	var tags [dgramQueueLen]uint64
	for i := range small {
		small[i] = make([]byte, 0, unreliable.MaxDatagram)
	}
	var copies [copyDatagrams][]byte
	var copyTags [copyDatagrams]uint64
	resend := time.NewTimer(time.Hour)
	resend.Stop()
	defer resend.Stop()
	for {
		select {
		case <-q.wake:
		case <-resend.C:
		case <-done:
			return
		}
		// Copies of reliable frames go first: they are what someone waits
		// for.
		ok := true
		if q.copies != nil && q.copies.update() {
			n := q.copies.build(time.Now(), maxDatagram, &copies, &copyTags)
			for i := 0; i < n && ok; i++ {
				if ok = q.sendOne(send, copies[i], copyTags[i]); ok {
					q.stats.copiesSent.Add(1)
				}
			}
			resend.Reset(copyResend)
		}
		q.mu.Lock()
		n := q.n
		for i := 0; i < n; i++ {
			j := (q.head + i) % dgramQueueLen
			small[i] = append(small[i][:0], q.ring[j]...)
			tags[i] = q.tags[j]
		}
		q.head, q.n = 0, 0
		snap := q.snap
		q.snap = nil
		q.mu.Unlock()

		for i := 0; i < n && ok; i++ {
			ok = q.sendOne(send, small[i], tags[i])
		}
		if ok && snap != nil {
			ok = q.sendSnapshot(send, snap, maxDatagram, scratch)
		}
		if snap != nil {
			snap.Release()
		}
		if !ok {
			return
		}
	}
}

// sendSnapshot encodes snap for this peer (a delta against the newest
// snapshot it acknowledged, when there is one) and sends its fragments.
func (q *dgramQueue) sendSnapshot(send func([]byte) error, snap *Snapshot, maxDatagram int, scratch []byte) bool {
	env := q.snaps.encode(snap)
	h := unreliable.SnapshotHeader{Tick: snap.Tick, Epoch: q.snaps.epoch}
	count, err := unreliable.FragmentCount(len(env), maxDatagram)
	if env == nil || err != nil {
		q.stats.snapshotsTooLarge.Add(1)
		return true
	}
	h.Count = uint8(count)
	for i := 0; i < count; i++ {
		h.Index = uint8(i)
		scratch = unreliable.AppendEpochFragment(scratch[:0], 0, h, env, maxDatagram)
		if !q.sendOne(send, scratch, 0) {
			return false
		}
	}
	q.stats.snapshotsSent.Add(1)
	if env[unreliable.EnvelopeLen-1] != 0 {
		q.stats.snapshotsDelta.Add(1)
	}
	return true
}

// sendOne stamps d's header with the next sequence number and the current
// acks, sends it and counts it; it reports false when the session is gone.
func (q *dgramQueue) sendOne(send func([]byte) error, d []byte, tag uint64) bool {
	q.acks.stamp(d, tag, time.Now())
	if err := send(d); err != nil {
		q.stats.datagramsDropped.Add(1)
		return !isClosed(err)
	}
	q.stats.datagramsSent.Add(1)
	q.stats.bytesSent.Add(uint64(len(d)))
	return true
}

// ackState is a connection's datagram acknowledgement bookkeeping, shared
// by its datagram sender (which stamps) and reader (which records).
type ackState struct {
	mu   sync.Mutex
	sent unreliable.Sent
	// received is the reader's; its ack fields are published in ackWord
	// (ack << 32 | ack bits) for the sender.
	received unreliable.Received
	ackWord  atomic.Uint64
	// onTag, if set before datagrams flow, learns the tags of datagrams
	// the peer acknowledged (called with mu held). A tag is an input
	// number, or first<<32 | last for a datagram of copied frames first to
	// last (first is never 0: frame 0 is the handshake's).
	onTag func(tag uint64)
}

// stamp writes d's header: its kind stays, seq is the next, ack and ack bits
// say what arrived from the peer.
func (a *ackState) stamp(d []byte, tag uint64, now time.Time) {
	a.mu.Lock()
	seq := a.sent.Next(now, tag, tag != 0)
	a.mu.Unlock()
	w := a.ackWord.Load()
	unreliable.PutHeader(d, unreliable.Header{
		Kind: unreliable.Kind(d[0]), Seq: seq, Ack: uint16(w >> 32), AckBits: uint32(w),
	})
}

// record takes a received datagram's header (reader goroutine only).
func (a *ackState) record(h unreliable.Header, now time.Time) {
	a.received.Add(h.Seq)
	ack, bits := a.received.Ack()
	a.ackWord.Store(uint64(ack)<<32 | uint64(bits))
	a.mu.Lock()
	a.sent.Ack(h.Ack, h.AckBits, now, a.onTag)
	a.mu.Unlock()
}

func (a *ackState) estimates() (rtt time.Duration, loss float64, acked, lost uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acked, lost = a.sent.Counts()
	return a.sent.RTT(), a.sent.Loss(), acked, lost
}
