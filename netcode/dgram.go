package netcode

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/unreliable"
)

// dgramQueueLen is how many small datagrams (inputs, acks, unreliable
// events) wait per connection before the oldest is dropped.
const dgramQueueLen = 16

// dgramQueue is a connection's outgoing unreliable traffic: at most one
// snapshot (a newer one replaces an unsent older one, which is counted as
// dropped) and a short ring of small datagrams.
//
// Whoever holds turn sends: it owns the outgoing sequence numbers, the
// snapshot baselines and scratch. On a transport that can send without
// blocking (TrySender and BatchSender: KCP, WebSocket while its socket is
// drained; BoundedQueue: QUIC while fewer of our datagrams are
// unacknowledged than its queue holds) the producer takes the turn itself
// when nothing else waits, and sends at once: a room's tick loop encodes and sends every member's
// snapshot with no goroutine wake-up per member. Otherwise, or when a send
// would block, the producer only swaps pointers here and the sender
// goroutine does the blocking SendDatagram calls, so a slow or stuck peer
// never holds up the tick.
type dgramQueue struct {
	turn     sync.Mutex
	scratch  []byte // a datagram being built (turn holder)
	sess     transport.Session
	try      transport.TrySender
	batch    transport.BatchSender // used only with try, into a caller's Batch
	bound    int                   // transport.BoundedQueue's length, else 0
	maxDgram int
	// direct says whether producers may send on their own goroutine: the
	// transport sends without blocking (read without the turn).
	direct atomic.Bool

	mu   sync.Mutex
	snap *Snapshot
	// slots are the ring of queued datagrams, made at the first put and
	// let go by the idle trim (nil: none queued).
	slots *dgramSlots
	head  int
	n     int
	shut  bool // the connection closed: for good
	// gone: the session failed under the sender; until a resume attaches
	// another (attach), nothing is queued or sent.
	gone   bool
	sender worker
	done   <-chan struct{} // the connection's end

	// spawn starts a goroutine the connection owns, or reports false once
	// the connection is finishing.
	spawn    func(func()) bool
	copyBufs *[copyDatagrams][]byte

	stats  *connStats
	acks   *ackState
	snaps  *snapshotSender // nil on the client
	copies *frameCopies
}

// dgramSlots are a dgramQueue's ring: each datagram whole (the sender
// writes the header), and what it carried, for the ack callback (0:
// nothing).
type dgramSlots struct {
	ring [dgramQueueLen][]byte
	tags [dgramQueueLen]uint64
}

func newDgramQueue(stats *connStats, acks *ackState, sess transport.Session) *dgramQueue {
	q := &dgramQueue{stats: stats, acks: acks}
	q.sender = newWorker(q.sendLoop)
	q.setSession(sess)
	return q
}

// setSession makes sess the transport datagrams go out on (the turn holder
// only, or before any datagram is sent).
func (q *dgramQueue) setSession(sess transport.Session) {
	q.sess, q.maxDgram = sess, sess.MaxDatagram()
	q.try, _ = sess.(transport.TrySender)
	q.batch, _ = sess.(transport.BatchSender)
	q.bound = 0
	if b, ok := sess.(transport.BoundedQueue); ok && q.try == nil {
		q.bound = b.DatagramQueueLen()
	}
	q.direct.Store(q.try != nil || q.bound > 0)
}

// attach moves the queue to sess, a resumed connection's new transport,
// once whoever sends on the old one is done.
func (q *dgramQueue) attach(sess transport.Session) {
	q.turn.Lock()
	q.setSession(sess)
	if q.snaps != nil {
		q.snaps.acked.Store(0) // the next snapshot is whole
	}
	q.mu.Lock()
	q.gone = false
	q.mu.Unlock()
	q.turn.Unlock()
	q.signal()
}

// sendSnapshotNow sends s from the caller's goroutine when it can without
// waiting: the transport sends without blocking, no other sender holds the
// turn and nothing else is queued. b, if not nil, collects the datagrams
// of a transport that batches them (the caller flushes it). Otherwise s is
// queued for the sender goroutine, as putSnapshot does.
func (q *dgramQueue) sendSnapshotNow(s *Snapshot, b *transport.Batch) {
	if !q.direct.Load() || !q.turn.TryLock() {
		q.putSnapshot(s)
		return
	}
	q.mu.Lock()
	if q.shut || q.gone || q.n > 0 || q.snap != nil || !q.direct.Load() { // moved to a transport that may block
		q.mu.Unlock()
		q.turn.Unlock()
		q.putSnapshot(s)
		return
	}
	q.mu.Unlock()
	sent, ok := q.sendSnapshot(s, b, false)
	if !ok {
		q.drop(false)
	}
	q.turn.Unlock()
	if ok && !sent {
		q.putSnapshot(s) // would block: the sender goroutine takes it
	}
}

