package netcode

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/unreliable"
)

// boundedSession is a transport with QUIC's kind of datagram queue: it
// counts sends, and says it blocks only past 32 queued.
type boundedSession struct {
	transport.Session
	sends atomic.Int64
}

func (*boundedSession) MaxDatagram() int            { return unreliable.MaxDatagram }
func (*boundedSession) DatagramQueueLen() int       { return 32 }
func (s *boundedSession) SendDatagram([]byte) error { s.sends.Add(1); return nil }

// On a transport with a bounded queue, the tick sends a snapshot itself
// while fewer than the queue's length of its datagrams are unacknowledged,
// since then the queue cannot be full; past that it hands the snapshot to
// the sender goroutine, which may wait.
func TestSnapshotSentFromTheTickWhileTheQueueCannotBeFull(t *testing.T) {
	var stats connStats
	var acks ackState
	sess := &boundedSession{}
	q := newDgramQueue(&stats, &acks, sess)
	q.snaps = &snapshotSender{}
	var spawned atomic.Int64
	q.spawn = func(f func()) bool { spawned.Add(1); go f(); return true }
	done := make(chan struct{})
	q.done = done
	defer close(done)

	data := make([]byte, 100)
	for tick := uint32(1); tick <= 32; tick++ {
		s := NewSnapshot(tick)
		s.Data = append(s.Data, data...)
		q.sendSnapshotNow(s, nil)
		s.Release()
		if got := sess.sends.Load(); got != int64(tick) {
			t.Fatalf("tick %d: %d sends when sendSnapshotNow returned; want it sent on the caller's goroutine", tick, got)
		}
	}
	if spawned.Load() != 0 {
		t.Fatalf("a sender goroutine started while the queue could not be full")
	}
	// 32 unacknowledged: the next one goes to the sender goroutine.
	s := NewSnapshot(33)
	s.Data = append(s.Data, data...)
	q.sendSnapshotNow(s, nil)
	s.Release()
	if spawned.Load() != 1 {
		t.Fatalf("%d sender goroutines started with 32 datagrams unacknowledged; want 1", spawned.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for sess.sends.Load() != 33 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := sess.sends.Load(); got != 33 {
		t.Fatalf("the sender goroutine sent %d in all; want 33", got)
	}
	// Acknowledged, the queue is free again for the tick.
	q.turn.Lock()
	acks.record(unreliable.Header{Seq: 1, Ack: 33, AckBits: ^uint32(0)}, time.Now())
	q.turn.Unlock()
	s = NewSnapshot(34)
	s.Data = append(s.Data, data...)
	q.sendSnapshotNow(s, nil)
	s.Release()
	if got := sess.sends.Load(); got != 34 {
		t.Fatalf("after the acks: %d sends when sendSnapshotNow returned; want 34", got)
	}
}

// A resume moves the datagram queue to a new transport with a fresh
// baseline: the next snapshot is whole, whatever the client acknowledged
// before, and deltas follow once it acknowledges one on the new transport.
func TestSnapshotWholeAfterResume(t *testing.T) {
	var stats connStats
	var acks ackState
	q := newDgramQueue(&stats, &acks, &boundedSession{})
	q.snaps = &snapshotSender{codec: unreliable.XORCodec{}}
	q.spawn = func(f func()) bool { go f(); return true }
	done := make(chan struct{})
	q.done = done
	defer close(done)
	send := func(tick uint32) {
		s := NewSnapshot(tick)
		s.Stream = 1
		s.Data = append(s.Data, make([]byte, 300)...)
		q.sendSnapshotNow(s, nil)
		s.Release()
	}
	ack := func(tick uint32) {
		q.snaps.ack(unreliable.SnapshotAck{Epoch: uint8(q.snaps.current.Load()), Tick: tick})
	}
	send(1)
	ack(1)
	send(2)
	if d := stats.snapshotsDelta.Load(); d != 1 {
		t.Fatalf("%d deltas after an acknowledged baseline; want 1", d)
	}
	q.attach(&boundedSession{})
	send(3)
	if d := stats.snapshotsDelta.Load(); d != 1 {
		t.Fatalf("the first snapshot after a resume was a delta")
	}
	ack(3)
	send(4)
	if d := stats.snapshotsDelta.Load(); d != 2 {
		t.Fatalf("%d deltas once the new transport acknowledged one; want 2", d)
	}
}