// putNow sends a small datagram from the caller's goroutine when it can
// without waiting, as sendSnapshotNow does; otherwise it queues it (put).
func (q *dgramQueue) putNow(kind unreliable.Kind, body []byte, tag uint64) {
	if !q.direct.Load() || !q.turn.TryLock() {
		q.put(kind, body, tag)
		return
	}
	q.mu.Lock()
	if q.shut || q.gone || q.n > 0 || q.snap != nil || !q.direct.Load() { // moved to a transport that may block
		q.mu.Unlock()
		q.turn.Unlock()
		q.put(kind, body, tag)
		return
	}
	q.mu.Unlock()
	d := append(unreliable.AppendHeader(q.scratch[:0], unreliable.Header{Kind: kind}), body...)
	q.scratch = d[:0]
	sent, ok := q.sendOne(d, tag, nil, false)
	q.turn.Unlock()
	if ok && !sent {
		q.put(kind, body, tag)
	}
}

// signal wakes the sender goroutine, or starts it unless the queue is shut.
func (q *dgramQueue) signal() {
	q.mu.Lock()
	q.sender.kick(&q.mu, !q.shut && !q.gone, q.spawn)
}

// putSnapshot queues s, replacing an unsent older snapshot.
func (q *dgramQueue) putSnapshot(s *Snapshot) {
	s.retain()
	q.mu.Lock()
	if q.shut || q.gone {
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
	if q.shut || q.gone {
		q.mu.Unlock()
		return
	}
	if q.n == dgramQueueLen {
		q.head = (q.head + 1) % dgramQueueLen
		q.n--
		q.stats.datagramsDropped.Add(1)
	}
	if q.slots == nil {
		q.slots = new(dgramSlots)
	}
	i := (q.head + q.n) % dgramQueueLen
	q.slots.ring[i] = append(unreliable.AppendHeader(q.slots.ring[i][:0], unreliable.Header{Kind: kind}), body...)
	q.slots.tags[i] = tag
	q.n++
	q.mu.Unlock()
	q.signal()
}

// close drops whatever is queued and refuses more, for good.
func (q *dgramQueue) close() { q.drop(true) }

// drop drops whatever is queued and refuses more: for good (shut), or
// until a resume attaches another session (gone; the turn holder only,
// so that an attach cannot come between the failure and this).
func (q *dgramQueue) drop(shut bool) {
	q.mu.Lock()
	if shut {
		q.shut = true
	} else {
		q.gone = true
	}
	s := q.snap
	q.snap = nil
	q.n = 0
	q.mu.Unlock()
	if s != nil {
		s.Release()
	}
}

// sendLoop is the sender goroutine: it sends rounds of what is queued, and
// again every copyResend while copies of reliable frames are held; with
// nothing to do for linger it ends, to be started again when something is
// queued that cannot be sent at once.
func (q *dgramQueue) sendLoop() {
	timer := time.NewTimer(linger)
	defer timer.Stop()
	for {
		q.turn.Lock()
		ok, copying := q.round()
		if !ok { // the session is gone: until a resume, if the connection has one
			q.drop(false)
			q.mu.Lock()
			q.sender.end() // before the turn goes: an attach then starts a new loop
			q.mu.Unlock()
		}
		q.turn.Unlock()
		if !ok {
			return
		}
		q.mu.Lock()
		more := q.n > 0 || q.snap != nil
		q.mu.Unlock()
		if more {
			continue
		}
		if copying {
			timer.Reset(copyResend)
		} else {
			timer.Reset(linger)
		}
		select {
		case <-q.sender.wake:
		case <-q.done:
			return
		case <-timer.C:
			if copying {
				continue
			}
			q.mu.Lock()
			if q.n == 0 && q.snap == nil {
				q.sender.end()
				q.mu.Unlock()
				return
			}
			q.mu.Unlock()
		}
	}
}

// round sends, waiting where the transport makes it wait, the copies of
// reliable frames that are due, then the queued small datagrams, then the
// queued snapshot (turn holder). copying reports copies held; ok is false
// when the session is gone.
func (q *dgramQueue) round() (ok, copying bool) {
	ok = true
	// Copies of reliable frames go first: they are what someone waits for.
	if q.copies != nil && q.copies.update() {
		copying = true
		if q.copyBufs == nil {
			q.copyBufs = new([copyDatagrams][]byte)
		}
		var tags [copyDatagrams]uint64
		n := q.copies.build(time.Now(), q.maxDgram, q.copyBufs, &tags)
		for i := 0; i < n && ok; i++ {
			var sent bool
			if sent, ok = q.sendOne(q.copyBufs[i], tags[i], nil, true); sent {
				q.stats.copiesSent.Add(1)
			}
		}
	}
	for ok {
		q.mu.Lock()
		if q.n == 0 {
			q.mu.Unlock()
			break
		}
		d := append(q.scratch[:0], q.slots.ring[q.head]...)
		tag := q.slots.tags[q.head]
		q.head = (q.head + 1) % dgramQueueLen
		q.n--
		q.mu.Unlock()
		q.scratch = d[:0]
		_, ok = q.sendOne(d, tag, nil, true)
	}
	q.mu.Lock()
	snap := q.snap
	q.snap = nil
	q.mu.Unlock()
	if snap != nil {
		if ok {
			_, ok = q.sendSnapshot(snap, nil, true)
		}
		snap.Release()
	}
	return ok, copying
}

// finish ends sending for good, after the connection's goroutines ended:
// it keeps the turn, so no one sends again, and drops what is queued and
// the snapshot baselines.
func (q *dgramQueue) finish() {
	q.turn.Lock()
	q.close()
	if q.snaps != nil {
		q.snaps.release()
	}
}

// sendSnapshot encodes snap for this peer (a delta against the newest
// snapshot it acknowledged, when there is one) and sends its fragments
// (turn holder). sent is false when a send that must not wait would have
// blocked; ok is false when the session is gone.
func (q *dgramQueue) sendSnapshot(snap *Snapshot, b *transport.Batch, wait bool) (sent, ok bool) {
	env := q.snaps.encode(snap)
	h := unreliable.SnapshotHeader{Tick: snap.Tick, Epoch: q.snaps.epoch}
	count, err := unreliable.FragmentCount(len(env), q.maxDgram)
	if env == nil || err != nil {
		q.stats.snapshotsTooLarge.Add(1)
		return true, true
	}
	h.Count = uint8(count)
	for i := 0; i < count; i++ {
		h.Index = uint8(i)
		q.scratch = unreliable.AppendEpochFragment(q.scratch[:0], 0, h, env, q.maxDgram)
		if sent, ok = q.sendOne(q.scratch, 0, b, wait); !sent {
			return sent, ok
		}
	}
	q.stats.snapshotsSent.Add(1)
	if env[unreliable.EnvelopeLen-1] != 0 {
		q.stats.snapshotsDelta.Add(1)
	}
	return true, true
}

// sendOne stamps d's header with the next sequence number and the current
// acks, sends it and counts it (turn holder). With wait it may block in
// SendDatagram; without, it goes into b or through TrySendDatagram, and
// sent is false when that would have blocked (the sequence number is then
// spent, as on a lost datagram). ok is false when the session is gone.
func (q *dgramQueue) sendOne(d []byte, tag uint64, b *transport.Batch, wait bool) (sent, ok bool) {
	if !wait && q.bound > 0 && q.acks.pending() >= uint64(q.bound) {
		return false, true // the transport's queue might be full
	}
	q.acks.stamp(d, tag, time.Now())
	var err error
	switch {
	case wait || q.bound > 0:
		err = q.sess.SendDatagram(d)
	case b != nil && q.batch != nil:
		err = q.batch.AddDatagram(b, d)
	default:
		if sent, err = q.try.TrySendDatagram(d); err == nil && !sent {
			return false, true
		}
	}
	if err != nil {
		q.stats.datagramsDropped.Add(1)
		return true, !isClosed(err)
	}
	q.stats.datagramsSent.Add(1)
	q.stats.bytesSent.Add(uint64(len(d)))
	return true, true
}

// trim lets an idle queue's buffers go (housekeeping, peer.trim): once
// nothing was sent for trimAfter, the acks' window, the turn holder's
// scratch and buffers of copies, and the ring with its datagram buffers, which
// are only filled to be sent. A sender that holds the turn is not idle.
func (q *dgramQueue) trim(now time.Time) {
	if !q.turn.TryLock() {
		return
	}
	defer q.turn.Unlock()
	if !q.acks.trim(now) {
		return
	}
	q.scratch, q.copyBufs = nil, nil
	q.mu.Lock()
	if q.n == 0 {
		q.slots, q.head = nil, 0
	}
	q.mu.Unlock()
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

// pending is how many datagrams sent are neither acknowledged nor lost.
func (a *ackState) pending() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent.Pending()
}

// trim releases the window of datagrams sent once none was for trimAfter
// (unreliable.Sent.Trim), and reports whether it is released.
func (a *ackState) trim(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent.Trim(now, trimAfter)
}

func (a *ackState) estimates() (rtt time.Duration, loss float64, acked, lost uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acked, lost = a.sent.Counts()
	return a.sent.RTT(), a.sent.Loss(), acked, lost
}
